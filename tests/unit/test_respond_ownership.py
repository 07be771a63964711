"""Issue 17, class 1 (ownership): quarantine changes only what the add-on created and can prove it did.

Each test names an existing customer resource as the action's group or policy and checks that AWS ends exactly as
it was: no new policy version, no attachment, no membership, no deleted version, and an honest ``refused-not-owned``
(issue 17; before, ``failed`` with code NotOwnedByAddOn) instead of ``done``. Seen failing on the code before the fix: it rewrote, attached, versioned and
used whatever the names pointed at, and reported ``done``."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from iot_defender import respond
from iot_defender.respond import QuarantineOptions
from tests.unit.test_respond_support import (
    ACCOUNT_ID,
    OWN_TAGS,
    REGION,
    groups_of,
    make_responder,
    policies_on,
    run_context,
    seed_registry,
    status_of,
)

ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}
NOT_OWNED = ("refused-not-owned", None)  # outcome, error code (issue 17: an outcome of its own, not a failure)


@pytest.fixture
def iot():
    with mock_aws():
        client = boto3.client("iot", region_name=REGION)
        yield client, seed_registry(client)


def own_document(allow_remediation: bool = True) -> str:
    return json.dumps(respond.isolation_policy("aws", REGION, ACCOUNT_ID, allow_remediation))


def versions(client, name: str):
    return sorted(
        (v["versionId"], v["isDefaultVersion"]) for v in client.list_policy_versions(policyName=name)["policyVersions"]
    )


def assert_untouched(client, certs, thing: str = "sensor-001") -> None:
    assert "QUARANTINED" not in groups_of(client, thing) and "site-a" not in groups_of(client, thing)
    for cert in certs[thing]:
        assert policies_on(client, cert["certificateArn"]) in ([], ["CustomerFleet"])


@pytest.mark.parametrize("name", ["CustomerFleet", "TA-IoTDefender-Quarantine", "fleet.policy@v2"])
@pytest.mark.parametrize("manage_policy", [True, False])
def test_a_customer_policy_with_the_configured_name_is_never_rewritten_attached_or_versioned(iot, name, manage_policy):
    client, certs = iot
    client.create_policy(policyName=name, policyDocument=json.dumps(ALLOW_ALL))
    for _number in range(4):  # four versions: the old code deleted the oldest to make room for its own
        client.create_policy_version(policyName=name, policyDocument=json.dumps(ALLOW_ALL), setAsDefault=False)
    before = versions(client, name)
    options = QuarantineOptions(policy_name=name, manage_policy=manage_policy, deactivate_certificates=True)
    result = make_responder().quarantine("sensor-001", REGION, options, run_context())
    assert (result.outcome, result.error_code) == NOT_OWNED, result.message
    assert versions(client, name) == before
    assert json.loads(client.get_policy(policyName=name)["policyDocument"]) == ALLOW_ALL
    assert not client.list_targets_for_policy(policyName=name)["targets"]
    assert_untouched(client, certs)
    assert status_of(client, certs["sensor-001"][0]["certificateId"]) == "ACTIVE"


@pytest.mark.parametrize("allow_remediation", [True, False])
def test_the_add_ons_own_document_without_the_add_ons_tag_proves_nothing(iot, allow_remediation):
    """A policy that merely looks like the add-on's (same deny document) was not created by it: refused too."""
    client, _certs = iot
    client.create_policy(policyName="TA-IoTDefender-Quarantine", policyDocument=own_document(allow_remediation))
    result = make_responder().quarantine("sensor-002", REGION, QuarantineOptions(manage_policy=False), run_context())
    assert (result.outcome, result.error_code) == NOT_OWNED, result.message
    assert not client.list_targets_for_policy(policyName="TA-IoTDefender-Quarantine")["targets"]
    assert "QUARANTINED" not in groups_of(client, "sensor-002")


