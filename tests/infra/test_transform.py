"""Unit tests of the Firehose transform Lambda (infra/ingestion/functions/transform/app.py).

Fed with the documented samples (tests/infra/conftest.py) and the cases real traffic brings: empty records,
non-JSON data, unknown shapes, duplicate metric versions, timestamps in seconds, alarm-cleared/invalidated.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iot_defender import events
from tests.infra.conftest import METRICS_EXPORT, REPO_ROOT, TRANSFORM_DIR, load_transform

STREAM_ARN = "arn:aws:firehose:eu-west-1:210987654321:deliverystream/iot-defender-to-splunk"
PUSH_SOURCETYPES = {events.SOURCETYPE_METRIC, events.SOURCETYPE_AUDIT_TASK, events.SOURCETYPE_VIOLATION}


# ----------------------------------------------------------------------------------------- helpers


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def invocation(*payloads: Any, stream_arn: str = STREAM_ARN) -> Dict[str, Any]:
    records = []
    for position, payload in enumerate(payloads):
        data = payload if isinstance(payload, str) and payload.startswith("raw:") else None
        records.append(
            {
                "recordId": f"record-{position:04d}",
                "approximateArrivalTimestamp": 1763805601234,
                "data": data[4:] if data else b64(payload),
            }
        )
    return {
        "invocationId": "00000000-0000-4000-8000-000000000000",
        "deliveryStreamArn": stream_arn,
        "region": stream_arn.split(":")[3] if stream_arn.count(":") >= 5 else "eu-west-1",
        "records": records,
    }


def decode_hec(data: str) -> List[Dict[str, Any]]:
    """Split a record's data into its concatenated HEC event objects, checking the framing on the way."""
    text = base64.b64decode(data, validate=True).decode("utf-8")
    assert "\n" not in text and "\r" not in text
    decoder = json.JSONDecoder()
    found, position = [], 0
    while position < len(text):
        obj, position = decoder.raw_decode(text, position)
        found.append(obj)
    return found


def assert_valid_hec(event: Dict[str, Any], index: Optional[str] = None) -> None:
    assert isinstance(event["time"], (int, float)) and not isinstance(event["time"], bool)
    assert isinstance(event["event"], dict)
    assert event["sourcetype"] in PUSH_SOURCETYPES
    assert isinstance(event["source"], str) and event["source"].startswith("aws:iot:")
    if "host" in event:
        assert isinstance(event["host"], str) and event["host"]
    if index is None:
        assert "index" not in event
    else:
        assert event["index"] == index
    assert set(event) <= {"time", "event", "sourcetype", "source", "host", "index"}


def run(transform: Any, event: Dict[str, Any]) -> List[Dict[str, Any]]:
    response = transform.lambda_handler(event, None)
    assert set(response) == {"records"}
    ids_in = [record.get("recordId") for record in event.get("records", [])]
    assert [entry["recordId"] for entry in response["records"]] == ids_in
    for entry in response["records"]:
        assert entry["result"] in ("Ok", "Dropped", "ProcessingFailed")
        assert ("data" in entry) == (entry["result"] == "Ok")
    assert len(json.dumps(response)) <= transform.RESPONSE_LIMIT_BYTES
    return response["records"]


def violation_message(sns_violation_lambda_event: Dict[str, Any]) -> Dict[str, Any]:
    return json.loads(sns_violation_lambda_event["Records"][0]["Sns"]["Message"])


def firehose_envelope(message: Dict[str, Any], topic_arn: str) -> Dict[str, Any]:
    """What an SNS subscription with protocol ``firehose`` (raw delivery off) puts in the stream."""
    return {
        "Type": "Notification",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": topic_arn,
        "Subject": None,
        "Message": json.dumps(message),
        "Timestamp": "2025-11-22T10:10:01.123Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/example.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        "MessageAttributes": {},
    }


@pytest.fixture(autouse=True)
def _no_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPLUNK_INDEX", raising=False)


# ----------------------------------------------------------------------------------------- samples


