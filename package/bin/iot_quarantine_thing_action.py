"""Alert action iot_quarantine_thing: add a thing to the isolating quarantine group (optionally deactivate its
certificates), recording what changed so a release can undo exactly that.

A thin adapter: parameters, rows, limits, result events and exit codes are handled by iot_defender_alert (shared by
all four actions), the AWS work by iot_defender.respond.
"""

from __future__ import annotations

from iot_defender_alert import QUARANTINE, run


def process_event(helper, *args, **kwargs) -> int:
    return run(helper, QUARANTINE)