@pytest.mark.parametrize("group", ["site-a", "QUARANTINED", "plant:7_b"])
def test_an_existing_site_group_is_never_used_as_the_quarantine_group(iot, group):
    """The old code put the thing in the customer's group and attached the deny policy to it: every member of the
    site was cut off."""
    client, _certs = iot
    client.create_thing_group(thingGroupName=group)
    client.create_thing(thingName="site-member")
    client.add_thing_to_thing_group(thingGroupName=group, thingName="site-member")
    group_arn = client.describe_thing_group(thingGroupName=group)["thingGroupArn"]
    result = make_responder().quarantine("sensor-002", REGION, QuarantineOptions(group=group), run_context())
    assert (result.outcome, result.error_code) == NOT_OWNED, result.message
    assert policies_on(client, group_arn) == []
    assert group not in groups_of(client, "sensor-002")


def test_a_tagged_group_under_a_protected_parent_is_refused(iot):
    """A quarantine group the add-on creates is a root group; a tagged child of a protected group is not one."""
    client, _ = iot
    client.create_thing_group(thingGroupName="QUARANTINED", parentGroupName="critical-infra", tags=OWN_TAGS)
    options = QuarantineOptions(protected_groups=("critical-infra",))
    result = make_responder().quarantine("sensor-002", REGION, options, run_context())
    assert (result.outcome, result.error_code) == NOT_OWNED, result.message
    assert "QUARANTINED" not in groups_of(client, "sensor-002")


def test_what_the_add_on_creates_carries_its_tag_and_a_second_run_accepts_it(iot):
    client, _certs = iot
    first = make_responder().quarantine("sensor-001", REGION, QuarantineOptions(), run_context())
    assert first.outcome == "done", first.message
    group_arn = client.describe_thing_group(thingGroupName="QUARANTINED")["thingGroupArn"]
    policy_arn = client.get_policy(policyName=respond.DEFAULT_POLICY_NAME)["policyArn"]
    for arn in (group_arn, policy_arn):
        assert client.list_tags_for_resource(resourceArn=arn)["tags"] == OWN_TAGS
    second = make_responder().quarantine("sensor-002", REGION, QuarantineOptions(), run_context())
    assert second.outcome == "done", second.message
    # a mode change rewrites the add-on's own policy only (a new default version)
    third = make_responder().quarantine(
        "pump-station-017", REGION, QuarantineOptions(allow_remediation=False), run_context()
    )
    assert third.outcome == "done" and json.loads(
        client.get_policy(policyName=respond.DEFAULT_POLICY_NAME)["policyDocument"]
    ) == json.loads(own_document(False))


def test_release_leaves_a_group_that_is_not_the_add_ons(iot):
    """An authenticated record naming a group someone re-created without the tag: membership left as is."""
    client, _ = iot
    quarantined = make_responder().quarantine("sensor-002", REGION, QuarantineOptions(), run_context())
    assert quarantined.outcome == "done"
    group_arn = client.describe_thing_group(thingGroupName="QUARANTINED")["thingGroupArn"]
    client.untag_resource(resourceArn=group_arn, tagKeys=["managed-by"])
    released = make_responder().release("sensor-002", REGION, QuarantineOptions(), run_context())
    assert "QUARANTINED" in groups_of(client, "sensor-002"), released.message
    assert released.outcome == "warning"


@pytest.mark.parametrize("change", ["untag", "rewrite"])
def test_release_never_detaches_a_policy_that_is_no_longer_the_add_ons(iot, change):
    """The isolation policy was deleted and re-created by someone else under the same name (or lost its tag): the
    certificates keep it, release says so."""
    client, certs = iot
    cert = certs["sensor-002"][0]
    assert make_responder().quarantine("sensor-002", REGION, QuarantineOptions(), run_context()).outcome == "done"
    arn = client.get_policy(policyName=respond.DEFAULT_POLICY_NAME)["policyArn"]
    if change == "untag":
        client.untag_resource(resourceArn=arn, tagKeys=["managed-by"])
    else:
        client.create_policy_version(
            policyName=respond.DEFAULT_POLICY_NAME, policyDocument=json.dumps(ALLOW_ALL), setAsDefault=True
        )
    released = make_responder().release("sensor-002", REGION, QuarantineOptions(), run_context())
    assert released.outcome == "warning", released.message
    assert policies_on(client, cert["certificateArn"]) == [respond.DEFAULT_POLICY_NAME]