def test_sample_invocation_metrics_and_audit(transform: Any, firehose_transform_event: Dict[str, Any]) -> None:
    out = run(transform, firehose_transform_event)
    assert [entry["result"] for entry in out] == ["Ok", "Ok"]

    metrics = decode_hec(out[0]["data"])
    assert len(metrics) == 10
    for event in metrics:
        assert_valid_hec(event)
        assert event["sourcetype"] == events.SOURCETYPE_METRIC
        assert event["host"] == "pump-station-017"
        assert event["time"] == 1763805600.0  # the datum's own time, not the arrival time
        assert event["source"] == "aws:iot:123456789012:us-east-1:metrics-export"
        assert event["event"]["account_id"] == "123456789012"  # from deliveryStreamArn
        assert event["event"]["region"] == "us-east-1"
        assert event["event"]["timestamp"] == "2025-11-22T10:00:00.000Z"
    by_name = {event["event"]["name"]: event["event"] for event in metrics}
    assert by_name["aws:listening-tcp-ports"]["value"] == {"ports": [21, 22, 53, 443]}
    assert by_name["aws:destination-ip-addresses"]["value"] == {"cidrs": ["203.0.113.7/32", "198.51.100.20/32"]}
    assert by_name["aws:num-messages-sent"]["dimension"] == {"name": "TopicFilterForTelemetry", "operator": "IN"}

    audit = decode_hec(out[1]["data"])
    assert len(audit) == 1 + 4  # one task event + one per check
    for event in audit:
        assert_valid_hec(event)
        assert event["sourcetype"] == events.SOURCETYPE_AUDIT_TASK
        assert event["time"] == 1763769600.0
        assert event["host"] == "123456789012"
        assert event["source"] == "aws:iot:123456789012:us-east-1:sns-audit"
    task, checks = audit[0]["event"], [event["event"] for event in audit[1:]]
    assert task["record_type"] == "task"
    assert task["taskStatistics"] == {
        "totalChecks": 15,
        "compliantChecks": 12,
        "nonCompliantChecks": 2,
        "failedChecks": 1,
        "canceledChecks": 0,
    }
    assert [check["record_type"] for check in checks] == ["check"] * 4
    failed = next(check for check in checks if check["checkName"] == "LOGGING_DISABLED_CHECK")
    assert failed["errorCode"] == "INSUFFICIENT_PERMISSIONS"
    assert failed["taskId"] == "4e2bcd1ccbc2a5dd15292a82ab80c380"


def test_metric_events_match_the_event_model(transform: Any, metrics_export: Dict[str, Any]) -> None:
    """Push and pull share one model: each HEC event is exactly ``events.metric_events(...)[i].to_hec()``."""
    out = run(transform, invocation(metrics_export))
    expected = [
        event.to_hec()
        for event in events.metric_events(
            metrics_export, account_id="210987654321", region="eu-west-1", api="metrics-export"
        )
    ]
    assert decode_hec(out[0]["data"]) == json.loads(json.dumps(expected))


def test_transform_imports_the_event_model_rather_than_copying_it(transform: Any) -> None:
    assert transform.events is events
    source = (TRANSFORM_DIR / "app.py").read_text(encoding="utf-8")
    assert "from iot_defender import events" in source
    for builder in ("def metric_events", "def violation_event", "def audit_task_events", "def to_iso"):
        assert builder not in source


def test_violation_sns_envelope(transform: Any, sns_violation_lambda_event: Dict[str, Any]) -> None:
    message = violation_message(sns_violation_lambda_event)
    topic = "arn:aws:sns:us-east-1:123456789012:iot-device-alerts"
    out = run(transform, invocation(firehose_envelope(message, topic)))
    (event,) = decode_hec(out[0]["data"])
    assert_valid_hec(event)
    assert event["sourcetype"] == events.SOURCETYPE_VIOLATION
    assert event["host"] == "pump-station-017"
    assert event["time"] == 1763806200.0
    assert event["source"] == "aws:iot:123456789012:us-east-1:sns-violation"  # account/region of the topic
    body = event["event"]
    assert body["violationEventTime"] == "2025-11-22T10:10:00.000Z"
    assert body["violationId"] == "8a1b0c2d3e4f56789a0b1c2d3e4f5a6b"
    assert body["metricValue"] == {"ports": [21, 22, 53, 443]}
    assert body["behavior"]["criteria"]["comparisonOperator"] == "in-port-set"
    assert (body["account_id"], body["region"]) == ("123456789012", "us-east-1")


