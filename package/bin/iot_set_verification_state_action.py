"""Alert action iot_set_verification_state: Send the analyst's verdict on a violation to Device Defender.

A thin adapter: parameters, rows, limits, result events and exit codes are handled by iot_defender_alert (shared by
all four actions), the AWS work by iot_defender.respond.
"""

from __future__ import annotations

from iot_defender_alert import SET_VERIFICATION_STATE, run


def process_event(helper, *args, **kwargs) -> int:
    return run(helper, SET_VERIFICATION_STATE)
