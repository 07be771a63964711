from __future__ import annotations

import pytest

from iot_defender import events
from iot_defender.checkpoint import InputState, Journal, MemoryJournal, MemoryStore, merge_seen, next_window
from iot_defender.pipeline import Page, RunScope, RunStats, deliver


def ev(n: int) -> events.Event:
    return events.Event(time=1000.0 + n, sourcetype="aws:iot:defender:violation", source="s", data={"n": n})


class ListSink:
    def __init__(self, fail_after: int | None = None):
        self.events: list = []
        self.fail_after = fail_after

    def write(self, event):
        if self.fail_after is not None and len(self.events) >= self.fail_after:
            raise KeyboardInterrupt("killed")  # stands in for SIGKILL between two events
        self.events.append(event)


def pages(n_pages: int, per_page: int, high_water: float):
    for p in range(n_pages):
        yield Page(items=[(f"k{p * per_page + i}", ev(p * per_page + i)) for i in range(per_page)])

    def advance(state):
        state.high_water = high_water

    yield Page(progress=advance)


def run(store, journal, sink, n_pages=5, per_page=10):
    state = InputState.from_dict(store.get("cp"))
    stats = RunStats(input="i", stanza="s", account="a", region="r")
    stats.recovered_from_journal = merge_seen(state, journal.keys())
    deliver(
        pages(n_pages, per_page, 5000.0),
        state=state,
        sink=sink,
        journal=journal,
        save=lambda s: store.update("cp", s.to_dict()),
        stats=stats,
        keep_after=lambda s: float("-inf"),
    )
    return stats


@pytest.mark.parametrize("kill_at", [0, 1, 9, 10, 11, 25, 49])
def test_a_run_killed_anywhere_then_rerun_delivers_every_event_once(tmp_path, kill_at):
    store = MemoryStore()
    journal = Journal(str(tmp_path / "j.journal"))
    indexed: list = []
    first = ListSink(fail_after=kill_at)
    with pytest.raises(KeyboardInterrupt):
        run(store, journal, first)
    journal.close()
    indexed += first.events
    second = ListSink()
    stats = run(store, Journal(str(tmp_path / "j.journal")), second)
    indexed += second.events
    assert sorted(e.data["n"] for e in indexed) == list(range(50))
    assert stats.duplicates_skipped == kill_at
    assert InputState.from_dict(store.get("cp")).high_water == 5000.0


def test_journal_ignores_a_line_cut_by_a_crash(tmp_path):
    path = tmp_path / "j"
    journal = Journal(str(path))
    journal.append("a", 1.0)
    journal.close()
    with open(path, "a") as handle:
        handle.write("b\t2.0")  # no newline: the write was cut
    assert Journal(str(path)).keys() == {"a": 1.0}


def test_snapshot_rows_without_keys_are_not_deduplicated():
    sink = ListSink()
    stats = RunStats(input="i", stanza="s", account="a", region="r")
    state = InputState()
    page = Page(items=[(None, ev(1)), (None, ev(1))], malformed=["bad row"])
    deliver(
        [page],
        state=state,
        sink=sink,
        journal=MemoryJournal(),
        save=lambda s: None,
        stats=stats,
        keep_after=lambda s: 0,
    )
    assert len(sink.events) == 2 and stats.malformed == 1 and stats.malformed_samples == ["bad row"]


def test_windows_overlap_and_respect_retention():
    state = InputState()
    start, end = next_window(state, 100_000.0, overlap_seconds=600, backfill_seconds=3600, retention_seconds=50_000)
    assert (start, end) == (96_400.0, 100_000.0)
    state.high_water = end
    start, end = next_window(state, 101_000.0, overlap_seconds=600, backfill_seconds=3600, retention_seconds=50_000)
    assert start == 99_400.0 and end == 101_000.0
    start, _ = next_window(
        InputState(), 100_000.0, overlap_seconds=0, backfill_seconds=90_000, retention_seconds=50_000
    )
    assert start == 50_060.0


def test_state_round_trips_and_prunes():
    state = InputState(high_water=10.0, seen={"old": 1.0, "new": 9.0}, done_tasks={"t1": 0.5, "t2": 9.5})
    again = InputState.from_dict(state.to_dict())
    assert again == state
    again.prune(5.0)
    assert again.seen == {"new": 9.0} and again.done_tasks == {"t2": 9.5}
    assert InputState.from_dict({"version": 999, "high_water": 3}).high_water is None


def test_summary_line_is_key_value_without_spaces():
    stats = RunStats(input="iot_defender_violations", stanza="my input", account="prod", region="us-east-1")
    stats.events = 3
    line = stats.summary_line()
    assert line.startswith("iot_defender_run_summary input=iot_defender_violations stanza=my_input")
    assert "events=3" in line and "status=ok" in line


def test_long_backfill_is_read_in_slices_each_a_checkpoint():
    import datetime as dt

    from botocore.stub import ANY, Stubber

    from iot_defender import detect
    from iot_defender.aws import Account, AwsSession, ClientSettings

    session = AwsSession(
        Account(name="t", access_key_id="AKIAEXAMPLEEXAMPLE01", secret_access_key="x" * 40), ClientSettings()
    )
    client = session.client("iot", "us-east-1")
    now = 1_763_900_000.0
    options = detect.ViolationOptions(backfill_seconds=15 * 3600, collect_active=False)
    saves = []
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_response(
                "list_violation_events",
                {"violationEvents": []},
                {"startTime": ANY, "endTime": ANY, "maxResults": 250},
            )
        state = InputState()
        deliver(
            detect.violation_pages(
                session,
                RunScope(
                    input="i", stanza="s", account="a", account_id="1", region="us-east-1", options=options, now=now
                ),
                state,
            ),
            state=state,
            sink=ListSink(),
            journal=MemoryJournal(),
            save=lambda s: saves.append(s.high_water),
            stats=RunStats(input="i", stanza="s", account="a", region="r"),
            keep_after=detect.violation_keep_after(options),
        )
        stub.assert_no_pending_responses()
    # The first slice is 6 h; it was empty, so the next one may be 4x longer and reaches the window's end.
    assert saves == [now - 9 * 3600, now]
    assert dt.datetime.fromtimestamp(saves[-1], dt.timezone.utc)


def test_slices_follow_the_density_just_read():
    from iot_defender import detect

    hour = 3600.0
    assert detect.next_slice_seconds(6 * hour, 0) == 24 * hour  # sparse: longer slices, fewer short pages
    assert detect.next_slice_seconds(6 * hour, 10_000) == 3 * hour  # about SLICE_TARGET_EVENTS per slice
    assert detect.next_slice_seconds(6 * hour, 10**9) == 1.5 * hour  # at most 4x shorter per step
    assert detect.next_slice_seconds(detect.MAX_SLICE_SECONDS, 0) == detect.MAX_SLICE_SECONDS
    assert detect.next_slice_seconds(detect.MIN_SLICE_SECONDS, 10**9) == detect.MIN_SLICE_SECONDS