@pytest.mark.parametrize("event_type", ["alarm-cleared", "alarm-invalidated"])
def test_violation_transitions(transform: Any, sns_violation_lambda_event: Dict[str, Any], event_type: str) -> None:
    message = violation_message(sns_violation_lambda_event)
    message["violationEventType"] = event_type
    if event_type == "alarm-invalidated":
        message["verificationState"] = "BENIGN_POSITIVE"
    out = run(transform, invocation(firehose_envelope(message, "arn:aws:sns:us-east-1:123456789012:alerts")))
    (event,) = decode_hec(out[0]["data"])
    assert event["event"]["violationEventType"] == event_type
    assert event["sourcetype"] == events.SOURCETYPE_VIOLATION


def test_raw_message_delivery(
    transform: Any, sns_violation_lambda_event: Dict[str, Any], sns_audit_notification
) -> None:
    """With raw message delivery on, the record is the bare message: scope comes from the stream ARN."""
    violation = violation_message(sns_violation_lambda_event)
    audit = json.loads(sns_audit_notification["Message"])
    del audit["accountId"]
    out = run(transform, invocation(violation, audit))
    assert [entry["result"] for entry in out] == ["Ok", "Ok"]
    (event,) = decode_hec(out[0]["data"])
    assert event["source"] == "aws:iot:210987654321:eu-west-1:sns-violation"
    audit_events = decode_hec(out[1]["data"])
    assert {e["event"]["account_id"] for e in audit_events} == {"210987654321"}


def test_audit_scope_precedence(transform: Any, sns_audit_notification: Dict[str, Any]) -> None:
    """accountId in the message > account in TopicArn > account of the delivery stream."""
    message = json.loads(sns_audit_notification["Message"])
    no_account = dict(message)
    del no_account["accountId"]
    cases = [
        firehose_envelope(message, "arn:aws:sns:ap-south-1:111111111111:audit"),
        firehose_envelope(no_account, "arn:aws:sns:ap-south-1:111111111111:audit"),
        firehose_envelope(no_account, "not-an-arn"),
    ]
    out = run(transform, invocation(*cases))
    scopes = [{(e["event"]["account_id"], e["event"]["region"]) for e in decode_hec(entry["data"])} for entry in out]
    assert scopes == [
        {("123456789012", "ap-south-1")},
        {("111111111111", "ap-south-1")},
        {("210987654321", "eu-west-1")},
    ]


# ---------------------------------------------------------------------------------------- metrics


def datum(name: str, version: Any = 1, timestamp: Any = 1763805600000, **extra: Any) -> Dict[str, Any]:
    value = extra.pop("value", {"count": 1})
    return {"name": name, "thing": "t-1", "value": value, "version": version, "timestamp": timestamp, **extra}


def test_duplicate_datums_keep_the_highest_version(transform: Any) -> None:
    dimension = {"name": "TopicFilter", "operator": "IN"}
    message = {
        "version": "1.0",
        "metrics": [
            datum("aws:all-bytes-out", 1, value={"count": 10}),
            datum("aws:all-bytes-out", 3, value={"count": 30}),
            datum("aws:all-bytes-out", 2, value={"count": 20}),
            datum("aws:num-messages-sent", 1, value={"count": 5}, dimension=dimension),
            datum("aws:num-messages-sent", 1, value={"count": 6}),  # no dimension: another series
            datum("aws:all-bytes-out", 1, timestamp=1763805900000, value={"count": 99}),  # another time
        ],
    }
    (entry,) = run(transform, invocation(message))
    found = decode_hec(entry["data"])
    bytes_out = sorted(
        (e["event"]["timestamp"], e["event"]["value"]["count"], e["event"]["version"])
        for e in found
        if e["event"]["name"] == "aws:all-bytes-out"
    )
    assert bytes_out == [("2025-11-22T10:00:00.000Z", 30, 3), ("2025-11-22T10:05:00.000Z", 99, 1)]
    sent = sorted(e["event"]["value"]["count"] for e in found if e["event"]["name"] == "aws:num-messages-sent")
    assert sent == [5, 6]
    assert len(found) == 4


def test_timestamps_in_seconds_and_milliseconds_agree(transform: Any) -> None:
    message = {
        "version": "1.0",
        "metrics": [datum("aws:all-bytes-out", timestamp=1763805600), datum("aws:all-packets-out")],
    }
    (entry,) = run(transform, invocation(message))
    found = decode_hec(entry["data"])
    assert {e["time"] for e in found} == {1763805600.0}
    assert {e["event"]["timestamp"] for e in found} == {"2025-11-22T10:00:00.000Z"}


