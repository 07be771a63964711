"""iot_defender_alert (the adapter shared by the four alert actions) with a helper double that behaves like
splunktaucclib's ModularAlertBase (get_param, get_events with rid, update/message/addevent/writeevents) and
IoT in moto. The built scripts are exercised end to end in tests/integration/test_alert_actions.py."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict, List, Optional

import boto3
import pytest
from moto import mock_aws

import iot_defender_alert as alert
from iot_defender import respond
from iot_defender.aws import AwsSession, ClientSettings, ConfigError
from iot_defender.respond import Keyring, MemorySuppressionStore, RateLimiter
from tests.unit.test_respond_support import ACCOUNT_ID, REGION, account, seed_registry

NOW = dt.datetime(2025, 11, 22, 10, 15, tzinfo=dt.timezone.utc)


class Helper:
    """The parts of splunktaucclib's ModularAlertBase the adapter uses."""

    def __init__(self, params: Dict[str, Any], rows: List[Dict[str, str]], sid: str = "1763806200.42"):
        self.params = {k: str(v) for k, v in params.items()}
        self.rows = rows
        self.sid = sid
        self.search_name = "IoT - compromised device"
        self.session_key = "session-key"
        self.settings = {"results_link": "https://splunk.example.com/app/search/@go?sid=" + sid}
        self.events: List[str] = []
        self.written: List[Dict[str, Any]] = []
        self.messages: List[Dict[str, Any]] = []
        self.orig_sid = self.orig_rid = self.rid = ""

    def get_param(self, name: str) -> Optional[str]:
        return self.params.get(name)

    def get_events(self):
        for number, row in enumerate(self.rows):
            row = dict(row)
            row.setdefault("rid", str(number))
            self.update(row)
            yield row

    def invoke(self) -> None:
        self.message("Invoking modular action")

    def update(self, row: Dict[str, str]) -> None:
        self.orig_sid, self.orig_rid, self.rid = row.get("orig_sid", ""), row.get("orig_rid", ""), row["rid"]

    def message(self, signature: str, status: Optional[str] = None, level: int = 20, **kwargs: Any) -> str:
        self.messages.append(dict(kwargs, signature=signature, status=status, level=level, rid=self.rid))
        return signature

    def addevent(self, raw: str, sourcetype: str) -> None:
        self.events.append(json.dumps({"sourcetype": sourcetype, "orig_rid": self.rid, "raw": raw}))

    def writeevents(self, index: str = "summary", host: Optional[str] = None, source: Optional[str] = None) -> bool:
        for item in self.events:
            self.written.append(dict(json.loads(item), index=index, source=source))
        return True

    def results(self) -> List[Dict[str, Any]]:
        return [json.loads(e["raw"]) for e in sorted(self.written, key=lambda e: int(e["orig_rid"]))]


class Deps(alert.Deps):
    def __init__(self, fail_session: bool = False):
        self.fail_session = fail_session
        self.sessions = 0
        self.store_ = MemorySuppressionStore()

    def load_account(self, session_key, name):
        if name != "prod":
            raise ConfigError(f"AWS account '{name}' is not configured in the add-on")
        return account()

    def load_settings(self, session_key):
        return ClientSettings(retry_mode="standard", max_attempts=2)

    def session(self, account_, settings):
        self.sessions += 1
        if self.fail_session:
            raise RuntimeError("no route to AWS")
        return AwsSession(account_, settings)

    def account_id(self, session):
        return ACCOUNT_ID

    def store(self, helper):
        return self.store_

    def limiter(self):
        return RateLimiter({})

    def secret_filter(self):
        return None

    def now(self):
        return NOW

    def caller(self, helper):
        return "admin", ["admin_all_objects", "iot_defender_respond"]

    def record_keyring(self, helper):
        return Keyring([bytes(range(32))])

    def owners(
        self, helper, account_id
    ):  # no splunkd here: incidents carry no owner (tests/unit/test_respond_owner.py)
        return {}


@pytest.fixture
def iot():
    with mock_aws():
        client = boto3.client("iot", region_name=REGION)
        seed_registry(client)
        yield client


def run(action, params, rows, deps=None, **kw):
    helper = Helper(dict({"account": "prod"}, **params), rows, **kw)
    deps = deps or Deps()
    code = alert.run(helper, action, deps)
    return code, helper, deps


