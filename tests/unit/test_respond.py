"""iot_defender.respond against moto in-process (IoT registry) and botocore Stubber (ssm-incidents, Device
Defender), which validates every request against the real API model."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from iot_defender import incident as inc
from iot_defender import respond
from iot_defender.aws import AwsSession, ClientSettings
from iot_defender.respond import (
    RECORD_ATTRIBUTE,
    IncidentOptions,
    Keyring,
    MemorySuppressionStore,
    QuarantineOptions,
    QuarantineRecord,
    RateLimiter,
    Responder,
    RunContext,
)
from tests.unit.test_respond_support import ACCOUNT_ID, REGION, account, registry_state, seed_registry

WRITES = {
    "AddThingToThingGroup",
    "RemoveThingFromThingGroup",
    "UpdateThing",
    "UpdateCertificate",
    "CreateThingGroup",
    "CreatePolicy",
    "CreatePolicyVersion",
    "AttachPolicy",
    "StartIncident",
    "Publish",
    "PutVerificationStateOnViolation",
}
NOW = dt.datetime(2025, 11, 22, 10, 15, tzinfo=dt.timezone.utc)
OWN_TAGS = [{"Key": "managed-by", "Value": "TA-aws-iot-defender"}]
RECORD_KEY = bytes(range(32))  # the Splunk path's record key (the credential store's, in production)


def responder(dry_run: bool = False, store=None) -> Responder:
    session = AwsSession(account(), ClientSettings(retry_mode="standard", max_attempts=3))
    return Responder(
        session,
        account_id=ACCOUNT_ID,
        dry_run=dry_run,
        limiter=RateLimiter({}),
        store=store,
        keyring=Keyring([RECORD_KEY]),
    )


def context() -> RunContext:
    return RunContext(sid="scheduler__admin__search__RMD5abc_at_1763806200_42", now=lambda: NOW)


def writes(r: Responder) -> dict:
    return {k: v for k, v in r.stats.summary()["calls"].items() if k in WRITES}


@pytest.fixture
def iot():
    with mock_aws():
        client = boto3.client("iot", region_name=REGION)
        yield client, seed_registry(client)


def state(client, thing: str) -> dict:
    return registry_state(client, thing)


# ------------------------------------------------------------------------------------------ quarantine


def test_quarantine_creates_group_with_isolating_policy_and_records_change(iot):
    client, _ = iot
    r = responder()
    result = r.quarantine("sensor-001", REGION, QuarantineOptions(), context())
    assert result.outcome == "done", result.message
    assert "QUARANTINED" in state(client, "sensor-001")["groups"]
    group_arn = client.describe_thing_group(thingGroupName="QUARANTINED")["thingGroupArn"]
    attached = [p["policyName"] for p in client.list_attached_policies(target=group_arn)["policies"]]
    assert attached == [respond.DEFAULT_POLICY_NAME]
    document = json.loads(client.get_policy(policyName=respond.DEFAULT_POLICY_NAME)["policyDocument"])
    assert all(s["Effect"] == "Deny" for s in document["Statement"])
    record = client.describe_thing(thingName="sensor-001")["attributes"][RECORD_ATTRIBUTE]
    assert re.fullmatch(r"[a-zA-Z0-9_.,@/:#=\[\]-]*", record) and len(record) <= 800
    decoded = QuarantineRecord.decode(record)
    assert decoded.group == "QUARANTINED" and decoded.certificates == []
    assert decoded.at == "2025-11-22T10:15:00.000Z"
    assert result.details["setup_changes"]
    # second run: nothing to do, no write at all
    again = responder()
    second = again.quarantine("sensor-001", REGION, QuarantineOptions(), context())
    assert second.outcome == "already-in-state"
    assert writes(again) == {}


def test_quarantine_and_release_with_certificates_restore_exactly(iot):
    client, certs = iot
    before = state(client, "sensor-001")
    active, inactive, revoked = (c["certificateId"] for c in certs["sensor-001"])
    assert before["certificates"] == {active: "ACTIVE", inactive: "INACTIVE", revoked: "REVOKED"}
    options = QuarantineOptions(deactivate_certificates=True)
    result = responder().quarantine("sensor-001", REGION, options, context())
    assert result.outcome == "done"
    assert result.details["certificates_deactivated"] == [active]
    during = state(client, "sensor-001")
    assert during["certificates"] == {active: "INACTIVE", inactive: "INACTIVE", revoked: "REVOKED"}
    assert QuarantineRecord.decode(during["attributes"][RECORD_ATTRIBUTE]).certificates == [active]

    released = responder().release("sensor-001", REGION, options, context())
    assert released.outcome == "done", released.message
    assert released.details["certificates_reactivated"] == [active]
    assert state(client, "sensor-001") == before  # groups, attributes and certificate statuses all restored
    again = responder().release("sensor-001", REGION, options, context())
    assert again.outcome == "already-in-state"


def test_big_runs_read_the_quarantine_group_once_instead_of_each_things_groups(iot):
    client, _ = iot
    client.create_thing_group(thingGroupName="QUARANTINED", tags=OWN_TAGS)  # the add-on's, from an earlier run
    client.add_thing_to_thing_group(thingGroupName="QUARANTINED", thingName="sensor-002")
    session = AwsSession(account(), ClientSettings(retry_mode="standard", max_attempts=3))
    r = Responder(
        session,
        account_id=ACCOUNT_ID,
        limiter=RateLimiter({}),
        run_size=respond.BULK_MEMBERSHIP_MIN,
        keyring=Keyring([RECORD_KEY]),
    )
    results = [r.quarantine(t, REGION, QuarantineOptions(), context()) for t in ("sensor-001", "sensor-002")]
    # sensor-002 was put in the group by hand: quarantine still isolates its certificate
    assert [x.outcome for x in results] == ["done", "done"]
    assert "added to thing group" not in results[1].message and results[1].details["certificates_isolated"]
    calls = r.stats.summary()["calls"]
    assert calls["ListThingsInThingGroup"] == 1 and "ListThingGroupsForThing" not in calls
    guarded = Responder(
        session, account_id=ACCOUNT_ID, limiter=RateLimiter({}), run_size=100, keyring=Keyring([RECORD_KEY])
    )
    guarded.quarantine("sensor-001", REGION, QuarantineOptions(protected_groups=("pumps",)), context())
    assert "ListThingGroupsForThing" in guarded.stats.summary()["calls"]  # protection needs each thing's groups


def test_release_keeps_membership_that_predates_quarantine(iot):
    client, _ = iot
    client.create_thing_group(thingGroupName="QUARANTINED", tags=OWN_TAGS)  # the add-on's, from an earlier run
    client.add_thing_to_thing_group(thingGroupName="QUARANTINED", thingName="sensor-002")
    before = state(client, "sensor-002")
    result = responder().quarantine("sensor-002", REGION, QuarantineOptions(deactivate_certificates=True), context())
    assert result.outcome == "done" and result.details["was_member"] is True
    responder().release("sensor-002", REGION, QuarantineOptions(), context())
    assert state(client, "sensor-002") == before


def test_release_never_reactivates_a_certificate_revoked_meanwhile(iot):
    client, certs = iot
    cert = certs["sensor-002"][0]["certificateId"]
    responder().quarantine("sensor-002", REGION, QuarantineOptions(deactivate_certificates=True), context())
    client.update_certificate(certificateId=cert, newStatus="REVOKED")
    result = responder().release("sensor-002", REGION, QuarantineOptions(), context())
    assert result.outcome == "done"
    assert result.details["certificates_reactivated"] == []
    assert any("REVOKED" in n for n in result.details["notes"])
    assert state(client, "sensor-002")["certificates"][cert] == "REVOKED"


def test_shared_certificate_stays_inactive_while_the_other_thing_is_quarantined(iot):
    client, certs = iot
    cert = certs["sensor-002"][0]
    client.attach_thing_principal(thingName="pump-station-017", principal=cert["certificateArn"])
    options = QuarantineOptions(deactivate_certificates=True)
    responder().quarantine("sensor-002", REGION, options, context())
    responder().quarantine("pump-station-017", REGION, options, context())
    result = responder().release("sensor-002", REGION, options, context())
    assert result.outcome == "done"
    assert result.details["certificates_reactivated"] == []
    assert state(client, "sensor-002")["certificates"][cert["certificateId"]] == "INACTIVE"


def test_protected_group_directly_and_through_child_group(iot):
    client, _ = iot
    options = QuarantineOptions(protected_groups=("critical-infra",))
    r = responder()
    result = r.quarantine("pump-station-017", REGION, options, context())
    assert result.outcome == "refused-protected"
    assert "critical-infra (through pumps)" in result.message
    direct = r.quarantine("sensor-001", REGION, QuarantineOptions(protected_groups=("sensors",)), context())
    assert direct.outcome == "refused-protected"
    assert "QUARANTINED" not in state(client, "pump-station-017")["groups"]
    assert not {"AddThingToThingGroup", "UpdateThing", "UpdateCertificate"} & set(writes(r))


@pytest.mark.parametrize("name", ["", "bad name", "x" * 129, "thing/../../etc", "a\nb", "$aws"])
def test_invalid_thing_name_refused_without_any_call(iot, name):
    r = responder()
    for result in (
        r.quarantine(name, REGION, QuarantineOptions(), context()),
        r.release(name, REGION, QuarantineOptions(), context()),
        r.start_incident(name, REGION, {}, IncidentOptions(response_plan_arn=PLAN), context()),
    ):
        assert result.outcome == "refused-invalid"
        assert "not a valid thing name" in result.message
    assert r.stats.summary()["total_calls"] == 0


def test_unknown_thing_refused_without_write(iot):
    r = responder()
    result = r.quarantine("no-such-thing", REGION, QuarantineOptions(), context())
    assert result.outcome == "refused-invalid" and "does not exist" in result.message
    release = r.release("no-such-thing", REGION, QuarantineOptions(), context())
    assert release.outcome == "refused-invalid"
    assert set(writes(r)) <= {"CreateThingGroup", "CreatePolicy", "AttachPolicy"}  # setup only, no thing write


def test_dry_run_writes_nothing(iot):
    client, _ = iot
    before = {t: state(client, t) for t in ("sensor-001", "sensor-002")}
    r = responder(dry_run=True)
    options = QuarantineOptions(deactivate_certificates=True)
    results = [r.quarantine(t, REGION, options, context()) for t in ("sensor-001", "sensor-002")]
    assert [x.outcome for x in results] == ["dry-run", "dry-run"]
    plan = results[0].details["plan"]
    assert "create thing group QUARANTINED" in plan and any(p.startswith("deactivate certificate") for p in plan)
    assert writes(r) == {}
    assert {t: state(client, t) for t in before} == before
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_thing_group(thingGroupName="QUARANTINED")


def test_thing_without_type_and_three_attributes_still_quarantined(iot):
    client, certs = iot
    before = state(client, "crowded")
    result = responder().quarantine("crowded", REGION, QuarantineOptions(deactivate_certificates=True), context())
    assert result.outcome == "warning"  # isolated, but the record could not be stored: the analyst must know
    assert result.details["record_stored"] is False
    assert "WARNING" in result.message and "3 attributes" in result.message and "nor reactivate" in result.message
    assert client.describe_thing(thingName="crowded")["attributes"] == before["attributes"]
    released = responder().release("crowded", REGION, QuarantineOptions(), context())
    assert released.outcome == "warning" and "still carry isolation policy" in released.message
    after = state(client, "crowded")
    assert after["groups"] == before["groups"]
    assert after["certificates"][certs["crowded"][0]["certificateId"]] == "INACTIVE"  # never guessed back


def test_policy_mode_change_creates_new_default_version(iot):
    client, _ = iot
    responder().quarantine("sensor-001", REGION, QuarantineOptions(allow_remediation=True), context())
    responder().quarantine("sensor-002", REGION, QuarantineOptions(allow_remediation=False), context())
    document = json.loads(client.get_policy(policyName=respond.DEFAULT_POLICY_NAME)["policyDocument"])
    assert document["Statement"] == [{"Sid": "QuarantineDenyAll", "Effect": "Deny", "Action": "iot:*", "Resource": "*"}]


def test_failures_are_isolated_per_thing(iot):
    r = responder()
    things = ["sensor-001", "bad name", "no-such-thing", "sensor-002"]

    def work(name):
        if name == "sensor-002":
            raise RuntimeError("boom")
        return r.quarantine(name, REGION, QuarantineOptions(), context())

    results = respond.run_all(things, work, lambda n, e: r.crashed("x", n, REGION, e), workers=4)
    assert [x.outcome for x in results] == ["done", "refused-invalid", "refused-invalid", "failed"]
    assert results[3].error_code == "RuntimeError"


# ------------------------------------------------------------------------------------------ records, policy


def test_record_encoding_fits_attribute_rules():
    certs = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(30)]  # ids as AWS makes them
    record = QuarantineRecord(at="2025-11-22T10:15:00.000Z", group="QUARANTINED", certificates=certs, by="s" * 200)
    value = record.encode()
    assert len(value) <= 800 and re.fullmatch(r"[a-zA-Z0-9_.,@/:#=\[\]-]*", value)
    decoded = QuarantineRecord.decode(value)
    assert [c for c in decoded.certificates] == [c[: len(decoded.certificates[0])] for c in certs]
    assert len(decoded.certificates[0]) >= 16
    small = QuarantineRecord(at="2025-11-22T10:15:00.000Z", certificates=certs[:2], by="1763806200.42 x;y")
    assert QuarantineRecord.decode(small.encode()) == QuarantineRecord(
        at="2025-11-22T10:15:00.000Z", certificates=certs[:2], by="1763806200.42_x_y"
    )
    assert QuarantineRecord.decode("something else") is None
    assert QuarantineRecord.decode("v1,g=X") is None


def test_isolation_policy_remediation_mode_leaves_only_own_shadow_and_jobs():
    policy = respond.isolation_policy("aws-us-gov", "us-gov-west-1", ACCOUNT_ID, True)
    statements = {s["Sid"]: s for s in policy["Statement"]}
    messaging = statements["QuarantineDenyMessagingExceptOwnShadowAndJobs"]
    assert messaging["Effect"] == "Deny"
    assert messaging["NotResource"] == [
        "arn:aws-us-gov:iot:us-gov-west-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*",
        "arn:aws-us-gov:iot:us-gov-west-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*",
    ]
    assert "iot:Receive" in messaging["Action"]  # wildcard subscriptions cannot leak other topics
    assert "iot:AssumeRoleWithCertificate" in statements["QuarantineDenyCredentialsAndRetained"]["Action"]


def test_options_refused_before_any_call():
    with pytest.raises(respond.OptionError):
        QuarantineOptions(group="bad group").check()
    with pytest.raises(respond.OptionError):
        QuarantineOptions(protected_groups=("QUARANTINED",)).check()
    with pytest.raises(respond.OptionError):
        IncidentOptions(response_plan_arn="arn:aws:ssm-incidents::12:response-plan/x").check()
    with pytest.raises(respond.OptionError):
        IncidentOptions(response_plan_arn=PLAN).check("aws-cn")
    with pytest.raises(inc.TemplateError):
        IncidentOptions(response_plan_arn=PLAN, impact="7").check()
    with pytest.raises(respond.OptionError):
        IncidentOptions(response_plan_arn=PLAN, source="aws.iot").check()
    with pytest.raises(respond.OptionError):
        IncidentOptions(destination="sns", sns_topic_arn="arn:aws:sqs:us-east-1:123456789012:q").check()
    IncidentOptions(destination="sns", sns_topic_arn="arn:aws:sns:us-east-1:123456789012:soc.fifo").check("aws")


def test_rate_limiter_spaces_calls_per_operation():
    clock = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter({"AddThingToThingGroup": 100}, fraction=1.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire("AddThingToThingGroup")
        limiter.acquire("DescribeThing")  # unpaced
    assert clock[0] == pytest.approx(0.04)
    assert sleeps == [pytest.approx(0.01)] * 4


# ------------------------------------------------------------------------------------------ incidents

PLAN = "arn:aws:ssm-incidents::123456789012:response-plan/iot-critical"
ROW = {
    "thing_name": "pump-station-017",
    "behavior_name": "AuthorizedTcpPorts",
    "violationId": "8a1b0c2d3e4f56789a0b1c2d3e4f5a6b",
    "severity_impact": "2",
    "_time": "1763806200",
    "_raw": "x" * 30000,
}


class StubbedResponder(Responder):
    """moto for IoT, a Stubber-validated ssm-incidents/sns client for the rest."""

    def __init__(self, stubbed: dict, **kw):
        super().__init__(AwsSession(account()), account_id=ACCOUNT_ID, limiter=RateLimiter({}), **kw)
        self.stubbed = stubbed
        own = self.calls._client
        self.calls._client = lambda service, region: stubbed.get(service) or own(service, region)  # type: ignore[method-assign]


def incident_stub():
    client = boto3.client("ssm-incidents", region_name=REGION)
    return client, Stubber(client)


def test_start_incident_request_shape_token_and_suppression(iot):
    client, stub = incident_stub()
    arn = "arn:aws:ssm-incidents::123456789012:incident-record/iot-critical/abc"
    expected = {
        "clientToken": inc.client_token("sid-1", "pump-station-017", ROW["violationId"]),
        "responsePlanArn": PLAN,
        "title": "IoT Device Defender: pump-station-017 AuthorizedTcpPorts",
        "impact": 2,
        "relatedItems": ANY,
        "triggerDetails": ANY,
    }
    stub.add_response("start_incident", {"incidentRecordArn": arn}, expected)
    stub.add_response("start_incident", {"incidentRecordArn": arn}, expected)
    store = MemorySuppressionStore()
    r = StubbedResponder({"ssm-incidents": client}, store=store)
    options = IncidentOptions(response_plan_arn=PLAN, impact="{severity_impact}", suppression_minutes=60)
    ctx = RunContext(sid="sid-1", results_link="https://splunk.example.com/app/search/@go?sid=sid-1", now=lambda: NOW)
    with stub:
        first = r.start_incident("pump-station-017", REGION, ROW, options, ctx, violation_id=ROW["violationId"])
        repeat = r.start_incident("pump-station-017", REGION, ROW, options, ctx, violation_id=ROW["violationId"])
        other = r.start_incident(
            "pump-station-017", REGION, ROW, options, RunContext(sid="sid-2", now=lambda: NOW), violation_id="ffff"
        )
    assert first.outcome == "done" and first.details["incident_record_arn"] == arn
    assert repeat.outcome == "already-in-state"  # same token, same incident
    assert other.outcome == "already-in-state" and other.details["suppressed"] is True
    stub.assert_no_pending_responses()


def test_unreadable_suppression_state_does_not_stop_the_incident(iot):
    class Broken(MemorySuppressionStore):
        def get(self, key):
            raise ConnectionError("KV store is not ready")

        def put(self, key, value):
            raise ConnectionError("KV store is not ready")

    client, stub = incident_stub()
    stub.add_response(
        "start_incident", {"incidentRecordArn": "arn:aws:ssm-incidents::123456789012:incident-record/p/1"}
    )
    r = StubbedResponder({"ssm-incidents": client}, store=Broken())
    with stub:
        result = r.start_incident(
            "pump-station-017", REGION, ROW, IncidentOptions(response_plan_arn=PLAN, suppression_minutes=30), context()
        )
    assert result.outcome == "done"
    assert result.details["suppression_state"] == "not saved (ConnectionError)"


def test_start_incident_related_items_and_raw_data(iot):
    client, stub = incident_stub()
    captured = {}

    def capture(params, **_):
        captured.update(params)

    client.meta.events.register("before-parameter-build.ssm-incidents.StartIncident", capture)
    stub.add_response(
        "start_incident", {"incidentRecordArn": "arn:aws:ssm-incidents::123456789012:incident-record/p/1"}
    )
    r = StubbedResponder({"ssm-incidents": client})
    ctx = RunContext(sid="sid-1", results_link="https://splunk.example.com/app/search/@go?sid=sid-1", now=lambda: NOW)
    with stub:
        result = r.start_incident("pump-station-017", REGION, ROW, IncidentOptions(response_plan_arn=PLAN), ctx)
    assert result.outcome == "done"
    trigger = captured["triggerDetails"]
    assert trigger["source"] == inc.TRIGGER_SOURCE and not trigger["source"].startswith("aws.")
    assert trigger["timestamp"] == dt.datetime(2025, 11, 22, 10, 10, tzinfo=dt.timezone.utc)
    assert len(trigger["rawData"].encode()) <= 10000
    assert json.loads(trigger["rawData"])["thing_name"] == "pump-station-017"
    urls = [i["identifier"]["value"].get("url") for i in captured["relatedItems"]]
    assert "https://us-east-1.console.aws.amazon.com/iot/home?region=us-east-1#/thing/pump-station-017" in urls
    assert "https://splunk.example.com/app/search/@go?sid=sid-1" in urls


def test_start_incident_bad_impact_row_refused_before_call(iot):
    client, stub = incident_stub()
    r = StubbedResponder({"ssm-incidents": client})
    with stub:
        result = r.start_incident(
            "pump-station-017",
            REGION,
            dict(ROW, severity_impact="9"),
            IncidentOptions(response_plan_arn=PLAN, impact="{severity_impact}"),
            context(),
        )
    assert result.outcome == "refused-invalid" and "out of range" in result.message
    stub.assert_no_pending_responses()


def test_publish_incident_to_fifo_topic(iot):
    sns = boto3.client("sns", region_name=REGION)
    stub = Stubber(sns)
    topic = "arn:aws:sns:us-east-1:123456789012:soc-incidents.fifo"
    token = inc.client_token("sid-1", "pump-station-017", "")
    stub.add_response(
        "publish",
        {"MessageId": "m-1"},
        {
            "TopicArn": topic,
            "Subject": "IoT Device Defender: pump-station-017 AuthorizedTcpPorts",
            "Message": ANY,
            "MessageAttributes": ANY,
            "MessageGroupId": "pump-station-017",
            "MessageDeduplicationId": token,
        },
    )
    store = MemorySuppressionStore()
    r = StubbedResponder({"sns": sns}, store=store)
    options = IncidentOptions(destination="sns", sns_topic_arn=topic)
    ctx = RunContext(sid="sid-1", now=lambda: NOW)
    with stub:
        first = r.start_incident("pump-station-017", REGION, ROW, options, ctx)
        again = r.start_incident("pump-station-017", REGION, ROW, options, ctx)
    assert first.outcome == "done" and first.details["message_id"] == "m-1"
    assert again.outcome == "already-in-state"


def test_verification_state(iot):
    iot_client = boto3.client("iot", region_name=REGION)
    stub = Stubber(iot_client)
    stub.add_response(
        "put_verification_state_on_violation",
        {},
        {
            "violationId": "8a1b0c2d3e4f56789a0b1c2d3e4f5a6b",
            "verificationState": "TRUE_POSITIVE",
            "verificationStateDescription": "confirmed by analyst: port 21 open",
        },
    )
    r = StubbedResponder({"iot": iot_client})
    with stub:
        done = r.set_verification_state(
            "8a1b0c2d3e4f56789a0b1c2d3e4f5a6b", REGION, "TRUE_POSITIVE", "confirmed by analyst:\nport 21 open"
        )
        bad = r.set_verification_state("not/valid", REGION, "TRUE_POSITIVE")
        bad_state = r.set_verification_state("abc", REGION, "MAYBE")
    assert done.outcome == "done"
    assert bad.outcome == "refused-invalid" and bad_state.outcome == "refused-invalid"
    stub.assert_no_pending_responses()


# ------------------------------------------------------------------------------------------ incident helpers


def test_raw_data_truncation_keeps_valid_json_under_limit():
    row = {"a": "é" * 20000, "b": "short", "_raw": "z" * 50000, "__mv_a": "$x$", "rid": "0"}
    text = inc.raw_data(row)
    assert len(text.encode("utf-8")) <= 10000
    data = json.loads(text)
    assert data["b"] == "short" and "__mv_a" not in data and "rid" not in data
    assert data["a"].endswith("...[truncated]")
    many = {f"field{i:05d}": "v" * 50 for i in range(2000)}
    text = inc.raw_data(many)
    assert len(text.encode("utf-8")) <= 10000 and int(json.loads(text)["_truncated_fields"]) > 0
    assert inc.raw_data({"x": "y"}) == '{"x":"y"}'


def test_templates_and_tokens():
    row = {"thing_name": "t1", "behavior_name": "Ports\r\nInjected: yes", "n": "3"}
    assert inc.render_template("IoT {thing_name} {behavior_name} {missing}", row, 200) == (
        "IoT t1 Ports, Injected: yes"
    )
    assert len(inc.render_template("{x}", {"x": "a" * 500}, 200)) == 200
    assert inc.render_template("{a|behavior.name}", {"a": "", "behavior.name": "Ports"}, 50) == "Ports"
    assert inc.template_fields("{a|b} {c}") == ["a", "b", "c"]
    assert inc.render_impact("{n}", row) == 3
    for bad in ("0", "6", "x", "{missing}"):
        with pytest.raises(inc.TemplateError):
            inc.render_impact(bad, row)
    token = inc.client_token("sid", "thing", "v1")
    assert token == inc.client_token("sid", "thing", "v1") != inc.client_token("sid", "thing", "v2")
    assert len(token) <= 128
    assert inc.console_url("aws-cn", "cn-north-1", "a:b").startswith("https://console.amazonaws.cn/iot/home")
    assert inc.console_url("aws-us-gov", "us-gov-west-1", "t").startswith("https://console.amazonaws-us-gov.com/")
    assert inc.safe_link("javascript:alert(1)") is None and inc.safe_link("https://x/" + "a" * 2000) is None