def test_unknown_metric_names_pass_through(transform: Any) -> None:
    message = {"version": "1.0", "metrics": [datum("custom:battery-level", value={"number": 41.5})]}
    (entry,) = run(transform, invocation(message))
    (event,) = decode_hec(entry["data"])
    assert event["event"]["name"] == "custom:battery-level"
    assert event["event"]["value"] == {"number": 41.5}


def test_index_from_environment(transform: Any, monkeypatch: pytest.MonkeyPatch, firehose_transform_event) -> None:
    monkeypatch.setenv("SPLUNK_INDEX", "iot_security")
    out = run(transform, firehose_transform_event)
    for entry in out:
        for event in decode_hec(entry["data"]):
            assert_valid_hec(event, index="iot_security")


def test_non_ascii_and_lone_surrogates_stay_valid_utf8(transform: Any) -> None:
    message = {"version": "1.0", "metrics": [datum("aws:all-bytes-out", value={"strings": ["Pumpe-Süd-ß"]})]}
    weird = '{"version":"1.0","metrics":[{"name":"n","thing":"t","value":{"strings":["x\\ud800y"]},"timestamp":1}]}'
    out = run(transform, invocation(message, "raw:" + base64.b64encode(weird.encode()).decode()))
    assert [entry["result"] for entry in out] == ["Ok", "Ok"]
    assert decode_hec(out[0]["data"])[0]["event"]["value"] == {"strings": ["Pumpe-Süd-ß"]}
    assert "Pumpe-Süd-ß" in base64.b64decode(out[0]["data"]).decode("utf-8")  # as UTF-8, not \\u escapes
    assert decode_hec(out[1]["data"])[0]["event"]["value"] == {"strings": ["x\ud800y"]}


# ------------------------------------------------------------------------------------ thing names

HOSTILE_THING_NAMES = [
    'pump-1" OR thing_name="*',
    "pump-1 | delete",
    "pump-1`| outputlookup iot_thing_inventory`",
    "Pumpe-Süd-ß",
    "x\ud800y",
    "a" * 129,
    "pump.1",
]


@pytest.mark.parametrize("name", HOSTILE_THING_NAMES)
def test_a_forged_metric_thing_name_never_reaches_thing_or_host(transform: Any, capsys, name: str) -> None:
    """Issue 13: a forged metrics message (custom-topic mode lets devices publish them) cannot carry SPL in the
    thing name. The record is kept (Ok), the name replaced by the model's neutral stand-in, and counted."""
    message = {"version": "1.0", "metrics": [datum("aws:all-bytes-out", thing=name), datum("aws:all-packets-out")]}
    (entry,) = run(transform, invocation(message))
    assert entry["result"] == "Ok"
    forged, honest = decode_hec(entry["data"])
    neutral = events.neutral_thing_name(name)
    assert events.valid_thing_name(neutral) and neutral.startswith("invalid-thing-name-")
    assert forged["host"] == forged["event"]["thing"] == neutral
    assert forged["event"]["rejected_thing_name"] == name[:256]
    assert honest["host"] == honest["event"]["thing"] == "t-1" and "rejected_thing_name" not in honest["event"]
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rejected_thing_names"] == 1


def test_a_violation_with_a_hostile_thing_name_is_neutralised(transform: Any, sns_violation_lambda_event) -> None:
    message = violation_message(sns_violation_lambda_event)
    message["thingName"] = 'x" | delete'
    (entry,) = run(transform, invocation(firehose_envelope(message, "arn:aws:sns:us-east-1:123456789012:a")))
    (event,) = decode_hec(entry["data"])
    assert event["host"] == event["event"]["thingName"] == events.neutral_thing_name('x" | delete')
    assert event["event"]["rejected_thing_name"] == 'x" | delete'


def test_valid_thing_names_are_kept_as_they_are(transform: Any) -> None:
    names = ["a", "A:b_c-9", "z" * 128, "arn:aws:iot:thing"]
    message = {"version": "1.0", "metrics": [datum("aws:all-bytes-out", thing=n) for n in names]}
    (entry,) = run(transform, invocation(message))
    assert [event["host"] for event in decode_hec(entry["data"])] == names


# -------------------------------------------------------------------------------- dropped / failed


