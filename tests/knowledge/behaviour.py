"""The detections run on schedule over days of events the real code produces for a fleet with planted compromises.

Timeline (fleet ``now`` = NOW, 3 days of data):
- days 1-2 (until ``BOOTSTRAP_AT``) are clean: the "... - Bootstrap" searches run once over them;
- from then on, every 5 minutes, each detection and baseline search whose cron matches runs over its dispatch
  window, exactly as the scheduler would run it (lookups persist between runs);
- planted compromises (``PLANTS``) start during that period: new TCP ports 21/23, an egress spike, a new destination,
  an authorization-failure burst, and audit regressions (revoked certificate still active, certificate shared,
  conflicting client id, overly permissive policy, logging disabled).

Events: metrics through the Firehose transform Lambda (``lambda_handler``, as pushed to HEC); audits, findings and
active violations through the inputs' event builders (pull); the thing inventory KV rows through
``inventory.lookup_row``; props/eventtypes/lookups applied by ``model.Model``. The allow-list is the demo fleet's
own (tests/fixtures/fleet_allowed_ports.csv), as a user's local lookup would replace the shipped defaults.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import functools
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

from croniter import croniter

from tests.knowledge import fleet_events, model, splkit, splrun

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)
DAYS = 3
THINGS = 8
BOOTSTRAP_AT = NOW.timestamp() - 32 * 3600  # 40 clean hours before it
ALLOWED_PORTS = model.ROOT / "tests" / "fixtures" / "fleet_allowed_ports.csv"
H = 3600.0


def plants() -> List[Any]:
    from tests.harness.fleet import Plant

    now = NOW.timestamp()
    return [
        Plant("port", "pump-station-001", now - 20 * H, now - 17 * H, 23),
        Plant("port", "valve-controller-002", now - 8 * H, None, 21),
        Plant("egress", "flow-meter-003", now - 14 * H, now - 12 * H, 25),
        Plant("dest", "rtu-gateway-004", now - 11 * H, None, "203.0.113.77/32"),
        Plant("auth_burst", "pump-station-005", now - 6 * H, now - 5 * H, 12),
        Plant("revoked_cert", "valve-controller-006", now - 10 * H),
        Plant("cert_shared", "flow-meter-007", now - 10 * H),
        Plant("client_id_conflict", "rtu-gateway-008", now - 10 * H),
        Plant("permissive_policy", "-", now - 10 * H, None, "PlantedWildcardPolicy"),
        Plant("logging_disabled", "-", now - 10 * H),
        Plant("cert_expiring", "pump-station-005", now - 10 * H),
        Plant("key_quality", "flow-meter-003", now - 10 * H),
        Plant("stuck_violation", "rtu-gateway-004", now - 30 * H),
    ]


@functools.lru_cache(maxsize=1)
def fleet() -> Any:
    from tests.harness.fleet import Fleet

    return Fleet(
        seed=23,
        things=THINGS,
        days=DAYS,
        now=NOW,
        compromised=0,
        plants=plants(),
        noise=("MessagesSentP99", "MLBytesOut"),
    )


# ------------------------------------------------------------------------------------------------ events


def _searched_metric_names() -> Set[str]:
    names = set()
    for values in model.saved_searches().values():
        for f, _op, v, neg in splkit.base_terms(
            splkit.parse_base_search(splkit.split_pipeline(values["search"])[0].replace("`iot_defender_index`", ""))
        ):
            if f == "name" and not neg:
                names.add(v)
    return names


def _metric_events() -> List[Dict[str, Any]]:
    f = fleet()
    transform = fleet_events._load_transform()
    wanted = _searched_metric_names()
    messages = list(f.iter_metrics_export_messages(start=f.start_epoch, end=f.now_epoch - 1))
    out: List[Dict[str, Any]] = []
    for start in range(0, len(messages), 500):
        batch = messages[start : start + 500]
        invocation = {
            "invocationId": "behaviour",
            "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/iot-defender-to-splunk",
            "region": f.region,
            "records": [
                {
                    "recordId": f"{start + n:056d}",
                    "approximateArrivalTimestamp": int(f.now_epoch * 1000),
                    "data": base64.b64encode(json.dumps(m).encode()).decode(),
                }
                for n, m in enumerate(batch)
            ],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            response = transform.lambda_handler(invocation, None)
        for record in response["records"]:
            assert record["result"] == "Ok", record
            for hec in fleet_events._decode_hec(record["data"]):
                if hec["event"].get("name") in wanted:
                    out.append(hec)
    return out


def _pull_events() -> List[Any]:
    from iot_defender import events

    f = fleet()
    scope = {"account_id": f.account_id, "region": f.region}
    out: List[Any] = []
    completed = [t for t in f.audit_tasks if t["taskStatus"] == "COMPLETED"]
    for task in completed:
        out.extend(events.audit_task_events(fleet_events._api_task(task), **scope))
    ids = {t["taskId"] for t in completed}
    out.extend(events.audit_finding_event(x, **scope) for x in f.findings if x["taskId"] in ids)
    for snapshot in snapshot_times():  # the violations input's active-violation snapshot, hourly
        out.extend(
            events.active_violation_event(av, snapshot_time=snapshot, **scope)
            for av in f.active_violations_at(snapshot)
        )
    return out


def snapshot_times() -> List[float]:
    first = BOOTSTRAP_AT - 2 * H + 5 * 60
    return [first + k * H for k in range(int((NOW.timestamp() - first) // H) + 1)]


def _thing_events() -> List[Any]:
    from iot_defender import events

    f = fleet()
    out = []
    for th in f.things:
        thing = {
            "thingName": th.name,
            "thingTypeName": th.thing_type,
            "thingArn": f"arn:aws:iot:{f.region}:{f.account_id}:{th.arn_suffix}",
            "attributes": dict(th.attributes),
            "version": 1,
        }
        certificates = [{"certificateId": th.certificate.certificate_id, "status": th.certificate.status}]
        out.append(
            events.thing_event(
                thing,
                account_id=f.account_id,
                region=f.region,
                snapshot_time=NOW,
                groups=list(th.groups),
                certificates=certificates,
            )
        )
    return out


@dataclass
class World:
    store: splrun.EventStore
    tables: Dict[str, splrun.Table]
    events: int


def _tables(kv_rows: List[Dict[str, Any]]) -> Dict[str, splrun.Table]:
    knowledge = model.Model(kv_rows={"iot_thing_inventory": kv_rows})
    tables: Dict[str, splrun.Table] = {}
    for name, values in model.conf("transforms.conf").items():
        sensitive = values.get("case_sensitive_match", "true").lower() in ("1", "true")
        max_matches = int(values.get("max_matches", "100"))
        if values.get("external_type") == "kvstore":
            fields = [x.strip() for x in values["fields_list"].split(",")]
            rows = knowledge.tables.get(name, [])
            tables[name] = splrun.Table(fields, list(rows), kv=True, case_sensitive=sensitive, max_matches=max_matches)
        elif "filename" in values:
            fields, rows = model.csv_rows(values["filename"])
            tables[name] = splrun.Table(fields, rows, case_sensitive=sensitive, max_matches=max_matches)
    with ALLOWED_PORTS.open(newline="") as handle:
        reader = csv.DictReader(handle)
        tables["iot_defender_allowed_ports"].rows = list(reader)
    return tables


@functools.lru_cache(maxsize=1)
def world() -> World:
    from iot_defender import inventory

    things = _thing_events()
    kv_rows = [inventory.lookup_row(e, when=NOW) for e in things]
    knowledge = model.Model(kv_rows={"iot_thing_inventory": kv_rows})
    indexed: List[Dict[str, Any]] = []

    cache: Dict[Tuple[str, str], Dict[str, Any]] = {}

    def add(sourcetype: str, raw: str, when: float, meta: Dict[str, Any]) -> None:
        # Metric bodies differ from slot to slot only by "timestamp", which no search-time setting reads: their
        # fields are computed once per distinct body and the timestamp put back (a speed-up, same fields).
        stamp = re.search(r'"timestamp":"([^"]*)"', raw) if sourcetype == "aws:iot:defender:metric" else None
        key = (sourcetype, raw.replace(stamp.group(0), "") if stamp else raw)
        if key not in cache:
            fields = model.flatten_json(raw)
            fields.update(meta)
            cache[key] = knowledge.apply(sourcetype, fields, raw)
        fields = dict(cache[key])
        if stamp:
            fields["timestamp"] = stamp.group(1)
        fields.update(meta)
        fields.update(_time=when, _raw=raw, sourcetype=sourcetype)
        indexed.append(fields)

    for hec in _metric_events():
        add(
            hec["sourcetype"],
            fleet_events._compact(hec["event"]),
            float(hec["time"]),
            {"index": "iot", "source": hec["source"]},
        )
    for event in _pull_events() + things:
        add(event.sourcetype, event.body(), event.time, {"index": "iot", "source": event.source})
    return World(store=splrun.EventStore(indexed), tables=_tables(kv_rows), events=len(indexed))


# ------------------------------------------------------------------------------------------- the schedule


@dataclass
class Outcome:
    found: Dict[str, Set[str]] = field(default_factory=dict)  # detection -> entity keys
    runs: Dict[str, int] = field(default_factory=dict)
    max_read: Dict[str, int] = field(default_factory=dict)  # detection/baseline -> most events one run read
    rows: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)


def entity_key(name: str, row: Dict[str, Any]) -> Optional[str]:
    """What a detection's row is about: the thing, else the AWS resource (dest), else the check."""
    for f in ("thing_name", "dest", "violationId", "checkName"):
        if row.get(f) not in (None, ""):
            value = row[f]
            return str(value[0]) if isinstance(value, list) else str(value)
    return None


