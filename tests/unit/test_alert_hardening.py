"""Issue 11 regressions for the alert adapter: protected groups that do not exist, setup writes without a
target, the run summary's exit code, and the capability that gates every response action."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

import iot_defender_alert as alert
from tests.unit.test_alert_adapter import Deps, Helper
from tests.unit.test_respond_support import REGION, seed_registry


@pytest.fixture
def iot():
    with mock_aws():
        client = boto3.client("iot", region_name=REGION)
        seed_registry(client)
        yield client


class CallerDeps(Deps):
    """Deps whose triggering user is ``user`` holding ``capabilities``."""

    def __init__(self, user: str = "admin", capabilities=("admin_all_objects", "iot_defender_respond")):
        super().__init__()
        self.user = user
        self.capabilities = tuple(capabilities)

    def caller(self, helper):
        return self.user, self.capabilities


def run(action, params, rows, deps=None):
    helper = Helper(dict({"account": "prod"}, **params), rows)
    deps = deps or CallerDeps()
    return alert.run(helper, action, deps), helper, deps


def quarantine_group_exists(client) -> bool:
    return any(g["groupName"] == "QUARANTINED" for g in client.list_thing_groups()["thingGroups"])


def test_protected_group_that_does_not_exist_refuses_the_run(iot):
    """A case mismatch (CRITICAL-INFRA vs critical-infra) used to protect nothing."""
    code, helper, _ = run(
        alert.QUARANTINE, {"protected_groups": "CRITICAL-INFRA"}, [{"thing_name": "pump-station-017"}]
    )
    assert code == alert.EXIT_CONFIG, helper.results()
    result = helper.results()[0]
    assert result["outcome"] == "refused-invalid" and "CRITICAL-INFRA" in result["message"]
    assert "do not exist" in result["message"] and "case-sensitive" in result["message"]
    assert not quarantine_group_exists(iot)
    assert "QUARANTINED" not in [
        g["groupName"] for g in iot.list_thing_groups_for_thing(thingName="pump-station-017")["thingGroups"]
    ]


@pytest.mark.parametrize(
    ("params", "rows"),
    [
        ({}, [{"thing_name": "no-such-thing"}]),
        ({"protected_groups": "critical-infra"}, [{"thing_name": "pump-station-017"}]),
    ],
)
def test_setup_writes_nothing_when_no_row_is_acted_on(iot, params, rows):
    code, helper, _ = run(alert.QUARANTINE, params, rows)
    assert code == alert.EXIT_REFUSED, helper.results()
    assert not quarantine_group_exists(iot)
    assert iot.list_policies()["policies"] == []


@pytest.mark.parametrize(
    ("params", "rows", "expected"),
    [
        ({"max_things": "1"}, [{"thing_name": "sensor-001"}, {"thing_name": "sensor-002"}], alert.EXIT_LIMIT),
        ({"account": "nope"}, [{"thing_name": "sensor-001"}], alert.EXIT_CONFIG),
        ({"dry_run": "1"}, [{"thing_name": "sensor-001"}, {"thing_name": "bad name"}], alert.EXIT_REFUSED),
    ],
)
def test_every_logged_exit_code_is_the_process_exit_code(iot, params, rows, expected):
    code, helper, _ = run(alert.QUARANTINE, params, rows)
    assert code == expected
    logged = [m for m in helper.messages if "exit_code" in m]
    assert logged and all(m["exit_code"] == code for m in logged), logged
    (summary,) = [m for m in helper.messages if "finished:" in m["signature"]]
    assert f"exit code {code}" in summary["signature"]


@pytest.mark.parametrize(
    "action", [alert.QUARANTINE, alert.RELEASE, alert.START_INCIDENT, alert.SET_VERIFICATION_STATE]
)
def test_a_user_without_the_capability_is_refused_and_logged(iot, action):
    deps = CallerDeps("analyst", ["search"])
    rows = [{"thing_name": "sensor-001", "violationId": "abc-123"}]
    params = {"response_plan_arn": "arn:aws:ssm-incidents::123456789012:response-plan/iot"}
    code, helper, deps = run(action, params, rows, deps)
    assert code == alert.EXIT_FORBIDDEN
    (result,) = helper.results()
    assert result["outcome"] == "refused-unauthorized"
    assert "analyst" in result["message"] and "iot_defender_respond" in result["message"]
    assert deps.sessions == 0 and not quarantine_group_exists(iot)
    assert any("iot_defender_respond" in m["signature"] and m["level"] >= 40 for m in helper.messages)
