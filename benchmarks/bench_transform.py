"""Throughput of the Firehose transform Lambda (infra/ingestion/functions/transform/app.py) against the seed's.

The seed is the transform Lambda of the stack the add-on grew from (AWS's Device Defender + Splunk sample,
``sam/data-transformation/app.py``), re-implemented here as the baseline: for each record base64-decode and
``json.loads``; a metrics export gives, for each item of ``metrics[]``, ``json.dumps({"sourcetype": ST, "event":
item})`` appended to one string; an audit SNS envelope gives one such event per ``auditDetails[]`` entry of its parsed
``Message``; the concatenation is base64-encoded, result ``Ok``. It sets no time, host, source or index and validates
nothing. (To get through the mixed batch at all it fails a record that is not JSON instead of raising, which would
fail the whole invocation.)

Two batches, each one invocation as Firehose would send it:

- ``seed``: 400 metrics-export records (the 9 metrics the seed stack exports, for one thing each) and 100 audit
  notifications (SNS envelopes, 4 checks each);
- ``mixed``: 500 records of metrics exports (10 datums, some duplicate versions), audit notifications, violation
  SNS envelopes (in-alarm, alarm-cleared) and junk (non-JSON, JSON of other shapes).

Both transforms run in-process, interleaved run by run, after a warm-up; the figures are medians. Time is the
process's CPU time (``time.process_time``), what a CPU-bound Lambda is billed for: on a shared machine wall time also
counts the time the process waits for a core (it is reported too, as ``wall_seconds_median``). The target (issue 12):
the add-on's transform reaches at least 1.5x the seed's events/s on both batches (``ratio_events_per_s``);
``ratio_records_per_s`` compares the time per batch.

``run()`` measures, writes ``build/bench/transform.json`` and returns the figures (what ``make bench`` calls);
``main()`` (or ``python benchmarks/bench_transform.py``) also prints them. MB means 10^6 bytes.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List

REPO_ROOT = Path(__file__).resolve().parents[1]
TRANSFORM_APP = REPO_ROOT / "infra" / "ingestion" / "functions" / "transform" / "app.py"
OUTPUT = REPO_ROOT / "build" / "bench" / "transform.json"
STREAM_ARN = "arn:aws:firehose:us-east-1:123456789012:deliverystream/iot-defender-to-splunk"
BATCH_SIZE = 500
MIX = {"metrics": 200, "audit": 100, "violation": 150, "junk": 50}
SEED_MIX = {"metrics": 400, "audit": 100}
TARGET_RATIO = 1.5
MIN_SECONDS = 3.0
MIN_RUNS = 7
MAX_RUNS = 60
# The seed stack's exported metric set (its security profile's "exported metrics"; infra/ingestion exports the same).
SEED_METRICS = (
    "aws:num-listening-tcp-ports",
    "aws:listening-tcp-ports",
    "aws:num-listening-udp-ports",
    "aws:listening-udp-ports",
    "aws:destination-ip-addresses",
    "aws:all-bytes-out",
    "aws:all-packets-out",
    "aws:num-authorization-failures",
    "aws:source-ip-address",
)
SEED_SOURCETYPE_METRIC = "aws:iot:defender:metric"
SEED_SOURCETYPE_AUDIT = "aws:iot:defender:audit:task"


def load_transform() -> ModuleType:
    package_bin = str(REPO_ROOT / "package" / "bin")
    if package_bin not in sys.path:
        sys.path.insert(0, package_bin)
    name = "iot_defender_bench_transform_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TRANSFORM_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ batch


def _metrics(rng: random.Random, n: int) -> Dict[str, Any]:
    thing = f"pump-station-{n % 997:03d}"
    ts = 1763805600000 + (n % 288) * 300000
    metrics: List[Dict[str, Any]] = [
        {"name": "aws:num-listening-tcp-ports", "value": {"count": 4}},
        {"name": "aws:listening-tcp-ports", "value": {"ports": [21, 22, 53, 443]}},
        {"name": "aws:num-listening-udp-ports", "value": {"count": 1}},
        {"name": "aws:listening-udp-ports", "value": {"ports": [123]}},
        {"name": "aws:destination-ip-addresses", "value": {"cidrs": ["203.0.113.7/32", "198.51.100.20/32"]}},
        {"name": "aws:all-bytes-out", "value": {"count": rng.randint(1000, 90000)}},
        {"name": "aws:all-packets-out", "value": {"count": rng.randint(10, 900)}},
        {"name": "aws:num-authorization-failures", "value": {"count": rng.randint(0, 3)}},
        {"name": "aws:source-ip-address", "value": {"strings": [f"192.0.2.{n % 250}"]}},
        {"name": "aws:num-messages-sent", "value": {"count": rng.randint(1, 60)}, "version": 2},
    ]
    for datum in metrics:
        datum.setdefault("version", 1)
        datum.update(thing=thing, timestamp=ts)
    if n % 4 == 0:  # an older version of the same datum, to be dropped
        metrics.append(dict(metrics[5], version=0, value={"count": 1}))
    return {"version": "1.0", "metrics": metrics}


def _seed_metrics(rng: random.Random, n: int) -> Dict[str, Any]:
    """A metrics-export message with the seed stack's 9 exported metrics for one thing."""
    message = _metrics(rng, n)
    message["metrics"] = [datum for datum in message["metrics"] if datum["name"] in SEED_METRICS][: len(SEED_METRICS)]
    assert [datum["name"] for datum in message["metrics"]] == list(SEED_METRICS)
    return message


