"""The one delivery pipeline every pull input shares: pages of keyed events → sink → journal → checkpoint.

A *source* (audit, detect, inventory) is a generator of :class:`Page` objects; it never writes anything
itself. :func:`deliver` writes each event once (keys already seen are skipped) and journals its key right
after writing it. When a page carries *progress* (a time slice or an audit task is complete), the progress is
applied to the state and the checkpoint saved, then the journal emptied: events first, checkpoint after, so a
crash at any point neither loses nor repeats an event. Between two checkpoints the journal alone remembers
what was written, which keeps checkpoint writes rare and small.

Single-threaded on purpose: a page-prefetch thread measured slower (GIL hand-offs cost more than the overlap with
AWS latency gained) and let another thread run between an event's write and its journal line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Tuple, Union

from .checkpoint import InputState, Journal, checkpoint_key
from .events import Event, neutralised, to_iso

# Malformed-record messages kept per run for the log (the count is always exact).
MAX_REPORTED_MALFORMED = 20


class Sink(Protocol):
    def write(self, event: Event) -> None: ...


@dataclass(frozen=True)
class RunScope:
    """What one run of one input reads: which input, account and region, its parsed options and its clock."""

    input: str  # the input kind, e.g. iot_defender_violations
    stanza: str  # the input's name (without the ``kind://`` prefix)
    account: str  # the add-on's account configuration name
    account_id: str  # the AWS account id (events carry it)
    region: str
    options: Any  # the kind's parsed options (e.g. ViolationOptions)
    now: float  # epoch seconds when the run started: window ends and snapshot times
    clock: Callable[[], float] = time.time

    @property
    def checkpoint_key(self) -> str:
        return checkpoint_key(self.input, self.stanza, self.account, self.region)


@dataclass
class Page:
    """One unit of delivery: events (with dedup keys, or None for snapshot rows) and what the state learns."""

    items: List[Tuple[Optional[str], Event]] = field(default_factory=list)
    progress: Optional[Callable[[InputState], None]] = None
    # Records skipped: a message, or the MalformedRecord itself (its ``reason`` feeds ``skipped_reasons``).
    malformed: List[Union[str, Exception]] = field(default_factory=list)
    duplicates: int = 0  # snapshot records listed twice in one run and dropped


@dataclass
class RunStats:
    """One run's figures; logged as one ``iot_defender_run_summary`` line for the health dashboard."""

    input: str
    stanza: str
    account: str
    region: str
    started: float = field(default_factory=time.time)
    events: int = 0
    pages: int = 0
    api_calls: int = 0
    throttles: int = 0
    errors: int = 0
    malformed: int = 0
    duplicates_skipped: int = 0
    neutralised_names: int = 0  # events written with a device name replaced by its stand-in (events.neutralised)
    recovered_from_journal: int = 0
    lag_seconds: Optional[float] = None
    status: str = "ok"
    error_code: Optional[str] = None
    next_check: Optional[float] = None  # status=unavailable: when AWS is asked again (epoch seconds)
    malformed_samples: List[str] = field(default_factory=list)
    skipped_reasons: Dict[str, int] = field(default_factory=dict)  # skipped records per reason
    by_sourcetype: Dict[str, int] = field(default_factory=dict)  # events written per sourcetype

    def note_malformed(self, records: Iterable[Union[str, Exception]]) -> None:
        """Count skipped records (reported, never fatal): per reason, with the first messages kept for the log."""
        for record in records:
            self.malformed += 1
            reason = str(getattr(record, "reason", "malformed"))
            self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + 1
            if len(self.malformed_samples) < MAX_REPORTED_MALFORMED:
                self.malformed_samples.append(str(record))

    def summary(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {
            "input": self.input,
            "stanza": self.stanza,
            "account": self.account,
            "region": self.region,
            "status": self.status,
            "events": self.events,
            "pages": self.pages,
            "api_calls": self.api_calls,
            "throttles": self.throttles,
            "errors": self.errors,
            "malformed": self.malformed,
            "skipped_records": self.malformed,
            "skipped_reasons": ",".join(f"{k}:{v}" for k, v in sorted(self.skipped_reasons.items())) or None,
            "duplicates_skipped": self.duplicates_skipped,
            "neutralised_names": self.neutralised_names,
            "recovered_from_journal": self.recovered_from_journal,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 1),
            "duration_seconds": round(time.time() - self.started, 3),
        }
        if self.error_code:
            data["error_code"] = self.error_code
        if self.next_check is not None:
            data["next_check"] = to_iso(self.next_check)
        return data

    def summary_line(self) -> str:
        """``key=value`` pairs (values never contain spaces) that Splunk extracts without configuration."""
        parts = ["iot_defender_run_summary"]
        for key, value in self.summary().items():
            if value is None:
                continue
            parts.append(f"{key}={str(value).replace(' ', '_')}")
        return " ".join(parts)


def deliver(
    pages: Iterable[Page],
    *,
    state: InputState,
    sink: Sink,
    journal: Journal,
    save: Callable[[InputState], None],
    stats: RunStats,
    keep_after: Callable[[InputState], float],
) -> None:
    """Write every page's new events, then checkpoint; see the module docstring for the guarantees."""
    counts = stats.by_sourcetype
    for page in pages:
        for key, event in page.items:
            if key is not None:
                if key in state.seen:
                    stats.duplicates_skipped += 1
                    continue
                # Everything is prepared before the two writes, so nothing runs between the event becoming
                # visible and its journal line: a kill -9 can only land between them in that one instant.
                line = journal.encode(key, event.time)
                journal.open()
                sink.write(event)
                journal.write_encoded(line)
                state.seen[key] = event.time
            else:
                sink.write(event)
            stats.events += 1
            counts[event.sourcetype] = counts.get(event.sourcetype, 0) + 1
            if neutralised(event):
                stats.neutralised_names += 1
        stats.note_malformed(page.malformed)
        stats.duplicates_skipped += page.duplicates
        stats.pages += 1
        if page.progress is not None:
            page.progress(state)
            state.prune(keep_after(state))
            save(state)
            journal.reset()
