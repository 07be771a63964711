"""The quarantine action repairs an isolation policy someone changed: its deny document becomes the default version
again, and when the policy already holds AWS's five versions the oldest non-default one makes room. Run as splunkd
runs the BUILT action, against moto's IoT policy store (which enforces the five-version limit)."""

from __future__ import annotations

import json

import pytest

from tests.harness.aws import LoopbackAWS
from tests.harness.fleet import Fleet
from tests.harness.splunkd import SplunkdStandIn, SplunkHome
from tests.integration.test_alert_actions import APP_DIR, POLICY, Env, outcomes, plain_thing

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
        yield Env(aws, splunkd, home, fleet)


def versions(env: Env):
    return sorted(env.iot.list_policy_versions(policyName=POLICY)["policyVersions"], key=lambda v: int(v["versionId"]))


def test_quarantine_restores_a_changed_isolation_policy_at_the_version_limit(env):
    env.iot.create_policy(policyName=POLICY, policyDocument=json.dumps(DRIFTED))
    for n in range(4):  # AWS keeps at most five versions of a policy
        drifted = {**DRIFTED, "Statement": [{**DRIFTED["Statement"][0], "Resource": f"arn:aws:iot:*:*:client/{n}"}]}
        env.iot.create_policy_version(policyName=POLICY, policyDocument=json.dumps(drifted), setAsDefault=True)
    assert [v["versionId"] for v in versions(env)] == ["1", "2", "3", "4", "5"]
    thing = plain_thing(env.fleet)

    result = env.run("iot_quarantine_thing", {}, [{"thing_name": thing}])

    assert result.exit_code == 0, result.stderr + result.log_lines
    assert outcomes(result) == ["done"]
    after = versions(env)
    assert [v["versionId"] for v in after] == ["2", "3", "4", "5", "6"]  # the oldest made room
    assert [v["versionId"] for v in after if v["isDefaultVersion"]] == ["6"]
    document = json.loads(env.iot.get_policy(policyName=POLICY)["policyDocument"])
    assert {s["Effect"] for s in document["Statement"]} == {"Deny"}
    assert "CreatePolicyVersion" in result.aws_writes and "DeletePolicyVersion" in result.aws_writes
    assert "QUARANTINED" in env.state(thing)["groups"]
