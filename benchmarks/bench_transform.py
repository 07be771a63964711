"""Throughput of the Firehose transform Lambda (infra/ingestion/functions/transform/app.py).

One invocation of a 500-record mixed batch, as Firehose would send it: Detect metrics-export messages (10 datums
each, some duplicate versions), audit-completed SNS envelopes, violation SNS envelopes (in-alarm, alarm-cleared),
and junk (non-JSON, JSON of other shapes). The handler runs in-process; the figures are the median of repeated
runs after a warm-up.

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
from typing import Any, Dict, List

REPO_ROOT = Path(__file__).resolve().parents[1]
TRANSFORM_APP = REPO_ROOT / "infra" / "ingestion" / "functions" / "transform" / "app.py"
OUTPUT = REPO_ROOT / "build" / "bench" / "transform.json"
STREAM_ARN = "arn:aws:firehose:us-east-1:123456789012:deliverystream/iot-defender-to-splunk"
BATCH_SIZE = 500
MIX = {"metrics": 200, "audit": 100, "violation": 150, "junk": 50}
MIN_SECONDS = 2.0
MIN_RUNS = 5
MAX_RUNS = 50


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


def build_batch(seed: int = 20251122) -> Dict[str, Any]:
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


# ------------------------------------------------------------------------------------------ run


def measure() -> Dict[str, Any]:
    transform = load_transform()
    event = build_batch()
    input_bytes = sum(len(record["data"]) for record in event["records"])
    raw_bytes = sum(len(base64.b64decode(record["data"])) for record in event["records"])

    def once() -> Dict[str, Any]:
        with contextlib.redirect_stdout(io.StringIO()):  # the per-invocation log line is part of the cost
            return transform.lambda_handler(event, None)

    response = once()  # warm-up, and the output figures
    results: Dict[str, int] = {}
    events_out = 0
    for entry in response["records"]:
        results[entry["result"]] = results.get(entry["result"], 0) + 1
        if entry["result"] == "Ok":
            text = base64.b64decode(entry["data"]).decode("utf-8")
            events_out += text.count('{"time":')
    output_bytes = sum(len(entry.get("data", "")) for entry in response["records"])
    response_bytes = len(json.dumps(response))

    timings: List[float] = []
    started = time.perf_counter()
    while len(timings) < MAX_RUNS and (len(timings) < MIN_RUNS or time.perf_counter() - started < MIN_SECONDS):
        t0 = time.perf_counter()
        once()
        timings.append(time.perf_counter() - t0)
    median = statistics.median(timings)

    return {
        "benchmark": "firehose-transform",
        "batch_records": BATCH_SIZE,
        "mix": dict(MIX),
        "results": results,
        "events_out": events_out,
        "input_bytes": input_bytes,
        "input_raw_bytes": raw_bytes,
        "output_bytes": output_bytes,
        "response_bytes": response_bytes,
        "runs": len(timings),
        "seconds_median": round(median, 6),
        "seconds_best": round(min(timings), 6),
        "records_per_s": round(BATCH_SIZE / median, 1),
        "events_per_s": round(events_out / median, 1),
        "input_mb_per_s": round(input_bytes / median / 1e6, 3),
        "output_mb_per_s": round(output_bytes / median / 1e6, 3),
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
    print(
        f"transform: {figures['batch_records']} records ({figures['input_bytes'] / 1e6:.2f} MB in, "
        f"{figures['events_out']} events / {figures['output_bytes'] / 1e6:.2f} MB out) in "
        f"{figures['seconds_median'] * 1000:.1f} ms median of {figures['runs']}: "
        f"{figures['records_per_s']:.0f} records/s, {figures['input_mb_per_s']:.2f} MB/s in, "
        f"{figures['output_mb_per_s']:.2f} MB/s out; results {figures['results']} -> {OUTPUT.relative_to(REPO_ROOT)}"
    )
    return figures


if __name__ == "__main__":
    main()
