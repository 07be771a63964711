"""Device Defender Detect sources: violation events through overlapping windows, active-violation snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from . import events
from .aws import AwsSession
from .checkpoint import DAY, InputState, advance_to, next_window, utc_datetime
from .events import MalformedRecord
from .params import aws_name, boolean, choice, integer
from .pipeline import Page, RunScope

VIOLATION_RETENTION_SECONDS = 30 * DAY
PAGE_SIZE = 250
# Windows are read in slices: each completed slice is a checkpoint, so the keys a restart needs stay bounded
# by one slice (plus the overlap), whatever the backfill. The first slice is SLICE_SECONDS long; later ones are
# sized from the density just read (next_slice_seconds).
SLICE_SECONDS = 6 * 3600.0
SLICE_TARGET_EVENTS = 5_000
SLICE_GROWTH = 4.0
MIN_SLICE_SECONDS = 300.0
MAX_SLICE_SECONDS = 3 * DAY
BEHAVIOR_CRITERIA_TYPES = ("STATIC", "STATISTICAL", "MACHINE_LEARNING")


@dataclass(frozen=True)
class ViolationOptions:
    backfill_seconds: float = DAY
    overlap_seconds: float = 15 * 60
    security_profile_name: Optional[str] = None
    behavior_criteria_type: Optional[str] = None  # None = any
    include_suppressed: bool = True
    collect_active: bool = True

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> ViolationOptions:
        get = params.get
        criteria = choice(
            get("behavior_criteria_type"), "behavior_criteria_type", ("ANY", *BEHAVIOR_CRITERIA_TYPES), "ANY"
        )
        return cls(
            backfill_seconds=integer(get("backfill_hours"), "backfill_hours", 24, 0, 720) * 3600.0,
            overlap_seconds=integer(get("overlap_minutes"), "overlap_minutes", 15, 0, 1440) * 60.0,
            security_profile_name=aws_name(
                get("security_profile_name"), "security_profile_name", "security_profile_name"
            ),
            behavior_criteria_type=None if criteria == "ANY" else criteria,
            include_suppressed=boolean(get("include_suppressed"), "include_suppressed", True),
            collect_active=boolean(get("collect_active_violations"), "collect_active_violations", True),
        )

    def filters(self) -> Dict[str, Any]:
        # listSuppressedAlerts=True would list ONLY suppressed alerts; leaving it out lists both.
        found: Dict[str, Any] = {} if self.include_suppressed else {"listSuppressedAlerts": False}
        if self.security_profile_name:
            found["securityProfileName"] = self.security_profile_name
        if self.behavior_criteria_type:
            found["behaviorCriteriaType"] = self.behavior_criteria_type
        return found


def shape_violation_page(
    records: List[Any], *, account_id: str, region: str
) -> Tuple[List[Tuple[Optional[str], events.Event]], List[Any]]:
    """Keyed events for one API page; malformed records are reported (with their reason), the rest go through."""
    items: List[Tuple[Optional[str], events.Event]] = []
    malformed: List[Any] = []
    for record in records:
        try:
            event = events.violation_event(record, account_id=account_id, region=region)
            items.append((events.violation_event_key(event), event))
        except MalformedRecord as exc:
            malformed.append(exc)
    return items, malformed


def next_slice_seconds(current: float, events: int) -> float:
    """The length of the next slice: about :data:`SLICE_TARGET_EVENTS` events at the density just read.

    A dense backlog is read in short slices (the keys a restart needs stay bounded by events, not hours); a
    sparse one in long slices, so the one short page that ends each slice costs little of the 10 TPS quota.
    """
    if events <= 0:
        wanted = current * SLICE_GROWTH
    else:
        wanted = current * SLICE_TARGET_EVENTS / events
    wanted = min(max(wanted, current / SLICE_GROWTH), current * SLICE_GROWTH)
    return min(max(wanted, MIN_SLICE_SECONDS), MAX_SLICE_SECONDS)


def violation_pages(session: AwsSession, scope: RunScope, state: InputState) -> Iterator[Page]:
    """Pages of violation events in this run's window; each finished slice moves the high-water mark."""
    options: ViolationOptions = scope.options
    client = session.client("iot", scope.region)
    start, end = next_window(
        state,
        scope.now,
        overlap_seconds=options.overlap_seconds,
        backfill_seconds=options.backfill_seconds,
        retention_seconds=VIOLATION_RETENTION_SECONDS,
    )
    slice_start, slice_seconds = start, SLICE_SECONDS
    while slice_start < end:
        slice_end = min(end, slice_start + slice_seconds)
        read = 0
        for records, _token in session.paginate(
            client,
            "list_violation_events",
            result_key="violationEvents",
            page_size=PAGE_SIZE,
            startTime=utc_datetime(slice_start),
            endTime=utc_datetime(slice_end),
            **options.filters(),
        ):
            read += len(records)
            items, malformed = shape_violation_page(records, account_id=scope.account_id, region=scope.region)
            yield Page(items=items, malformed=malformed)
        yield Page(progress=advance_to(slice_end))
        slice_seconds = next_slice_seconds(slice_end - slice_start, read)
        slice_start = slice_end


def violation_keep_after(options: ViolationOptions) -> Callable[[InputState], float]:
    """Keys older than the next window's start can never come back: forget them."""

    def keep_after(state: InputState) -> float:
        if state.high_water is None:
            return float("-inf")
        return state.high_water - options.overlap_seconds - 60.0

    return keep_after


def active_violation_pages(session: AwsSession, scope: RunScope) -> Iterator[Page]:
    """One snapshot of the violations currently in alarm (rows carry the snapshot time)."""
    client = session.client("iot", scope.region)
    for records, _token in session.paginate(
        client,
        "list_active_violations",
        result_key="activeViolations",
        page_size=PAGE_SIZE,
        **scope.options.filters(),
    ):
        items: List[Tuple[Optional[str], events.Event]] = []
        malformed: List[Any] = []
        for record in records:
            try:
                event = events.active_violation_event(
                    record, account_id=scope.account_id, region=scope.region, snapshot_time=scope.now
                )
            except MalformedRecord as exc:
                malformed.append(exc)
                continue
            items.append((None, event))
        yield Page(items=items, malformed=malformed)


def pages(session: AwsSession, scope: RunScope, state: InputState) -> Iterator[Page]:
    """The violations input: the events of this run's window, then (if chosen) the active-violation snapshot."""
    yield from violation_pages(session, scope, state)
    if scope.options.collect_active:
        yield from active_violation_pages(session, scope)