UNKNOWN_SHAPES = [
    [1, 2, 3],
    42,
    "just a JSON string",
    None,
    {"hello": "world"},
    {"metrics": "not-a-list"},
    {"Type": "SubscriptionConfirmation", "Message": "x", "SubscribeURL": "https://example.com"},
    {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": "plain text"},
    {"Type": "Notification", "Message": json.dumps({"AlarmName": "cpu", "NewStateValue": "ALARM"})},
    {"Type": "Notification", "Message": json.dumps([1, 2])},
    {"Type": "Notification", "Message": {"not": "a string"}},
    {"version": "2.0", "metricsV2": [{"thing": "t-1", "name": "aws:all-bytes-out"}]},  # a future AWS format
]


@pytest.mark.parametrize("payload", UNKNOWN_SHAPES)
def test_a_record_of_an_unknown_shape_is_kept_for_replay_not_dropped(transform: Any, capsys, payload: Any) -> None:
    """Issue 12: with S3BackupMode FailedEventsOnly a Dropped record is lost. A shape the transform does not know
    (a future AWS format) is ProcessingFailed, so Firehose writes it to the error prefix for replay, and counted."""
    (entry,) = run(transform, invocation(payload))
    assert entry["result"] == "ProcessingFailed"
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["unknown_shape"] == 1 and summary["failed"] == 1 and summary["dropped"] == 0
    assert summary["failed_record_ids"] == {next(iter(summary["not_ok_reasons"])): ["record-0000"]}
    assert next(iter(summary["not_ok_reasons"])).startswith("unknown-shape:")


def test_only_an_empty_metrics_export_is_dropped(transform: Any, capsys) -> None:
    (entry,) = run(transform, invocation({"version": "1.0", "metrics": []}))
    assert entry["result"] == "Dropped"  # nothing to index, nothing lost
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["not_ok_reasons"] == {"metrics:empty": 1}


def test_documented_s3_prefixes_are_the_templates(transform: Any) -> None:
    """Where a failed record lands is what the READMEs say: the template's ErrorOutputPrefix, with the error type
    Firehose puts in it (processing-failed for the transform, splunk-failed for HEC)."""
    from tests.infra.conftest import TEMPLATES, load_template

    stream = load_template(TEMPLATES["ingestion"])["Resources"]["DeliveryStream"]["Properties"]
    s3 = stream["SplunkDestinationConfiguration"]["S3Configuration"]
    error_prefix = s3["ErrorOutputPrefix"]
    assert error_prefix.startswith("firehose-errors/!{firehose:error-output-type}/")
    processing_failed = error_prefix.replace("!{firehose:error-output-type}", "processing-failed").split("!")[0]
    splunk_failed = error_prefix.replace("!{firehose:error-output-type}", "splunk-failed").split("!")[0]
    docs = {
        "infra/README.md": (REPO_ROOT / "infra" / "README.md").read_text(encoding="utf-8"),
        "app.py": (TRANSFORM_DIR / "app.py").read_text(encoding="utf-8"),
        "README.md": (REPO_ROOT / "README.md").read_text(encoding="utf-8"),
    }
    for name, text in docs.items():
        assert name == "README.md" or processing_failed in text, name
        mentioned = set(re.findall(r"`?((?:firehose[-/][a-z-]*/)?(?:processing|splunk)-failed/)", text))
        assert mentioned <= {processing_failed, splunk_failed}, (name, mentioned)
    assert splunk_failed in docs["infra/README.md"]


@pytest.mark.parametrize(
    "data",
    [
        "raw:!!!not base64!!!",
        "raw:" + base64.b64encode(b"\xff\xfe\x00garbage").decode(),
        "raw:" + base64.b64encode(b"not json at all").decode(),
        "raw:" + base64.b64encode(b"").decode(),
        "raw:" + base64.b64encode(b"   \n").decode(),
        "raw:"
        + base64.b64encode(
            b'{"version":"1.0","metrics":[{"name":"n","thing":"t","value":{},"timestamp":NaN}]}'
        ).decode(),
        "raw:" + base64.b64encode(b'{"a": 1e999}').decode(),
        "raw:" + base64.b64encode(b'{"a": 1} trailing').decode(),
        "raw:" + base64.b64encode(b"[" * 50000 + b"]" * 50000).decode(),
    ],
)
def test_unreadable_records_fail(transform: Any, data: str) -> None:
    (entry,) = run(transform, invocation(data))
    assert entry["result"] == "ProcessingFailed"


@pytest.mark.parametrize(
    "bad_datum",
    [
        {"name": "aws:all-bytes-out", "value": {"count": 1}, "version": 1, "timestamp": 1763805600000},  # no thing
        datum("aws:all-bytes-out", timestamp="2025-11-22T10:00:00Z"),
        datum("aws:all-bytes-out", timestamp=True),
        datum("aws:all-bytes-out", version="7"),
        datum("aws:all-bytes-out", value=[1, 2]),
        datum("aws:all-bytes-out", timestamp=10**40),  # overflows a datetime
        "not-an-object",
    ],
)
def test_metrics_message_with_a_bad_datum_fails_as_a_unit(transform: Any, bad_datum: Any) -> None:
    message = {"version": "1.0", "metrics": [datum("aws:all-packets-out"), bad_datum]}
    (entry,) = run(transform, invocation(message))
    assert entry["result"] == "ProcessingFailed"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.update(violationEventType="exploded"),
        lambda m: m.pop("violationEventTime"),
        lambda m: m.update(violationEventTime="yesterday"),
        lambda m: m.pop("thingName"),
        lambda m: m.update(violationId=""),
    ],
)
def test_bad_violation_message_fails(transform: Any, sns_violation_lambda_event, mutate) -> None:
    message = violation_message(sns_violation_lambda_event)
    mutate(message)
    (entry,) = run(transform, invocation(firehose_envelope(message, "arn:aws:sns:us-east-1:123456789012:a")))
    assert entry["result"] == "ProcessingFailed"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.pop("taskStartTime"),
        lambda m: m.update(auditDetails="oops"),
        lambda m: m.update(auditDetails=[{"checkRunStatus": "COMPLETED_COMPLIANT"}]),
        lambda m: m.update(auditDetails=[1, 2]),
    ],
)
def test_bad_audit_message_fails(transform: Any, sns_audit_notification: Dict[str, Any], mutate) -> None:
    message = json.loads(sns_audit_notification["Message"])
    mutate(message)
    envelope = dict(sns_audit_notification, Message=json.dumps(message))
    (entry,) = run(transform, invocation(envelope))
    assert entry["result"] == "ProcessingFailed"