def _sns(message: Dict[str, Any], topic: str) -> Dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "0f3c4a1e-7e5b-5a44-9c1f-2b8f0b7f6a11",
        "TopicArn": f"arn:aws:sns:us-east-1:123456789012:{topic}",
        "Subject": None,
        "Message": json.dumps(message),
        "Timestamp": "2025-11-22T00:05:12.345Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-example.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=example",
        "MessageAttributes": {},
    }


def _audit(n: int) -> Dict[str, Any]:
    checks = [
        ("DEVICE_CERTIFICATE_EXPIRING_CHECK", "COMPLETED_NON_COMPLIANT", 3, 120),
        ("IOT_POLICY_OVERLY_PERMISSIVE_CHECK", "COMPLETED_NON_COMPLIANT", 1, 9),
        ("CONFLICTING_CLIENT_IDS_CHECK", "COMPLETED_COMPLIANT", 0, 120),
        ("LOGGING_DISABLED_CHECK", "COMPLETED_COMPLIANT", 0, 1),
    ]
    return _sns(
        {
            "accountId": "123456789012",
            "taskId": f"{n:032x}",
            "taskStatus": "COMPLETED",
            "taskType": "SCHEDULED_AUDIT_TASK",
            "scheduledAuditName": "DailyAudit",
            "failedChecksCount": 0,
            "canceledChecksCount": 0,
            "nonCompliantChecksCount": 2,
            "compliantChecksCount": 2,
            "totalChecksCount": 4,
            "taskStartTime": 1763769600000 + n * 86400000,
            "auditDetails": [
                {"checkName": c, "checkRunStatus": s, "nonCompliantResourcesCount": nc, "totalResourcesCount": t}
                for c, s, nc, t in checks
            ],
        },
        "iot-defender-audit",
    )


def _violation(n: int) -> Dict[str, Any]:
    return _sns(
        {
            "violationEventTime": 1763806200000 + n * 1000,
            "thingName": f"pump-station-{n % 997:03d}",
            "behavior": {
                "name": "AuthorizedTcpPorts",
                "metric": "aws:listening-tcp-ports",
                "criteria": {"comparisonOperator": "in-port-set", "value": {"ports": [22, 53, 443]}},
            },
            "violationEventType": "in-alarm" if n % 3 else "alarm-cleared",
            "metricValue": {"ports": [21, 22, 53, 443]},
            "violationId": f"{n:032x}",
            "securityProfileName": "DeviceRuleBaseline",
        },
        "iot-device-alerts",
    )


def _junk(n: int) -> bytes:
    if n % 2:
        return b"GET / HTTP/1.1 this is not json " + str(n).encode()
    return json.dumps({"AlarmName": "cpu", "NewStateValue": "ALARM", "n": n}).encode()


