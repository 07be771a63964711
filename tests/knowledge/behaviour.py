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
import dataclasses
import datetime as dt
import functools
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

from tests.knowledge import fleet_events, model, scheduler, splkit, splrun

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
        # a second new port on the same thing the same day: its own finding (suppression is per thing and value)
        Plant("port", "pump-station-001", now - 15 * H, None, 9999),
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
    store: Any  # splrun.EventStore, or anything with window(earliest, latest, ast)
    tables: Dict[str, splrun.Table]
    events: int
    things: int = THINGS
    unserved: Dict[str, int] = field(default_factory=dict)  # automatic lookups indexers could not serve


def tables(kv_rows: Dict[str, List[Dict[str, Any]]], allowed_ports: Any = ALLOWED_PORTS) -> Dict[str, splrun.Table]:
    """The lookups of transforms.conf as the runner's tables: KV collections with the given rows (and their
    collections.conf ``replicate``), CSV files as shipped, the allow-list replaced by the fleet's own."""
    collections = model.conf("collections.conf")
    out: Dict[str, splrun.Table] = {}
    for name, values in model.conf("transforms.conf").items():
        sensitive = values.get("case_sensitive_match", "true").lower() in ("1", "true")
        max_matches = int(values.get("max_matches", "100"))  # transforms.conf.spec: default 100 without time_field
        if values.get("external_type") == "kvstore":
            fields = [x.strip() for x in values["fields_list"].split(",")]
            replicate = collections.get(values["collection"], {}).get("replicate", "false").lower() in ("1", "true")
            out[name] = splrun.Table(
                fields,
                [dict(r) for r in kv_rows.get(name, [])],
                kv=True,
                case_sensitive=sensitive,
                max_matches=max_matches,
                replicate=replicate,
                filter=values.get("filter"),
            )
        elif "filename" in values:
            columns, rows = model.csv_rows(values["filename"])
            out[name] = splrun.Table(columns, rows, case_sensitive=sensitive, max_matches=max_matches)
    with open(allowed_ports, newline="") as handle:
        out["iot_defender_allowed_ports"].rows = list(csv.DictReader(handle))
    return out


