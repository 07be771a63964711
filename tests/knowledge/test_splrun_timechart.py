"""splrun's timechart (added for the dashboards' render, make dashboards-check) follows Splunk's layout."""

from __future__ import annotations

import pytest

from tests.knowledge import splkit, splrun

T0 = 1_764_000_000.0  # 2025-11-24T16:00:00Z, on a 5-minute boundary


def run(search, rows):
    store = splrun.EventStore([{"_raw": "", "sourcetype": "st", **row} for row in rows])
    return splrun.Runner({}, {}).run(search, now=T0 + 3600, earliest=0.0, latest=T0 + 3600, events=store.window).rows


ROWS = [
    {"_time": T0, "thing": "a", "bytes": "10"},
    {"_time": T0 + 60, "thing": "a", "bytes": "30"},
    {"_time": T0 + 400, "thing": "b", "bytes": "5"},
    {"_time": T0 + 700, "thing": "c", "bytes": "7"},
]


def test_buckets_from_first_to_last_with_empty_ones_counted_zero():
    rows = run("sourcetype=st | timechart span=5m count", ROWS)
    assert [r["_time"] for r in rows] == [
        "2025-11-24T16:00:00.000+00:00",
        "2025-11-24T16:05:00.000+00:00",
        "2025-11-24T16:10:00.000+00:00",
    ]
    assert [r["count"] for r in rows] == [2, 1, 1]
    rows = run("sourcetype=st | timechart span=1m count", ROWS)
    assert len(rows) == 12 and rows[2]["count"] == 0


def test_by_keeps_the_largest_series_and_sums_the_rest_as_other():
    rows = run("sourcetype=st | timechart span=5m limit=2 sum(bytes) by thing", ROWS)
    assert [k for k in rows[0] if not k.startswith("_")] == ["a", "c", "OTHER"]  # a 40, c 7, b 5 -> OTHER
    assert [(r["a"], r["c"], r["OTHER"]) for r in rows] == [(40.0, None, None), (None, None, 5.0), (None, 7.0, None)]


def test_several_aggregations_without_by():
    rows = run("sourcetype=st | timechart span=10m sum(bytes) as total max(bytes) as peak", ROWS)
    assert [(r["total"], r["peak"]) for r in rows] == [(45.0, 30.0), (7.0, 7.0)]


def test_an_unknown_span_is_an_error():
    with pytest.raises(splkit.SplError):
        run("sourcetype=st | timechart span=1mon count", ROWS)
