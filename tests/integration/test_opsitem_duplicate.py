"""OpsCenter may answer a duplicate CreateOpsItem with OpsItemAlreadyExistsException naming the open OpsItem (the
user guide only says the item "is not created"): iot_start_incident then reports that OpsItem, already in state,
and opens no second one. Run as splunkd runs the BUILT action."""

from __future__ import annotations

import pytest

from tests.harness.aws import LoopbackAWS
from tests.harness.fleet import Fleet
from tests.harness.splunkd import SplunkdStandIn, SplunkHome
from tests.integration.test_alert_actions import APP_DIR, Env, incident_rows, outcomes, plain_thing

pytestmark = pytest.mark.skipif(
    not (APP_DIR / "bin" / "iot_start_incident.py").is_file(), reason="add-on not built (run `make build`)"
)


@pytest.fixture
def env(tmp_path):
    with LoopbackAWS() as aws, SplunkdStandIn() as splunkd:
        fleet = Fleet(seed=5, things=6, days=1, compromised=1)
        fleet.install(aws, registry_limit=6)
        home = SplunkHome.create(tmp_path, app_dir=APP_DIR, splunkd=splunkd)
        account = {"credential_source": "access_key", "aws_access_key_id": aws.access_key, "partition": "aws"}
        splunkd.create_account(
            "prod", {**account, "default_region": aws.region}, {"aws_secret_access_key": aws.secret_key}
        )
        yield Env(aws, splunkd, home, fleet)


def test_a_duplicate_refused_with_the_open_opsitem_is_that_opsitem(env):
    env.aws.opsitems.dedup_answer = "error"
    thing = plain_thing(env.fleet)
    rows = incident_rows(thing, "dupl1cate00001")
    first = env.run("iot_start_incident", {}, rows, sid="scheduler__admin__search__RMD5d_at_1_1")
    second = env.run("iot_start_incident", {}, rows, sid="scheduler__admin__search__RMD5d_at_2_1")

    assert (first.exit_code, second.exit_code) == (0, 0), first.log_lines + second.log_lines
    refused = [r.error_code for r in env.aws.requests.filter(operation="CreateOpsItem")]  # the second run's
    assert refused == ["OpsItemAlreadyExistsException"]
    assert outcomes(first) == ["done"] and outcomes(second) == ["already-in-state"]
    (item,) = env.aws.opsitems.ops_items()
    assert env.aws.opsitems.create_attempts()[item["OpsItemId"]] == 2
    for result in (first, second):
        assert result.actions[0]["event"]["details"]["ops_item_id"] == item["OpsItemId"]
