"""The SPL executor (splrun) follows Splunk's rules where the detections depend on them."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.knowledge import splkit, splrun

T = dt.datetime(2026, 11, 22, 12, 17, 42, tzinfo=dt.timezone.utc).timestamp()


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("now", "2026-11-22T12:17:42"),
        ("-1h@h", "2026-11-22T11:00:00"),
        ("@h", "2026-11-22T12:00:00"),
        ("-30m@m", "2026-11-22T11:47:00"),
        ("-2h", "2026-11-22T10:17:42"),
        ("-7d@d", "2026-11-15T00:00:00"),
        ("-30d@d", "2026-10-23T00:00:00"),
    ],
)
def test_relative_time(spec, expected):
    assert splrun.relative_time(T, spec) == at(expected)


def runner(tables=None):
    return splrun.Runner({"m": ("| eval y=x * 2", [])}, tables or {})


def events(*rows):
    out = []
    for n, row in enumerate(rows):
        out.append({"_time": T - 60 * (n + 1), "_raw": "", "sourcetype": "st", **row})
    return splrun.EventStore(out)


def run(search, store=None, tables=None, earliest=0.0, latest=None):
    store = store or events()
    return runner(tables).run(search, now=T, earliest=earliest, latest=latest or T + 1, events=store.window)


def test_stats_by_a_multivalue_field_counts_each_value_and_drops_null_groups():
    store = events({"t": "a", "port": ["21", "22"]}, {"t": "a", "port": "22"}, {"t": "b"})
    rows = run('sourcetype="st" | stats count min(_time) as first by t port', store).rows
    assert sorted((r["t"], r["port"], r["count"]) for r in rows) == [("a", "21", 1), ("a", "22", 2)]


def test_eval_assignments_see_earlier_ones_and_macros_expand():
    rows = run('sourcetype="st" | eval x=3, z=x + 1 `m`', events({"k": "v"})).rows
    assert rows == [{"_time": T - 60, "_raw": "", "sourcetype": "st", "k": "v", "x": 3, "z": 4.0, "y": 6.0}]


def test_where_keeps_only_true_rows_and_null_is_not_true():
    rows = run('sourcetype="st" | where n > 1', events({"n": "2"}, {"n": "1"}, {"m": "5"})).rows
    assert [r["n"] for r in rows] == ["2"]


def test_window_and_events_read():
    store = events({"i": "1"}, {"i": "2"}, {"i": "3"})  # at T-60, T-120, T-180
    result = run('sourcetype="st"', store, earliest=T - 150, latest=T - 60)
    assert [r["i"] for r in result.rows] == ["2"] and result.events_read == 1


def test_lookup_matches_each_value_renames_outputs_and_clears_misses():
    table = splrun.Table(["port", "service"], [{"port": "21", "service": "FTP"}, {"port": "23", "service": "Telnet"}])
    store = events({"port": ["21", "23"]}, {"port": "80", "service": "stale"})
    rows = run('sourcetype="st" | lookup risky port OUTPUT service AS svc', store, {"risky": table}).rows
    assert rows[0]["svc"] == ["FTP", "Telnet"]
    assert "svc" not in rows[1]


def test_lookup_case_sensitivity_follows_the_table():
    rows = [{"k": "ABC", "v": "1"}]
    store = events({"k": "abc"})
    insensitive = {"t": splrun.Table(["k", "v"], rows, case_sensitive=False)}
    sensitive = {"t": splrun.Table(["k", "v"], rows, case_sensitive=True)}
    assert run('sourcetype="st" | lookup t k OUTPUT v', store, insensitive).rows[0]["v"] == "1"
    assert "v" not in run('sourcetype="st" | lookup t k OUTPUT v', store, sensitive).rows[0]


def test_outputlookup_then_inputlookup_append_round_trip_keeps_declared_kv_fields():
    kv = splrun.Table(["_key", "a", "n"], kv=True)
    tables = {"kv": kv}
    run('sourcetype="st" | eval n=1.0, extra="x" | table a n extra | outputlookup kv', events({"a": "p"}), tables)
    assert kv.rows == [{"a": "p", "n": "1"}] and kv.writes == 1
    rows = run('sourcetype="st" | stats count by a | inputlookup append=true kv', events({"a": "q"}), tables).rows
    assert rows == [{"a": "q", "count": 1}, {"a": "p", "n": "1"}]


def test_join_left_max_one_and_appendpipe():
    tables = {"inv": splrun.Table(["c", "thing"], [{"c": "c1", "thing": "t1"}, {"c": "c1", "thing": "t2"}])}
    store = events({"c": "c1"}, {"c": "c9"})
    rows = run('sourcetype="st" | join type=left max=1 c [| inputlookup inv]', store, tables).rows
    assert [(r["c"], r.get("thing")) for r in rows] == [("c1", "t1"), ("c9", None)]
    rows = run('sourcetype="st" | appendpipe [stats count | eval c="total"]', store).rows
    assert [r["c"] for r in rows] == ["c1", "c9", "total"] and rows[-1]["count"] == 2


def test_stats_functions():
    store = events({"v": "1"}, {"v": "2"}, {"v": "3"}, {"v": "x"})
    row = run('sourcetype="st" | stats count(v) as n sum(v) as s sumsq(v) as q avg(v) as a values(v) as vs', store)
    assert row.rows == [{"n": 4, "s": 6.0, "q": 14.0, "a": 2.0, "vs": ["1", "2", "3", "x"]}]


def test_unknown_commands_and_functions_are_errors():
    with pytest.raises(splkit.SplError):
        run('sourcetype="st" | transaction x', events({"x": "1"}))
    with pytest.raises(splkit.SplError):
        run('sourcetype="st" | eval y=nosuchfunction(x)', events({"x": "1"}))


def test_the_field_analyzer_reads_baseline_pipelines():
    """splkit's analysis (the field cross-check) follows appendpipe, inputlookup append=true and outputlookup."""
    lookups = {"kv": splkit.Lookup("kv", ["_key", "a", "first"])}
    analyzer = splkit.Analyzer({}, lookups)
    good = analyzer.analyze(
        'sourcetype="st" | stats min(_time) as first by a | appendpipe [stats min(first) as first | eval a="all"]'
        " | inputlookup append=true kv | stats min(first) as first by a | outputlookup kv"
    )
    assert not good.errors and good.event_fields == {"a"} and "kv" in good.lookups
    short = analyzer.analyze('sourcetype="st" | stats count by a | outputlookup kv')
    assert short.errors == ["outputlookup kv: the results lack ['first']"]
    with pytest.raises(splkit.SplError):
        analyzer.analyze('sourcetype="st" | inputlookup kv')


