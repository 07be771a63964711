"""Shared fixtures for the infra tests: the documented payload samples, the transform module, the infra venv.

The samples are copied verbatim from ``../shared/samples/`` (constructed from AWS documentation, not captured
from a live account) so the tests run on a fresh checkout.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
TRANSFORM_DIR = INFRA_DIR / "ingestion" / "functions" / "transform"
INFRA_VENV = REPO_ROOT / ".venv-infra"
TEMPLATES = {
    "ingestion": INFRA_DIR / "ingestion" / "template.yaml",
    "response": INFRA_DIR / "response" / "template.yaml",
    "addon-role": INFRA_DIR / "addon-role" / "template.yaml",
}

METRICS_EXPORT_JSON = r"""
{
 "version": "1.0",
 "metrics": [
  {
   "name": "aws:num-listening-tcp-ports",
   "thing": "pump-station-017",
   "value": {
    "count": 4
   },
   "version": 1,
   "timestamp": 1763805600000
  },
  {
   "name": "aws:listening-tcp-ports",
   "thing": "pump-station-017",
   "value": {
    "ports": [
     21,
     22,
     53,
     443
    ]
   },
   "version": 1,
   "timestamp": 1763805600000
  },
  {
   "name": "aws:num-listening-udp-ports",
   "thing": "pump-station-017",
   "value": {
    "count": 1
   },
   "version": 1,
   "timestamp": 1763805600000
  },
  {
   "name": "aws:listening-udp-ports",
   "thing": "pump-station-017",
   "value": {
    "ports": [
     123
    ]
   },
   "version": 1,
   "timestamp": 1763805600000
  },
  {
   "name": "aws:destination-ip-addresses",
   "thing": "pump-station-017",
   "value": {
    "cidrs": [
     "203.0.113.7/32",
     "198.51.100.20/32"
    ]
   },
   "version": 1,
   "timestamp": 1763805600000
  },
  {
   "name": "aws:all-bytes-out",
   "thing": "pump-station-017",
   "value": {
    "count": 48211
   },
   "version": 1,
   "timestamp": 1763805600000
  },
  {
   "name": "aws:all-packets-out",
   "thing": "pump-station-017",
   "value": {
    "count": 311
   },
   "version": 1,
   "timestamp": 1763805600000
  },
  {
   "name": "aws:num-authorization-failures",
   "thing": "pump-station-017",
   "value": {
    "count": 0
   },
   "version": 1,
   "timestamp": 1763805600000
  },
  {
   "name": "aws:source-ip-address",
   "thing": "pump-station-017",
   "value": {
    "strings": [
     "192.0.2.44"
    ]
   },
   "version": 1,
   "timestamp": 1763805600000
  },
  {
   "name": "aws:num-messages-sent",
   "thing": "pump-station-017",
   "value": {
    "count": 12
   },
   "version": 2,
   "timestamp": 1763805600000,
   "dimension": {
    "name": "TopicFilterForTelemetry",
    "operator": "IN"
   }
  }
 ]
}
"""

SNS_AUDIT_NOTIFICATION_JSON = r"""
{
 "Type": "Notification",
 "MessageId": "0f3c4a1e-7e5b-5a44-9c1f-2b8f0b7f6a11",
 "TopicArn": "arn:aws:sns:us-east-1:123456789012:iot-defender-audit",
 "Subject": null,
 "Message": "{\"accountId\": \"123456789012\", \"taskId\": \"4e2bcd1ccbc2a5dd15292a82ab80c380\", \"taskStatus\": \"COMPLETED\", \"taskType\": \"SCHEDULED_AUDIT_TASK\", \"scheduledAuditName\": \"DailyAudit\", \"failedChecksCount\": 1, \"canceledChecksCount\": 0, \"nonCompliantChecksCount\": 2, \"compliantChecksCount\": 12, \"totalChecksCount\": 15, \"taskStartTime\": 1763769600000, \"auditDetails\": [{\"checkName\": \"DEVICE_CERTIFICATE_EXPIRING_CHECK\", \"checkRunStatus\": \"COMPLETED_NON_COMPLIANT\", \"nonCompliantResourcesCount\": 3, \"totalResourcesCount\": 120}, {\"checkName\": \"IOT_POLICY_OVERLY_PERMISSIVE_CHECK\", \"checkRunStatus\": \"COMPLETED_NON_COMPLIANT\", \"nonCompliantResourcesCount\": 1, \"totalResourcesCount\": 9}, {\"checkName\": \"CONFLICTING_CLIENT_IDS_CHECK\", \"checkRunStatus\": \"COMPLETED_COMPLIANT\", \"nonCompliantResourcesCount\": 0, \"totalResourcesCount\": 120}, {\"checkName\": \"LOGGING_DISABLED_CHECK\", \"checkRunStatus\": \"FAILED\", \"nonCompliantResourcesCount\": 0, \"totalResourcesCount\": 0, \"errorCode\": \"INSUFFICIENT_PERMISSIONS\", \"message\": \"The role does not have permission to describe logging options.\"}]}",
 "Timestamp": "2025-11-22T00:05:12.345Z",
 "SignatureVersion": "1",
 "Signature": "EXAMPLE",
 "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-example.pem",
 "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=example",
 "MessageAttributes": {}
}
"""

SNS_VIOLATION_LAMBDA_EVENT_JSON = r"""
{
 "Records": [
  {
   "EventSource": "aws:sns",
   "EventVersion": "1.0",
   "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:iot-device-alerts:2b1c7f0e-1111-2222-3333-444455556666",
   "Sns": {
    "Type": "Notification",
    "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:iot-device-alerts",
    "Subject": null,
    "Message": "{\"violationEventTime\": 1763806200000, \"thingName\": \"pump-station-017\", \"behavior\": {\"name\": \"AuthorizedTcpPorts\", \"metric\": \"aws:listening-tcp-ports\", \"criteria\": {\"comparisonOperator\": \"in-port-set\", \"value\": {\"ports\": [22, 53, 443]}, \"consecutiveDatapointsToAlarm\": 1, \"consecutiveDatapointsToClear\": 1}}, \"violationEventType\": \"in-alarm\", \"metricValue\": {\"ports\": [21, 22, 53, 443]}, \"violationId\": \"8a1b0c2d3e4f56789a0b1c2d3e4f5a6b\", \"securityProfileName\": \"DeviceRuleBaseline\"}",
    "Timestamp": "2025-11-22T10:10:01.123Z",
    "SignatureVersion": "1",
    "Signature": "EXAMPLE",
    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/example.pem",
    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    "MessageAttributes": {}
   }
  }
 ]
}
"""

FIREHOSE_TRANSFORM_EVENT_JSON = r"""
{
 "invocationId": "a7f3a5b2-2c1d-4e8f-9a6b-0c1d2e3f4a5b",
 "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/iot-defender-to-splunk",
 "region": "us-east-1",
 "records": [
  {
   "recordId": "49546986683135544286507457936321625675700192471156785154",
   "approximateArrivalTimestamp": 1763805601234,
   "data": "eyJ2ZXJzaW9uIjogIjEuMCIsICJtZXRyaWNzIjogW3sibmFtZSI6ICJhd3M6bnVtLWxpc3RlbmluZy10Y3AtcG9ydHMiLCAidGhpbmciOiAicHVtcC1zdGF0aW9uLTAxNyIsICJ2YWx1ZSI6IHsiY291bnQiOiA0fSwgInZlcnNpb24iOiAxLCAidGltZXN0YW1wIjogMTc2MzgwNTYwMDAwMH0sIHsibmFtZSI6ICJhd3M6bGlzdGVuaW5nLXRjcC1wb3J0cyIsICJ0aGluZyI6ICJwdW1wLXN0YXRpb24tMDE3IiwgInZhbHVlIjogeyJwb3J0cyI6IFsyMSwgMjIsIDUzLCA0NDNdfSwgInZlcnNpb24iOiAxLCAidGltZXN0YW1wIjogMTc2MzgwNTYwMDAwMH0sIHsibmFtZSI6ICJhd3M6bnVtLWxpc3RlbmluZy11ZHAtcG9ydHMiLCAidGhpbmciOiAicHVtcC1zdGF0aW9uLTAxNyIsICJ2YWx1ZSI6IHsiY291bnQiOiAxfSwgInZlcnNpb24iOiAxLCAidGltZXN0YW1wIjogMTc2MzgwNTYwMDAwMH0sIHsibmFtZSI6ICJhd3M6bGlzdGVuaW5nLXVkcC1wb3J0cyIsICJ0aGluZyI6ICJwdW1wLXN0YXRpb24tMDE3IiwgInZhbHVlIjogeyJwb3J0cyI6IFsxMjNdfSwgInZlcnNpb24iOiAxLCAidGltZXN0YW1wIjogMTc2MzgwNTYwMDAwMH0sIHsibmFtZSI6ICJhd3M6ZGVzdGluYXRpb24taXAtYWRkcmVzc2VzIiwgInRoaW5nIjogInB1bXAtc3RhdGlvbi0wMTciLCAidmFsdWUiOiB7ImNpZHJzIjogWyIyMDMuMC4xMTMuNy8zMiIsICIxOTguNTEuMTAwLjIwLzMyIl19LCAidmVyc2lvbiI6IDEsICJ0aW1lc3RhbXAiOiAxNzYzODA1NjAwMDAwfSwgeyJuYW1lIjogImF3czphbGwtYnl0ZXMtb3V0IiwgInRoaW5nIjogInB1bXAtc3RhdGlvbi0wMTciLCAidmFsdWUiOiB7ImNvdW50IjogNDgyMTF9LCAidmVyc2lvbiI6IDEsICJ0aW1lc3RhbXAiOiAxNzYzODA1NjAwMDAwfSwgeyJuYW1lIjogImF3czphbGwtcGFja2V0cy1vdXQiLCAidGhpbmciOiAicHVtcC1zdGF0aW9uLTAxNyIsICJ2YWx1ZSI6IHsiY291bnQiOiAzMTF9LCAidmVyc2lvbiI6IDEsICJ0aW1lc3RhbXAiOiAxNzYzODA1NjAwMDAwfSwgeyJuYW1lIjogImF3czpudW0tYXV0aG9yaXphdGlvbi1mYWlsdXJlcyIsICJ0aGluZyI6ICJwdW1wLXN0YXRpb24tMDE3IiwgInZhbHVlIjogeyJjb3VudCI6IDB9LCAidmVyc2lvbiI6IDEsICJ0aW1lc3RhbXAiOiAxNzYzODA1NjAwMDAwfSwgeyJuYW1lIjogImF3czpzb3VyY2UtaXAtYWRkcmVzcyIsICJ0aGluZyI6ICJwdW1wLXN0YXRpb24tMDE3IiwgInZhbHVlIjogeyJzdHJpbmdzIjogWyIxOTIuMC4yLjQ0Il19LCAidmVyc2lvbiI6IDEsICJ0aW1lc3RhbXAiOiAxNzYzODA1NjAwMDAwfSwgeyJuYW1lIjogImF3czpudW0tbWVzc2FnZXMtc2VudCIsICJ0aGluZyI6ICJwdW1wLXN0YXRpb24tMDE3IiwgInZhbHVlIjogeyJjb3VudCI6IDEyfSwgInZlcnNpb24iOiAyLCAidGltZXN0YW1wIjogMTc2MzgwNTYwMDAwMCwgImRpbWVuc2lvbiI6IHsibmFtZSI6ICJUb3BpY0ZpbHRlckZvclRlbGVtZXRyeSIsICJvcGVyYXRvciI6ICJJTiJ9fV19"
  },
  {
   "recordId": "49546986683135544286507457936321625675700192471156785155",
   "approximateArrivalTimestamp": 1763769912345,
   "data": "eyJUeXBlIjogIk5vdGlmaWNhdGlvbiIsICJNZXNzYWdlSWQiOiAiMGYzYzRhMWUtN2U1Yi01YTQ0LTljMWYtMmI4ZjBiN2Y2YTExIiwgIlRvcGljQXJuIjogImFybjphd3M6c25zOnVzLWVhc3QtMToxMjM0NTY3ODkwMTI6aW90LWRlZmVuZGVyLWF1ZGl0IiwgIlN1YmplY3QiOiBudWxsLCAiTWVzc2FnZSI6ICJ7XCJhY2NvdW50SWRcIjogXCIxMjM0NTY3ODkwMTJcIiwgXCJ0YXNrSWRcIjogXCI0ZTJiY2QxY2NiYzJhNWRkMTUyOTJhODJhYjgwYzM4MFwiLCBcInRhc2tTdGF0dXNcIjogXCJDT01QTEVURURcIiwgXCJ0YXNrVHlwZVwiOiBcIlNDSEVEVUxFRF9BVURJVF9UQVNLXCIsIFwic2NoZWR1bGVkQXVkaXROYW1lXCI6IFwiRGFpbHlBdWRpdFwiLCBcImZhaWxlZENoZWNrc0NvdW50XCI6IDEsIFwiY2FuY2VsZWRDaGVja3NDb3VudFwiOiAwLCBcIm5vbkNvbXBsaWFudENoZWNrc0NvdW50XCI6IDIsIFwiY29tcGxpYW50Q2hlY2tzQ291bnRcIjogMTIsIFwidG90YWxDaGVja3NDb3VudFwiOiAxNSwgXCJ0YXNrU3RhcnRUaW1lXCI6IDE3NjM3Njk2MDAwMDAsIFwiYXVkaXREZXRhaWxzXCI6IFt7XCJjaGVja05hbWVcIjogXCJERVZJQ0VfQ0VSVElGSUNBVEVfRVhQSVJJTkdfQ0hFQ0tcIiwgXCJjaGVja1J1blN0YXR1c1wiOiBcIkNPTVBMRVRFRF9OT05fQ09NUExJQU5UXCIsIFwibm9uQ29tcGxpYW50UmVzb3VyY2VzQ291bnRcIjogMywgXCJ0b3RhbFJlc291cmNlc0NvdW50XCI6IDEyMH0sIHtcImNoZWNrTmFtZVwiOiBcIklPVF9QT0xJQ1lfT1ZFUkxZX1BFUk1JU1NJVkVfQ0hFQ0tcIiwgXCJjaGVja1J1blN0YXR1c1wiOiBcIkNPTVBMRVRFRF9OT05fQ09NUExJQU5UXCIsIFwibm9uQ29tcGxpYW50UmVzb3VyY2VzQ291bnRcIjogMSwgXCJ0b3RhbFJlc291cmNlc0NvdW50XCI6IDl9LCB7XCJjaGVja05hbWVcIjogXCJDT05GTElDVElOR19DTElFTlRfSURTX0NIRUNLXCIsIFwiY2hlY2tSdW5TdGF0dXNcIjogXCJDT01QTEVURURfQ09NUExJQU5UXCIsIFwibm9uQ29tcGxpYW50UmVzb3VyY2VzQ291bnRcIjogMCwgXCJ0b3RhbFJlc291cmNlc0NvdW50XCI6IDEyMH0sIHtcImNoZWNrTmFtZVwiOiBcIkxPR0dJTkdfRElTQUJMRURfQ0hFQ0tcIiwgXCJjaGVja1J1blN0YXR1c1wiOiBcIkZBSUxFRFwiLCBcIm5vbkNvbXBsaWFudFJlc291cmNlc0NvdW50XCI6IDAsIFwidG90YWxSZXNvdXJjZXNDb3VudFwiOiAwLCBcImVycm9yQ29kZVwiOiBcIklOU1VGRklDSUVOVF9QRVJNSVNTSU9OU1wiLCBcIm1lc3NhZ2VcIjogXCJUaGUgcm9sZSBkb2VzIG5vdCBoYXZlIHBlcm1pc3Npb24gdG8gZGVzY3JpYmUgbG9nZ2luZyBvcHRpb25zLlwifV19IiwgIlRpbWVzdGFtcCI6ICIyMDI1LTExLTIyVDAwOjA1OjEyLjM0NVoiLCAiU2lnbmF0dXJlVmVyc2lvbiI6ICIxIiwgIlNpZ25hdHVyZSI6ICJFWEFNUExFIiwgIlNpZ25pbmdDZXJ0VVJMIjogImh0dHBzOi8vc25zLnVzLWVhc3QtMS5hbWF6b25hd3MuY29tL1NpbXBsZU5vdGlmaWNhdGlvblNlcnZpY2UtZXhhbXBsZS5wZW0iLCAiVW5zdWJzY3JpYmVVUkwiOiAiaHR0cHM6Ly9zbnMudXMtZWFzdC0xLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1VbnN1YnNjcmliZSZTdWJzY3JpcHRpb25Bcm49ZXhhbXBsZSIsICJNZXNzYWdlQXR0cmlidXRlcyI6IHt9fQ=="
  }
 ]
}
"""


def _load(text: str) -> Dict[str, Any]:
    return json.loads(text)


METRICS_EXPORT: Dict[str, Any] = _load(METRICS_EXPORT_JSON)
SNS_AUDIT_NOTIFICATION: Dict[str, Any] = _load(SNS_AUDIT_NOTIFICATION_JSON)
SNS_VIOLATION_LAMBDA_EVENT: Dict[str, Any] = _load(SNS_VIOLATION_LAMBDA_EVENT_JSON)
FIREHOSE_TRANSFORM_EVENT: Dict[str, Any] = _load(FIREHOSE_TRANSFORM_EVENT_JSON)


class _CfnLoader(yaml.SafeLoader):
    """PyYAML loader that reads CloudFormation short-form tags (``!Sub``, ``!GetAtt`` ...) as their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Dict[str, Any]:
    name = "Ref" if suffix == "Ref" else ("Condition" if suffix == "Condition" else f"Fn::{suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> Dict[str, Any]:
    """A CloudFormation/SAM YAML template as plain data (intrinsics in their long JSON form)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with only tag constructors


def load_transform() -> ModuleType:
    """The transform Lambda's ``app`` module, imported from its file under a unique name (each Lambda has an
    ``app.py``; importing them all as ``app`` would make one shadow another in ``sys.modules``)."""
    name = "iot_defender_infra_transform_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TRANSFORM_DIR / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def transform() -> ModuleType:
    return load_transform()


@pytest.fixture
def metrics_export() -> Dict[str, Any]:
    return copy.deepcopy(METRICS_EXPORT)


@pytest.fixture
def sns_audit_notification() -> Dict[str, Any]:
    return copy.deepcopy(SNS_AUDIT_NOTIFICATION)


@pytest.fixture
def sns_violation_lambda_event() -> Dict[str, Any]:
    return copy.deepcopy(SNS_VIOLATION_LAMBDA_EVENT)


@pytest.fixture
def firehose_transform_event() -> Dict[str, Any]:
    return copy.deepcopy(FIREHOSE_TRANSFORM_EVENT)
