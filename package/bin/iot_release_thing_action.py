"""Alert action iot_release_thing: Release a thing: undo exactly what the quarantine action recorded on it.

A thin adapter: parameters, rows, limits, result events and exit codes are handled by iot_defender_alert (shared by
all four actions), the AWS work by iot_defender.respond.
"""

from __future__ import annotations

from iot_defender_alert import RELEASE, run


def process_event(helper, *args, **kwargs) -> int:
    return run(helper, RELEASE)
