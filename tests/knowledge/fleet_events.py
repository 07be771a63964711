"""Events the REAL code produces for the simulated fleet, indexed the way Splunk would see them.

Transports (``Indexed.transport``):

- ``pull``: what the modular inputs emit, built in-process from the fleet's API-shaped records by the inputs'
  own library code (``detect.shape_violation_page``, ``events.audit_task_events``, ``events.audit_finding_event``,
  ``events.active_violation_event``, ``events.thing_event``) and the metrics-export messages through
  ``events.metric_events`` (the same builder the Lambda calls);
- ``push``: what the Firehose transform Lambda (``infra/ingestion/functions/transform/app.py``,
  ``lambda_handler``) returns for the same fleet: metrics-export messages, audit-completed SNS notifications and
  violation SNS messages, decoded from its base64 HEC output;
- ``actions``: alert-action results through ``events.action_event`` (one per outcome kind);
- ``internal``: the inputs' run-summary log lines (``pipeline.RunStats.summary_line``) as _internal holds them;
- ``demo``: when ``make demo`` has run, every event of ``build/demo/events.jsonl`` and the run summaries of its
  Splunk home (supplementary evidence: the built inputs run as splunkd runs them).

The thing inventory KV rows come from ``inventory.lookup_row`` over the thing events, exactly what the
inventory input writes to the ``iot_thing_inventory`` collection.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import importlib.util
import io
import json
import sys
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from tests.knowledge import model

ROOT = model.ROOT
TRANSFORM = ROOT / "infra" / "ingestion" / "functions" / "transform" / "app.py"
DEMO_EVENTS = ROOT / "build" / "demo" / "events.jsonl"
DEMO_LOGS = ROOT / "build" / "demo" / "splunk-home" / "splunk" / "var" / "log" / "splunk"

NOW = dt.datetime(2025, 11, 22, 12, 0, tzinfo=dt.timezone.utc)
ACCOUNT = "123456789012"
REGION = "us-east-1"
STRICT_TRANSPORTS = ("pull", "push", "actions", "internal")

if str(ROOT / "package" / "bin") not in sys.path:
    sys.path.insert(0, str(ROOT / "package" / "bin"))


@dataclass
class Indexed:
    sourcetype: str
    transport: str
    raw: str
    time: float
    meta: Dict[str, Any]
    fields: Dict[str, Any]


# --------------------------------------------------------------------------------------------- fleet


@functools.lru_cache(maxsize=1)
def fleet() -> Any:
    from tests.harness.fleet import Fleet, Plant

    # audit findings the base fleet has no instance of (every audit from the middle of the window on)
    middle = NOW.timestamp() - 36 * 3600
    plants = [Plant("cert_expiring", "flow-meter-003", middle), Plant("key_quality", "rtu-gateway-004", middle)]
    return Fleet(seed=11, things=24, days=3, now=NOW, compromised=3, plants=plants)


def _api_task(task: Dict[str, Any]) -> Dict[str, Any]:
    """An audit task as DescribeAuditTask returns it (the fleet keeps emulator-only keys beside it)."""
    return {k: v for k, v in task.items() if k not in ("completes_at", "pending")}


def _epoch_ms(value: Any) -> int:
    return round(value.timestamp() * 1000) if isinstance(value, dt.datetime) else int(value)


def metric_messages() -> List[Dict[str, Any]]:
    """Export messages: every thing for the last 30 minutes, and each compromised thing around its compromise."""
    f = fleet()
    messages = list(f.iter_metrics_export_messages(start=f.now_epoch - 1800, end=f.now_epoch))
    for c in f.compromises:
        messages.extend(f.iter_metrics_export_messages(start=c.start - 3600, end=c.start + 3600, things=[c.thing_name]))
    return messages


def sns_audit_messages() -> List[Dict[str, Any]]:
    """Audit-completed notifications (the documented SNS shape: flat counts, checks as a list, epoch ms)."""
    out = []
    for task in fleet().audit_tasks:
        if task["taskStatus"] != "COMPLETED":
            continue
        details = task["auditDetails"]
        statuses = [d.get("checkRunStatus") for d in details.values()]
        message = {
            "accountId": ACCOUNT,
            "taskId": task["taskId"],
            "taskStatus": task["taskStatus"],
            "taskType": task["taskType"],
            "failedChecksCount": statuses.count("FAILED"),
            "canceledChecksCount": statuses.count("CANCELED"),
            "nonCompliantChecksCount": statuses.count("COMPLETED_NON_COMPLIANT"),
            "compliantChecksCount": statuses.count("COMPLETED_COMPLIANT"),
            "totalChecksCount": len(statuses),
            "taskStartTime": _epoch_ms(task["taskStartTime"]),
            "auditDetails": [
                {
                    "checkName": name,
                    **{
                        k: v
                        for k, v in detail.items()
                        if k
                        in (
                            "checkRunStatus",
                            "nonCompliantResourcesCount",
                            "totalResourcesCount",
                            "errorCode",
                            "message",
                        )
                    },
                }
                for name, detail in sorted(details.items())
            ],
        }
        if task.get("scheduledAuditName"):
            message["scheduledAuditName"] = task["scheduledAuditName"]
        out.append(message)
    return out


def sns_violation_messages() -> List[Dict[str, Any]]:
    """Violation messages as the alert topic publishes them (epoch-ms times)."""
    out = []
    for record in fleet().violation_events:
        message = dict(record)
        message["violationEventTime"] = _epoch_ms(record["violationEventTime"])
        out.append(message)
    return out


def _sns_envelope(message: Dict[str, Any], topic: str) -> Dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "00000000-0000-0000-0000-000000000000",
        "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic}",
        "Subject": None,
        "Message": json.dumps(message),
        "Timestamp": "2025-11-22T12:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.example/cert.pem",
        "UnsubscribeURL": "https://sns.example/unsubscribe",
        "MessageAttributes": {},
    }


# ------------------------------------------------------------------------------------------- builders


def pull_events() -> List[Any]:
    from iot_defender import detect, events

    f = fleet()
    scope = {"account_id": ACCOUNT, "region": REGION}
    out: List[Any] = []
    items, malformed = detect.shape_violation_page(f.violation_events, **scope)
    assert not malformed, malformed
    out.extend(event for _key, event in items)
    out.extend(events.active_violation_event(av, snapshot_time=NOW, **scope) for av in f.active_violations)
    for task in f.audit_tasks:
        out.extend(events.audit_task_events(_api_task(task), **scope))
    out.extend(events.audit_finding_event(finding, **scope) for finding in f.findings)
    for message in metric_messages():
        out.extend(events.metric_events(message, **scope))
    out.extend(thing_events())
    return out


def thing_events() -> List[Any]:
    from iot_defender import events

    f = fleet()
    out = []
    for th in f.things:
        thing = {
            "thingName": th.name,
            "thingTypeName": th.thing_type,
            "thingArn": f"arn:aws:iot:{REGION}:{ACCOUNT}:{th.arn_suffix}",
            "attributes": dict(th.attributes),
            "version": 1,
        }
        certificates = [{"certificateId": th.certificate.certificate_id, "status": th.certificate.status}]
        out.append(
            events.thing_event(
                thing,
                account_id=ACCOUNT,
                region=REGION,
                snapshot_time=NOW,
                groups=list(th.groups),
                certificates=certificates,
            )
        )
    return out


def action_events() -> List[Any]:
    from iot_defender import events

    f = fleet()
    victim = f.compromised_things[0]
    other = f.compromised_things[1]
    vid = next(v["violationId"] for v in f.violation_events if v["thingName"] == victim)
    common = {"account_id": ACCOUNT, "region": REGION, "orig_sid": "scheduler__admin__sid_1", "orig_rid": "0"}
    results = [
        events.ActionResult(
            action="iot_quarantine_thing",
            outcome="done",
            thing_name=victim,
            message="quarantined",
            search_name="IoT Defender - Risky port open - Rule",
            sid="sid_1",
            rid="0",
            dry_run=False,
            details={"quarantine_group": "QUARANTINED"},
            **common,
        ),
        events.ActionResult(
            action="iot_quarantine_thing",
            outcome="already-in-state",
            thing_name=victim,
            message="already in thing group QUARANTINED",
            search_name="IoT Defender - New destination - Rule",
            **common,
        ),
        events.ActionResult(
            action="iot_start_incident",
            outcome="done",
            thing_name=victim,
            message="incident started",
            search_name="IoT Defender - Risky port open - Rule",
            details={"violation_id": vid},
            **common,
        ),
        events.ActionResult(
            action="iot_set_verification_state",
            outcome="done",
            thing_name=victim,
            message="verification state TRUE_POSITIVE",
            search_name="IoT Defender - Violation in alarm without triage - Rule",
            details={"violation_id": vid},
            **common,
        ),
        events.ActionResult(
            action="iot_quarantine_thing",
            outcome="done",
            thing_name=other,
            message="quarantined",
            search_name="IoT Defender - Egress spike - Rule",
            **common,
        ),
        events.ActionResult(
            action="iot_release_thing",
            outcome="done",
            thing_name=other,
            message="released",
            search_name="IoT Defender - Egress spike - Rule",
            **common,
        ),
        events.ActionResult(
            action="iot_quarantine_thing",
            outcome="refused-protected",
            thing_name=f.things[0].name,
            message="member of protected group protected-critical",
            search_name="IoT Defender - New destination - Rule",
            **common,
        ),
        events.ActionResult(
            action="iot_quarantine_thing",
            outcome="failed",
            thing_name=f.things[1].name,
            message="AWS refused: not authorized",
            error_code="AccessDeniedException",
            search_name="IoT Defender - Authorization failure burst - Rule",
            **common,
        ),
        events.ActionResult(
            action="iot_start_incident",
            outcome="dry-run",
            thing_name=f.things[2].name,
            message="would start an incident",
            dry_run=True,
            search_name="IoT Defender - New listening port - Rule",
            **common,
        ),
    ]
    base = NOW - dt.timedelta(minutes=30)
    return [events.action_event(r, when=base + dt.timedelta(minutes=i)) for i, r in enumerate(results)]


def _load_transform() -> Any:
    spec = importlib.util.spec_from_file_location("iot_defender_transform_app", TRANSFORM)
    if spec is None or spec.loader is None:
        raise AssertionError(f"cannot load {TRANSFORM}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _decode_hec(data: str) -> List[Dict[str, Any]]:
    text = base64.b64decode(data).decode("utf-8")
    decoder, position, out = json.JSONDecoder(), 0, []
    while position < len(text):
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            break
        event, position = decoder.raw_decode(text, position)
        out.append(event)
    return out


def push_events() -> List[Dict[str, Any]]:
    """HEC events the transform Lambda returns for the fleet's exports and SNS messages."""
    transform = _load_transform()
    payloads: List[Dict[str, Any]] = list(metric_messages())
    payloads.extend(_sns_envelope(m, "iot-defender-audit") for m in sns_audit_messages())
    payloads.extend(_sns_envelope(m, "iot-device-alerts") for m in sns_violation_messages())
    out: List[Dict[str, Any]] = []
    for start in range(0, len(payloads), 200):
        batch = payloads[start : start + 200]
        invocation = {
            "invocationId": "knowledge-tests",
            "deliveryStreamArn": f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/iot-defender-to-splunk",
            "region": REGION,
            "records": [
                {
                    "recordId": f"{start + n:056d}",
                    "approximateArrivalTimestamp": int(NOW.timestamp() * 1000),
                    "data": base64.b64encode(json.dumps(p).encode()).decode(),
                }
                for n, p in enumerate(batch)
            ],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            response = transform.lambda_handler(invocation, None)
        results = {r["result"] for r in response["records"]}
        assert results == {"Ok"}, f"transform did not accept every record: {response['records'][:3]}"
        for record in response["records"]:
            out.extend(_decode_hec(record["data"]))
    return out


def run_summary_lines() -> List[Tuple[str, str]]:
    """(input, log line) of run summaries as the inputs log them (real RunStats), ok runs and a failed one."""
    from iot_defender.pipeline import RunStats

    lines = []
    for n, (input_name, stanza) in enumerate(
        (("iot_defender_violations", "violations"), ("iot_defender_audit", "audit"), ("iot_defender_inventory", "inv"))
    ):
        stats = RunStats(input=input_name, stanza=stanza, account="prod", region=REGION)
        stats.events, stats.pages, stats.api_calls, stats.throttles = 120 + n, 4, 9, n
        stats.lag_seconds = 42.0 + n
        lines.append((input_name, stats.summary_line()))
    failed = RunStats(input="iot_defender_violations", stanza="violations", account="prod", region="eu-west-1")
    failed.status, failed.errors, failed.error_code = "error", 1, "AccessDeniedException"
    lines.append(("iot_defender_violations", failed.summary_line()))
    prefix = (
        "2025-11-22 12:00:00,000 log_level=INFO pid=4242 tid=MainThread file=iot_defender_input.py:_run_stanza:321 | "
    )
    return [(name, prefix + line) for name, line in lines]


# ------------------------------------------------------------------------------------------- indexing


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


DEMO_LOG_PREFIX = "ta-aws-iot-defender_"  # UCC's log file naming, which its monitoring dashboard searches


def demo_run_summaries() -> Iterator[Tuple[str, str]]:
    """(input name, log line) of every run-summary line the demo's inputs logged (none before a demo ran)."""
    if not DEMO_LOGS.exists():
        return
    for path in sorted(DEMO_LOGS.glob(DEMO_LOG_PREFIX + "*.log")):
        input_name = path.stem[len(DEMO_LOG_PREFIX) :]
        for line in path.read_text().splitlines():
            if "iot_defender_run_summary" in line:
                yield input_name, line


def _internal_event(input_name: str, line: str, transport: str) -> Tuple[str, str, float, Dict[str, Any], str]:
    meta = {
        "index": "_internal",
        "source": f"/opt/splunk/var/log/splunk/ta-aws-iot-defender_{input_name}.log",
        "sourcetype": f"ta-aws-iot-defender_{input_name}",
        "host": "splunk-sh",
    }
    return meta["sourcetype"], line, NOW.timestamp(), meta, transport


def _demo_records() -> Iterable[Dict[str, Any]]:
    if not DEMO_EVENTS.exists():
        return []
    with DEMO_EVENTS.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


@functools.lru_cache(maxsize=1)
def indexed() -> List[Indexed]:
    """Every event of every transport, with the fields Splunk would extract at search time."""
    from iot_defender import events, inventory

    pulled = pull_events()
    demo = list(_demo_records())
    # The collection holds one row per _key: the demo's inventory first, this fleet's over it (same names).
    kv_rows: Dict[str, Dict[str, Any]] = {}
    for record in demo:
        if record["sourcetype"] == events.SOURCETYPE_THING:
            shaped = events.Event(
                time=record["time"], sourcetype=record["sourcetype"], source=record["source"], data=record["event"]
            )
            row = inventory.lookup_row(shaped, when=NOW)
            kv_rows[row["_key"]] = row
    for event in pulled:
        if event.sourcetype == events.SOURCETYPE_THING:
            row = inventory.lookup_row(event, when=NOW)
            kv_rows[row["_key"]] = row
    knowledge = model.Model(kv_rows={"iot_thing_inventory": list(kv_rows.values())})

    raw_events: List[Tuple[str, str, float, Dict[str, Any], str]] = []
    for event in pulled:
        meta = {"index": "iot", "source": event.source, "sourcetype": event.sourcetype, "host": event.host}
        raw_events.append((event.sourcetype, event.body(), event.time, meta, "pull"))
    for event in action_events():
        meta = {"index": "main", "source": event.source, "sourcetype": event.sourcetype, "host": event.host}
        raw_events.append((event.sourcetype, event.body(), event.time, meta, "actions"))
    for hec in push_events():
        meta = {"index": "iot", "source": hec["source"], "sourcetype": hec["sourcetype"], "host": hec.get("host")}
        raw_events.append((hec["sourcetype"], _compact(hec["event"]), float(hec["time"]), meta, "push"))
    for input_name, line in run_summary_lines():
        raw_events.append(_internal_event(input_name, line, "internal"))
    for record in demo:
        meta = {k: record.get(k) for k in ("index", "source", "sourcetype", "host")}
        raw_events.append((record["sourcetype"], _compact(record["event"]), float(record["time"]), meta, "demo"))
    for input_name, line in demo_run_summaries():
        raw_events.append(_internal_event(input_name, line, "demo"))

    out: List[Indexed] = []
    for sourcetype, raw, when, meta, transport in raw_events:
        if meta["index"] == "_internal":
            fields = model.kv_auto(raw)
        else:
            fields = model.flatten_json(raw)
        fields.update({k: v for k, v in meta.items() if v is not None})
        fields = knowledge.apply(sourcetype, fields, raw)
        out.append(Indexed(sourcetype=sourcetype, transport=transport, raw=raw, time=when, meta=meta, fields=fields))
    return out


def by_sourcetype() -> Dict[str, List[Indexed]]:
    out: Dict[str, List[Indexed]] = {}
    for item in indexed():
        out.setdefault(item.sourcetype, []).append(item)
    return out


def demo_available() -> bool:
    return DEMO_EVENTS.exists()


def demo_is_fresh() -> bool:
    """build/demo/events.jsonl is newer than the code that shapes events."""
    if not DEMO_EVENTS.exists():
        return False
    shapers = [ROOT / "package" / "bin" / "iot_defender" / "events.py", TRANSFORM]
    return all(DEMO_EVENTS.stat().st_mtime >= p.stat().st_mtime for p in shapers if p.exists())


def transports_present(items: Iterable[Indexed]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for item in items:
        counts[item.transport] = counts.get(item.transport, 0) + 1
    return counts


def strict(transport: str) -> bool:
    return transport in STRICT_TRANSPORTS


def event_field_present(items: Iterable[Indexed], name: str) -> bool:
    return any(name in item.fields for item in items)


def first(items: Iterable[Indexed]) -> Optional[Indexed]:
    return next(iter(items), None)
