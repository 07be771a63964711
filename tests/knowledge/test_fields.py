"""Every field a saved search or dashboard uses exists in events the REAL code produces for the fleet.

For each search (savedsearches.conf and every Dashboard Studio data source, tokens replaced by wildcards):

1. ``splkit`` derives the fields it reads from events (base-search terms, and by/where/eval/stats/table/...
   arguments before the first transforming command), the lookups it uses and what each later command may read;
2. the base search is run over the indexed fleet events (``fleet_events.indexed()``: the inputs' builders, the
   Firehose transform Lambda, alert-action results, run summaries, plus ``build/demo/events.jsonl`` when
   ``make demo`` has run) after props.conf (json extraction, FIELDALIAS, EVAL, automatic lookups), eventtypes
   and tags are applied by ``model.Model``;
3. it must match events, and every field it reads must exist in the matching events of EACH transport that
   produces them (pull inputs and the Lambda alike); every literal value it searches for must occur.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Dict, List, Set, Tuple

import pytest

from tests.knowledge import fleet_events, model, splkit

# Values the API documents but the simulated fleet never produces (each with where AWS documents it).
DOCUMENTED_NOT_SIMULATED: Set[Tuple[str, str]] = {
    # AuditCheckDetails.checkRunStatus enum (botocore iot model): a canceled audit leaves CANCELED checks.
    ("checkRunStatus", "CANCELED"),
    # AuditCheckDetails.checkRunStatus: checks waiting for data after being enabled.
    ("checkRunStatus", "WAITING_FOR_DATA_COLLECTION"),
}

# Every audit check AWS documents (lookups/iot_defender_audit_checks.csv, checked against the AWS guide in test_lookups).
DOCUMENTED_CHECKS = {row["checkName"] for row in model.csv_rows("iot_defender_audit_checks.csv")[1]}

KV_MAXCHARS = 10240  # limits.conf [kv] maxchars: automatic (JSON) extraction reads only this much of _raw

SEARCHES: List[Tuple[str, str]] = sorted(model.iter_searches())
ANALYZER = model.analyzer()


def _candidates(node: object) -> List[fleet_events.Indexed]:
    """Events worth matching: those of the sourcetypes / indexes the search names (all if it names none)."""
    sourcetypes = {v for f, op, v, neg in splkit.base_terms(node) if f == "sourcetype" and op == "=" and not neg}
    indexes = {v for f, op, v, neg in splkit.base_terms(node) if f == "index" and op == "=" and not neg}
    items = fleet_events.indexed()
    if sourcetypes and not any("*" in s for s in sourcetypes):
        return [i for i in items if i.sourcetype in sourcetypes]
    if indexes == {"_internal"}:
        return [i for i in items if i.meta.get("index") == "_internal"]
    return list(items)


def _matching(node: object) -> List[fleet_events.Indexed]:
    return [i for i in _candidates(node) if splkit.matches(node, i.fields, i.raw)]


def _all_analyses(analysis: splkit.Analysis) -> List[splkit.Analysis]:
    out = [analysis]
    for sub in analysis.subsearches:
        out.extend(_all_analyses(sub))
    return out


def _check_events(label: str, analysis: splkit.Analysis) -> List[str]:
    problems: List[str] = []
    if analysis.base is None:
        return problems
    matched = _matching(analysis.base)
    if not matched:
        return [f"{label}: the base search matches no event the code produces: {analysis.search[:160]}"]
    by_transport: Dict[str, List[fleet_events.Indexed]] = {}
    for item in matched:
        by_transport.setdefault(item.transport, []).append(item)
    for name in sorted(analysis.event_fields):
        if not any(name in i.fields for i in matched):
            problems.append(f"{label}: field {name!r} is in no matching event")
            continue
        for transport, items in sorted(by_transport.items()):
            if fleet_events.strict(transport) and not any(name in i.fields for i in items):
                problems.append(f"{label}: field {name!r} missing from every {transport} event the search matches")
    # every literal value searched for occurs (each OR branch on its own)
    candidates = _candidates(analysis.base)
    for field_name, op, value, negated in analysis.value_terms:
        if negated or op != "=" or field_name in splkit.META_TERMS or "*" in value:
            continue
        if (field_name, value) in DOCUMENTED_NOT_SIMULATED:
            continue
        if field_name == "checkName" and value in DOCUMENTED_CHECKS:
            continue  # a check AWS documents (the shipped catalogue) that the simulated audits never fail
        term = ("term", field_name, op, value)
        if not any(splkit.matches(term, i.fields, i.raw) for i in candidates):
            problems.append(f"{label}: no event has {field_name}={value!r}")
    # automatic JSON extraction stops at [kv] maxchars: the fields read must sit before that point
    for item in matched:
        if len(item.raw) <= KV_MAXCHARS or item.meta.get("index") == "_internal":
            continue
        for name in analysis.event_fields:
            key = name.split(".")[0].split("{")[0]
            position = item.raw.find(f'"{key}":')
            if position > KV_MAXCHARS:
                problems.append(f"{label}: {name!r} starts at byte {position} of a {len(item.raw)}-byte event")
    return problems


@pytest.mark.parametrize("label,spl", SEARCHES, ids=[label for label, _ in SEARCHES])
def test_search_reads_only_fields_the_events_have(label, spl):
    analysis = ANALYZER.analyze(spl)
    problems = list(analysis.errors)
    for part in _all_analyses(analysis):
        problems.extend(_check_events(label, part))
    assert not problems, "\n".join(problems)


def test_every_search_was_analysed_and_fields_counted(record_property):
    """A summary figure (and a guard that the searches really were found)."""
    fields: Set[str] = set()
    for _label, spl in SEARCHES:
        for part in _all_analyses(ANALYZER.analyze(spl)):
            fields |= part.event_fields
    saved = [label for label, _ in SEARCHES if label.startswith("savedsearch:")]
    dashboards = {label.split(":")[1] for label, _ in SEARCHES if label.startswith("dashboard:")}
    record_property("searches", len(SEARCHES))
    record_property("event_fields", len(fields))
    assert len(saved) >= 12 and len(dashboards) >= 6
    assert {"port", "dest_cidr", "bytes_out", "packets_out", "thing_name", "account_id", "region"} <= fields


# ------------------------------------------------------------------------------------ the SOC field names


METRIC_ALIASES = {
    # field: (metric name, raw JSON path it comes from)
    "port": ("aws:listening-tcp-ports", "value.ports{}"),
    "dest_cidr": ("aws:destination-ip-addresses", "value.cidrs{}"),
    "bytes_out": ("aws:all-bytes-out", "value.count"),
    "packets_out": ("aws:all-packets-out", "value.count"),
    "authorization_failures": ("aws:num-authorization-failures", "value.count"),
    "port_count": ("aws:num-listening-tcp-ports", "value.count"),
}


@pytest.mark.parametrize("transport", ["pull", "push"])
@pytest.mark.parametrize("name", sorted(METRIC_ALIASES))
def test_metric_fields_without_spath(name, transport):
    metric, path = METRIC_ALIASES[name]
    events = [
        i
        for i in fleet_events.by_sourcetype()["aws:iot:defender:metric"]
        if i.transport == transport and i.fields.get("metric_name") == metric
    ]
    assert events
    for item in events:
        assert item.fields["thing_name"] == item.fields["thing"]
        assert item.fields[name] == item.fields[path], (name, item.raw)
    if name in ("bytes_out", "packets_out", "authorization_failures"):  # counters named after one metric only
        others = [
            i
            for i in fleet_events.by_sourcetype()["aws:iot:defender:metric"]
            if i.transport == transport and i.fields["name"] != metric
        ]
        assert others and all(name not in i.fields for i in others)


def test_port_is_multivalue_with_every_listening_port():
    events = [
        i
        for i in fleet_events.by_sourcetype()["aws:iot:defender:metric"]
        if i.transport == "pull" and i.fields["name"] == "aws:listening-tcp-ports"
    ]
    multi = [i for i in events if isinstance(i.fields["port"], list)]
    assert multi, "a thing with several listening ports gives a multivalue port"
    assert {"21", "23"} & {p for i in multi for p in i.fields["port"]}, "compromised things listen on 21 or 23"
    assert all(i.fields["transport"] == "tcp" for i in events)


def test_dest_ip_strips_host_prefixes_only():
    for item in fleet_events.by_sourcetype()["aws:iot:defender:metric"]:
        cidrs = item.fields.get("dest_cidr")
        if cidrs is None:
            continue
        cidrs = cidrs if isinstance(cidrs, list) else [cidrs]
        ips = item.fields.get("dest_ip")
        ips = [] if ips is None else ips if isinstance(ips, list) else [ips]
        assert ips == [c.rsplit("/", 1)[0] for c in cidrs if c.endswith(("/32", "/128"))]


# Splunk's CIM Alerts data model as pytest-splunk-addon ships it (data_models/Alerts.json, copied from its wheel).
ALERTS_MODEL = json.loads((model.ROOT / "tests" / "fixtures" / "cim_alerts_datamodel.json").read_text())
ALERTS_FIELDS = {f["name"]: f for obj in ALERTS_MODEL["objects"] for f in obj["fields"]}
REQUIRED = sorted(n for n, f in ALERTS_FIELDS.items() if f["type"] == "required")
SEVERITY_ID = {"informational": "1", "low": "2", "medium": "3", "high": "4", "critical": "5"}


def _alert_sourcetypes():
    return sorted({i.sourcetype for i in fleet_events.indexed() if "alert" in (i.fields.get("tag") or [])})


def test_the_alerts_model_is_splunks():
    assert ALERTS_MODEL["model_name"] == "Alerts"
    assert {"app", "description", "dest", "id", "signature", "signature_id", "severity", "src", "type", "user"} == set(
        REQUIRED
    )
    assert _alert_sourcetypes() == [
        "aws:iot:defender:active_violation",
        "aws:iot:defender:audit:finding",
        "aws:iot:defender:violation",
    ]


@pytest.mark.parametrize("sourcetype", _alert_sourcetypes())
def test_cim_alerts_fields(sourcetype):
    from tests.knowledge.test_detections import attack_ids

    items = [i for i in fleet_events.by_sourcetype()[sourcetype] if "alert" in (i.fields.get("tag") or [])]
    assert items
    known = set(attack_ids("enterprise")) | set(attack_ids("ics"))
    for item in items:
        missing = [f for f in [*REQUIRED, "severity_id", "mitre_technique_id"] if f not in item.fields]
        assert not missing, (missing, item.raw[:300])
        for name, spec in ALERTS_FIELDS.items():
            if "expected_values" in spec and name in item.fields:
                assert item.fields[name] in spec["expected_values"], (name, item.fields[name])
        assert item.fields["severity_id"] == SEVERITY_ID[item.fields["severity"]]
        techniques = item.fields["mitre_technique_id"]
        assert set(techniques if isinstance(techniques, list) else [techniques]) <= known
        assert item.fields["vendor_account"] == item.fields["account_id"]
        assert item.fields["user"] not in ("", None) and item.fields["src"] not in ("", None)


def test_action_results_are_adaptive_response_results():
    for item in fleet_events.by_sourcetype()["aws:iot:defender:action"]:
        assert "modaction_result" in item.fields["tag"]
        assert item.fields["action_name"] == item.fields["action"]
        assert item.fields["action_status"] in ("success", "failure")
        assert {"orig_sid", "orig_rid", "thing_name"} <= set(item.fields)


def test_the_violations_page_gets_thing_type_and_owner_on_a_distributed_deployment():
    """On an indexer cluster the indexers cannot serve the unreplicated inventory collection (collections.conf
    replicate=false): the Violations page adds thing_type/owner/site itself, with ``lookup local=true`` on the search
    head after its where (on the latest snapshot's rows), not through an automatic lookup."""
    from tests.knowledge import behaviour, splrun

    w = behaviour.world(distributed=True)
    inventory = {(r["account_id"], r["region"], r["thing_name"]): r for r in w.tables["iot_thing_inventory"].rows}
    query = model.substitute_tokens(
        model.dashboard_queries(model.dashboard_definitions()["iot_defender_violations"])["ds_active"]
    )
    runner = splrun.Runner(model.macros(), w.tables, distributed=True)
    now = behaviour.NOW.timestamp()
    run = runner.run(query, now=now, earliest=0.0, latest=now + 1, events=w.store.window)
    rows = [r for r in run.rows if (r.get("account_id"), r.get("region"), r.get("thing_name")) in inventory]
    assert rows, "the fleet has active violations on inventoried things"
    assert not run.truncations, [str(t) for t in run.truncations]
    for row in rows:
        thing = inventory[(row["account_id"], row["region"], row["thing_name"])]
        assert (row.get("thing_type"), row.get("owner"), row.get("site")) == (
            thing.get("thing_type"), thing.get("owner"), thing.get("site")
        ), row["thing_name"]  # fmt: skip


# ------------------------------------------------------------------------------------------- timestamps


def _parse(text: str, fmt: str) -> float:
    python = fmt.replace("%3N", "%f")
    return dt.datetime.strptime(text[:24], python).replace(tzinfo=dt.timezone.utc).timestamp()


def test_time_prefix_reads_every_events_own_time():
    props = model.conf("props.conf")
    checked = 0
    for item in fleet_events.indexed():
        if item.meta.get("index") == "_internal":
            continue
        if item.transport == "demo" and not fleet_events.demo_is_fresh():
            continue  # a demo file older than the event model is not evidence about the current code
        stanza = props[item.sourcetype]
        m = re.search(stanza["TIME_PREFIX"], item.raw)
        assert m, (item.sourcetype, item.raw[:200])
        text = item.raw[m.end() : m.end() + int(stanza["MAX_TIMESTAMP_LOOKAHEAD"])]
        # bodies carry milliseconds floored, the demo file's time is rounded to 3 decimals: 1 ms apart at most
        assert _parse(text, stanza["TIME_FORMAT"]) == pytest.approx(item.time, abs=0.0015), (item.transport, item.raw)
        assert len(item.raw) < int(stanza["TRUNCATE"])
        checked += 1
    assert checked > 1000


# -------------------------------------------------------------------------------------- search outputs


def test_alerting_searches_return_what_the_alert_actions_read():
    for name, values in model.saved_searches().items():
        if values.get("alert.track") != "1":
            continue
        analysis = ANALYZER.analyze(model.substitute_tokens(values["search"]))
        outputs = set(analysis.output_fields or [])
        needed = {"account_id", "region", "description"}
        entities = json.loads(values.get("action.notable.param._entities", "[]"))
        needed |= {e["risk_object_field"] for e in entities} or {"thing_name"}
        if "violation" in name.lower():
            needed.add("violationId")
        assert needed <= outputs, (name, needed - outputs)


def test_drilldowns_read_fields_their_table_returns():
    for view, definition in model.dashboard_definitions().items():
        queries = model.dashboard_queries(definition)
        for viz_id, viz in definition["visualizations"].items():
            for handler in viz.get("eventHandlers", []):
                url = handler.get("options", {}).get("url", "")
                for name in re.findall(r"\$row\.([^.$|]+)\.value", url):
                    ds_id = viz["dataSources"]["primary"]
                    analysis = ANALYZER.analyze(model.substitute_tokens(queries[ds_id]))
                    assert name in (analysis.output_fields or []), (view, viz_id, name)


# Fields only some outcomes carry (the demo's response flow only succeeds).
OUTCOME_FIELDS = {"error_code"}


def test_in_process_inputs_match_the_built_inputs():
    """The in-process pull events (the inputs' library code) carry no field the BUILT inputs, run by ``make demo``
    as splunkd runs them, do not: the field checks above are about what Splunk really receives."""
    if not fleet_events.demo_is_fresh():
        pytest.skip("no build/demo/events.jsonl newer than the event model (run make demo)")
    fields: Dict[Tuple[str, str], Set[str]] = {}
    for item in fleet_events.indexed():
        fields.setdefault((item.sourcetype, item.transport), set()).update(item.fields)
    compared = 0
    for (sourcetype, transport), names in fields.items():
        demo = fields.get((sourcetype, "demo"))
        if transport == "demo" or not demo or not fleet_events.strict(transport):
            continue
        assert names - demo <= OUTCOME_FIELDS, (sourcetype, transport, sorted(names - demo))
        compared += 1
    assert compared >= 7
