"""Checkpoint state for the pull inputs: time windows, remembered keys and the crash journal.

Storage is injected (the inputs use the Splunk KV store; tests use a dict), so all the logic here is pure.

Exactly-once delivery across crashes rests on two records:
- the *checkpoint* (KV store, written once per page): the window high-water mark, finished audit tasks, and the
  keys of recently indexed events that a later overlapping window could return again;
- the *journal* (a local append-only file, one line per event, written right after the event itself): the keys
  of events indexed since the last checkpoint. A run killed between a page's events and its checkpoint leaves
  them in the journal, so the restarted run knows they were indexed and does not repeat them.
The checkpoint only moves forward after the events it covers were written, so a crash never loses an event.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Protocol, Tuple

STATE_VERSION = 1
DAY = 86400.0


class CheckpointStore(Protocol):
    """Where checkpoints live (Splunk KV store in production)."""

    def get(self, key: str) -> Optional[Dict[str, Any]]: ...

    def update(self, key: str, state: Dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryStore:
    """A dict-backed :class:`CheckpointStore` for tests and benchmarks."""

    def __init__(self) -> None:
        self.data: Dict[str, Dict[str, Any]] = {}

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        value = self.data.get(key)
        return json.loads(json.dumps(value)) if value is not None else None

    def update(self, key: str, state: Dict[str, Any]) -> None:
        self.data[key] = json.loads(json.dumps(state))

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def checkpoint_key(input_type: str, stanza: str, account: str, region: str) -> str:
    """One checkpoint per input + account + region (the KV ``_key``)."""
    return f"{checkpoint_prefix(input_type, stanza)}{account}:{region}"


def checkpoint_prefix(input_type: str, stanza: str) -> str:
    """What every checkpoint key of one input starts with (deleting the input deletes them all)."""
    return f"{input_type}:{stanza}:"


@dataclass
class InputState:
    """What a source needs to resume: high-water mark, keys seen near it, finished tasks."""

    high_water: Optional[float] = None  # epoch seconds: end of the last fully delivered window
    seen: Dict[str, float] = field(default_factory=dict)  # event key -> its event time (epoch s)
    done_tasks: Dict[str, float] = field(default_factory=dict)  # audit task id -> task start time
    open_tasks: Dict[str, float] = field(default_factory=dict)  # audit tasks to revisit -> start time
    # The service refused this account as "not available" (e.g. Detect closed to it): ask AWS again only then.
    unavailable_until: Optional[float] = None

    @classmethod
    def from_dict(cls, data: Optional[Dict[str, Any]]) -> InputState:
        if not data or data.get("version") != STATE_VERSION:
            return cls()
        return cls(
            high_water=data.get("high_water"),
            seen={str(k): float(v) for k, v in (data.get("seen") or {}).items()},
            done_tasks={str(k): float(v) for k, v in (data.get("done_tasks") or {}).items()},
            open_tasks={str(k): float(v) for k, v in (data.get("open_tasks") or {}).items()},
            unavailable_until=_optional_float(data.get("unavailable_until")),
        )

    def to_dict(self) -> Dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "high_water": self.high_water,
            "seen": self.seen,
            "done_tasks": self.done_tasks,
            "open_tasks": self.open_tasks,
            "unavailable_until": self.unavailable_until,
        }

    def prune(self, keep_after: float) -> None:
        """Forget keys and tasks older than ``keep_after``: no window will return them again."""
        self.seen = {k: t for k, t in self.seen.items() if t >= keep_after}
        self.done_tasks = {k: t for k, t in self.done_tasks.items() if t >= keep_after}


def _optional_float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def next_window(
    state: InputState,
    now: float,
    *,
    overlap_seconds: float,
    backfill_seconds: float,
    retention_seconds: float,
    settle_seconds: float = 0.0,
) -> Tuple[float, float]:
    """The ``[start, end)`` window this run reads.

    The first run reads back ``backfill_seconds``; later runs restart ``overlap_seconds`` before the previous
    high-water mark so late-arriving events are still found (their keys make the repeats harmless). Never
    before the service's retention, which would be refused or silently empty.
    """
    end = now - settle_seconds
    oldest = now - retention_seconds + 60.0  # a minute of margin against clock skew with AWS
    if state.high_water is None:
        start = now - backfill_seconds
    else:
        start = state.high_water - overlap_seconds
    start = max(start, oldest)
    return min(start, end), end


def utc_datetime(epoch: float) -> _dt.datetime:
    """An API time parameter from an epoch window bound."""
    return _dt.datetime.fromtimestamp(epoch, tz=_dt.timezone.utc)


def advance_to(high_water: float) -> Callable[[InputState], None]:
    """A page progress step that moves the high-water mark (the window up to it is fully delivered)."""

    def advance(target: InputState) -> None:
        target.high_water = high_water

    return advance


class Journal:
    """Local append-only record of the keys of events written since the last checkpoint."""

    def __init__(self, path: str):
        self.path = path
        self._fd: Optional[int] = None

    def keys(self) -> Dict[str, float]:
        """Journaled keys with their event times."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = handle.read()
        except FileNotFoundError:
            return {}
        found: Dict[str, float] = {}
        # A line cut by a crash has no newline: its event may not have been written either, so ignore it.
        for line in data.split("\n")[:-1]:
            key, _, when = line.rpartition("\t")
            if key:
                try:
                    found[key] = float(when)
                except ValueError:
                    continue
        return found

    @staticmethod
    def encode(key: str, when: float) -> bytes:
        return (key.replace("\n", " ").replace("\t", " ") + f"\t{when:.3f}\n").encode("utf-8")

    def open(self) -> None:
        if self._fd is None:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, key: str, when: float) -> None:
        self.open()
        self.write_encoded(self.encode(key, when))

    def write_encoded(self, line: bytes) -> None:
        """One ``write(2)`` of a line prepared by :meth:`encode` (call :meth:`open` first)."""
        os.write(self._fd, line)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Called after a checkpoint that includes every journaled key."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class MemoryJournal(Journal):
    """In-memory journal for unit tests of the pipeline."""

    def __init__(self) -> None:
        super().__init__("")
        self.lines: Dict[str, float] = {}

    def keys(self) -> Dict[str, float]:
        return dict(self.lines)

    def open(self) -> None:
        return None

    def write_encoded(self, line: bytes) -> None:
        key, _, when = line.decode("utf-8").rstrip("\n").rpartition("\t")
        self.lines[key] = float(when)

    def append(self, key: str, when: float) -> None:
        self.lines[key] = when

    def reset(self) -> None:
        self.lines = {}

    def close(self) -> None:
        return None


def merge_seen(state: InputState, journal_keys: Dict[str, float]) -> int:
    """Add journaled keys (events written before a crash) to the state; returns how many were new."""
    added = 0
    for key, when in journal_keys.items():
        if key not in state.seen:
            state.seen[key] = when
            added += 1
    return added