def _invocation(payloads: List[bytes]) -> Dict[str, Any]:
    return {
        "invocationId": "bench",
        "deliveryStreamArn": STREAM_ARN,
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"{49546986683135544286507457936321625675700192471156785154 + i}",
                "approximateArrivalTimestamp": 1763805601234,
                "data": base64.b64encode(payload).decode("ascii"),
            }
            for i, payload in enumerate(payloads)
        ],
    }


def build_batch(seed: int = 20251122) -> Dict[str, Any]:
    """The mixed batch: metrics exports, audit and violation notifications, junk."""
    rng = random.Random(seed)
    payloads: List[bytes] = []
    for n in range(MIX["metrics"]):
        payloads.append(json.dumps(_metrics(rng, n)).encode())
    for n in range(MIX["audit"]):
        payloads.append(json.dumps(_audit(n)).encode())
    for n in range(MIX["violation"]):
        payloads.append(json.dumps(_violation(n)).encode())
    for n in range(MIX["junk"]):
        payloads.append(_junk(n))
    assert len(payloads) == BATCH_SIZE
    rng.shuffle(payloads)
    return _invocation(payloads)


def build_seed_batch(seed: int = 20251122) -> Dict[str, Any]:
    """What the seed handles: 400 metrics exports (its 9 exported metrics) and 100 audit notifications."""
    rng = random.Random(seed)
    payloads = [json.dumps(_seed_metrics(rng, n)).encode() for n in range(SEED_MIX["metrics"])]
    payloads += [json.dumps(_audit(n)).encode() for n in range(SEED_MIX["audit"])]
    rng.shuffle(payloads)
    return _invocation(payloads)


# ------------------------------------------------------------------------------------------ seed


def seed_transform(event: Dict[str, Any], context: Any = None) -> Dict[str, List[Dict[str, Any]]]:
    """The seed's transform algorithm (the baseline; see the module docstring)."""
    output = []
    for record in event["records"]:
        try:
            payload = json.loads(base64.b64decode(record["data"]))
        except ValueError:  # not in the seed (it would fail the whole batch): lets it finish the mixed batch
            output.append({"recordId": record["recordId"], "result": "ProcessingFailed"})
            continue
        data = ""
        if isinstance(payload, dict) and isinstance(payload.get("metrics"), list):
            for item in payload["metrics"]:
                data += json.dumps({"sourcetype": SEED_SOURCETYPE_METRIC, "event": item})
        elif isinstance(payload, dict) and "Message" in payload:
            message = json.loads(payload["Message"])
            for item in message.get("auditDetails", []):
                data += json.dumps({"sourcetype": SEED_SOURCETYPE_AUDIT, "event": item})
        encoded = base64.b64encode(data.encode("utf-8")).decode("utf-8")
        output.append({"recordId": record["recordId"], "result": "Ok", "data": encoded})
    return {"records": output}


# ------------------------------------------------------------------------------------------ run


def count_events(response: Dict[str, Any]) -> int:
    """HEC events in a response: every Ok record's data decoded as concatenated JSON objects."""
    decoder = json.JSONDecoder()
    count = 0
    for entry in response["records"]:
        if entry["result"] != "Ok":
            continue
        text = base64.b64decode(entry["data"]).decode("utf-8")
        position = 0
        while position < len(text):
            _, position = decoder.raw_decode(text, position)
            count += 1
    return count


def _quiet(handler: Callable[[Dict[str, Any], Any], Dict[str, Any]], event: Dict[str, Any]) -> Dict[str, Any]:
    with contextlib.redirect_stdout(io.StringIO()):  # the per-invocation log line is part of the cost
        return handler(event, None)


def _side(response: Dict[str, Any], timings: List[float], walls: List[float], records: int) -> Dict[str, Any]:
    results: Dict[str, int] = {}
    for entry in response["records"]:
        results[entry["result"]] = results.get(entry["result"], 0) + 1
    median = statistics.median(timings)
    events_out = count_events(response)
    output_bytes = sum(len(entry.get("data", "")) for entry in response["records"])
    return {
        "results": results,
        "events_out": events_out,
        "output_bytes": output_bytes,
        "response_bytes": len(json.dumps(response)),
        "seconds_median": round(median, 6),
        "seconds_best": round(min(timings), 6),
        "wall_seconds_median": round(statistics.median(walls), 6),
        "records_per_s": round(records / median, 1),
        "events_per_s": round(events_out / median, 1),
        "output_mb_per_s": round(output_bytes / median / 1e6, 3),
    }