def test_mixed_batch_keeps_order_and_every_record_id(transform: Any, firehose_transform_event) -> None:
    good = firehose_transform_event["records"]
    event = invocation({"junk": True}, "raw:%%%", {"version": "1.0", "metrics": [datum("aws:all-bytes-out")]})
    event["records"] = [good[0], *event["records"], good[1]]
    out = run(transform, event)
    assert [entry["result"] for entry in out] == ["Ok", "ProcessingFailed", "ProcessingFailed", "Ok", "Ok"]


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        {"records": "nope"},
        {"records": []},
        {"records": [{"recordId": "a"}, {"recordId": "b", "data": 7}, {"recordId": "c", "data": None}]},
        {"deliveryStreamArn": 5, "records": [{"recordId": "a", "data": b64({"metrics": []})}]},
    ],
)
def test_never_raises_on_a_malformed_invocation(transform: Any, event: Any) -> None:
    response = transform.lambda_handler(event, None)
    records = event.get("records") if isinstance(event, dict) else None
    expected = [r["recordId"] for r in records] if isinstance(records, list) else []
    assert [entry["recordId"] for entry in response["records"]] == expected
    assert all(entry["result"] in ("Dropped", "ProcessingFailed") for entry in response["records"])


def test_unexpected_model_errors_fail_the_record_not_the_batch(transform: Any, monkeypatch) -> None:
    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(transform.hec, "metric_hec_body", explode)
    event = invocation({"version": "1.0", "metrics": [datum("aws:all-bytes-out")]}, {"other": 1})
    out = run(transform, event)
    assert [entry["result"] for entry in out] == ["ProcessingFailed", "ProcessingFailed"]


def test_scope_falls_back_to_invocation_region(transform: Any) -> None:
    event = invocation({"version": "1.0", "metrics": [datum("aws:all-bytes-out")]}, stream_arn="garbage")
    event["region"] = "sa-east-1"
    (entry,) = run(transform, event)
    (hec,) = decode_hec(entry["data"])
    assert hec["source"] == "aws:iot:unknown:sa-east-1:metrics-export"
    assert hec["event"]["region"] == "sa-east-1"


# ------------------------------------------------------------------------------------ 6 MB limit


def big_metrics_message(thing: str, datums: int) -> Dict[str, Any]:
    return {
        "version": "1.0",
        "metrics": [
            {
                "name": "aws:destination-ip-addresses",
                "thing": thing,
                "value": {"cidrs": [f"198.51.{i % 256}.{(i // 256) % 256}/32"]},
                "version": 1,
                "timestamp": 1763805600000 + i * 300000,
            }
            for i in range(datums)
        ],
    }


