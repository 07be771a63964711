"""The behaviour table three ways: (a) today's fleet, (b) 100,000 things under Splunk's real limits, (c) a seeded
chaos schedule. Each: every planted target found, no false positive, no truncation. Plus the drilldowns: each returns
the finding's events, and a device-chosen name cannot break out of one."""

from __future__ import annotations

import json
import re

from tests.knowledge import behaviour, model, scale, splkit, splrun

DETECTIONS = {n: v for n, v in model.saved_searches().items() if n.endswith(" - Rule")}


def _print(capsys, title, rows, outcome):
    width = max(len(r[0]) for r in rows)
    lines = [f"{'detection':<{width}}  planted  found  false positives"]
    lines += [f"{name:<{width}}  {planted:>7}  {found:>5}  {fp:>15}" for name, planted, found, fp, _m, _f in rows]
    lines.append(f"truncations: {len(outcome.truncations)}, skipped runs: {outcome.skipped}")
    with capsys.disabled():
        print(f"\n{title}:\n" + "\n".join(lines))


def _check(rows, outcome):
    assert not outcome.truncations, [f"{n}: {t}" for n, t in outcome.truncations[:5]]
    missed = {name: m for name, _p, _f, _fp, m, _x in rows if m}
    flagged = {name: x[:5] for name, _p, _f, _fp, _m, x in rows if x}
    assert not missed, f"planted targets not found: {missed}"
    assert not flagged, f"false positives: {flagged}"


def test_a_todays_fleet(capsys):
    rows, outcome = behaviour.table("ordered"), behaviour.simulate("ordered")
    _print(capsys, "(a) today's fleet, distributed deployment, quiet scheduler", rows, outcome)
    _check(rows, outcome)
    assert sum(r[1] for r in rows) >= 16


def test_c_chaos_schedule(capsys):
    rows, outcome = behaviour.table("chaos"), behaviour.simulate("chaos")
    _print(
        capsys, f"(c) chaos schedule (seed {behaviour.CHAOS_SEED}: skips, delays, any order in an hour)", rows, outcome
    )
    _check(rows, outcome)
    assert outcome.skipped == 0, "realtime_schedule = 0: the scheduler never skips a detection or a baseline"


def test_b_one_hundred_thousand_things(capsys):
    rows, outcome = scale.table(), scale.simulate()
    _print(capsys, f"(b) {scale.THINGS:,} things, Splunk's limits, distributed", rows, outcome)
    _check(rows, outcome)
    assert scale.THINGS >= 100_000 and sum(r[1] for r in rows) >= 8


# ------------------------------------------------------------------------------------------------ drilldowns


def _drilldowns(name):
    return json.loads(DETECTIONS[name]["action.notable.param.drilldown_searches"])


def _fill(search, row):
    def value(m):
        v = row.get(m.group(1))
        return str(v[0] if isinstance(v, list) else v)

    return re.sub(r"\$(\w+)\$", value, search)


def test_every_drilldown_returns_the_findings_events():
    outcome = behaviour.simulate("ordered")
    w = behaviour.world()
    runner = splrun.Runner(model.macros(), w.tables)
    checked = 0
    for name in DETECTIONS:
        for row, (earliest, latest) in zip(outcome.rows.get(name, []), outcome.windows.get(name, [])):
            for drilldown in _drilldowns(name):
                search = _fill(drilldown["search"], row)
                found = runner.run(search, now=latest, earliest=earliest, latest=latest, events=w.store.window)
                assert found.events_read > 0, (name, drilldown["name"], search)
                checked += 1
    assert checked >= 2 * len([n for n in DETECTIONS if outcome.rows.get(n)])


HOSTILE = 'pump" OR thing_name=* | delete [search index=_internal] `iot_defender_index` $x$ \\'


def test_a_hostile_thing_name_cannot_break_out_of_a_drilldown():
    name = "IoT Defender - Risky port open - Rule"
    pattern = r"drilldown_thing_name=(replace\(mvindex\(thing_name, 0\), \"[^\"]+\", \"\*\"\))"
    expression = re.search(pattern, DETECTIONS[name]["search"])
    assert expression, "the detection computes a token-safe drilldown field"
    safe = splrun.Evaluator({"thing_name": HOSTILE}, 0.0).eval(splkit.parse_expression(expression.group(1)))
    assert not set(safe) & set('"|[]`$\\ '), safe
    events = splrun.EventStore(
        [
            {
                "_time": 1.0,
                "_raw": "",
                "sourcetype": "aws:iot:defender:metric",
                "index": "iot",
                "thing_name": thing,
                "name": "aws:listening-tcp-ports",
                "account_id": "1",
                "region": "r",
            }
            for thing in (HOSTILE, "pump-decoy")
        ]
    )
    analyzer = model.analyzer()
    for drilldown in _drilldowns(name):
        tokens = {"drilldown_account_id": "1", "drilldown_region": "r"}
        search = _fill(drilldown["search"], {**tokens, "drilldown_thing_name": safe})
        benign = _fill(drilldown["search"], {**tokens, "drilldown_thing_name": "x"})
        hostile, plain = splkit.split_pipeline(analyzer.expand(search)), splkit.split_pipeline(analyzer.expand(benign))
        # the same commands as with a plain name: none of the device's making, no subsearch, no macro
        assert [c.split()[0] for c in hostile] == [c.split()[0] for c in plain], search
        assert search.count("[") == benign.count("[") and search.count("`") == benign.count("`"), search
        if len(plain) == 1:  # a plain event search: it finds the hostile thing's event, not the decoy's
            run = splrun.Runner(model.macros(), {}).run(search, now=2.0, earliest=0.0, latest=2.0, events=events.window)
            assert [r["thing_name"] for r in run.rows] == [HOSTILE], search
