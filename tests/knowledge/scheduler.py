"""The search scheduler, as the SPL model runs saved searches: when each scheduled search runs, in which order, and
which runs Splunk may skip. Every rule cites savedsearches.conf.spec (Splunk 8.2 .. 10.0) with its default:

- ``cron_schedule``: the scheduled times. A run's time range (``dispatch.earliest_time``/``latest_time``) is relative
  to its *scheduled* time, however late it starts (the scheduler dispatches it with that time as ``now``).
- ``realtime_schedule = <boolean>``, default 1: "the scheduler bases its determination of the next scheduled search
  execution time on the current time ... might skip some execution periods to make sure that the scheduler is
  executing the searches running over the most recent time range"; 0 (continuous scheduling) "never skips": every
  period runs, late if need be.
- ``schedule_window = <unsigned integer> | auto``, default 0: minutes the scheduler may delay a run to balance load;
  ``auto`` lets it choose (modelled as up to half the search's period).
- Searches of the same hour share the scheduler's queue: nothing orders them but their priority, so under load runs of
  one hour come in any order (a detection at :10 may start after the baseline at :20).

``ordered`` is the quiet scheduler (every run on time, detections before baselines in a minute); ``chaos`` the loaded
one, seeded: skips where ``realtime_schedule`` allows them, delays within ``schedule_window``, and any order within
an hour.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Dict, List, Mapping

from croniter import croniter

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Dispatch:
    scheduled: float  # the run's "now": its time range is relative to it
    name: str
    delay: float = 0.0


@dataclass
class Plan:
    runs: List[Dispatch]
    skipped: List[Dispatch]


def _truth(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "t", "yes")


def realtime(values: Mapping[str, str]) -> bool:
    """savedsearches.conf realtime_schedule, default 1 (true)."""
    return _truth(values.get("realtime_schedule", "1"))


def period(cron: str) -> float:
    times = croniter(cron, 1_796_083_200.0)
    first = times.get_next(float)
    return times.get_next(float) - first


def window_seconds(values: Mapping[str, str]) -> float:
    """savedsearches.conf schedule_window in seconds (minutes in the file; default 0; auto: half the period)."""
    text = values.get("schedule_window", "0").strip().lower()
    if text == "auto":
        return period(values["cron_schedule"]) / 2
    return float(int(text)) * 60


def scheduled_times(searches: Mapping[str, Mapping[str, str]], start: float, end: float) -> List[Dispatch]:
    """Every (scheduled time, search) with start < time <= end, by the searches' cron_schedule."""
    out = []
    for name, values in searches.items():
        times = croniter(values["cron_schedule"], dt.datetime.fromtimestamp(start, UTC))
        moment = times.get_next(float)
        while moment <= end:
            out.append(Dispatch(moment, name))
            moment = times.get_next(float)
    return out


def ordered(searches: Mapping[str, Mapping[str, str]], start: float, end: float) -> Plan:
    """A quiet scheduler: on time; in one minute detections ("- Rule") before baselines."""
    runs = sorted(
        scheduled_times(searches, start, end), key=lambda d: (d.scheduled, d.name.endswith(" - Baseline"), d.name)
    )
    return Plan(runs=runs, skipped=[])


def chaos(
    searches: Mapping[str, Mapping[str, str]], start: float, end: float, *, seed: int, skip_rate: float = 0.2
) -> Plan:
    """A loaded scheduler, seeded: a run whose search allows it (realtime_schedule) is skipped with ``skip_rate``;
    every other run is delayed within its schedule_window and runs of one hour execute in a random order."""
    rng = random.Random(seed)
    runs: List[Dispatch] = []
    skipped: List[Dispatch] = []
    for run in sorted(scheduled_times(searches, start, end), key=lambda d: (d.scheduled, d.name)):
        values = searches[run.name]
        if realtime(values) and rng.random() < skip_rate:
            skipped.append(run)
            continue
        runs.append(Dispatch(run.scheduled, run.name, rng.uniform(0, window_seconds(values))))
    shuffle: Dict[Dispatch, float] = {r: rng.random() for r in runs}
    runs.sort(key=lambda r: ((r.scheduled + r.delay) // 3600, shuffle[r]))
    return Plan(runs=runs, skipped=skipped)