def test_response_stays_under_6_mb_and_overflow_fails_records(transform: Any, capsys) -> None:
    """Four records whose events would total ~8 MB of response: the first ones that fit stay Ok, the one that
    would cross the limit becomes ProcessingFailed (Firehose keeps its original in processing-failed/), and a
    later small record still fits."""
    big = [big_metrics_message(f"thing-{n}", 4500) for n in range(4)]
    small = {"version": "1.0", "metrics": [datum("aws:all-bytes-out")]}
    event = invocation(*big, small)
    assert sum(len(r["data"]) for r in event["records"]) < 6_291_456  # a realistic (≤ 6 MB) invocation
    response = transform.lambda_handler(event, None)
    size = len(json.dumps(response))
    assert size <= transform.RESPONSE_LIMIT_BYTES < 6_291_456
    results = [entry["result"] for entry in response["records"]]
    assert results[:2] == ["Ok", "Ok"] and "ProcessingFailed" in results[2:4] and results[4] == "Ok"
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["not_ok_reasons"]["response-size"] == results.count("ProcessingFailed")
    assert summary["response_bytes"] == size  # sized exactly as the runtime serialises it


def test_fit_response_is_exact_at_the_boundary(transform: Any) -> None:
    entries = [
        {"recordId": "a", "result": "Ok", "data": "QUJD" * 10},
        {"recordId": "b", "result": "Dropped"},
        {"recordId": "c", "result": "Ok", "data": "QUJD" * 10},
    ]
    exact = len(json.dumps({"records": entries}))
    kept = [dict(e) for e in entries]
    changed, total = transform.fit_response(kept, limit=exact)
    assert changed == [] and total == exact
    squeezed = [dict(e) for e in entries]
    changed, total = transform.fit_response(squeezed, limit=exact - 1)
    assert changed == [2] and squeezed[2] == {"recordId": "c", "result": "ProcessingFailed"}
    assert total == len(json.dumps({"records": squeezed})) <= exact - 1


def test_fit_response_counts_the_room_a_later_dropped_entry_leaves(transform: Any) -> None:
    """A Dropped entry is smaller than the ProcessingFailed entry reserved for it: that room is there for an Ok
    entry before it too (the entry-by-entry path, taken on overflow, used to fail it)."""
    entries = [
        {"recordId": "big", "result": "Ok", "data": "QUJD" * 10},
        {"recordId": "small", "result": "Ok", "data": "QUJD"},
        {"recordId": "empty", "result": "Dropped"},
    ]
    exact = len(json.dumps({"records": entries}))
    fitted = [dict(entry) for entry in entries]
    changed, total = transform.fit_response(fitted, limit=exact - 1)  # one entry has to go: the small one does
    assert changed == [1] and [entry["result"] for entry in fitted] == ["Ok", "ProcessingFailed", "Dropped"]
    assert total == len(json.dumps({"records": fitted})) <= exact - 1


_record_ids = st.one_of(
    st.text(alphabet='0123456789a"\\\u00e9\ud800\U0001f600\n', max_size=6), st.integers(), st.none()
)
_entries = st.lists(
    st.one_of(
        st.builds(
            lambda rid, data: {"recordId": rid, "result": "Ok", "data": data},
            _record_ids,
            st.text("QUJD=", min_size=4, max_size=9),
        ),
        st.builds(
            lambda rid, result: {"recordId": rid, "result": result},
            _record_ids,
            st.sampled_from(["Dropped", "ProcessingFailed"]),
        ),
    ),
    max_size=5,
)


@settings(max_examples=500, deadline=None, database=None)
@given(entries=_entries, slack=st.integers(-40, 5))
def test_fit_response_sizes_every_response_exactly(entries: List[Dict[str, Any]], slack: int) -> None:
    """The computed size (the usual path, record ids all strings) and the entry-by-entry one (else, or on overflow)
    are both the size of the response as the runtime serialises it."""
    transform = load_transform()
    exact = len(json.dumps({"records": entries}))
    fitted = [dict(entry) for entry in entries]
    changed, total = transform.fit_response(fitted, limit=exact + slack)
    assert total == len(json.dumps({"records": fitted}))
    assert (changed == []) == (fitted == entries)
    assert slack < 0 or changed == []