def test_every_row_gets_one_result_event_and_a_log_line(iot):
    rows = [{"thing_name": "sensor-001"}, {"thing_name": "sensor-001"}, {"thing": "sensor-002", "thing_name": ""}]
    code, helper, _ = run(alert.QUARANTINE, {"index": "iot"}, rows)
    assert code == alert.EXIT_OK
    results = helper.results()
    assert [r["outcome"] for r in results] == ["done", "done", "done"]
    assert results[1]["message"].startswith("same target as row 0")  # one AWS change, reported per row
    assert [r["thing_name"] for r in results] == ["sensor-001", "sensor-001", "sensor-002"]
    assert {e["index"] for e in helper.written} == {"iot"}
    assert {e["source"] for e in helper.written} == {f"aws:iot:{ACCOUNT_ID}:{REGION}:iot_quarantine_thing"}
    assert all(r["orig_sid"] == "1763806200.42" and r["sid"] == "1763806200.42" for r in results)
    assert [r["orig_rid"] for r in results] == ["0", "1", "2"]
    per_row = [m for m in helper.messages if "outcome" in m]
    assert [m["rid"] for m in per_row] == ["0", "1", "2"] and all(m["status"] == "success" for m in per_row)
    assert "exit code 0" in helper.messages[-1]["signature"]
    added = iot.list_things_in_thing_group(thingGroupName="QUARANTINED")["things"]
    assert sorted(added) == ["sensor-001", "sensor-002"]


def test_policy_managed_elsewhere_is_only_attached(iot):
    stack_policy = respond.isolation_policy("aws", REGION, ACCOUNT_ID, False)  # the response stack's, tagged
    tags = [{"Key": "managed-by", "Value": "TA-aws-iot-defender"}]
    iot.create_policy(policyName="StackIsolation", policyDocument=json.dumps(stack_policy), tags=tags)
    params = {"policy_name": "StackIsolation", "manage_policy": "0"}
    code, helper, _ = run(alert.QUARANTINE, params, [{"thing_name": "sensor-001"}])
    assert code == alert.EXIT_OK, helper.results()
    assert json.loads(iot.get_policy(policyName="StackIsolation")["policyDocument"]) == stack_policy
    group = iot.describe_thing_group(thingGroupName="QUARANTINED")["thingGroupArn"]
    assert [p["policyName"] for p in iot.list_attached_policies(target=group)["policies"]] == ["StackIsolation"]
    code, helper, _ = run(
        alert.QUARANTINE, {"policy_name": "Missing", "manage_policy": "0"}, [{"thing_name": "sensor-002"}]
    )
    assert code == alert.EXIT_FAILED and "does not exist" in helper.results()[0]["message"]


def test_notable_rows_keep_their_origin(iot):
    rows = [{"thing_name": "sensor-001", "orig_sid": "notable-sid", "orig_rid": "7"}]
    _, helper, _ = run(alert.QUARANTINE, {"dry_run": "1"}, rows)
    (result,) = helper.results()
    assert (result["orig_sid"], result["orig_rid"], result["outcome"]) == ("notable-sid", "7", "dry-run")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"region": "moon-base-1"}, "is not an AWS region name"),
        ({"max_things": "lots"}, "is not a whole number"),
        ({"max_things": "5000"}, "between 1 and 1000"),
        ({"thing_field": "a b"}, "is not a field name"),
        ({"quarantine_group": "bad group"}, "is not a thing group name"),
        ({"protected_groups": "QUARANTINED"}, "also listed as protected"),
        ({"account": "staging"}, "not configured in the add-on"),
        ({"account": ""}, "no AWS account is selected"),
        ({"region": "cn-north-1"}, "not in partition aws"),
        ({"index": "Bad Index"}, "is not an index name"),
        # An unrecognised boolean is refused, never read as "false" (these used to run live).
        ({"dry_run": "dry"}, "parameter dry_run: 'dry' is not a boolean"),
        ({"dry_run": "garbage"}, "parameter dry_run: 'garbage' is not a boolean"),
        ({"dry_run": "2"}, "parameter dry_run: '2' is not a boolean"),
        ({"dry_run": "enabled"}, "parameter dry_run: 'enabled' is not a boolean"),
        ({"deactivate_certificates": "maybe"}, "parameter deactivate_certificates: 'maybe' is not a boolean"),
        ({"manage_policy": "nope"}, "parameter manage_policy: 'nope' is not a boolean"),
    ],
)
def test_unusable_parameters_refuse_the_run_before_any_aws_session(params, message):
    code, helper, deps = run(alert.QUARANTINE, params, [{"thing_name": "sensor-001"}, {"thing_name": "sensor-002"}])
    assert code == alert.EXIT_CONFIG
    results = helper.results()
    assert [r["outcome"] for r in results] == ["refused-invalid"] * 2
    assert message in results[0]["message"]
    assert deps.sessions == 0


