"""Regression tests of issue 16's eight defects, one or more each; every one was seen failing on the content before
the redesign (the commit messages record the figures)."""

from __future__ import annotations

import json
import re

from tests.knowledge import behaviour, limits, model, scheduler, splrun

SEARCHES = model.saved_searches()
DETECTIONS = {n: v for n, v in SEARCHES.items() if n.endswith(" - Rule")}
SCHEDULED = behaviour.searches_of()
# every search the scheduler runs: detections and baselines, and the ES asset source's Lookup Gen / Lookup Cleanup
EVERY_SCHEDULED = {n: v for n, v in SEARCHES.items() if v.get("enableSched") == "1"}
SEEN = "IoT Defender - Seen ports and destinations - Baseline"


def _table(name, rows):
    return behaviour.tables({name: rows})[name]


def _indexed(sourcetype, when, **fields):
    """An indexed event as the searches see it (index, sourcetype, time, no raw text)."""
    return {"_time": when, "_raw": "", "index": "iot", "sourcetype": sourcetype, **fields}


# 1. Baselines read a whole KV collection and rewrite it ---------------------------------------------------------


def test_1_a_baseline_run_keeps_a_collection_larger_than_one_kv_query():
    """60,001 learned rows, one hour of one thing's ports: every row survives and nothing is truncated."""
    learned = [
        {
            "_key": f"a:r:t{i}:thing:any",
            "account_id": "a",
            "region": "r",
            "thing_name": f"t{i}",
            "kind": "thing",
            "value": "any",
            "first_seen": "1",
            "last_seen": str(behaviour.NOW.timestamp() - 3600),
        }
        for i in range(60_001)
    ]
    table = _table("iot_defender_seen_values", learned)
    now = behaviour.NOW.timestamp()
    event = _indexed(
        "aws:iot:defender:metric",
        now - 1800,
        name="aws:listening-tcp-ports",
        thing_name="t7",
        account_id="a",
        region="r",
        transport="tcp",
        port="8883",
    )
    store = splrun.EventStore([event])
    values = SEARCHES[SEEN]
    run = splrun.Runner(model.macros(), {"iot_defender_seen_values": table}, distributed=True).run(
        values["search"], now=now, earliest=now - 3600, latest=now, events=store.window
    )
    assert not run.truncations, [str(t) for t in run.truncations]
    assert len(table.rows) == 60_002 and table.rows_read <= 10


def test_1_no_scheduled_search_reads_a_whole_kv_collection():
    """A scheduled search reads a KV collection with ``lookup`` or with one bounded query: ``inputlookup max=N <kv>
    where ...`` with N under max_rows_per_query (the asset Cleanup's prune batch)."""
    kv = {n for n, v in model.conf("transforms.conf").items() if v.get("external_type") == "kvstore"}
    assert {"IoT Defender Assets - Lookup Gen", "IoT Defender Assets - Lookup Cleanup"} <= set(EVERY_SCHEDULED)
    for name, values in EVERY_SCHEDULED.items():
        text = model.analyzer().expand(values["search"])
        for options, lookup, rest in re.findall(r"inputlookup((?:\s+\w+=\S+)*)\s+(\w+)(\s+where\s)?", text):
            bound = re.search(r"\bmax=(\d+)", options)
            bounded = bound is not None and int(bound.group(1)) < limits.KV_MAX_ROWS_PER_QUERY and bool(rest)
            assert lookup not in kv or bounded, f"{name} reads all of {lookup}"


# 2. Certificate -> thing by join against the inventory -----------------------------------------------------------


def test_2_no_detection_joins_the_inventory():
    for name, values in DETECTIONS.items():
        assert "| join" not in values["search"], name
        assert (
            "iot_thing_inventory |" not in values["search"]
            and "inputlookup iot_thing_inventory" not in values["search"]
        )


def test_2_a_certificate_past_the_50000th_inventory_row_finds_its_thing():
    """100,000 inventory rows; the planted expiring certificate belongs to thing 95,000 (tests/knowledge/scale.py)."""
    from tests.knowledge import scale

    outcome = scale.simulate()
    name = "IoT Defender - CA or device certificate expiring - Rule"
    assert outcome.found.get(name) == {scale.thing_name(95_000)}
    assert not [t for n, t in outcome.truncations if n == name]


# 3. Automatic lookup on a collection indexers cannot serve -------------------------------------------------------


def test_3_allow_list_holds_on_a_distributed_deployment():
    """On the distributed model (indexers see no unreplicated KV collection) the allow-list still flags only the
    planted ports (today's content flagged 6 clean things), and no automatic lookup is left unserved (the inventory's
    was removed from props.conf: test_conf checks no automatic lookup names an unreplicated collection)."""
    rows = {r[0]: r for r in behaviour.table("ordered")}
    assert not behaviour.world().unserved, behaviour.world().unserved
    assert rows["Listening port outside the allow-list"][3] == 0, rows["Listening port outside the allow-list"][5]