@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_is_paused_for_the_invocation_only(transform: Any, monkeypatch, enabled, capsys) -> None:
    seen = []
    shape = transform.shape
    monkeypatch.setattr(transform, "shape", lambda *args: seen.append(gc.isenabled()) or shape(*args))
    (gc.enable if enabled else gc.disable)()
    try:
        transform.lambda_handler(invocation(METRICS_EXPORT, METRICS_EXPORT), None)
        assert seen == [False, False] and gc.isenabled() is enabled  # resumed as it was
        monkeypatch.setattr(transform, "_handle", lambda event: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            transform.lambda_handler({}, None)
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


# -------------------------------------------------------------------------------------- logging


def test_one_json_summary_line_without_payload(transform: Any, capsys, firehose_transform_event) -> None:
    firehose_transform_event["records"].append({"recordId": "x", "data": "@@@"})
    transform.lambda_handler(firehose_transform_event, None)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["records_in"] == 3
    assert (summary["ok"], summary["dropped"], summary["failed"]) == (2, 0, 1)
    assert summary["events_out"] == 15
    assert summary["ok_kinds"] == {"metrics": 1, "audit": 1}
    assert summary["failed_record_ids"] == {"malformed:data is not valid base64": ["x"]}
    assert summary["bytes_in"] > 0 and summary["bytes_out"] > 0 and summary["duration_ms"] >= 0
    for secretish in ("pump-station-017", "DEVICE_CERTIFICATE", "Signature", "EXAMPLE"):
        assert secretish not in lines[0]


# ------------------------------------------------------------------------------------- packaging


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_sam_makefile_vendors_the_event_model(transform: Any, tmp_path: Path, firehose_transform_event) -> None:
    """`sam build` runs the function's Makefile in a scratch copy of the directory: the build must find the
    repository from the Makefile's own path and produce a self-contained artifact."""
    scratch, artifacts = tmp_path / "scratch", tmp_path / "artifacts"
    shutil.copytree(TRANSFORM_DIR, scratch, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        ["make", "--makefile", str(TRANSFORM_DIR / "Makefile"), "build-TransformFunction", "VENDOR_ORJSON=0"],
        cwd=scratch,
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        check=True,
        capture_output=True,
    )
    assert (artifacts / "app.py").read_bytes() == (TRANSFORM_DIR / "app.py").read_bytes()
    vendored = artifacts / "iot_defender" / "events.py"
    assert vendored.read_bytes() == (REPO_ROOT / "package" / "bin" / "iot_defender" / "events.py").read_bytes()
    script = (
        "import json, sys, app\n"
        "event = json.load(sys.stdin)\n"
        "response = app.lambda_handler(event, None)\n"
        "sys.stderr.write(json.dumps(response))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(artifacts)!r})\n" + script],
        cwd=tmp_path,
        input=json.dumps(firehose_transform_event),
        capture_output=True,
        text=True,
        check=True,
    )
    response = json.loads(done.stderr)
    assert [entry["result"] for entry in response["records"]] == ["Ok", "Ok"]
    with_orjson = transform.lambda_handler(firehose_transform_event, None)  # this interpreter has orjson
    assert response == json.loads(json.dumps(with_orjson))  # the standard library alone gives the same output


def test_sam_makefile_vendors_orjson_for_the_functions_runtime() -> None:
    """The wheels the Makefile installs must match the function's runtime and architecture in the template."""
    from tests.infra.conftest import TEMPLATES, load_template

    function = load_template(TEMPLATES["ingestion"])["Resources"]["TransformFunction"]["Properties"]
    makefile = (TRANSFORM_DIR / "Makefile").read_text(encoding="utf-8")
    version = function["Runtime"].removeprefix("python")
    assert f"LAMBDA_PYTHON_VERSION ?= {version}" in makefile
    machine = {"arm64": "aarch64", "x86_64": "x86_64"}[function["Architectures"][0]]
    assert f"LAMBDA_PLATFORM ?= manylinux2014_{machine}" in makefile
    pinned = (TRANSFORM_DIR / "requirements.txt").read_text(encoding="utf-8")
    dev = (REPO_ROOT / "requirements" / "dev.txt").read_text(encoding="utf-8")
    pins = [line for line in pinned.splitlines() if line and not line.startswith("#")]
    assert sorted(pin.split("==")[0] for pin in pins) == ["msgspec", "orjson", "pybase64"]
    for pin in pins:
        assert pin in dev.splitlines()  # the benchmark and the tests run the versions the Lambda ships
