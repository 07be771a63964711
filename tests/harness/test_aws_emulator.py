"""LoopbackAWS through real boto3 clients: routing, models, pagination, semantics, auth, faults, pass-through."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import botocore.session
import pytest
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError

from tests.harness.aws import LoopbackAWS, check_shape

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
ACCOUNT = "123456789012"
ONE_SHOT = {"total_max_attempts": 1, "mode": "standard"}


@pytest.fixture(scope="module")
def server():
    with LoopbackAWS(seed=11) as aws:
        yield aws


@pytest.fixture()
def aws(server):
    server.reset()
    yield server
    assert not server.internal_errors, server.internal_errors


def _code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def _status(exc: ClientError) -> int:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"]


BEH_TCP = {
    "name": "AuthorizedTcpPorts",
    "metric": "aws:listening-tcp-ports",
    "criteria": {"comparisonOperator": "in-port-set", "value": {"ports": [22, 443, 8883]}},
}
BEH_STAT = {
    "name": "MessagesSentP99",
    "metric": "aws:num-messages-sent",
    "criteria": {"comparisonOperator": "greater-than", "statisticalThreshold": {"statistic": "p99"}},
    "suppressAlerts": True,
}
BEH_ML = {
    "name": "MLBytesOut",
    "metric": "aws:all-bytes-out",
    "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}},
}


def _event(
    i: int, t: dt.datetime, thing="pump-station-001", beh=BEH_TCP, etype="in-alarm", profile="DeviceRuleBaseline"
):
    ev = {
        "violationId": f"{i:032x}",
        "thingName": thing,
        "securityProfileName": profile,
        "behavior": beh,
        "violationEventType": etype,
        "violationEventTime": t,
    }
    if etype != "alarm-invalidated":
        ev["metricValue"] = {"ports": [21, 22, 443]} if beh is BEH_TCP else {"count": 10 + i}
    return ev


def _seed_events(aws, n=60, start=None):
    start = start or NOW - dt.timedelta(days=2)
    events = []
    for i in range(n):
        beh = (BEH_TCP, BEH_STAT, BEH_ML)[i % 3]
        thing = f"pump-station-{i % 5:03d}"
        events.append(_event(i, start + dt.timedelta(minutes=13 * i), thing=thing, beh=beh))
    aws.defender.add_violation_events(events)
    return events


def _seed_audit(aws):
    t1 = NOW - dt.timedelta(days=2)
    t2 = NOW - dt.timedelta(days=1)
    for tid, ts, ttype in (("task-a", t1, "SCHEDULED_AUDIT_TASK"), ("task-b", t2, "ON_DEMAND_AUDIT_TASK")):
        aws.defender.add_audit_task(
            {
                "taskId": tid,
                "taskStatus": "COMPLETED",
                "taskType": ttype,
                "taskStartTime": ts,
                "scheduledAuditName": "Daily" if ttype == "SCHEDULED_AUDIT_TASK" else None,
                "auditDetails": {
                    "DEVICE_CERTIFICATE_EXPIRING_CHECK": {
                        "checkRunStatus": "COMPLETED_NON_COMPLIANT",
                        "checkCompliant": False,
                        "totalResourcesCount": 10,
                        "nonCompliantResourcesCount": 2,
                        "suppressedNonCompliantResourcesCount": 1,
                    },
                    "LOGGING_DISABLED_CHECK": {"checkRunStatus": "FAILED", "errorCode": "INSUFFICIENT_PERMISSIONS"},
                },
            }
        )
    for tid in ("task-a", "task-b"):
        ts = t1 if tid == "task-a" else t2
        aws.defender.add_audit_findings(
            {
                "findingId": f"{tid}-f{k}",
                "taskId": tid,
                "checkName": "DEVICE_CERTIFICATE_EXPIRING_CHECK",
                "taskStartTime": ts,
                "findingTime": ts + dt.timedelta(minutes=5 + k),
                "severity": "MEDIUM",
                "nonCompliantResource": {
                    "resourceType": "DEVICE_CERTIFICATE",
                    "resourceIdentifier": {"deviceCertificateId": f"{k:064x}"},
                },
                "reasonForNonCompliance": "Certificate is expiring",
                "reasonForNonComplianceCode": "CERTIFICATE_EXPIRING",
                "isSuppressed": k == 1,
            }
            for k in range(2)
        )


# ---------------------------------------------------------------------------------------------- basics
def test_endpoint_and_env(aws):
    assert aws.endpoint_url.startswith("http://127.0.0.1:")
    env = aws.env()
    assert set(env) == {
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_EC2_METADATA_DISABLED",
    }
    assert env["AWS_ENDPOINT_URL"] == aws.endpoint_url
    ident = aws.client("sts").get_caller_identity()
    assert ident["Account"] == ACCOUNT
    assert ident["Arn"].endswith(":user/loopback")


def test_every_emulated_operation_accepted_by_botocore_and_shape_checker(aws):
    _seed_events(aws, 10)
    _seed_audit(aws)
    aws.defender.add_security_profile("DeviceRuleBaseline", [BEH_TCP, BEH_STAT])
    aws.defender.add_active_violations(
        [
            {
                "violationId": "f" * 32,
                "thingName": "pump-station-001",
                "securityProfileName": "DeviceRuleBaseline",
                "behavior": BEH_TCP,
                "lastViolationValue": {"ports": [21, 22]},
                "lastViolationTime": NOW - dt.timedelta(minutes=5),
                "violationStartTime": NOW - dt.timedelta(hours=1),
            }
        ]
    )
    aws.defender.add_metric_values(
        "pump-station-001", "aws:all-bytes-out", [(NOW - dt.timedelta(minutes=5 * k), {"count": k}) for k in range(5)]
    )
    raw = []

    def capture(operation_model, response_dict, **_):
        if response_dict["body"] and operation_model.metadata["protocol"] == "rest-json":
            raw.append((operation_model, json.loads(response_dict["body"])))

    iot, inc, sts = aws.client("iot"), aws.client("ssm-incidents"), aws.client("sts")
    for c in (iot, inc):
        c.meta.events.register("before-parse", capture)
    window = {"startTime": NOW - dt.timedelta(days=3), "endTime": NOW}
    assert len(iot.list_violation_events(**window)["violationEvents"]) == 10
    assert iot.list_active_violations()["activeViolations"][0]["violationId"] == "f" * 32
    tasks = iot.list_audit_tasks(**window)["tasks"]
    assert [t["taskId"] for t in tasks] == ["task-a", "task-b"]
    desc = iot.describe_audit_task(taskId="task-a")
    assert desc["taskStatistics"]["nonCompliantChecks"] == 1 and desc["taskStatistics"]["failedChecks"] == 1
    assert desc["auditDetails"]["LOGGING_DISABLED_CHECK"]["errorCode"] == "INSUFFICIENT_PERMISSIONS"
    assert isinstance(desc["taskStartTime"], dt.datetime)
    assert len(iot.list_audit_findings(taskId="task-a")["findings"]) == 2
    assert len(iot.list_audit_findings(**window)["findings"]) == 4
    profs = iot.list_security_profiles()["securityProfileIdentifiers"]
    assert profs == [
        {"name": "DeviceRuleBaseline", "arn": f"arn:aws:iot:us-east-1:{ACCOUNT}:securityprofile/DeviceRuleBaseline"}
    ]
    assert iot.list_security_profiles(metricName="aws:all-bytes-out")["securityProfileIdentifiers"] == []
    mv = iot.list_metric_values(thingName="pump-station-001", metricName="aws:all-bytes-out", **window)
    assert [d["value"]["count"] for d in mv["metricDatumList"]] == [4, 3, 2, 1, 0]
    iot.put_verification_state_on_violation(violationId="f" * 32, verificationState="TRUE_POSITIVE")
    started = iot.start_on_demand_audit_task(targetCheckNames=["DEVICE_CERTIFICATE_EXPIRING_CHECK"])
    assert len(started["taskId"]) == 32
    plan = inc.create_response_plan(name="iot-plan", incidentTemplate={"title": "IoT", "impact": 3})["arn"]
    assert inc.list_response_plans()["responsePlanSummaries"][0]["arn"] == plan
    arn = inc.start_incident(
        responsePlanArn=plan,
        title="pump-station-001 compromised",
        triggerDetails={"source": "splunk.iot_defender", "timestamp": NOW},
        relatedItems=[
            {"identifier": {"type": "OTHER", "value": {"url": "https://splunk.example/x"}}, "title": "search"}
        ],
    )["incidentRecordArn"]
    rec = inc.get_incident_record(arn=arn)["incidentRecord"]
    assert (
        rec["status"] == "OPEN"
        and rec["impact"] == 3
        and rec["incidentRecordSource"]["source"] == "splunk.iot_defender"
    )
    assert inc.list_incident_records()["incidentRecordSummaries"][0]["arn"] == arn
    assert inc.list_related_items(incidentRecordArn=arn)["relatedItems"][0]["title"] == "search"
    assert sts.get_caller_identity()["Account"] == ACCOUNT
    # every raw body passes the independent shape check
    assert len(raw) >= 15
    for om, body in raw:
        assert check_shape(om.output_shape, body) == [], om.name


# ------------------------------------------------------------------------------------------ pagination
@pytest.mark.parametrize("page_size", [1, 7, 250])
def test_paginator_returns_exactly_the_seeded_events(aws, page_size):
    events = _seed_events(aws, 60)
    iot = aws.client("iot")
    pages = list(
        iot.get_paginator("list_violation_events").paginate(
            startTime=NOW - dt.timedelta(days=3), endTime=NOW, PaginationConfig={"PageSize": page_size}
        )
    )
    got = [e for p in pages for e in p["violationEvents"]]
    assert [e["violationId"] for e in got] == [e["violationId"] for e in events]
    assert all(len(p["violationEvents"]) <= page_size for p in pages)
    assert len(pages) == -(-60 // page_size)
    assert got[5]["violationEventTime"] == events[5]["violationEventTime"]


def test_pagination_tokens_and_max_results(aws):
    _seed_events(aws, 30)
    iot = aws.client("iot")
    window = {"startTime": NOW - dt.timedelta(days=3), "endTime": NOW}
    first = iot.list_violation_events(maxResults=10, **window)
    assert len(first["violationEvents"]) == 10 and first["nextToken"]
    assert len(iot.list_violation_events(**window)["violationEvents"]) == 25  # default page size
    with pytest.raises(ClientError) as e:
        iot.list_violation_events(nextToken="garbage!!", **window)
    assert _code(e.value) == "InvalidRequestException" and _status(e.value) == 400
    with pytest.raises(ClientError) as e:  # token from another query
        iot.list_violation_events(nextToken=first["nextToken"], thingName="pump-station-001", **window)
    assert _code(e.value) == "InvalidRequestException"
    with pytest.raises(ClientError) as e:
        iot.list_violation_events(maxResults=251, **window)
    assert _code(e.value) == "InvalidRequestException" and "250" in e.value.response["Error"]["Message"]
    inc = aws.client("ssm-incidents")
    with pytest.raises(ClientError) as e:
        inc.list_response_plans(maxResults=101)
    assert _code(e.value) == "ValidationException"


def test_incident_manager_paginators(aws):
    inc = aws.client("ssm-incidents")
    for k in range(7):
        aws.incidents.add_response_plan(f"plan-{k}")
    names = [
        p["name"]
        for page in inc.get_paginator("list_response_plans").paginate(PaginationConfig={"PageSize": 3})
        for p in page["responsePlanSummaries"]
    ]
    assert names == [f"plan-{k}" for k in range(7)]
    arn = aws.incidents.add_response_plan("plan-x")
    made = [inc.start_incident(responsePlanArn=arn, title=f"i{k}")["incidentRecordArn"] for k in range(5)]
    listed = [
        r["arn"]
        for page in inc.get_paginator("list_incident_records").paginate(PaginationConfig={"PageSize": 2})
        for r in page["incidentRecordSummaries"]
    ]
    assert listed == made[::-1]  # newest first
    open_only = inc.list_incident_records(
        filters=[{"key": "status", "condition": {"equals": {"stringValues": ["RESOLVED"]}}}]
    )
    assert open_only["incidentRecordSummaries"] == []


# ----------------------------------------------------------------------------- windows, retention, filters
def test_windows_and_retention(aws):
    iot = aws.client("iot")
    aws.defender.add_violation_events(
        [
            _event(1, NOW - dt.timedelta(days=31)),  # beyond 30-day retention
            _event(2, NOW - dt.timedelta(days=29)),
            _event(3, NOW - dt.timedelta(hours=1)),
        ]
    )
    got = iot.list_violation_events(startTime=NOW - dt.timedelta(days=40), endTime=NOW)["violationEvents"]
    assert [e["violationId"] for e in got] == [f"{2:032x}", f"{3:032x}"]
    got = iot.list_violation_events(startTime=NOW - dt.timedelta(hours=2), endTime=NOW)["violationEvents"]
    assert [e["violationId"] for e in got] == [f"{3:032x}"]
    with pytest.raises(ClientError) as e:
        iot.list_violation_events(startTime=NOW, endTime=NOW - dt.timedelta(days=1))
    assert _code(e.value) == "InvalidRequestException"
    with pytest.raises(ClientError) as e:
        iot.list_audit_tasks(startTime=NOW - dt.timedelta(days=91), endTime=NOW)
    assert _code(e.value) == "InvalidRequestException"
    assert iot.list_audit_tasks(startTime=NOW - dt.timedelta(days=89), endTime=NOW)["tasks"] == []
    aws.defender.add_metric_values(
        "t1",
        "aws:all-bytes-out",
        [(NOW - dt.timedelta(days=15), {"count": 1}), (NOW - dt.timedelta(days=13), {"count": 2})],
    )
    mv = iot.list_metric_values(
        thingName="t1", metricName="aws:all-bytes-out", startTime=NOW - dt.timedelta(days=20), endTime=NOW
    )
    assert [d["value"]["count"] for d in mv["metricDatumList"]] == [2]


def test_audit_findings_task_or_window(aws):
    _seed_audit(aws)
    iot = aws.client("iot")
    with pytest.raises(ClientError) as e:
        iot.list_audit_findings(taskId="task-a", startTime=NOW - dt.timedelta(days=3), endTime=NOW)
    assert _code(e.value) == "InvalidRequestException"
    with pytest.raises(ClientError) as e:
        iot.list_audit_findings()
    assert _code(e.value) == "InvalidRequestException"
    assert [f["isSuppressed"] for f in iot.list_audit_findings(taskId="task-a")["findings"]] == [False, True]
    assert len(iot.list_audit_findings(taskId="task-a", listSuppressedFindings=False)["findings"]) == 1
    assert len(iot.list_audit_findings(taskId="task-a", listSuppressedFindings=True)["findings"]) == 1
    assert iot.list_audit_findings(taskId="task-a", checkName="LOGGING_DISABLED_CHECK")["findings"] == []
    rid = {"deviceCertificateId": f"{1:064x}"}
    assert len(iot.list_audit_findings(taskId="task-b", resourceIdentifier=rid)["findings"]) == 1
    window = {"startTime": NOW - dt.timedelta(days=3), "endTime": NOW}
    assert [t["taskId"] for t in iot.list_audit_tasks(taskType="ON_DEMAND_AUDIT_TASK", **window)["tasks"]] == ["task-b"]
    assert iot.list_audit_tasks(taskStatus="IN_PROGRESS", **window)["tasks"] == []
    with pytest.raises(ClientError) as e:
        iot.describe_audit_task(taskId="nope")
    assert _code(e.value) == "ResourceNotFoundException" and _status(e.value) == 404
    with pytest.raises(ClientError) as e:  # model constraint the client does not check: max length 40
        iot.describe_audit_task(taskId="a" * 41)
    assert _code(e.value) == "InvalidRequestException"


def test_violation_filters_and_verification_state(aws):
    _seed_events(aws, 30)
    iot = aws.client("iot")
    window = {"startTime": NOW - dt.timedelta(days=3), "endTime": NOW, "maxResults": 250}

    def ids(**kw):
        return [e["violationId"] for e in iot.list_violation_events(**window, **kw)["violationEvents"]]

    assert len(ids()) == 30
    assert len(ids(thingName="pump-station-001")) == 6
    assert len(ids(behaviorCriteriaType="STATIC")) == 10
    assert len(ids(behaviorCriteriaType="STATISTICAL")) == 10
    assert len(ids(behaviorCriteriaType="MACHINE_LEARNING")) == 10
    assert len(ids(listSuppressedAlerts=True)) == 10
    assert len(ids(listSuppressedAlerts=False)) == 20
    assert ids(securityProfileName="Other") == []
    target = ids()[4]
    iot.put_verification_state_on_violation(
        violationId=target, verificationState="FALSE_POSITIVE", verificationStateDescription="lab device"
    )
    assert ids(verificationState="FALSE_POSITIVE") == [target]
    assert aws.verification_states[(ACCOUNT, "us-east-1", target)]["verificationState"] == "FALSE_POSITIVE"
    with pytest.raises(ClientError) as e:
        iot.put_verification_state_on_violation(violationId="0" * 31 + "9" * 1 + "x", verificationState="UNKNOWN")
    assert _code(e.value) == "InvalidRequestException"


def test_late_arriving_events_become_visible(aws):
    aws.clock.freeze(NOW)
    aws.defender.add_violation_events(
        [
            _event(1, NOW - dt.timedelta(minutes=30)),
            {**_event(2, NOW - dt.timedelta(minutes=20)), "visible_at": NOW + dt.timedelta(minutes=10)},
        ]
    )
    iot = aws.client("iot")
    window = {"startTime": NOW - dt.timedelta(hours=1), "endTime": NOW}
    assert len(iot.list_violation_events(**window)["violationEvents"]) == 1
    aws.clock.advance(600)
    assert len(iot.list_violation_events(**window)["violationEvents"]) == 2


def test_on_demand_audit_completes_after_delay(aws):
    _seed_audit(aws)
    aws.clock.freeze(NOW)
    aws.defender.audit_completion_delay_seconds = 30
    iot = aws.client("iot")
    task_id = iot.start_on_demand_audit_task(targetCheckNames=["DEVICE_CERTIFICATE_EXPIRING_CHECK"])["taskId"]
    d = iot.describe_audit_task(taskId=task_id)
    assert d["taskStatus"] == "IN_PROGRESS" and d["taskType"] == "ON_DEMAND_AUDIT_TASK"
    assert d["taskStatistics"]["inProgressChecks"] == 1
    aws.clock.advance(31)
    d = iot.describe_audit_task(taskId=task_id)
    assert d["taskStatus"] == "COMPLETED"
    assert d["auditDetails"]["DEVICE_CERTIFICATE_EXPIRING_CHECK"]["nonCompliantResourcesCount"] == 2
    assert len(iot.list_audit_findings(taskId=task_id)["findings"]) == 2
    with pytest.raises(ClientError) as e:
        iot.start_on_demand_audit_task(targetCheckNames=["NOT_A_CHECK"])
    assert _code(e.value) == "InvalidRequestException"


# -------------------------------------------------------------------------------------- Incident Manager
def test_start_incident_idempotency_and_validation(aws):
    inc = aws.client("ssm-incidents")
    plan = aws.incidents.add_response_plan("iot-device-compromise", title="IoT", impact=2)
    trig = {"source": "splunk.iot", "timestamp": NOW, "rawData": "{}"}
    a = inc.start_incident(responsePlanArn=plan, clientToken="tok-1", triggerDetails=trig)["incidentRecordArn"]
    b = inc.start_incident(responsePlanArn=plan, clientToken="tok-1", triggerDetails=trig)["incidentRecordArn"]
    assert a == b
    assert len(aws.incidents.incident_records()) == 1
    c = inc.start_incident(responsePlanArn=plan, clientToken="tok-2", triggerDetails=trig, impact=1)[
        "incidentRecordArn"
    ]
    assert c != a and aws.incidents.get(c)["impact"] == 1
    assert aws.incidents.get(a)["title"] == "IoT" and aws.incidents.get(a)["impact"] == 2
    for bad, field in (
        ({**trig, "source": "aws.iot"}, "source"),
        ({**trig, "rawData": "x" * 10001}, "rawData"),
    ):
        with pytest.raises(ClientError) as e:
            inc.start_incident(responsePlanArn=plan, triggerDetails=bad)
        assert _code(e.value) == "ValidationException" and _status(e.value) == 400, field
    with pytest.raises(ClientError) as e:
        inc.start_incident(responsePlanArn=plan, title="t" * 201)
    assert _code(e.value) == "ValidationException"
    with pytest.raises(ClientError) as e:
        inc.start_incident(responsePlanArn=plan.replace("iot-device-compromise", "missing"))
    assert _code(e.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        inc.start_incident(responsePlanArn="not-an-arn")
    assert _code(e.value) == "ValidationException"
    assert len(aws.incidents.incident_records()) == 2


# ------------------------------------------------------------------------------------------ server-side validation
def test_server_validates_requests_the_client_did_not(aws):
    iot = aws.client("iot", parameter_validation=False)
    with pytest.raises(ClientError) as e:
        iot.list_violation_events(startTime=NOW)  # endTime missing
    assert _code(e.value) == "InvalidRequestException" and "endTime" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        iot.list_active_violations(behaviorCriteriaType="FUZZY")
    assert _code(e.value) == "InvalidRequestException"
    inc = aws.client("ssm-incidents", parameter_validation=False)
    with pytest.raises(ClientError) as e:
        inc.start_incident(title="no plan")
    assert _code(e.value) == "ValidationException"


def test_emulator_refuses_to_send_an_invalid_response(aws):
    aws.defender.add_violation_events([{**_event(1, NOW - dt.timedelta(hours=1)), "violationEventType": "weird"}])
    iot = aws.client("iot", retries=ONE_SHOT)
    with pytest.raises(ClientError) as e:
        iot.list_violation_events(startTime=NOW - dt.timedelta(days=1), endTime=NOW)
    assert _status(e.value) == 500 and "violationEventType" in e.value.response["Error"]["Message"]
    assert len(aws.internal_errors) == 1
    aws.internal_errors.clear()


# --------------------------------------------------------------------------------------------------- faults
def test_malformed_page_injection(aws):
    _seed_events(aws, 3)
    iot = aws.client("iot")
    window = {"startTime": NOW - dt.timedelta(days=3), "endTime": NOW}
    bad = {k: v for k, v in _event(9, NOW).items() if k != "violationId"}
    bad["violationEventTime"] = NOW.timestamp()
    aws.faults.malformed_next_page("ListViolationEvents", bad)
    raw = []
    iot.meta.events.register("before-parse", lambda response_dict, **_: raw.append(json.loads(response_dict["body"])))
    got = iot.list_violation_events(**window)["violationEvents"]
    assert len(got) == 4 and "violationId" not in got[-1]
    om = iot.meta.service_model.operation_model("ListViolationEvents")
    assert check_shape(om.output_shape, raw[-1]) == []  # violationId is optional in the model
    aws.faults.malformed_next_page("ListViolationEvents", {**_event(7, NOW), "violationEventType": "exploded"})
    got = iot.list_violation_events(**window)["violationEvents"]
    assert got[-1]["violationEventType"] == "exploded"  # botocore passes unknown enum values through
    problems = check_shape(om.output_shape, raw[-1])
    assert len(problems) == 1 and problems[0].startswith("$.violationEvents[3].violationEventType: 'exploded'")
    aws.faults.malformed_next_page("ListViolationEvents", {**_event(6, NOW), "metricValue": {"count": "many"}})
    with pytest.raises(ValueError):  # botocore's rest-json parser int()s longs
        iot.list_violation_events(**window)
    aws.faults.malformed_next_page("ListViolationEvents", {**_event(8, NOW), "violationEventTime": "yesterday"})
    with pytest.raises(ValueError):  # botocore cannot parse a string timestamp
        iot.list_violation_events(**window)
    assert len(iot.list_violation_events(**window)["violationEvents"]) == 3  # one-shot


def test_throttling_visible_and_retried_by_standard_mode(aws):
    iot_once = aws.client("iot", retries=ONE_SHOT)
    aws.faults.throttle_ratio_by_operation["ListSecurityProfiles"] = 1.0
    with pytest.raises(ClientError) as e:
        iot_once.list_security_profiles()
    assert _code(e.value) == "ThrottlingException"
    aws.faults.throttle_ratio_by_operation.clear()
    iot = aws.client("iot", retries={"max_attempts": 4, "mode": "standard"})
    aws.faults.fail_next("ListSecurityProfiles", "ThrottlingException", 400, "Rate exceeded")
    aws.reset_log()
    resp = iot.list_security_profiles()
    assert resp["ResponseMetadata"]["RetryAttempts"] == 1
    assert [r.error_code for r in aws.requests.filter(operation="ListSecurityProfiles")] == [
        "ThrottlingException",
        None,
    ]
    inc = aws.client("ssm-incidents", retries=ONE_SHOT)
    aws.faults.throttle_ratio = 1.0
    with pytest.raises(ClientError) as e:
        inc.list_response_plans()
    assert _code(e.value) == "ThrottlingException" and _status(e.value) == 429
    aws.faults.throttle_ratio = 0.0


def test_server_errors(aws):
    iot = aws.client("iot", retries=ONE_SHOT)
    aws.faults.error_ratio = 1.0
    codes = set()
    for _ in range(8):
        with pytest.raises(ClientError) as e:
            iot.list_security_profiles()
        codes.add((_code(e.value), _status(e.value)))
    assert codes <= {("InternalFailureException", 500), ("ServiceUnavailableException", 503)}
    assert len(codes) == 2  # seeded RNG alternates both kinds within 8 draws
    aws.faults.error_ratio = 0.0
    aws.faults.latency = 0.05
    t0 = time.monotonic()
    iot.list_security_profiles()
    assert time.monotonic() - t0 >= 0.05
    aws.faults.latency = 0.0


def test_rate_limit_token_bucket(aws):
    iot = aws.client("iot", retries=ONE_SHOT)
    iot.create_thing_group(thingGroupName="g")
    for k in range(40):
        iot.create_thing(thingName=f"t{k}")
    aws.set_rate_limit("AddThingToThingGroup", 10)
    ok = throttled = 0
    t0 = time.monotonic()
    for k in range(40):
        try:
            iot.add_thing_to_thing_group(thingGroupName="g", thingName=f"t{k}")
            ok += 1
        except ClientError as e:
            assert _code(e) == "ThrottlingException"
            throttled += 1
    elapsed = time.monotonic() - t0
    assert throttled > 0
    assert ok <= 10 + 10 * elapsed + 1
    aws.set_rate_limit("AddThingToThingGroup", None)
    aws.faults.enable_defender_quotas()
    codes = []
    for _ in range(25):
        try:
            iot.list_active_violations()
            codes.append(None)
        except ClientError as e:
            codes.append(_code(e))
    assert "ThrottlingException" in codes and codes[:10] == [None] * 10


# ----------------------------------------------------------------------------------------- authentication
def test_bad_keys_and_signatures_refused(aws):
    cases = [
        ("iot", {"access_key": "AKIAUNKNOWN000000000", "secret_key": "x"}, "UnrecognizedClientException"),
        ("sts", {"access_key": "AKIAUNKNOWN000000000", "secret_key": "x"}, "InvalidClientTokenId"),
        ("iot", {"access_key": aws.access_key, "secret_key": "wrong-secret"}, "InvalidSignatureException"),
        ("sts", {"access_key": aws.access_key, "secret_key": "wrong-secret"}, "SignatureDoesNotMatch"),
        ("ssm-incidents", {"access_key": aws.access_key, "secret_key": "wrong-secret"}, "InvalidSignatureException"),
    ]
    for service, creds, code in cases:
        client = aws.client(service, retries=ONE_SHOT, **creds)
        call = {
            "iot": lambda c: c.list_security_profiles(),
            "sts": lambda c: c.get_caller_identity(),
            "ssm-incidents": lambda c: c.list_response_plans(),
        }[service]
        with pytest.raises(ClientError) as e:
            call(client)
        assert (_code(e.value), _status(e.value)) == (code, 403), service
    bad = aws.client("iot", access_key=aws.access_key, secret_key="wrong-secret", retries=ONE_SHOT)
    with pytest.raises(ClientError) as e:  # pass-through to moto is guarded too
        bad.create_thing(thingName="never")
    assert _code(e.value) == "InvalidSignatureException"
    assert aws.client("iot").list_things()["things"] == []


def test_assume_role_external_id_and_expiry(aws):
    role = "arn:aws:iam::210987654321:role/SplunkIoTDefenderReadOnly"
    aws.add_role(role, external_id="splunk-ext-1")
    sts = aws.client("sts")
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role, RoleSessionName="s1")
    assert (_code(e.value), _status(e.value)) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn="arn:aws:iam::210987654321:role/Nope", RoleSessionName="s1", ExternalId="x1")
    assert _code(e.value) == "AccessDenied"
    aws.sts_credential_lifetime_seconds = 2
    creds = sts.assume_role(RoleArn=role, RoleSessionName="splunk", ExternalId="splunk-ext-1")["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert creds["Expiration"] - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(seconds=3)
    tmp = dict(
        access_key=creds["AccessKeyId"], secret_key=creds["SecretAccessKey"], session_token=creds["SessionToken"]
    )
    ident = aws.client("sts", **tmp).get_caller_identity()
    assert ident["Account"] == "210987654321" and ":assumed-role/SplunkIoTDefenderReadOnly/splunk" in ident["Arn"]
    iot = aws.client("iot", retries=ONE_SHOT, **tmp)
    iot.list_security_profiles()
    iot.create_thing(thingName="in-other-account")  # moto pass-through lands in the role's account
    assert aws.client("iot").list_things()["things"] == []
    time.sleep(2.1)
    with pytest.raises(ClientError) as e:
        iot.list_security_profiles()
    assert (_code(e.value), _status(e.value)) == ("ExpiredTokenException", 403)
    with pytest.raises(ClientError) as e:
        iot.list_things()
    assert _code(e.value) == "ExpiredTokenException"
    with pytest.raises(ClientError) as e:
        aws.client("sts", retries=ONE_SHOT, **tmp).get_caller_identity()
    assert _code(e.value) == "ExpiredToken"
    bad_token = {**tmp, "session_token": "forged"}
    with pytest.raises(ClientError) as e:
        aws.client("iot", retries=ONE_SHOT, **bad_token).list_security_profiles()
    assert _code(e.value) == "UnrecognizedClientException"


def test_refreshable_credentials_keep_working_and_expire_all(aws):
    role = "arn:aws:iam::123456789012:role/AddonRole"
    aws.add_role(role)
    aws.sts_credential_lifetime_seconds = 5
    sts = aws.client("sts")

    def refresh():
        c = sts.assume_role(RoleArn=role, RoleSessionName="addon")["Credentials"]
        return {
            "access_key": c["AccessKeyId"],
            "secret_key": c["SecretAccessKey"],
            "token": c["SessionToken"],
            "expiry_time": c["Expiration"].isoformat(),
        }

    creds = RefreshableCredentials.create_from_metadata(refresh(), refresh, "sts-assume-role")
    session = botocore.session.get_session()
    session._credentials = creds
    iot = session.create_client("iot", region_name="us-east-1", endpoint_url=aws.endpoint_url)
    for _ in range(3):
        iot.list_security_profiles()
    assert aws.requests.count(operation="AssumeRole") >= 2  # 5-second credentials are refreshed eagerly
    # credentials handed out earlier expire at once; a static client with them now fails
    c = sts.assume_role(RoleArn=role, RoleSessionName="static")["Credentials"]
    static = aws.client(
        "iot",
        access_key=c["AccessKeyId"],
        secret_key=c["SecretAccessKey"],
        session_token=c["SessionToken"],
        retries=ONE_SHOT,
    )
    static.list_security_profiles()
    assert aws.expire_all_credentials() >= 2
    with pytest.raises(ClientError) as e:
        static.list_security_profiles()
    assert _code(e.value) == "ExpiredTokenException"
    iot.list_security_profiles()  # the refreshing client recovers


def test_accounts_without_features(aws):
    aws.add_account("555555555555")
    aws.add_credentials("AKIA5555555555555555", "secret-5555", "555555555555")
    aws.set_account_features("555555555555", detect=False, incident_manager=False)
    kw = {"access_key": "AKIA5555555555555555", "secret_key": "secret-5555", "retries": ONE_SHOT}
    iot = aws.client("iot", **kw)
    with pytest.raises(ClientError) as e:
        iot.list_violation_events(startTime=NOW - dt.timedelta(days=1), endTime=NOW)
    assert (_code(e.value), _status(e.value)) == ("AccessDeniedException", 403)
    assert "Detect" in e.value.response["Error"]["Message"]
    assert iot.list_audit_tasks(startTime=NOW - dt.timedelta(days=1), endTime=NOW)["tasks"] == []
    with pytest.raises(ClientError) as e:
        aws.client("ssm-incidents", **kw).list_response_plans()
    assert _code(e.value) == "AccessDeniedException"
    assert aws.client("sts", **kw).get_caller_identity()["Account"] == "555555555555"
    # data is per account
    aws.defender.add_violation_events([_event(1, NOW - dt.timedelta(hours=1))], account_id="555555555555")
    assert (
        aws.client("iot").list_violation_events(startTime=NOW - dt.timedelta(days=1), endTime=NOW)["violationEvents"]
        == []
    )


# -------------------------------------------------------------------------------------- moto pass-through
def test_moto_pass_through_registry(aws):
    iot = aws.client("iot")
    iot.create_thing_type(thingTypeName="PumpStation")
    iot.create_thing(
        thingName="pump-station-017", thingTypeName="PumpStation", attributePayload={"attributes": {"site": "line-a"}}
    )
    group_arn = iot.create_thing_group(thingGroupName="quarantine")["thingGroupArn"]
    iot.add_thing_to_thing_group(thingGroupName="quarantine", thingName="pump-station-017")
    assert iot.list_things_in_thing_group(thingGroupName="quarantine")["things"] == ["pump-station-017"]
    iot.create_policy(
        policyName="DenyAll",
        policyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iot:*", "Resource": "*"}]}
        ),
    )
    iot.attach_policy(policyName="DenyAll", target=group_arn)
    assert [p["policyName"] for p in iot.list_attached_policies(target=group_arn)["policies"]] == ["DenyAll"]
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName="pump-station-017", principal=cert["certificateArn"])
    assert iot.list_thing_principals(thingName="pump-station-017")["principals"] == [cert["certificateArn"]]
    iot.update_certificate(certificateId=cert["certificateId"], newStatus="INACTIVE")
    assert (
        iot.describe_certificate(certificateId=cert["certificateId"])["certificateDescription"]["status"] == "INACTIVE"
    )
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["pump-station-017"]
    with pytest.raises(ClientError) as e:
        iot.describe_thing(thingName="missing")
    assert _code(e.value) == "ResourceNotFoundException"
    sns = aws.client("sns")
    topic = sns.create_topic(Name="iot-alerts")["TopicArn"]
    assert sns.publish(TopicArn=topic, Message="hi")["MessageId"]
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="firehose-backup")
    s3.put_object(Bucket="firehose-backup", Key="a/b.json", Body=b"{}")
    assert s3.get_object(Bucket="firehose-backup", Key="a/b.json")["Body"].read() == b"{}"
    # the request log sees pass-through operations and their parameters
    adds = aws.requests.filter(operation="AddThingToThingGroup")
    assert len(adds) == 1 and adds[0].params["thingName"] == "pump-station-017" and not adds[0].emulated
    assert aws.requests.count(operation="UpdateCertificate") == 1
    assert aws.requests.count(operation="PutVerificationStateOnViolation") == 0
    assert {r.service for r in aws.requests} >= {"iot", "sns", "s3"}


def test_concurrent_clients(aws):
    _seed_events(aws, 50)
    iot = aws.client("iot")
    errors = []

    def work():
        try:
            for _ in range(5):
                assert (
                    len(
                        iot.list_violation_events(startTime=NOW - dt.timedelta(days=3), endTime=NOW, maxResults=50)[
                            "violationEvents"
                        ]
                    )
                    == 50
                )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert aws.requests.count(operation="ListViolationEvents") == 20


def test_page_build_speed(aws):
    from tests.harness.aws.common import RequestContext

    start = NOW - dt.timedelta(days=20)
    aws.defender.add_violation_events(_event(i, start + dt.timedelta(seconds=15 * i)) for i in range(20000))
    ctx = RequestContext(
        ACCOUNT, "us-east-1", aws.clock.now(), "arn", "ak", "iot", "ListViolationEvents", "InvalidRequestException"
    )
    params = {"startTime": start, "endTime": NOW, "maxResults": 250}
    t0 = time.perf_counter()
    n = 0
    while True:
        out = aws.defender.op_ListViolationEvents(ctx, params)
        n += len(out["violationEvents"])
        if "nextToken" not in out:
            break
        params = {**params, "nextToken": out["nextToken"]}
    per_page = (time.perf_counter() - t0) / 80
    assert n == 20000
    assert per_page < 0.02  # a 250-item page is built in well under a few ms on a normal machine


def test_detect_mitigation_moves_thing_into_quarantine_group(aws):
    iot = aws.client("iot")
    iot.create_thing(thingName="pump-station-000")
    iot.create_thing_group(thingGroupName="quarantine")
    _seed_events(aws, 6)
    role = "arn:aws:iam::123456789012:role/IoTMitigation"
    created = iot.create_mitigation_action(
        actionName="QuarantineThing",
        roleArn=role,
        actionParams={
            "addThingsToThingGroupParams": {"thingGroupNames": ["quarantine"], "overrideDynamicGroups": True}
        },
    )
    assert created["actionArn"].endswith(":mitigationaction/QuarantineThing")
    with pytest.raises(ClientError) as e:
        iot.create_mitigation_action(
            actionName="QuarantineThing",
            roleArn=role,
            actionParams={"addThingsToThingGroupParams": {"thingGroupNames": ["quarantine"]}},
        )
    assert _code(e.value) == "ResourceAlreadyExistsException"
    iot.create_mitigation_action(
        actionName="Deactivate", roleArn=role, actionParams={"updateDeviceCertificateParams": {"action": "DEACTIVATE"}}
    )
    vid = f"{0:032x}"  # pump-station-000's first event
    with pytest.raises(ClientError) as e:
        iot.start_detect_mitigation_actions_task(taskId="t-bad", target={"violationIds": [vid]}, actions=["Deactivate"])
    assert (
        _code(e.value) == "InvalidRequestException"
        and "ADD_THINGS_TO_THING_GROUP" in e.value.response["Error"]["Message"]
    )
    iot.start_detect_mitigation_actions_task(
        taskId="t-1", target={"violationIds": [vid]}, actions=["QuarantineThing"], clientRequestToken="tok1"
    )
    assert (
        iot.start_detect_mitigation_actions_task(
            taskId="t-1", target={"violationIds": [vid]}, actions=["QuarantineThing"], clientRequestToken="tok1"
        )["taskId"]
        == "t-1"
    )
    assert iot.list_things_in_thing_group(thingGroupName="quarantine")["things"] == ["pump-station-000"]
    summary = iot.describe_detect_mitigation_actions_task(taskId="t-1")["taskSummary"]
    assert summary["taskStatus"] == "SUCCESSFUL" and summary["taskStatistics"]["actionsExecuted"] == 1
    ex = iot.list_detect_mitigation_actions_executions(taskId="t-1")["actionsExecutions"]
    assert [(x["thingName"], x["status"]) for x in ex] == [("pump-station-000", "SUCCESSFUL")]
    # a thing missing from the registry fails its execution, as it would in AWS
    iot.start_detect_mitigation_actions_task(
        taskId="t-2", target={"violationIds": [f"{1:032x}"]}, actions=["QuarantineThing"]
    )
    assert iot.describe_detect_mitigation_actions_task(taskId="t-2")["taskSummary"]["taskStatus"] == "FAILED"


def test_scheduled_audits_describe_finding_and_unimplemented(aws):
    _seed_audit(aws)
    iot = aws.client("iot", retries=ONE_SHOT)
    assert [a["scheduledAuditName"] for a in iot.list_scheduled_audits()["scheduledAudits"]] == ["Daily"]
    f = iot.describe_audit_finding(findingId="task-a-f1")["finding"]
    assert f["isSuppressed"] is True and f["taskId"] == "task-a"
    with pytest.raises(ClientError) as e:
        iot.describe_audit_finding(findingId="nope")
    assert _code(e.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        iot.describe_account_audit_configuration()
    assert (_code(e.value), _status(e.value)) == ("NotImplemented", 501)
    assert len(aws.unimplemented) == 1
    aws.unimplemented.clear()


def test_moto_state_is_per_instance(aws):
    from moto import mock_aws

    aws.client("iot").create_thing(thingName="mine")
    with LoopbackAWS() as other:
        other.client("iot").create_thing(thingName="theirs")
        assert [t["thingName"] for t in other.client("iot").list_things()["things"]] == ["theirs"]
        assert [t["thingName"] for t in aws.client("iot").list_things()["things"]] == ["mine"]
        other.reset()
        assert other.client("iot").list_things()["things"] == []
    import boto3

    with mock_aws():  # an in-process moto mock elsewhere sees neither instance, and does not wipe them
        local = boto3.client("iot", region_name="us-east-1")
        assert local.list_things()["things"] == []
        local.create_thing(thingName="mocked")
    assert [t["thingName"] for t in aws.client("iot").list_things()["things"]] == ["mine"]


# ------------------------------------------------------------------------------------------------ OpsCenter
def _ops_data(dedup=None, **extra):
    data = {k: {"Value": v, "Type": "SearchableString"} for k, v in extra.items()}
    if dedup is not None:
        data["/aws/dedup"] = {"Value": json.dumps({"dedupString": dedup}), "Type": "SearchableString"}
    return data


def test_ops_items_create_get_describe_against_the_ssm_model(aws):
    raw = []

    def capture(operation_model, response_dict, **_):
        if response_dict["body"]:
            raw.append((operation_model, json.loads(response_dict["body"])))

    ssm = aws.client("ssm")
    ssm.meta.events.register("before-parse", capture)
    resources = json.dumps([{"arn": f"arn:aws:iot:us-east-1:{ACCOUNT}:thing/pump-station-001"}])
    made = ssm.create_ops_item(
        Title="pump-station-001: unauthorized listening port",
        Description="Splunk search 'IoT - unauthorized port' matched.",
        Source="Splunk IoT Defender",
        Category="Security",
        Severity="2",
        Priority=2,
        OperationalData={
            **_ops_data("k-1", thing_name="pump-station-001"),
            "/aws/resources": {"Value": resources, "Type": "SearchableString"},
        },
        Notifications=[{"Arn": f"arn:aws:sns:us-east-1:{ACCOUNT}:iot-incidents"}],
    )
    assert made["OpsItemId"].startswith("oi-") and len(made["OpsItemId"]) == 15
    assert made["OpsItemArn"] == f"arn:aws:ssm:us-east-1:{ACCOUNT}:opsitem/{made['OpsItemId']}"
    item = ssm.get_ops_item(OpsItemId=made["OpsItemId"])["OpsItem"]
    assert item["Status"] == "Open" and item["Category"] == "Security" and item["Priority"] == 2
    assert item["OperationalData"]["thing_name"]["Value"] == "pump-station-001"
    assert item["CreatedBy"].endswith(":user/loopback") and isinstance(item["CreatedTime"], dt.datetime)
    found = ssm.describe_ops_items(
        OpsItemFilters=[{"Key": "OperationalDataValue", "Values": ["pump-station-001"], "Operator": "Equal"}]
    )["OpsItemSummaries"]
    assert [s["OpsItemId"] for s in found] == [made["OpsItemId"]]
    ssm.update_ops_item(OpsItemId=made["OpsItemId"], Status="InProgress")
    assert ssm.get_ops_item(OpsItemId=made["OpsItemId"])["OpsItem"]["Version"] == "2"
    assert {om.name for om, _ in raw} == {"CreateOpsItem", "GetOpsItem", "DescribeOpsItems", "UpdateOpsItem"}
    for om, body in raw:
        assert check_shape(om.output_shape, body) == [], om.name
    # other ssm operations still reach moto
    ssm.put_parameter(Name="/x", Value="y", Type="String")
    assert ssm.get_parameter(Name="/x")["Parameter"]["Value"] == "y"


def test_ops_item_dedup_returns_the_open_item_until_it_is_resolved(aws):
    ssm = aws.client("ssm")
    base = {"Title": "t", "Description": "d", "Source": "splunk"}
    first = ssm.create_ops_item(**base, OperationalData=_ops_data("same"))["OpsItemId"]
    again = ssm.create_ops_item(**base, OperationalData=_ops_data("same"))["OpsItemId"]
    other = ssm.create_ops_item(**base, OperationalData=_ops_data("other"))["OpsItemId"]
    assert again == first and other != first
    assert aws.opsitems.create_attempts() == {first: 2, other: 1}
    ssm.update_ops_item(OpsItemId=first, Status="InProgress")
    assert ssm.create_ops_item(**base, OperationalData=_ops_data("same"))["OpsItemId"] == first
    ssm.update_ops_item(OpsItemId=first, Status="Resolved")
    fresh = ssm.create_ops_item(**base, OperationalData=_ops_data("same"))["OpsItemId"]
    assert fresh not in (first, other)
    # the other documented answer: OpsItemAlreadyExistsException naming the open item
    aws.opsitems.dedup_answer = "error"
    with pytest.raises(ClientError) as e:
        ssm.create_ops_item(**base, OperationalData=_ops_data("same"))
    assert _code(e.value) == "OpsItemAlreadyExistsException" and e.value.response["OpsItemId"] == fresh
    # the dedup string is fixed once created
    with pytest.raises(ClientError) as e:
        ssm.update_ops_item(OpsItemId=fresh, OperationalData=_ops_data("changed"))
    assert _code(e.value) == "OpsItemInvalidParameterException"
    assert len(aws.opsitems.ops_items()) == 3
    # OpsItems are regional
    assert aws.client("ssm", region="eu-west-1").describe_ops_items()["OpsItemSummaries"] == []


def test_ops_item_validation(aws):
    ssm = aws.client("ssm", parameter_validation=False)
    base = {"Title": "t", "Description": "d", "Source": "splunk"}
    bad_cases = [
        ({**base, "Title": ""}, "ValidationException"),
        ({**base, "Priority": 6}, "ValidationException"),
        ({**base, "Severity": "x" * 65}, "ValidationException"),
        ({k: v for k, v in base.items() if k != "Source"}, "ValidationException"),
        (
            {**base, "OperationalData": {"aws:thing": {"Value": "x", "Type": "String"}}},
            "OpsItemInvalidParameterException",
        ),
        (
            {**base, "OperationalData": {"/aws/dedup": {"Value": "k", "Type": "SearchableString"}}},
            "OpsItemInvalidParameterException",
        ),
        (
            {**base, "OperationalData": {"/aws/dedup": {"Value": '{"dedupString": "k"}', "Type": "String"}}},
            "OpsItemInvalidParameterException",
        ),
        (
            {**base, "OperationalData": {"/aws/resources": {"Value": '[{"id": "x"}]', "Type": "SearchableString"}}},
            "OpsItemInvalidParameterException",
        ),
        ({**base, "OperationalData": {"k": {"Value": "x", "Type": "Number"}}}, "ValidationException"),
        ({**base, "Source": "splunk.ta-aws-iot"}, "OpsItemInvalidParameterException"),
        ({**base, "Source": "Amazon-ish"}, "OpsItemInvalidParameterException"),
        (
            {**base, "OperationalData": {"k": {"Value": "x" * 20481, "Type": "String"}}},
            "OpsItemInvalidParameterException",
        ),
        (
            {**base, "Notifications": [{"Arn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:t"}]},
            "OpsItemInvalidParameterException",
        ),
    ]
    for params, code in bad_cases:
        with pytest.raises(ClientError) as e:
            ssm.create_ops_item(**params)
        assert _code(e.value) == code and _status(e.value) == 400, params
    with pytest.raises(ClientError) as e:
        ssm.get_ops_item(OpsItemId="oi-000000000000")
    assert _code(e.value) == "OpsItemNotFoundException"
    with pytest.raises(ClientError) as e:
        ssm.describe_ops_items(OpsItemFilters=[{"Key": "InsightByType", "Values": ["x"], "Operator": "Equal"}])
    assert _code(e.value) == "ValidationException"
    assert aws.opsitems.ops_items() == []


def test_describe_ops_items_paginates(aws):
    ssm = aws.client("ssm")
    made = [
        ssm.create_ops_item(Title=f"t{k}", Description="d", Source="splunk", Priority=1 + k % 5)["OpsItemId"]
        for k in range(7)
    ]
    seen = [
        s["OpsItemId"]
        for page in ssm.get_paginator("describe_ops_items").paginate(PaginationConfig={"PageSize": 2})
        for s in page["OpsItemSummaries"]
    ]
    assert seen == made[::-1]
    high = ssm.describe_ops_items(OpsItemFilters=[{"Key": "Priority", "Values": ["2"], "Operator": "LessThan"}])
    assert sorted(s["OpsItemId"] for s in high["OpsItemSummaries"]) == sorted([made[0], made[5]])


def test_update_thing_honours_expected_version(aws):
    iot = aws.client("iot", retries=ONE_SHOT)
    iot.create_thing(thingName="pump-station-001")
    assert iot.describe_thing(thingName="pump-station-001")["version"] == 1
    payload = {"attributes": {"site": "plant-a"}, "merge": True}
    iot.update_thing(thingName="pump-station-001", attributePayload=payload, expectedVersion=1)
    assert iot.describe_thing(thingName="pump-station-001")["version"] == 2
    with pytest.raises(ClientError) as e:
        iot.update_thing(thingName="pump-station-001", attributePayload=payload, expectedVersion=1)
    assert _code(e.value) == "VersionConflictException" and _status(e.value) == 409
    iot.update_thing(thingName="pump-station-001", attributePayload={"attributes": {"site": "b"}, "merge": True})
    thing = iot.describe_thing(thingName="pump-station-001")
    assert thing["version"] == 3 and thing["attributes"] == {"site": "b"}