def kv_table(count, **kwargs):
    rows = [{"_key": f"k{n}", "n": str(n), "published": "1" if n % 2 == 0 else "0"} for n in range(count)]
    return splrun.Table(["_key", "n", "published"], rows, kv=True, **kwargs)


def test_inputlookup_where_and_max_are_one_kv_query_capped_at_max_rows_per_query():
    table = kv_table(120_001)
    r = runner({"c": table})
    small = r.run("| inputlookup max=10 c where published=1", now=T)
    assert [row["n"] for row in small.rows] == [str(n) for n in range(0, 20, 2)] and not small.truncations
    assert table.rows_read == 10
    big = r.run("| inputlookup max=70000 c where published=1", now=T)  # 60,001 match: the KV store answers 50,000
    assert len(big.rows) == 50_000 and [str(t) for t in big.truncations] == [
        "inputlookup c: [kvstore] max_rows_per_query=50000 kept 50,000 of 60,001 rows"
    ]
    with pytest.raises(splkit.SplError):
        r.run("| inputlookup start=3 c", now=T)


def test_a_kv_lookups_filter_applies_to_inputlookup_and_lookup():
    r = runner({"c": kv_table(6, filter="published=1")})
    assert [row["n"] for row in r.run("| inputlookup c", now=T).rows] == ["0", "2", "4"]
    rows = r.run('| makeresults count=2 | eval n=if(_time > 0, "1", "x") | lookup c n OUTPUT _key', now=T).rows
    assert len(rows) == 2 and all("_key" not in row for row in rows)  # row n=1 is filtered out


def test_subsearch_return_and_the_text_functions():
    r = runner({"c": kv_table(6)})
    rows = r.run("| inputlookup c where n<[| makeresults | eval cut=3 | return $cut]", now=T).rows
    assert [row["n"] for row in rows] == ["0", "1", "2"]
    (row,) = r.run('| makeresults | eval h=md5("a"), s=substr("thing", 2, 3), e=substr("thing", -2), '
                   'x=tonumber("ff", 16), bad=tonumber("zz", 16)', now=T).rows  # fmt: skip
    assert (row["h"], row["s"], row["e"], row["x"], row.get("bad")) == (
        "0cc175b9c0f1b6a831c399e269772661", "hin", "ng", 255.0, None
    )  # fmt: skip
