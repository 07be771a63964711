"""Alert action iot_release_thing: a thin adapter over iot_defender.respond."""

from __future__ import annotations


def process_event(helper, *args, **kwargs) -> int:
    helper.log_error("iot_release_thing is not implemented yet")
    return 3