def _run(runner: splrun.Runner, w: World, values: Dict[str, str], now: float) -> splrun.Run:
    earliest = splrun.relative_time(now, values["dispatch.earliest_time"])
    latest = splrun.relative_time(now, values["dispatch.latest_time"])
    return runner.run(values["search"], now=now, earliest=earliest, latest=latest, events=w.store.window)


@functools.lru_cache(maxsize=1)
def simulate() -> Outcome:
    w = world()
    runner = splrun.Runner(model.macros(), w.tables)
    searches = model.saved_searches()
    outcome = Outcome()
    for name, values in searches.items():
        if name.endswith(" - Bootstrap"):
            result = _run(runner, w, values, BOOTSTRAP_AT)
            outcome.max_read[name] = result.events_read
    scheduled = {
        n: v
        for n, v in searches.items()
        if v.get("enableSched") == "1" and (n.endswith(" - Rule") or n.endswith(" - Baseline"))
    }
    plan = []
    for order, name in enumerate(sorted(scheduled, key=lambda n: (n.endswith(" - Baseline"), n))):
        times = croniter(scheduled[name]["cron_schedule"], dt.datetime.fromtimestamp(BOOTSTRAP_AT - 1, dt.timezone.utc))
        moment = times.get_next(float)
        while moment <= NOW.timestamp():
            plan.append((moment, order, name))
            moment = times.get_next(float)
    # at the same minute detections run before baselines (their crons never share a minute anyway)
    for t, _order, name in sorted(plan):
        result = _run(runner, w, scheduled[name], t)
        outcome.runs[name] = outcome.runs.get(name, 0) + 1
        outcome.max_read[name] = max(outcome.max_read.get(name, 0), result.events_read)
        if name.endswith(" - Rule"):
            for row in result.rows:
                key = entity_key(name, row)
                if key:
                    outcome.found.setdefault(name, set()).add(key)
                    outcome.rows.setdefault(name, []).append(row)
    return outcome