def kv_collections(inventory_rows: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """What the inventory input writes: the inventory rows and their certificate -> thing links."""
    from iot_defender import certificate_index

    links = [link for row in inventory_rows for link in certificate_index.rows(row)]
    return {"iot_thing_inventory": inventory_rows, certificate_index.COLLECTION: links}


@functools.lru_cache(maxsize=2)
def world(distributed: bool = True) -> World:
    """The fleet's events as indexed and searched: ``distributed`` (the default, as every ES deployment is), the
    automatic lookups run on indexers, which see no KV collection that is not replicated."""
    from iot_defender import inventory

    things = _thing_events()
    kv_rows = [inventory.lookup_row(e, when=NOW) for e in things]
    knowledge = model.Model(kv_rows={"iot_thing_inventory": kv_rows}, distributed=distributed)
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
    return World(
        store=splrun.EventStore(indexed),
        tables=tables(kv_collections(kv_rows)),
        events=len(indexed),
        unserved=dict(knowledge.unserved),
    )


# ------------------------------------------------------------------------------------------- the schedule


@dataclass
class Outcome:
    found: Dict[str, Set[str]] = field(default_factory=dict)  # detection -> finding keys (after suppression)
    runs: Dict[str, int] = field(default_factory=dict)
    max_read: Dict[str, int] = field(default_factory=dict)  # detection/baseline -> most events one run read
    events_read: Dict[str, int] = field(default_factory=dict)  # search -> events all its runs read
    rows: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    truncations: List[Tuple[str, Any]] = field(default_factory=list)  # (search, limits.Truncation)
    skipped: int = 0
    suppressed: Dict[str, int] = field(default_factory=dict)
    windows: Dict[str, List[Tuple[float, float]]] = field(default_factory=dict)  # rule -> (earliest, latest) per row
    kv_read: Dict[str, int] = field(default_factory=dict)  # search -> KV rows its runs read (queries and lookups)
    kv_written: Dict[str, int] = field(default_factory=dict)  # search -> KV rows its runs wrote
    kv_rows: Dict[str, int] = field(default_factory=dict)  # collection -> rows at the end


# A "New ..." finding is about a thing and its new value: one key per (thing, value).
VALUE_FIELDS = {"New listening port": ("new_value", "new_ports"), "New destination": ("new_value", "new_dest_cidrs")}
# (today's content named the values new_ports / new_dest_cidrs, "23" rather than "23/tcp")


def _first(value: Any) -> str:
    return str(value[0]) if isinstance(value, list) else str(value)


def finding_keys(detection: str, row: Dict[str, Any]) -> List[str]:
    """What a detection's row is about: the thing, else the AWS resource (dest), else the check; for "New ..."
    detections the thing and each new value."""
    entity = next(
        (row[f] for f in ("thing_name", "dest", "violationId", "checkName") if row.get(f) not in (None, "")), None
    )
    if entity is None:
        return []
    for name in VALUE_FIELDS.get(detection, ()):
        if row.get(name) not in (None, ""):
            values = row[name] if isinstance(row[name], list) else [row[name]]
            return [f"{_first(entity)}:{v}" for v in values]
    return [_first(entity)]


def _window(values: Dict[str, str], now: float) -> Tuple[float, float]:
    return splrun.relative_time(now, values["dispatch.earliest_time"]), splrun.relative_time(
        now, values["dispatch.latest_time"]
    )


def _run(runner: splrun.Runner, w: World, values: Dict[str, str], now: float) -> splrun.Run:
    earliest, latest = _window(values, now)
    return runner.run(values["search"], now=now, earliest=earliest, latest=latest, events=w.store.window)


def _suppressed(values: Dict[str, str], row: Dict[str, Any], now: float, memory: Dict[Tuple[str, ...], float]) -> bool:
    """savedsearches.conf alert.suppress / alert.suppress.fields / alert.suppress.period (per result, digest off):
    a result whose suppression fields fired within the period is not alerted."""
    if values.get("alert.suppress") != "1":
        return False
    names = [f.strip() for f in values.get("alert.suppress.fields", "").split(",") if f.strip()]
    key = tuple(_first(row.get(n)) for n in names)
    period = splrun.relative_time(0, "+" + values.get("alert.suppress.period", "0s"))
    if key in memory and now - memory[key] < period:
        return True
    memory[key] = now
    return False


def searches_of(kind: str = "scheduled") -> Dict[str, Dict[str, str]]:
    searches = model.saved_searches()
    if kind == "bootstrap":
        return {n: v for n, v in searches.items() if n.endswith(" - Bootstrap")}
    return {
        n: v
        for n, v in searches.items()
        if v.get("enableSched") == "1" and (n.endswith(" - Rule") or n.endswith(" - Baseline"))
    }


def simulate_on(
    w: World, plan: scheduler.Plan, bootstrap_at: float, *, distributed: bool = True, macros: Any = None
) -> Outcome:
    """Bootstraps at ``bootstrap_at``, then every run of ``plan`` in its order; findings after suppression.
    ``macros``: the macros.conf definitions in force (default: the shipped ones)."""
    w = dataclasses.replace(
        w, tables={n: dataclasses.replace(t, rows=list(t.rows), _positions=None) for n, t in w.tables.items()}
    )
    runner = splrun.Runner(macros or model.macros(), w.tables, distributed=distributed)
    outcome = Outcome(skipped=len(plan.skipped))
    for name, values in searches_of("bootstrap").items():
        result = _run(runner, w, values, bootstrap_at)
        outcome.max_read[name] = result.events_read
        outcome.truncations.extend((name, t) for t in result.truncations)
    scheduled = searches_of()
    memory: Dict[str, Dict[Tuple[str, ...], float]] = {}
    kv = [t for t in w.tables.values() if t.kv]
    for dispatch in plan.runs:
        name, values = dispatch.name, scheduled[dispatch.name]
        read, written = sum(t.rows_read for t in kv), sum(t.rows_written for t in kv)
        result = _run(runner, w, values, dispatch.scheduled)
        outcome.kv_read[name] = outcome.kv_read.get(name, 0) + sum(t.rows_read for t in kv) - read
        outcome.kv_written[name] = outcome.kv_written.get(name, 0) + sum(t.rows_written for t in kv) - written
        outcome.runs[name] = outcome.runs.get(name, 0) + 1
        outcome.max_read[name] = max(outcome.max_read.get(name, 0), result.events_read)
        outcome.events_read[name] = outcome.events_read.get(name, 0) + result.events_read
        outcome.truncations.extend((name, t) for t in result.truncations)
        if not name.endswith(" - Rule"):
            continue
        detection = name[len("IoT Defender - ") : -len(" - Rule")]
        for row in result.rows:
            if _suppressed(values, row, dispatch.scheduled, memory.setdefault(name, {})):
                outcome.suppressed[name] = outcome.suppressed.get(name, 0) + 1
                continue
            keys = finding_keys(detection, row)
            if keys:
                outcome.found.setdefault(name, set()).update(keys)
                outcome.rows.setdefault(name, []).append(row)
                outcome.windows.setdefault(name, []).append(_window(values, dispatch.scheduled))
    outcome.kv_rows = {n: len(t.rows) for n, t in w.tables.items() if t.kv}
    return outcome


CHAOS_SEED = 16


@functools.lru_cache(maxsize=2)
def simulate(schedule: str = "ordered") -> Outcome:
    """Today's fleet on a distributed deployment, under the quiet (``ordered``) or the loaded (``chaos``) scheduler."""
    searches = searches_of()
    start, end = BOOTSTRAP_AT - 1, NOW.timestamp()
    if schedule == "chaos":
        plan = scheduler.chaos(searches, start, end, seed=CHAOS_SEED)
    else:
        plan = scheduler.ordered(searches, start, end)
    return simulate_on(world(), plan, BOOTSTRAP_AT)


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
    values: Dict[str, Set[str]] = {}
    for p in planted:
        by_kind.setdefault(p.kind, set()).add(p.thing_name)
        values.setdefault(p.kind, set()).add(f"{p.thing_name}:{p.value}" + ("/tcp" if p.kind == "port" else ""))
    specs = {s["name"]: s for s in _specs()}
    covered = {c for s in specs.values() for c in s.get("audit", {}).get("checks", [])}
    catalogue = {r["checkName"]: r["severity"] for r in model.csv_rows("iot_defender_audit_checks.csv")[1]}
    out = {
        "New listening port": values.get("port", set()),
        "Risky port open": by_kind.get("port", set()),
        "Listening port outside the allow-list": by_kind.get("port", set()),
        "Egress spike": by_kind.get("egress", set()),
        "New destination": values.get("dest", set()),
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


@functools.lru_cache(maxsize=1)
def generator() -> Any:
    """scripts/make_detections.py as a module."""
    import importlib.util

    path = model.ROOT / "scripts" / "make_detections.py"
    spec = importlib.util.spec_from_file_location("make_detections", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _specs(kind: str = "detection") -> List[Dict[str, Any]]:
    return [s for s in generator().load() if s["type"] == kind]


def table(schedule: str = "ordered") -> List[Tuple[str, int, int, int, List[str], List[str]]]:
    """(detection, planted, found, false positives, missed, false-positive keys) per detection."""
    return score(simulate(schedule), truth())


def score(outcome: Outcome, expected: Dict[str, Set[str]]) -> List[Tuple[str, int, int, int, List[str], List[str]]]:
    rows = []
    for spec in _specs():
        name = spec["name"]
        stanza = f"IoT Defender - {name} - Rule"
        want = expected.get(name, set())
        got = outcome.found.get(stanza, set())
        rows.append((name, len(want), len(want & got), len(got - want), sorted(want - got), sorted(got - want)))
    return rows
