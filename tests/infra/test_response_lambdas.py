"""The two response Lambdas (infra/response/functions/{containment,start_incident}/app.py) against LoopbackAWS:
moto for the IoT registry and SNS/SQS, the emulator for Incident Manager, driven by the documented SNS violation
event (``sns_violation_lambda_event``, tests/fixtures/samples/sns-violation-lambda-event.json)."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Dict

import pytest

from tests.harness.aws import LoopbackAWS
from tests.unit.test_respond_support import certificate_pems

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = REPO / "infra" / "response" / "functions"
THING = "pump-station-017"
VIOLATION = "8a1b0c2d3e4f56789a0b1c2d3e4f5a6b"
# the stack's isolation policy in deny-all mode: the add-on's own document (a test keeps the template identical)
STACK_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "QuarantineDenyAll", "Effect": "Deny", "Action": "iot:*", "Resource": "*"}],
}
STACK_TAGS = [{"Key": "managed-by", "Value": "TA-aws-iot-defender"}]  # infra/response/template.yaml tags both
CONTEXT = SimpleNamespace(
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:iot-response", aws_request_id="req-1"
)


def load(name: str) -> ModuleType:
    """A function's app.py, with the shared ``response_lambda`` importable as in its built artifact."""
    if str(FUNCTIONS) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS))
    spec = importlib.util.spec_from_file_location(f"response_lambda_{name}", FUNCTIONS / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def aws():
    with LoopbackAWS() as aws:
        yield aws


@pytest.fixture
def world(aws, monkeypatch):
    """A fresh endpoint with the sample's thing (one ACTIVE certificate), a response plan and a notify topic."""
    aws.reset()
    iot = aws.client("iot")
    iot.create_thing(thingName=THING)
    cert = iot.register_certificate_without_ca(certificatePem=certificate_pems()[0], status="ACTIVE")
    iot.attach_thing_principal(thingName=THING, principal=cert["certificateArn"])
    plan = aws.incidents.add_response_plan("iot-critical", title="IoT device compromise", impact=2)
    # the response stack owns the quarantine group and the isolation policy (CloudFormation)
    iot.create_thing_group(thingGroupName="QUARANTINED", tags=STACK_TAGS)
    iot.create_policy(policyName="IoTQuarantineIsolation", policyDocument=json.dumps(STACK_POLICY), tags=STACK_TAGS)
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.create_topic(Name="iot-incident-notify")["TopicArn"]
    queue = sqs.create_queue(QueueName="soc-contacts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    for key, value in {
        **aws.env(),
        "AWS_REGION": aws.region,
        "QUARANTINE_GROUP": "QUARANTINED",
        "ISOLATION_POLICY_NAME": "IoTQuarantineIsolation",
        "RESPONSE_PLAN_ARN": plan,
        "NOTIFY_TOPIC_ARN": topic,
        "MODE": "incident_manager",
    }.items():
        monkeypatch.setenv(key, value)
    aws.reset_log()

    def inbox():
        return [
            json.loads(m["Body"])
            for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        ]

    return SimpleNamespace(aws=aws, iot=iot, cert=cert["certificateId"], plan=plan, topic=topic, inbox=inbox)


def with_event_type(event: Dict[str, Any], kind: str) -> Dict[str, Any]:
    event = copy.deepcopy(event)
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    message["violationEventType"] = kind
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    return event


def test_start_incident_from_sns_violation_and_replay_makes_one_incident(world, sns_violation_lambda_event):
    app = load("start_incident")
    first = app.lambda_handler(sns_violation_lambda_event, CONTEXT)
    replay = app.lambda_handler(copy.deepcopy(sns_violation_lambda_event), CONTEXT)
    records = world.aws.incidents.incident_records()
    assert len(records) == 1
    record = records[0]
    assert record["title"] == f"IoT Device Defender: {THING} AuthorizedTcpPorts"
    assert record["impact"] == 2  # IMPACT unset: the response plan's impact
    assert record["incidentRecordSource"]["source"] == "splunk.ta-aws-iot-defender"
    related = {i["identifier"]["type"]: i["identifier"]["value"] for i in record["relatedItems"]}
    assert related["INVOLVED_RESOURCE"]["arn"] == f"arn:aws:iot:us-east-1:123456789012:thing/{THING}"
    assert related["OTHER"]["url"].endswith(f"#/thing/{THING}")
    assert first["counts"] == {"done": 1} and replay["ok"]
    assert first["events"][0]["details"]["incident_record_arn"] == record["arn"]
    assert replay["events"][0]["details"]["incident_record_arn"] == record["arn"]
    assert first["events"][0]["details"]["violation_id"] == VIOLATION
    trigger = world.aws.incidents.records[world.aws.account_id][record["arn"]]["_trigger"]
    raw = json.loads(trigger["rawData"])
    assert raw["violationId"] == VIOLATION and raw["thing_name"] == THING and len(trigger["rawData"]) <= 10000
    assert trigger["timestamp"] == 1763806200  # the violation's own time (epoch ms in the message)


def test_alarm_cleared_starts_no_incident_and_calls_nothing(world, sns_violation_lambda_event):
    for kind in ("alarm-cleared", "alarm-invalidated"):
        event = with_event_type(sns_violation_lambda_event, kind)
        incident = load("start_incident").lambda_handler(event, CONTEXT)
        contained = load("containment").lambda_handler(event, CONTEXT)
        assert incident["events"] == [] and contained["events"] == []
        assert incident["skipped"][0]["reason"].startswith(kind)
    assert world.aws.incidents.incident_records() == []
    assert len(world.aws.requests) == 0


def test_sns_only_mode_publishes_the_incident(world, sns_violation_lambda_event, monkeypatch):
    monkeypatch.setenv("MODE", "sns_only")
    monkeypatch.setenv("RESPONSE_PLAN_ARN", "")
    report = load("start_incident").lambda_handler(sns_violation_lambda_event, CONTEXT)
    assert report["counts"] == {"done": 1}
    (message,) = world.inbox()
    assert message["type"] == "iot-defender-incident" and message["thing_name"] == THING
    assert message["raw_data"]["violationId"] == VIOLATION
    assert world.aws.incidents.incident_records() == []


def test_bad_configuration_fails_loudly(world, sns_violation_lambda_event, monkeypatch):
    app = load("start_incident")
    monkeypatch.setenv("MODE", "pagerduty")
    with pytest.raises(ValueError, match="MODE must be one of"):
        app.lambda_handler(sns_violation_lambda_event, CONTEXT)
    monkeypatch.setenv("MODE", "incident_manager")
    monkeypatch.setenv("RESPONSE_PLAN_ARN", "")
    with pytest.raises(ValueError, match="response plan ARN"):
        app.lambda_handler(sns_violation_lambda_event, CONTEXT)
    assert len(world.aws.requests) == 0


def test_containment_quarantines_the_thing_from_the_sns_event(world, sns_violation_lambda_event):
    app = load("containment")
    report = app.lambda_handler(sns_violation_lambda_event, CONTEXT)
    assert report["counts"] == {"done": 1}, report
    groups = [g["groupName"] for g in world.iot.list_thing_groups_for_thing(thingName=THING)["thingGroups"]]
    assert groups == ["QUARANTINED"]
    group_arn = world.iot.describe_thing_group(thingGroupName="QUARANTINED")["thingGroupArn"]
    policies = [p["policyName"] for p in world.iot.list_attached_policies(target=group_arn)["policies"]]
    assert policies == ["IoTQuarantineIsolation"]
    document = json.loads(world.iot.get_policy(policyName="IoTQuarantineIsolation")["policyDocument"])
    assert document == STACK_POLICY  # the stack's policy is attached, never rewritten
    assert not {"CreatePolicy", "CreatePolicyVersion", "CreateThingGroup"} & set(world.aws.requests.operations())
    assert report["quarantined"] == [THING] and report["already_quarantined"] == []
    assert "iotdefender_quarantine" in world.iot.describe_thing(thingName=THING)["attributes"]
    status = world.iot.describe_certificate(certificateId=world.cert)["certificateDescription"]["status"]
    assert status == "ACTIVE"  # DEACTIVATE_CERTIFICATES defaults to false
    (notice,) = world.inbox()
    assert notice["type"] == "iot-defender-containment" and notice["things"][0]["thing_name"] == THING
    again = app.lambda_handler(sns_violation_lambda_event, CONTEXT)  # replay: nothing more to do
    assert again["counts"] == {"already-in-state": 1} and again["already_quarantined"] == [THING]


def test_runbook_containment_reads_the_incident_involved_resource(world, sns_violation_lambda_event, monkeypatch):
    monkeypatch.setenv("DEACTIVATE_CERTIFICATES", "true")
    load("start_incident").lambda_handler(sns_violation_lambda_event, CONTEXT)
    (record,) = world.aws.incidents.incident_records()
    involved = [i["identifier"]["value"]["arn"] for i in record["relatedItems"] if "arn" in i["identifier"]["value"]]
    # the runbook's aws:invokeLambdaFunction InputPayload (infra/response/template.yaml, step Contain)
    payload = {
        "source": "ssm-automation",
        "automation_execution_id": "0f1e2d3c-aaaa-bbbb-cccc-0123456789ab",
        "incident_record_arn": record["arn"],
        "involved_resources": involved,
        "thing_names": [],
        "violation_id": VIOLATION,
        "dry_run": "true",
    }
    planned = load("containment").lambda_handler(payload, CONTEXT)
    assert planned["counts"] == {"dry-run": 1} and planned["quarantined"] == [] and planned["dry_run"] is True
    report = load("containment").lambda_handler(dict(payload, dry_run="false"), CONTEXT)
    assert report["counts"] == {"done": 1} and report["quarantined"] == [THING]
    status = world.iot.describe_certificate(certificateId=world.cert)["certificateDescription"]["status"]
    assert status == "INACTIVE"


def test_runbook_run_by_hand_with_thing_names_and_missing_policy_fails(world, monkeypatch):
    app = load("containment")
    nothing = app.lambda_handler({"source": "ssm-automation", "involved_resources": [], "thing_names": []}, CONTEXT)
    assert nothing["events"] == [] and nothing["quarantined"] == []
    monkeypatch.setenv("ISOLATION_POLICY_NAME", "NoSuchPolicy")
    with pytest.raises(RuntimeError, match=r"containment failed for pump-station-017 \(ResourceNotFoundException\)"):
        app.lambda_handler({"source": "ssm-automation", "thing_names": json.dumps([THING])}, CONTEXT)
    assert world.iot.list_thing_groups_for_thing(thingName=THING)["thingGroups"] == []


def test_protected_thing_is_never_contained(world, sns_violation_lambda_event, monkeypatch):
    world.iot.create_thing_group(thingGroupName="safety-critical")
    world.iot.add_thing_to_thing_group(thingGroupName="safety-critical", thingName=THING)
    monkeypatch.setenv("PROTECTED_GROUPS", "safety-critical")
    world.aws.reset_log()
    report = load("containment").lambda_handler(sns_violation_lambda_event, CONTEXT)
    assert report["counts"] == {"refused-protected": 1}
    writes = [r.operation for r in world.aws.requests if r.operation.startswith(("Add", "Update"))]
    assert writes == []


def test_sam_makefile_builds_a_self_contained_artifact(tmp_path):
    for name in ("containment", "start_incident"):
        artifacts = tmp_path / name
        subprocess.run(
            [
                "make",
                "-s",
                "-C",
                str(FUNCTIONS / name),
                f"build-{name.title().replace('_', '')}Function",
                f"ARTIFACTS_DIR={artifacts}",
            ],
            check=True,
            capture_output=True,
        )
        assert (artifacts / "app.py").read_text() == (FUNCTIONS / name / "app.py").read_text()
        assert (artifacts / "response_lambda.py").read_text() == (FUNCTIONS / "response_lambda.py").read_text()
        assert (artifacts / "iot_defender" / "respond" / "quarantine.py").is_file()
        assert not list(artifacts.rglob("__pycache__"))
        # importable from the artifact alone (plus boto3, which the Lambda runtime provides)
        code = f"import sys; sys.path.insert(0, {str(artifacts)!r}); import app; print(app.lambda_handler.__name__)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
        assert out.stdout.strip() == "lambda_handler"