# ---------------------------------------------------------------------------------------------- ground truth


def _findings_after_bootstrap(checks: Set[str], severities: Optional[Set[str]] = None) -> Set[str]:
    """Resources (dest) whose (check, resource) first shows in an unsuppressed finding after the bootstrap."""
    rows = [r for r in _finding_rows() if r["checkName"] in checks]
    seen_before = {(r["checkName"], r["dest"]) for r in rows if r["_time"] < BOOTSTRAP_AT}
    return {
        r["thing_or_dest"]
        for r in rows
        if r["_time"] >= BOOTSTRAP_AT
        and r["isSuppressed"] == "false"
        and (r["checkName"], r["dest"]) not in seen_before
        and (severities is None or r["severity"].upper() in severities)
    }


@functools.lru_cache(maxsize=1)
def _finding_rows() -> List[Dict[str, Any]]:
    w = world()
    ast = splkit.parse_base_search('sourcetype="aws:iot:defender:audit:finding"')
    f = fleet()
    by_cert = {th.certificate.certificate_id: th.name for th in f.things}
    out = []
    for e in w.store.window(0, NOW.timestamp() + 1, ast):
        thing = e.get("thing_name")
        thing = thing[0] if isinstance(thing, list) else thing
        thing = thing or by_cert.get(e.get("certificate_id") or "")
        out.append({**e, "thing_or_dest": thing or e["dest"]})
    return out


