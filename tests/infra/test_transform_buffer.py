"""Issue 17, class 8: the ingestion template's processor buffer is sized so the worst-case batch's response fits
Lambda's 6 MB limit: no genuine record is failed (and sent to the S3 error prefix) for the response's size.

Each worst case fills one buffer (the template's largest allowed TransformBufferSizeMB, read as MiB) with the records
that expand most, as they reach the stream through the template's own wiring (the audit and alert topics' Firehose
subscriptions wrap every message in its SNS envelope; devices publish metrics exports through the IoT rule), with
record ids as long as Firehose's, and runs the real handler under its real response limit."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any, Callable, Dict, List

import pytest

from iot_defender import events
from tests.infra.conftest import TEMPLATES, load_template, load_transform

STREAM_ARN = "arn:aws:firehose:us-east-1:123456789012:deliverystream/iot-defender-to-splunk"
RECORD_ID = "49546986683135544286507457936321625675700192471156785154"  # the length of Firehose's record ids
LAMBDA_LIMIT = 6_291_456


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def sns_envelope(message: bytes, n: int) -> bytes:
    """An SNS notification as SNS delivers it to Firehose with RawMessageDelivery false (the shortest topic name)."""
    arn = "arn:aws:sns:us-east-1:123456789012:t"
    return _compact(
        {
            "Type": "Notification",
            "MessageId": str(uuid.UUID(int=n)),
            "TopicArn": arn,
            "Message": message.decode(),
            "Timestamp": "2025-11-22T10:10:00.000Z",
            "SignatureVersion": "1",
            "Signature": "A" * 344,
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-" + "0" * 32 + ".pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
            + f"{arn}:{uuid.UUID(int=n)}",
        }
    )


def worst_audit(n: int) -> bytes:
    """The most expanding audit notification the event model accepts: the most checks, the shortest check names,
    the longest task fields (each check event carries them)."""
    message = {
        "taskId": f"{n:040d}",
        "taskStatus": "COMPLETED",
        "taskType": "SCHEDULED_AUDIT_TASK",
        "taskStartTime": 1763805600000,
        "scheduledAuditName": "s" * 128,
        "accountId": "123456789012",
        "auditDetails": [{"checkName": f"{i:02d}"} for i in range(events.MAX_AUDIT_CHECKS)],
    }
    return sns_envelope(_compact(message), n)


def worst_metrics(n: int) -> bytes:
    """A device's metrics export: one datum of a 1-character name and an invalid 1-character thing name."""
    return _compact({"metrics": [{"name": "a", "thing": " ", "value": {}, "timestamp": n % 1000 + 1}]})


def worst_packed_metrics(n: int) -> bytes:
    datums = [{"name": "a", "thing": " ", "value": {}, "timestamp": i + 1} for i in range(1500)]
    return _compact({"metrics": datums})


def worst_violation(n: int) -> bytes:
    message = {"violationId": str(n), "thingName": " ", "violationEventType": "in-alarm", "violationEventTime": 1}
    return sns_envelope(_compact(message), n)


WORST: Dict[str, Callable[[int], bytes]] = {
    "audit-through-sns": worst_audit,
    "metrics-one-datum": worst_metrics,
    "metrics-packed": worst_packed_metrics,
    "violation-through-sns": worst_violation,
}


def buffer_bytes() -> int:
    parameter = load_template(TEMPLATES["ingestion"])["Parameters"]["TransformBufferSizeMB"]
    assert parameter["Default"] == parameter["MaxValue"]
    return int(float(parameter["MaxValue"]) * 1024 * 1024)


def fill(make: Callable[[int], bytes], size: int) -> List[bytes]:
    records, total, n = [], 0, 0
    while True:
        record = make(n)
        if total + len(record) > size:
            return records or [record]
        records.append(record)
        total += len(record)
        n += 1


def invocation(records: List[bytes]) -> Dict[str, Any]:
    return {
        "invocationId": "00000000-0000-4000-8000-000000000000",
        "deliveryStreamArn": STREAM_ARN,
        "region": "us-east-1",
        "records": [
            {
                "recordId": RECORD_ID[: -len(str(i))] + str(i),
                "approximateArrivalTimestamp": 1763805601234,
                "data": base64.b64encode(r).decode(),
            }
            for i, r in enumerate(records)
        ],
    }


@pytest.mark.parametrize("kind", sorted(WORST))
def test_a_full_buffer_of_the_worst_records_fits_the_response(kind, capsys):
    """Regression: with the old 1 MB buffer (up to 3 MB) a batch of audit notifications expanded to ~22 MB and all
    but the first quarter of its genuine records went to firehose-errors/processing-failed/."""
    transform = load_transform()
    size = buffer_bytes()
    records = fill(WORST[kind], size)
    response = transform.lambda_handler(invocation(records), None)
    results = [entry["result"] for entry in response["records"]]
    assert results == ["Ok"] * len(records), {r: results.count(r) for r in set(results)}
    out = len(json.dumps(response))
    assert out <= transform.RESPONSE_LIMIT_BYTES < LAMBDA_LIMIT
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    print(f"{kind}: {len(records)} records, {sum(map(len, records))} bytes in, {out} bytes out")
    assert summary["response_bytes"] == out


def test_the_worst_expansion_is_the_one_the_template_is_sized_for():
    """The template's arithmetic, checked: each case's response bytes per input byte, times the buffer, under the
    transform's limit; the audit notification is the worst, as the template's comment says."""
    transform = load_transform()
    ratios = {}
    for kind, make in WORST.items():
        records = fill(make, 64 * 1024)
        previous, transform.RESPONSE_LIMIT_BYTES = transform.RESPONSE_LIMIT_BYTES, 10**12
        try:
            response = transform.lambda_handler(invocation(records), None)
        finally:
            transform.RESPONSE_LIMIT_BYTES = previous
        ratios[kind] = len(json.dumps(response)) / sum(map(len, records))
    print({k: round(v, 2) for k, v in ratios.items()})
    assert max(ratios, key=lambda k: ratios[k]) == "audit-through-sns"
    assert max(ratios.values()) * buffer_bytes() <= transform.RESPONSE_LIMIT_BYTES
    assert max(ratios.values()) * 0.28 * 1024 * 1024 > transform.RESPONSE_LIMIT_BYTES  # the next size up would not


@pytest.mark.parametrize(
    "change",
    [
        {"taskId": "t" * 41},
        {"scheduledAuditName": "s" * 129},
        {"taskStatus": "DONE"},
        {"taskType": "NIGHTLY"},
        {"auditDetails": [{"checkName": f"{i:03d}"} for i in range(events.MAX_AUDIT_CHECKS + 1)]},
        {"auditDetails": [{"checkName": "A"}, {"checkName": "A"}]},
        {"auditDetails": [{"checkName": "a b"}]},
    ],
)
def test_audit_messages_beyond_the_sizing_bounds_are_refused(change):
    """The bounds the sizing relies on are the event model's: a message outside them fails (kept in S3), it never
    expands more than the template allows for."""
    message = json.loads(json.loads(worst_audit(1))["Message"])
    message.update(change)
    with pytest.raises(events.MalformedRecord):
        events.audit_task_events(message, account_id="1", region="r")
    transform = load_transform()
    response = transform.lambda_handler(invocation([sns_envelope(_compact(message), 1)]), None)
    assert response["records"][0]["result"] == "ProcessingFailed"
