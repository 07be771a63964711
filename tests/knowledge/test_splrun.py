"""splrun executes the dashboards' SPL as Splunk would: the results make dashboards-check draws must be right."""

from __future__ import annotations

import pytest

from tests.knowledge import fleet_events, model, splkit, splrun

T0 = 1_764_000_000.0  # 2025-11-24T16:00:00Z


def event(when, index="iot", **fields):
    return fleet_events.Indexed("st", "test", "raw " + " ".join(f"{k}={v}" for k, v in fields.items()), when,
                                {"index": index}, {"sourcetype": "st", **fields})  # fmt: skip


EVENTS = [
    event(T0, thing_name="a", port=["21", "443"], bytes_out="10"),
    event(T0 + 60, thing_name="a", port="443", bytes_out="30"),
    event(T0 + 400, thing_name="b", port="22", bytes_out="5"),
    event(T0 + 700, thing_name="c", bytes_out="7"),
    event(T0 + 800, index="_internal", thing_name="z", port="9"),
]
TABLES = {
    "risky": [
        {"port": "21", "protocol": "tcp", "service": "FTP"},
        {"port": "23", "protocol": "tcp", "service": "Telnet"},
    ],
    "inventory": [{"thing_name": "A", "owner": "ops"}, {"thing_name": "b", "owner": "lab"}],
}
TRANSFORMS = {"risky": {}, "inventory": {"case_sensitive_match": "false"}}


@pytest.fixture
def run():
    runner = splrun.Runner(EVENTS, TABLES, TRANSFORMS, splkit.Analyzer({}, {}), now=T0 + 3600)
    return runner.run


def test_base_search_honours_the_index_and_returns_newest_first(run):
    _columns, rows = run("index=iot sourcetype=st")
    assert [r["thing_name"] for r in rows] == ["c", "b", "a", "a"]
    _columns, rows = run("index=_internal")
    assert [r["thing_name"] for r in rows] == ["z"]


def test_stats_by_a_multivalue_field_counts_each_value_and_drops_rows_without_it(run):
    columns, rows = run("index=iot | stats count dc(thing_name) as things values(thing_name) as names by port")
    assert columns == ["port", "count", "things", "names"]
    assert [(r["port"], r["count"], r["things"]) for r in rows] == [("21", 1, 1), ("22", 1, 1), ("443", 2, 1)]
    assert rows[2]["names"] == ["a"]


def test_stats_functions(run):
    _columns, rows = run(
        "index=iot | stats sum(bytes_out) as total max(bytes_out) as peak avg(bytes_out) as mean"
        " latest(thing_name) as last earliest(thing_name) as first"
    )
    assert rows == [{"total": 52.0, "peak": 30.0, "mean": 13.0, "last": "c", "first": "a"}]


def test_eventstats_where_eval_sort_head_table(run):
    columns, rows = run(
        "index=iot | eventstats min(_time) as first by thing_name | where _time > first"
        ' | eval age=round((now() - _time) / 60, 1), at=strftime(_time, "%H:%M") | sort 0 - age | head 1'
        " | table thing_name age at"
    )
    assert columns == ["thing_name", "age", "at"]
    assert rows == [{"thing_name": "a", "age": 59.0, "at": "16:01"}]


def test_sort_is_numeric_for_numbers_and_puts_missing_values_last(run):
    _columns, rows = run("index=iot | sort 0 - bytes_out")
    assert [r["bytes_out"] for r in rows] == ["30", "10", "7", "5"]  # as text: 7, 5, 30, 10
    _columns, rows = run("index=iot | sort 0 - port")  # a multivalue field sorts by its first value
    assert [r.get("port") for r in rows] == ["443", "22", ["21", "443"], None]


def test_timechart_fills_buckets_and_limits_series_with_other(run):
    columns, rows = run("index=iot | timechart span=5m limit=2 count by thing_name")
    assert columns == ["_time", "a", "b", "OTHER", "_span"]
    assert [r["_time"] for r in rows][:2] == ["2025-11-24T16:00:00.000+00:00", "2025-11-24T16:05:00.000+00:00"]
    assert [(r["a"], r["b"], r["OTHER"]) for r in rows] == [(2, 0, 0), (0, 1, 0), (0, 0, 1)]


def test_lookup_and_join(run):
    _columns, rows = run("index=iot port=21 | lookup risky port OUTPUT service | table thing_name service")
    assert rows == [{"thing_name": "a", "service": "FTP"}]
    _columns, rows = run(
        "| inputlookup inventory | join type=left thing_name [search index=iot | stats count by thing_name]"
        " | table thing_name owner count"
    )
    assert rows == [{"thing_name": "A", "owner": "ops"}, {"thing_name": "b", "owner": "lab", "count": 1}]
    _columns, rows = run("index=iot thing_name=a | lookup inventory thing_name OUTPUT owner | dedup thing_name")
    assert rows[0]["owner"] == "ops"  # case_sensitive_match = false


def test_results_are_splunks_column_layout_with_string_values(run):
    runner = splrun.Runner(EVENTS, TABLES, TRANSFORMS, splkit.Analyzer({}, {}), now=T0)
    out = runner.results("index=iot | stats count avg(bytes_out) as mean by thing_name")
    assert out == {
        "fields": [{"name": "thing_name"}, {"name": "count"}, {"name": "mean"}],
        "columns": [["a", "b", "c"], ["2", "1", "1"], ["20", "5", "7"]],
    }


@pytest.mark.parametrize("spl", ["index=iot | transaction thing_name", "index=iot | eval x=md5(thing_name)"])
def test_what_is_not_modelled_is_an_error(run, spl):
    with pytest.raises(splkit.SplError):
        run(spl)


def test_macros_expand_as_in_the_dashboards():
    runner = splrun.Runner(EVENTS, TABLES, TRANSFORMS, model.analyzer(), now=T0)
    _columns, rows = runner.run("`iot_defender_index` thing_name=b | stats count")
    assert rows == [{"count": 1}]


def test_the_sourcetype_shortcut_changes_no_result(run):
    assert run("sourcetype=ST thing_name=a")[1] == run("thing_name=a sourcetype=st")[1]
    assert len(run("(sourcetype=st OR sourcetype=other) thing_name=a")[1]) == 2
    assert len(run("sourcetype=other OR thing_name=a")[1]) == 2  # not a conjunction: no shortcut
