"""Alert action iot_set_verification_state: a thin adapter over iot_defender.respond."""

from __future__ import annotations


def process_event(helper, *args, **kwargs) -> int:
    helper.log_error("iot_set_verification_state is not implemented yet")
    return 3
