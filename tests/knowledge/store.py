"""Indexed events of the SPL model: field dicts with ``_time``, ``_raw`` and ``sourcetype``, by sourcetype and time,
returned for a search's window the way Splunk returns them (newest first)."""

from __future__ import annotations

import bisect
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from tests.knowledge import splkit

Row = Dict[str, Any]


class EventStore:
    """Indexed events (field dicts with ``_time``, ``_raw``, ``sourcetype``) by sourcetype and time."""

    def __init__(self, events: Iterable[Row] = ()):
        self._by_sourcetype: Dict[str, Tuple[List[float], List[Row]]] = {}
        self.add(events)

    def add(self, events: Iterable[Row]) -> None:
        grouped: Dict[str, List[Row]] = {}
        for event in events:
            grouped.setdefault(event["sourcetype"], []).append(event)
        for sourcetype, items in grouped.items():
            _times, rows = self._by_sourcetype.get(sourcetype, ([], []))
            merged = sorted(rows + items, key=lambda e: e["_time"])
            self._by_sourcetype[sourcetype] = ([e["_time"] for e in merged], merged)

    def window(self, earliest: float, latest: float, ast: Any) -> Iterable[Row]:
        """Events with earliest <= _time < latest of the sourcetypes the base search names (all if none), newest
        first as Splunk returns them."""
        wanted = {v for f, op, v, neg in splkit.base_terms(ast) if f == "sourcetype" and op == "=" and not neg}
        names: Sequence[str] = (
            sorted(wanted) if wanted and not any("*" in w for w in wanted) else list(self._by_sourcetype)
        )
        for name in names:
            times, rows = self._by_sourcetype.get(name, ([], []))
            lo, hi = bisect.bisect_left(times, earliest), bisect.bisect_left(times, latest)
            yield from reversed(rows[lo:hi])
