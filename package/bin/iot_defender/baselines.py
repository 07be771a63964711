"""Pruning the detections' baseline lookups: rows not seen for the retention period are deleted.

The "... - Baseline" searches upsert only the rows of their own window (``outputlookup append=true key_field=_key``)
and never read a collection whole (Splunk answers one KV query with at most ``max_rows_per_query`` = 50,000 rows,
``[kvstore]`` in limits.conf). SPL cannot delete a single KV row, so a row not seen for the retention period (macro
``iot_defender_baseline_retention``; the detections already count such a row as never seen) would stay forever.
The inventory input deletes them after each complete run, one account and region at a time, with one KV delete by
query per collection: the KV store removes the matching rows itself, nothing is read into the input.

The retention is the macro's own definition, so a local override (``local/macros.conf``) moves both the detections
and the pruning. Only the shipped form ``relative_time(now(), "-<N>d[@d]")`` is understood; anything else is refused
(no pruning that run, a warning), never guessed.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Tuple

from .params import ParameterError

RETENTION_MACRO = "iot_defender_baseline_retention"
COLLECTIONS: Tuple[str, ...] = ("iot_defender_seen_values", "iot_defender_metric_baseline", "iot_defender_audit_seen")
DAY = 86400
# A margin past the retention: a row the detections still count as "seen" (last_seen at or after the snapped cutoff)
# is never deleted, whatever the clock's hour.
MARGIN_SECONDS = DAY
_DEFINITION = re.compile(r'\s*relative_time\(\s*now\(\)\s*,\s*"-([0-9]{1,4})d(@d)?"\s*\)\s*\Z', re.ASCII)


def retention_seconds(definition: str) -> int:
    """The retention of the macro's definition, in seconds; :class:`ParameterError` for any other form."""
    match = _DEFINITION.match(definition or "")
    if not match or int(match.group(1)) < 1:
        raise ParameterError(f"macro {RETENTION_MACRO}", definition, 'relative_time(now(), "-<days>d@d")')
    return int(match.group(1)) * DAY


def prune_query(account_id: str, region: str, *, now: float, retention: int) -> Dict[str, Any]:
    """The KV query of one account and region's rows last seen before the retention (plus a day's margin)."""
    cutoff = int(now) - retention - MARGIN_SECONDS
    return {"account_id": account_id, "region": region, "last_seen": {"$lt": cutoff}}