def truth() -> Dict[str, Set[str]]:
    """Per detection, what it should find in the scheduled period (thing, else resource, else check)."""
    planted = [p for p in plants() if p.start >= BOOTSTRAP_AT]
    by_kind: Dict[str, Set[str]] = {}
    for p in planted:
        by_kind.setdefault(p.kind, set()).add(p.thing_name)
    specs = {s["name"]: s for s in _specs()}
    covered = {c for s in specs.values() for c in s.get("audit", {}).get("checks", [])}
    catalogue = {r["checkName"]: r["severity"] for r in model.csv_rows("iot_defender_audit_checks.csv")[1]}
    out = {
        "New listening port": by_kind.get("port", set()),
        "Risky port open": by_kind.get("port", set()),
        "Listening port outside the allow-list": by_kind.get("port", set()),
        "Egress spike": by_kind.get("egress", set()),
        "New destination": by_kind.get("dest", set()),
        "Authorization failure burst": by_kind.get("auth_burst", set()),
    }
    for name, spec in specs.items():
        audit = spec.get("audit")
        if audit and audit.get("checks"):
            out[name] = _findings_after_bootstrap(set(audit["checks"]))
        elif audit and audit.get("other_checks"):
            out[name] = _findings_after_bootstrap(set(catalogue) - covered, {"CRITICAL", "HIGH"})
    failed = set()
    for task in fleet().audit_tasks:
        start = task["taskStartTime"].timestamp()
        if task["taskStatus"] == "COMPLETED" and start >= BOOTSTRAP_AT - 2 * H:
            failed |= {c for c, d in task["auditDetails"].items() if d.get("checkRunStatus") in ("FAILED", "CANCELED")}
    f = fleet()
    out["Audit check failed to run"] = {f"{f.account_id}:{f.region}"} if failed else set()
    # the detection runs at :23 over the snapshot taken at :05; a violation counts once 24 h in alarm at a run
    out["Violation in alarm without triage"] = {
        av["thingName"]
        for s in snapshot_times()
        if s >= BOOTSTRAP_AT
        for av in fleet().active_violations_at(s)
        if "verificationState" not in av and s + 18 * 60 - av["violationStartTime"].timestamp() >= 24 * H
    }
    return out


def _specs(kind: str = "detection") -> List[Dict[str, Any]]:
    import importlib.util

    path = model.ROOT / "scripts" / "make_detections.py"
    spec = importlib.util.spec_from_file_location("make_detections", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return [s for s in module.load() if s["type"] == kind]


def table() -> List[Tuple[str, int, int, int, List[str], List[str]]]:
    """(detection, planted, found, false positives, missed, false-positive keys) per detection."""
    outcome = simulate()
    expected = truth()
    rows = []
    for spec in _specs():
        name = spec["name"]
        stanza = f"IoT Defender - {name} - Rule"
        want = expected.get(name, set())
        got = outcome.found.get(stanza, set())
        rows.append((name, len(want), len(want & got), len(got - want), sorted(want - got), sorted(got - want)))
    return rows
