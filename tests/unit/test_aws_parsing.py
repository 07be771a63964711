"""The inputs' fast answer parsing gives exactly what botocore's own parser gives (timestamps kept raw)."""

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore.parsers import ResponseParserFactory

from iot_defender.aws import PlainJsonParserFactory, is_plain_json_shape

MODEL = botocore.session.get_session().get_service_model("iot")
ANSWERS = {
    "ListViolationEvents": {
        "violationEvents": [
            {
                "violationId": "v1",
                "thingName": "pump-station-017",
                "securityProfileName": "DeviceRuleBaseline",
                "behavior": {
                    "name": "AuthorizedTcpPorts",
                    "metric": "aws:listening-tcp-ports",
                    "criteria": {"comparisonOperator": "in-port-set", "value": {"ports": [22, 443]}},
                },
                "metricValue": {"ports": [21, 22, 443], "cidrs": ["203.0.113.7/32"]},
                "violationEventAdditionalInfo": {"confidenceLevel": "HIGH"},
                "violationEventType": "in-alarm",
                "verificationState": "UNKNOWN",
                "violationEventTime": 1763806200.123,
            }
        ],
        "nextToken": "abc",
    },
    "ListAuditFindings": {
        "findings": [
            {
                "findingId": "f1",
                "taskId": "t1",
                "checkName": "DEVICE_CERTIFICATE_EXPIRING_CHECK",
                "taskStartTime": 1763769600,
                "findingTime": 1763769700.5,
                "severity": "MEDIUM",
                "nonCompliantResource": {
                    "resourceType": "DEVICE_CERTIFICATE",
                    "resourceIdentifier": {"deviceCertificateId": "c" * 64},
                    "additionalInfo": {"EXPIRATION_TIME": "1764000000"},
                },
                "relatedResources": [],
                "reasonForNonCompliance": "expiring",
                "isSuppressed": True,
            }
        ]
    },
    "DescribeAuditTask": {
        "taskStatus": "COMPLETED",
        "taskType": "SCHEDULED_AUDIT_TASK",
        "taskStartTime": 1763769600,
        "taskStatistics": {"totalChecks": 2, "nonCompliantChecks": 1},
        "auditDetails": {
            "LOGGING_DISABLED_CHECK": {"checkRunStatus": "FAILED", "errorCode": "INSUFFICIENT_PERMISSIONS"}
        },
    },
    "ListActiveViolations": {"activeViolations": [{"violationId": "v", "thingName": "t", "lastViolationTime": 1.5}]},
    "ListAuditTasks": {"tasks": [{"taskId": "t1", "taskStatus": "COMPLETED", "taskType": "ON_DEMAND_AUDIT_TASK"}]},
    "ListThings": {"things": [{"thingName": "t", "attributes": {"site": "a"}, "version": 3, "thingArn": "arn"}]},
}


@pytest.mark.parametrize("operation", sorted(ANSWERS))
def test_fast_parse_equals_botocore_parse(operation, monkeypatch):
    shape = MODEL.operation_model(operation).output_shape
    assert is_plain_json_shape(shape), f"{operation} would not take the fast path"
    response = {
        "status_code": 200,
        "headers": {"x-amzn-requestid": "r"},
        "body": json.dumps(ANSWERS[operation]).encode(),
    }
    reference = ResponseParserFactory()
    reference.set_parser_defaults(timestamp_parser=lambda value: value)
    expected = reference.create_parser("rest-json").parse(dict(response), shape)
    fast = PlainJsonParserFactory().create_parser("rest-json")
    walked = []
    original = type(fast).__mro__[1]._handle_structure
    monkeypatch.setattr(type(fast).__mro__[1], "_handle_structure", lambda *a: walked.append(1) or original(*a))
    got = fast.parse(dict(response), shape)
    assert got == expected
    assert walked == []  # the fast path really skipped botocore's shape walk


def test_errors_still_go_through_botocores_error_parsing():
    shape = MODEL.operation_model("ListViolationEvents").output_shape
    body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
    response = {"status_code": 400, "headers": {}, "body": body}
    reference = ResponseParserFactory().create_parser("rest-json").parse(dict(response), shape)
    parsed = PlainJsonParserFactory().create_parser("rest-json").parse(dict(response), shape)
    assert parsed == reference and parsed["Error"]["Code"] == "ThrottlingException"


def test_shapes_with_blobs_are_not_plain():
    kinesis = botocore.session.get_session().get_service_model("kinesis")
    assert not is_plain_json_shape(kinesis.operation_model("GetRecords").output_shape)
    assert is_plain_json_shape(kinesis.operation_model("ListStreams").output_shape)
