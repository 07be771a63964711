"""The isolation policy at AWS's five-version limit, run as splunkd runs the BUILT action against moto's IoT policy
store (which enforces the limit):

- the add-on's own policy (tagged, one of its deny documents) moving to its other deny document (``allow_remediation``
  changed) gets a new default version, the oldest non-default one making room;
- a policy whose document someone changed is no longer the add-on's deny document: quarantine refuses it before any
  write (``refused-not-owned``, issue 17 class 1), where it used to overwrite it and delete the customer's versions.
"""

from __future__ import annotations

import json

import pytest

from iot_defender.respond import ownership
from tests.harness.aws import DEFAULT_ACCOUNT_ID, LoopbackAWS
from tests.harness.fleet import Fleet
from tests.harness.splunkd import SplunkdStandIn, SplunkHome
from tests.integration.test_alert_actions import APP_DIR, POLICY, RECORD_KEYS, Env, outcomes, plain_thing

pytestmark = pytest.mark.skipif(
    not (APP_DIR / "bin" / "iot_quarantine_thing.py").is_file(), reason="add-on not built (run `make build`)"
)
DRIFTED = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}


@pytest.fixture
def env(tmp_path):
    with LoopbackAWS() as aws, SplunkdStandIn() as splunkd:
        fleet = Fleet(seed=3, things=6, days=1, compromised=1)
        fleet.install(aws, registry_limit=6)
        home = SplunkHome.create(tmp_path, app_dir=APP_DIR, splunkd=splunkd)
        account = {"credential_source": "access_key", "aws_access_key_id": aws.access_key, "partition": "aws"}
        splunkd.create_account(
            "prod", {**account, "default_region": aws.region}, {"aws_secret_access_key": aws.secret_key}
        )
        splunkd.create_account("response", {}, {"record_keys": RECORD_KEYS}, conf="ta_aws_iot_defender_settings")
        yield Env(aws, splunkd, home, fleet)


def versions(env: Env):
    return sorted(env.iot.list_policy_versions(policyName=POLICY)["policyVersions"], key=lambda v: int(v["versionId"]))


def _own_document(env: Env, allow_remediation: bool) -> str:
    document = ownership.isolation_policy("aws", env.aws.region, DEFAULT_ACCOUNT_ID, allow_remediation)
    return json.dumps(document, separators=(",", ":"))


def test_quarantine_moves_its_own_policy_to_its_other_document_at_the_version_limit(env):
    env.iot.create_policy(policyName=POLICY, policyDocument=_own_document(env, False), tags=ownership.tag_list())
    for n in range(4):  # AWS keeps at most five versions of a policy; the default stays the no-remediation document
        document = _own_document(env, n % 2 == 0) if n < 3 else _own_document(env, False)
        env.iot.create_policy_version(policyName=POLICY, policyDocument=document, setAsDefault=True)
    assert [v["versionId"] for v in versions(env)] == ["1", "2", "3", "4", "5"]
    thing = plain_thing(env.fleet)

    result = env.run("iot_quarantine_thing", {"allow_remediation": "1"}, [{"thing_name": thing}])

    assert result.exit_code == 0, result.stderr + result.log_lines
    assert outcomes(result) == ["done"]
    after = versions(env)
    assert [v["versionId"] for v in after] == ["2", "3", "4", "5", "6"]  # the oldest made room
    assert [v["versionId"] for v in after if v["isDefaultVersion"]] == ["6"]
    assert env.iot.get_policy(policyName=POLICY)["policyDocument"] == _own_document(env, True)
    assert "CreatePolicyVersion" in result.aws_writes and "DeletePolicyVersion" in result.aws_writes
    assert "QUARANTINED" in env.state(thing)["groups"]


@pytest.mark.parametrize("tagged", [True, False])
def test_a_changed_isolation_policy_is_refused_and_left_as_it_is(env, tagged):
    env.iot.create_policy(
        policyName=POLICY, policyDocument=json.dumps(DRIFTED), tags=ownership.tag_list() if tagged else []
    )
    for n in range(4):
        drifted = {**DRIFTED, "Statement": [{**DRIFTED["Statement"][0], "Resource": f"arn:aws:iot:*:*:client/{n}"}]}
        env.iot.create_policy_version(policyName=POLICY, policyDocument=json.dumps(drifted), setAsDefault=True)
    before = versions(env)
    thing = plain_thing(env.fleet)

    result = env.run("iot_quarantine_thing", {}, [{"thing_name": thing}])

    assert outcomes(result) == ["refused-not-owned"]
    assert result.exit_code == 6, result.log_lines
    assert versions(env) == before
    assert not {"CreatePolicyVersion", "DeletePolicyVersion", "AttachPolicy", "AddThingToThingGroup"} & set(
        result.aws_writes
    )
    assert "QUARANTINED" not in env.state(thing)["groups"]