def test_3_no_detection_reads_an_inventory_field_from_events():
    for name, values in DETECTIONS.items():
        analysis = model.analyzer().analyze(values["search"])
        assert not {"thing_type", "thing_groups", "owner", "site"} & analysis.event_fields, name


# 4. realtime_schedule ---------------------------------------------------------------------------------------------


def test_4_no_scheduled_search_may_be_skipped():
    for name, values in EVERY_SCHEDULED.items():
        assert not scheduler.realtime(values), f"{name}: realtime_schedule = 1 lets the scheduler skip periods"
    assert behaviour.simulate("chaos").skipped == 0


# 5. Run order ----------------------------------------------------------------------------------------------------


def test_5_detections_hold_when_every_baseline_runs_first():
    """Every hour the baselines run before the detections of the same hour (the worst order)."""
    plan = scheduler.ordered(SCHEDULED, behaviour.BOOTSTRAP_AT - 1, behaviour.NOW.timestamp())
    plan.runs.sort(key=lambda d: (d.scheduled // 3600, not d.name.endswith(" - Baseline"), d.scheduled))
    outcome = behaviour.simulate_on(behaviour.world(), plan, behaviour.BOOTSTRAP_AT)
    rows = behaviour.score(outcome, behaviour.truth())
    assert not {r[0]: r[4] for r in rows if r[4]}, "missed when the baseline learned first"
    assert not {r[0]: r[5] for r in rows if r[5]}


# 6. Suppression on thing + value ---------------------------------------------------------------------------------


def test_6_a_second_new_port_on_the_same_thing_the_same_day_is_reported():
    found = behaviour.simulate("ordered").found["IoT Defender - New listening port - Rule"]
    assert {"pump-station-001:23/tcp", "pump-station-001:9999/tcp"} <= found
    for name in ("IoT Defender - New listening port - Rule", "IoT Defender - New destination - Rule"):
        assert DETECTIONS[name]["alert.suppress.fields"] == "thing_name,new_value"


# 7. Entities, drilldowns, conf keys, macro names -----------------------------------------------------------------


def test_7_a_ca_certificate_finding_has_an_entity():
    now = behaviour.NOW.timestamp()
    finding = _indexed(
        "aws:iot:defender:audit:finding",
        now - 5400,
        isSuppressed="false",
        checkName="CA_CERTIFICATE_EXPIRING_CHECK",
        account_id="a",
        region="r",
        resource_type="CA_CERTIFICATE",
        dest="ca0123",
        findingId="f",
        taskId="t",
        description="CA certificate expiring",
        severity="medium",
    )
    tables = behaviour.tables({})
    name = "IoT Defender - CA or device certificate expiring - Rule"
    values = DETECTIONS[name]
    run = splrun.Runner(model.macros(), tables).run(
        values["search"], now=now, earliest=now - 7200, latest=now, events=splrun.EventStore([finding]).window
    )
    assert len(run.rows) == 1
    for entity in json.loads(values["action.notable.param._entities"]):
        assert run.rows[0].get(entity["risk_object_field"]) == "ca0123"


def test_7_every_finding_row_has_its_entity():
    outcome = behaviour.simulate("ordered")
    for name, rows in outcome.rows.items():
        fields = [e["risk_object_field"] for e in json.loads(DETECTIONS[name]["action.notable.param._entities"])]
        for row in rows:
            assert any(row.get(f) not in (None, "") for f in fields), (name, fields)


def test_7_conf_keys_and_macro_names():
    macros = model.macros()
    for name, values in SEARCHES.items():
        assert "is_scheduled" not in values, name
        for macro in re.findall(r"`([\w.-]+)`", values["description"]):
            assert macro in macros, f"{name}: its description names a macro that does not exist: {macro}"


# 8. ATT&CK --------------------------------------------------------------------------------------------------------


def test_8_attack_annotations():
    for name, values in DETECTIONS.items():
        annotations = json.loads(values["action.correlationsearch.annotations"])
        assert "T1571" not in annotations["mitre_attack"], f"{name}: T1571 is C2 over a non-standard port"
        assert not any(t.startswith("T0") for t in annotations["mitre_attack"]), name
        assert annotations["kill_chain_phases"] == behaviour.generator().kill_chain(annotations["mitre_attack"])
    egress = json.loads(DETECTIONS["IoT Defender - Egress spike - Rule"]["action.correlationsearch.annotations"])
    assert "T1030" not in egress["mitre_attack"], "T1030 is staying under size limits, not a spike"
