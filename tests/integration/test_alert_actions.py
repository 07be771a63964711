"""The four alert actions as splunkd runs them: the BUILT ``bin/<action>.py --execute`` (output/, `make build`)
with a JSON payload on stdin and a gzipped results file, against the loopback splunkd stand-in (account,
KV store) and LoopbackAWS (moto IoT registry + the Device Defender / Incident Manager emulator). Every test
checks AWS state afterwards and the ``aws:iot:defender:action`` events the action spooled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from tests.harness import runner
from tests.harness.aws import LoopbackAWS
from tests.harness.fleet import PROTECTED_GROUP, Fleet
from tests.harness.splunkd import SplunkdStandIn, SplunkHome
from tests.unit.test_respond_support import certificate_pems

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "output" / "TA-aws-iot-defender"
POLICY = "TA-IoTDefender-Quarantine"
SOURCETYPE = "aws:iot:defender:action"
READ_PREFIXES = ("Describe", "List", "Get")

pytestmark = pytest.mark.skipif(
    not (APP_DIR / "bin" / "iot_quarantine_thing.py").is_file(), reason="add-on not built (run `make build`)"
)


class Env:
    def __init__(self, aws: LoopbackAWS, splunkd: SplunkdStandIn, home: SplunkHome, fleet: Fleet):
        self.aws = aws
        self.splunkd = splunkd
        self.home = home
        self.fleet = fleet
        self.iot = aws.client("iot")
        # Only the endpoint: credentials must come from the configured account, not the environment.
        self.env = {"AWS_ENDPOINT_URL": aws.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true"}

    def run(self, action: str, params: Dict[str, Any], rows: List[Dict[str, Any]], **kw: Any):
        self.aws.reset_log()
        result = runner.run_alert(
            self.home, action, {"account": "prod", **params}, rows, standin=self.splunkd, env=self.env, **kw
        )
        result.aws_writes = [
            r.operation for r in self.aws.requests if r.service != "sts" and not r.operation.startswith(READ_PREFIXES)
        ]
        result.aws_calls = [r.operation for r in self.aws.requests]
        actions = [e for e in result.events if e["sourcetype"] == SOURCETYPE]
        result.actions = sorted(actions, key=lambda e: int(e["orig_rid"] or 0))
        return result

    def state(self, thing: str) -> Dict[str, Any]:
        groups = sorted(g["groupName"] for g in self.iot.list_thing_groups_for_thing(thingName=thing)["thingGroups"])
        certs = {}
        for arn in self.iot.list_thing_principals(thingName=thing)["principals"]:
            cert_id = arn.rsplit("/", 1)[-1]
            certs[cert_id] = self.iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]
        attributes = self.iot.describe_thing(thingName=thing)["attributes"]
        return {"groups": groups, "certificates": certs, "attributes": attributes}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with LoopbackAWS() as aws, SplunkdStandIn() as splunkd:
        fleet = Fleet(seed=7, things=12, days=1, compromised=2)
        fleet.install(aws, registry_limit=12)
        # the quarantined thing gets one more ACTIVE and one INACTIVE certificate beside the fleet's own
        iot = aws.client("iot")
        for pem, status in zip(certificate_pems()[:2], ("ACTIVE", "INACTIVE")):
            cert = iot.register_certificate_without_ca(certificatePem=pem, status=status)
            iot.attach_thing_principal(thingName=fleet.compromised_things[0], principal=cert["certificateArn"])
        home = SplunkHome.create(tmp_path_factory.mktemp("respond"), app_dir=APP_DIR, splunkd=splunkd)
        splunkd.create_account(
            "prod",
            {
                "credential_source": "access_key",
                "aws_access_key_id": aws.access_key,
                "partition": "aws",
                "default_region": aws.region,
            },
            {"aws_secret_access_key": aws.secret_key},
        )
        # the record keys, as the Response tab saves them (setup creates them; the actions never do)
        splunkd.create_account("response", {}, {"record_keys": RECORD_KEYS}, conf="ta_aws_iot_defender_settings")
        yield Env(aws, splunkd, home, fleet)


RECORD_KEYS = "Zr3cord-key-2026-rotated-in-" + "q" * 16 + ",older-record-key-still-verifies-" + "w" * 8


def outcomes(result) -> List[str]:
    return [a["event"]["outcome"] for a in result.actions]


def protected_thing(fleet: Fleet) -> str:
    return next(t.name for t in fleet.things if PROTECTED_GROUP in t.groups)


def plain_thing(fleet: Fleet, skip: int = 0) -> str:
    """The ``skip``-th thing that is neither compromised nor protected and has an ACTIVE certificate."""
    compromised = set(fleet.compromised_things)
    plain = [
        t.name
        for t in fleet.things
        if PROTECTED_GROUP not in t.groups and t.name not in compromised and t.certificate.status == "ACTIVE"
    ]
    return plain[skip]


# ------------------------------------------------------------------------------------------ quarantine / release


def test_quarantine_then_release_restores_exactly(env):
    thing = env.fleet.compromised_things[0]
    before = env.state(thing)
    assert sorted(before["certificates"].values())[:2] == ["ACTIVE", "INACTIVE"]
    rows = [{"thing_name": thing, "behavior_name": "AuthorizedTcpPorts", "violationId": "v-1"}]
    params = {"deactivate_certificates": "1", "protected_groups": PROTECTED_GROUP}
    result = env.run("iot_quarantine_thing", params, rows, search_name="IoT compromised device")
    assert result.exit_code == 0, result.stderr + result.log_lines
    (event,) = result.actions
    body = event["event"]
    assert body["outcome"] == "done" and body["action"] == "iot_quarantine_thing"
    assert event["orig_sid"] == result.payload["sid"] == body["orig_sid"] and event["orig_rid"] == "0"
    assert body["search_name"] == "IoT compromised device" and body["account_id"] == env.aws.account_id
    assert event["index"] == "main" and event["source"].endswith(":iot_quarantine_thing")

    during = env.state(thing)
    assert "QUARANTINED" in during["groups"]
    group_arn = env.iot.describe_thing_group(thingGroupName="QUARANTINED")["thingGroupArn"]
    assert [p["policyName"] for p in env.iot.list_attached_policies(target=group_arn)["policies"]] == [POLICY]
    document = json.loads(env.iot.get_policy(policyName=POLICY)["policyDocument"])
    assert {s["Effect"] for s in document["Statement"]} == {"Deny"}
    deactivated = [c for c, s in before["certificates"].items() if s == "ACTIVE"]
    assert all(during["certificates"][c] == "INACTIVE" for c in deactivated)
    record = during["attributes"]["iotdefender_quarantine"]
    assert f"c={'/'.join(deactivated)}" in record and "g=QUARANTINED" in record
    assert f"by={result.payload['sid']}" in record
    assert body["details"]["certificates_deactivated"] == deactivated

    again = env.run("iot_quarantine_thing", params, rows)
    assert again.exit_code == 0 and outcomes(again) == ["already-in-state"]
    assert again.aws_writes == []

    released = env.run("iot_release_thing", {}, rows)
    assert released.exit_code == 0, released.log_lines
    assert outcomes(released) == ["done"]
    assert env.state(thing) == before  # membership, certificate status and attributes exactly as before


def test_a_big_run_reads_the_quarantine_group_once(env):
    """From 50 things on (no protected groups), quarantine reads the group's members once instead of each thing's
    groups: a dry run over 50 new things shows it without writing anything."""
    names = [f"bulk-device-{n:02d}" for n in range(50)]
    for name in names:
        env.iot.create_thing(thingName=name)
    result = env.run("iot_quarantine_thing", {"dry_run": "1", "max_things": "60"}, [{"thing_name": n} for n in names])
    assert result.exit_code == 0, result.log_lines
    assert set(outcomes(result)) == {"dry-run"} and result.aws_writes == []
    assert result.aws_calls.count("ListThingsInThingGroup") == 1 and "ListThingGroupsForThing" not in result.aws_calls


def test_dry_run_changes_nothing(env):
    things = [plain_thing(env.fleet, 0), env.fleet.compromised_things[1]]
    before = {t: env.state(t) for t in things}
    rows = [{"thing_name": t} for t in things]
    result = env.run("iot_quarantine_thing", {"dry_run": "1", "deactivate_certificates": "1"}, rows)
    assert result.exit_code == 0, result.log_lines
    assert outcomes(result) == ["dry-run", "dry-run"]
    assert all(a["event"]["dry_run"] is True for a in result.actions)
    assert any(p.startswith("deactivate certificate") for p in result.actions[0]["event"]["details"]["plan"])
    assert result.aws_writes == []
    assert {t: env.state(t) for t in things} == before


def test_bad_rows_refused_one_by_one_without_any_write(env):
    good = plain_thing(env.fleet, 1)
    rows = [
        {"host": "no thing field at all"},
        {"thing_name": "bad name; rm -rf /"},
        {"thing_name": "no-such-thing-999"},
        {"thing_name": protected_thing(env.fleet)},
        {"thing_name": "x" * 129},
        {"thing_name": plain_thing(env.fleet, 2), "_raw": "A" * 300_000},
        {"dest": good},  # fallback field
    ]
    before = env.state(good)
    result = env.run("iot_quarantine_thing", {"protected_groups": PROTECTED_GROUP, "dry_run": "1"}, rows)
    assert result.exit_code == 6, result.log_lines  # some rows refused, none failed
    messages = [a["event"]["message"] for a in result.actions]
    assert outcomes(result) == [
        "refused-invalid",
        "refused-invalid",
        "refused-invalid",
        "refused-protected",
        "refused-invalid",
        "refused-invalid",
        "dry-run",
    ]
    assert "has no thing name" in messages[0]
    assert "not a valid thing name" in messages[1] and "not a valid thing name" in messages[4]
    assert "does not exist" in messages[2]
    assert "protected thing group protected-critical" in messages[3]
    assert "above the 262144-byte limit" in messages[5]
    assert [a["orig_rid"] for a in result.actions] == [str(i) for i in range(len(rows))]
    assert result.aws_writes == []
    assert env.state(good) == before
    assert any("exit code 6" in line for line in result.log_lines)


def test_too_many_things_refuses_the_whole_run_before_any_aws_call(env):
    rows = [{"thing_name": f"thing-{i:03d}"} for i in range(26)]
    result = env.run("iot_quarantine_thing", {}, rows)
    assert result.exit_code == 4
    assert outcomes(result) == ["refused-limit"] * 26
    assert "26 things, above the limit of 25" in result.actions[0]["event"]["message"]
    assert result.aws_calls == []  # not even STS
    assert any("run refused" in line for line in result.log_lines)


# ------------------------------------------------------------------------------------------ incidents


def incident_rows(thing: str, violation: str = "8a1b0c2d3e4f56789a0b1c2d3e4f5a6b") -> List[Dict[str, Any]]:
    return [
        {
            "thing_name": thing,
            "behavior_name": "AuthorizedTcpPorts",
            "violationId": violation,
            "severity": "2",
            "_time": "1763806200",
        }
    ]


def test_same_alert_fired_twice_makes_one_incident(env):
    thing = env.fleet.compromised_things[0]
    params = {"response_plan_arn": env.fleet.response_plan_arn, "impact": "{severity}"}
    before = len(env.aws.incidents.incident_records())
    first = env.run("iot_start_incident", params, incident_rows(thing), sid="scheduler__admin__search__RMD5a_at_1_7")
    assert first.exit_code == 0, first.log_lines
    second = env.run("iot_start_incident", params, incident_rows(thing), sid="scheduler__admin__search__RMD5a_at_1_7")
    assert second.exit_code == 0, second.log_lines
    records = env.aws.incidents.incident_records()
    assert len(records) == before + 1
    record = records[-1]
    assert record["title"] == f"IoT Device Defender: {thing} AuthorizedTcpPorts" and record["impact"] == 2
    assert record["incidentRecordSource"]["source"] == "splunk.ta-aws-iot-defender"
    urls = [i["identifier"]["value"].get("url") for i in record["relatedItems"]]
    assert f"https://us-east-1.console.aws.amazon.com/iot/home?region=us-east-1#/thing/{thing}" in urls
    assert first.payload["results_link"] in urls
    assert outcomes(first) == ["done"] and outcomes(second) == ["already-in-state"]
    assert first.actions[0]["event"]["details"]["incident_record_arn"] == record["arn"]


def test_suppression_window_per_thing_in_kv_store(env):
    thing = plain_thing(env.fleet, 3)
    params = {"response_plan_arn": env.fleet.response_plan_arn, "suppression_minutes": "60"}
    before = len(env.aws.incidents.incident_records())
    first = env.run("iot_start_incident", params, incident_rows(thing, "aaaa1111"))
    other_violation = env.run("iot_start_incident", params, incident_rows(thing, "bbbb2222"))
    assert outcomes(first) == ["done"] and outcomes(other_violation) == ["already-in-state"]
    assert other_violation.actions[0]["event"]["details"]["suppressed"] is True
    assert len(env.aws.incidents.incident_records()) == before + 1
    stored = env.splunkd.kv_collection("ta_aws_iot_defender_incident_suppression")
    assert any(thing in doc.get("_key", "") for doc in stored)


def test_incident_run_refusals(env):
    thing = plain_thing(env.fleet, 4)
    bad_arn = env.run(
        "iot_start_incident", {"response_plan_arn": "arn:aws:ssm-incidents:us-east-1:1:plan/x"}, incident_rows(thing)
    )
    assert bad_arn.exit_code == 3 and outcomes(bad_arn) == ["refused-invalid"]
    assert "is not an Incident Manager response plan ARN" in bad_arn.actions[0]["event"]["message"]
    assert bad_arn.aws_calls == []
    bad_impact = env.run(
        "iot_start_incident", {"response_plan_arn": env.fleet.response_plan_arn, "impact": "9"}, incident_rows(thing)
    )
    assert bad_impact.exit_code == 3 and "out of range" in bad_impact.actions[0]["event"]["message"]
    assert bad_impact.aws_calls == []
    row_impact = env.run(
        "iot_start_incident",
        {"response_plan_arn": env.fleet.response_plan_arn, "impact": "{severity}"},
        [dict(incident_rows(thing)[0], severity="0")],
    )
    assert row_impact.exit_code == 6 and outcomes(row_impact) == ["refused-invalid"]
    assert row_impact.aws_writes == []


def test_incident_published_to_sns_topic(env):
    sns = env.aws.client("sns")
    sqs = env.aws.client("sqs")
    topic = sns.create_topic(Name="soc-iot-incidents")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="soc-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    thing = env.fleet.compromised_things[1]
    params = {"destination": "sns", "sns_topic_arn": topic}
    result = env.run("iot_start_incident", params, incident_rows(thing), sid="adhoc-sns-1")
    replay = env.run("iot_start_incident", params, incident_rows(thing), sid="adhoc-sns-1")
    assert outcomes(result) == ["done"] and outcomes(replay) == ["already-in-state"]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    incident = json.loads(messages[0]["Body"])
    assert incident["thing_name"] == thing and incident["impact"] == 3
    assert incident["raw_data"]["violationId"] == "8a1b0c2d3e4f56789a0b1c2d3e4f5a6b"


# ------------------------------------------------------------------------------------------ verification state


def test_set_verification_state(env):
    violation = next(v for v in env.fleet.active_violations)
    rows = [
        {"violationId": violation["violationId"], "thing_name": violation["thingName"], "analyst": "jdoe"},
        {"violationId": "not/a/violation", "thing_name": violation["thingName"]},
    ]
    params = {"verification_state": "TRUE_POSITIVE", "description": "confirmed by {analyst}"}
    result = env.run("iot_set_verification_state", params, rows)
    assert result.exit_code == 6, result.log_lines
    assert outcomes(result) == ["done", "refused-invalid"]
    stored = env.aws.verification_states[(env.aws.account_id, env.aws.region, violation["violationId"])]
    assert stored["verificationState"] == "TRUE_POSITIVE"
    assert stored["verificationStateDescription"] == "confirmed by jdoe"
    assert result.aws_writes == ["PutVerificationStateOnViolation"]


def test_no_secret_in_logs_or_events(env):
    texts: List[Optional[str]] = runner.collect_logs(env.home)
    for path in env.home.spool_files():
        texts.append(path.read_text())
    assert runner.find_secrets([t for t in texts if t], env.splunkd.secrets()) == []


# ------------------------------------------------------------------------------------------ OpsCenter


def test_default_destination_opens_one_opsitem_per_thing_and_violation(env):
    """The account has no response plan: iot_start_incident opens an OpsItem; the alert firing again (another sid)
    lands on the same open OpsItem."""
    thing = plain_thing(env.fleet, 5)
    topic = env.aws.client("sns").create_topic(Name="soc-opsitems")["TopicArn"]
    params = {"impact": "{severity}", "sns_topic_arn": topic}
    rows = incident_rows(thing, "0pscenter00001")
    first = env.run("iot_start_incident", params, rows, sid="scheduler__admin__search__RMD5o_at_1_1")
    second = env.run("iot_start_incident", params, rows, sid="scheduler__admin__search__RMD5o_at_2_1")
    assert (first.exit_code, second.exit_code) == (0, 0), first.log_lines + second.log_lines
    assert outcomes(first) == ["done"] and outcomes(second) == ["already-in-state"]
    items = [i for i in env.aws.opsitems.ops_items() if i["OperationalData"]["iot_thing_name"]["Value"] == thing]
    assert len(items) == 1 and env.aws.opsitems.create_attempts()[items[0]["OpsItemId"]] == 2
    item = items[0]
    assert (item["Category"], item["Severity"], item["Priority"], item["Status"]) == ("Security", "2", 2, "Open")
    assert item["Notifications"] == [{"Arn": topic}]
    data = {k: v["Value"] for k, v in item["OperationalData"].items()}
    thing_arn = env.iot.describe_thing(thingName=thing)["thingArn"]
    assert json.loads(data["/aws/resources"]) == [{"arn": thing_arn}]
    assert data["iot_violation_id"] == "0pscenter00001" and data["splunk_sid"].endswith("RMD5o_at_1_1")
    assert "/app/TA-aws-iot-defender/iot_defender_thing?form.thing=" in data["splunk_thing_dashboard"]
    details = first.actions[0]["event"]["details"]
    assert details["destination"] == "opscenter" and details["ops_item_id"] == item["OpsItemId"]
    assert "CreateOpsItem" in first.aws_writes and "StartIncident" not in first.aws_writes


def test_a_response_plan_on_the_account_makes_incident_manager_the_default(env):
    env.splunkd.create_account(
        "with-plan",
        {
            "credential_source": "access_key",
            "aws_access_key_id": env.aws.access_key,
            "partition": "aws",
            "default_region": env.aws.region,
            "response_plan_arn": env.fleet.response_plan_arn,
        },
        {"aws_secret_access_key": env.aws.secret_key},
    )
    thing = plain_thing(env.fleet, 6)
    result = env.run("iot_start_incident", {"account": "with-plan"}, incident_rows(thing, "plan00001"))
    assert result.exit_code == 0, result.log_lines
    assert result.actions[0]["event"]["details"]["destination"] == "incident_manager"
    assert "StartIncident" in result.aws_writes and "CreateOpsItem" not in result.aws_writes


# ------------------------------------------------------------------------------------------ who may act


def test_a_user_without_the_respond_capability_is_refused(env):
    thing = plain_thing(env.fleet, 7)
    analyst = env.splunkd.add_user("analyst", roles=["user"])
    result = env.run("iot_quarantine_thing", {}, [{"thing_name": thing}], session_key=analyst, owner="analyst")
    assert result.exit_code == 8
    assert outcomes(result) == ["refused-unauthorized"]
    message = result.actions[0]["event"]["message"]
    assert "'analyst'" in message and "iot_defender_respond" in message
    assert result.aws_calls == [] and "QUARANTINED" not in env.state(thing)["groups"]
    assert any("run refused" in line and "iot_defender_respond" in line for line in result.log_lines)
    # a role that holds the capability may act (admin holds it through the add-on's authorize.conf)
    env.splunkd.add_role("soc_responder", ["iot_defender_respond"])
    responder = env.splunkd.add_user("responder", roles=["user", "soc_responder"])
    allowed = env.run("iot_quarantine_thing", {"dry_run": "1"}, [{"thing_name": thing}], session_key=responder)
    assert allowed.exit_code == 0 and outcomes(allowed) == ["dry-run"]