def test_max_things_counts_distinct_things(iot):
    rows = [{"thing_name": "sensor-001"}] * 5 + [{"thing_name": "sensor-002"}]
    code, _, _ = run(alert.QUARANTINE, {"max_things": "2", "dry_run": "1"}, rows)
    assert code == alert.EXIT_OK
    rows.append({"thing_name": "bad name"})
    code, helper, deps = run(alert.QUARANTINE, {"max_things": "2"}, rows)
    assert code == alert.EXIT_LIMIT and deps.sessions == 0
    assert {r["outcome"] for r in helper.results()} == {"refused-limit"}
    assert "3 things, above the limit of 2" in helper.results()[0]["message"]


def test_rows_choose_their_region_within_the_partition(iot):
    rows = [
        {"thing_name": "sensor-001", "region": "us-east-1"},
        {"thing_name": "sensor-001", "region": "eu-west-1"},  # a different thing: unknown there
        {"thing_name": "sensor-001", "region": "us-gov-west-1"},
        {"thing_name": "sensor-001", "region": "not a region"},
    ]
    code, helper, _ = run(alert.QUARANTINE, {"dry_run": "1"}, rows)
    assert code == alert.EXIT_REFUSED
    results = helper.results()
    assert [(r["outcome"], r["region"]) for r in results[:2]] == [
        ("dry-run", "us-east-1"),
        ("refused-invalid", "eu-west-1"),
    ]
    assert "does not exist in eu-west-1" in results[1]["message"]
    assert "not in partition aws" in results[2]["message"] and "not an AWS region name" in results[3]["message"]


def test_unreachable_account_fails_every_row_with_exit_7(iot):
    code, helper, _ = run(alert.RELEASE, {}, [{"thing_name": "sensor-001"}, {"thing_name": "bad name"}], Deps(True))
    assert code == alert.EXIT_FAILED
    assert [r["outcome"] for r in helper.results()] == ["failed", "refused-invalid"]
    assert helper.results()[0]["error_code"] == "RuntimeError"
    summary = helper.messages[-1]["signature"]
    assert "exit code 7" in summary and "failed: sensor-001:RuntimeError" in summary


def test_start_incident_adapter_refuses_bad_rows_and_reports_repeats(iot):
    rows = [
        {"thing_name": "sensor-001", "violationId": "abc-123", "sev": "2"},
        {"thing_name": "sensor-002", "violationId": "abc/123", "sev": "2"},
        {"thing_name": "sensor-002", "violationId": "abc-124", "sev": "8"},
    ]
    params = {"response_plan_arn": "arn:aws:ssm-incidents::123456789012:response-plan/iot", "impact": "{sev}"}
    code, helper, _ = run(alert.START_INCIDENT, dict(params, dry_run="1"), rows)
    assert code == alert.EXIT_REFUSED
    results = helper.results()
    assert [r["outcome"] for r in results] == ["dry-run", "refused-invalid", "refused-invalid"]
    assert "is not a Device Defender violation id" in results[1]["message"]
    assert "out of range" in results[2]["message"]
    assert results[0]["details"]["impact"] == 2
    bad = dict(params, response_plan_arn="arn:aws:ssm-incidents::123456789012:incident-record/x")
    code, helper, deps = run(alert.START_INCIDENT, bad, rows[:1])
    assert code == alert.EXIT_CONFIG and deps.sessions == 0


def test_verification_rows_need_a_violation_id_not_a_thing(iot):
    rows = [
        {"violationId": "abc-123", "thing_name": "bad name!"},
        {"thing_name": "sensor-001"},
    ]
    code, helper, _ = run(alert.SET_VERIFICATION_STATE, {"verification_state": "benign_positive", "dry_run": "1"}, rows)
    assert code == alert.EXIT_REFUSED
    results = helper.results()
    assert results[0]["outcome"] == "dry-run" and "thing_name" not in results[0]
    assert results[0]["details"]["verification_state"] == "BENIGN_POSITIVE"
    assert results[1]["outcome"] == "refused-invalid" and "has no violation id" in results[1]["message"]
    code, helper, _ = run(alert.SET_VERIFICATION_STATE, {"verification_state": "MAYBE"}, rows)
    assert code == alert.EXIT_CONFIG