def compare(event: Dict[str, Any]) -> Dict[str, Any]:
    """The add-on's transform and the seed's on one batch, interleaved run by run."""
    transform = load_transform()
    records = len(event["records"])
    input_bytes = sum(len(record["data"]) for record in event["records"])
    handlers = {"addon": transform.lambda_handler, "seed": seed_transform}
    responses = {name: _quiet(handler, event) for name, handler in handlers.items()}  # warm-up, output figures
    timings: Dict[str, List[float]] = {name: [] for name in handlers}
    walls: Dict[str, List[float]] = {name: [] for name in handlers}
    started = time.perf_counter()
    while len(timings["addon"]) < MAX_RUNS and (
        len(timings["addon"]) < MIN_RUNS or time.perf_counter() - started < MIN_SECONDS
    ):
        for name, handler in handlers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            _quiet(handler, event)
            timings[name].append(time.process_time() - cpu)
            walls[name].append(time.perf_counter() - wall)
    sides = {name: _side(responses[name], timings[name], walls[name], records) for name in handlers}
    addon, seed = sides["addon"], sides["seed"]
    ratio = addon["events_per_s"] / seed["events_per_s"]
    return {
        "records": records,
        "input_bytes": input_bytes,
        "input_mb_per_s": round(input_bytes / addon["seconds_median"] / 1e6, 3),
        "runs": len(timings["addon"]),
        "addon": addon,
        "seed": seed,
        "ratio_events_per_s": round(ratio, 3),
        "ratio_records_per_s": round(seed["seconds_median"] / addon["seconds_median"], 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "response_under_6mb": addon["response_bytes"] <= transform.RESPONSE_LIMIT_BYTES,
    }


def accelerators() -> Dict[str, Any]:
    """The optional packages the transform found (the Lambda ships all three; without them it runs on the standard
    library, with the same output, more slowly): name -> version, or None when missing."""
    transform = load_transform()
    found = {"orjson": transform.orjson, "msgspec": transform.msgspec, "pybase64": transform.pybase64}
    return {name: getattr(module, "__version__", "?") if module else None for name, module in found.items()}


def measure() -> Dict[str, Any]:
    return {
        "benchmark": "firehose-transform",
        "accelerators": accelerators(),
        "batches": {
            "seed": dict(compare(build_seed_batch()), mix=dict(SEED_MIX)),
            "mixed": dict(compare(build_batch()), mix=dict(MIX)),
        },
        "timing": "CPU time (process_time), median of interleaved runs after a warm-up, in one process",
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def run() -> Dict[str, Any]:
    figures = measure()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return figures


def main() -> Dict[str, Any]:
    figures = run()
    for name, batch in figures["batches"].items():
        addon, seed = batch["addon"], batch["seed"]
        print(
            f"transform, {name} batch ({batch['records']} records, {batch['input_bytes'] / 1e6:.2f} MB in): "
            f"add-on {addon['events_per_s']:,.0f} events/s ({addon['events_out']} events, "
            f"{addon['seconds_median'] * 1000:.1f} ms CPU, {addon['output_bytes'] / 1e6:.2f} MB out, results "
            f"{addon['results']}) vs seed {seed['events_per_s']:,.0f} events/s ({seed['events_out']} events, "
            f"{seed['seconds_median'] * 1000:.1f} ms CPU): ratio {batch['ratio_events_per_s']:.2f} "
            f"(target >= {TARGET_RATIO}: {'met' if batch['target_met'] else 'NOT met'}), median of {batch['runs']}"
        )
    print(f"transform accelerators: {figures['accelerators']}")
    print(f"-> {OUTPUT.relative_to(REPO_ROOT)}")
    return figures


if __name__ == "__main__":
    main()
