"""Alert action iot_start_incident: Start an Incident Manager incident (or publish it to SNS) per thing.

A thin adapter: parameters, rows, limits, result events and exit codes are handled by iot_defender_alert (shared by
all four actions), the AWS work by iot_defender.respond.
"""

from __future__ import annotations

from iot_defender_alert import START_INCIDENT, run


def process_event(helper, *args, **kwargs) -> int:
    return run(helper, START_INCIDENT)
