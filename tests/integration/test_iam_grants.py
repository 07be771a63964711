"""The add-on role grants exactly what the add-on calls.

The loopback AWS records every operation the add-on's own code (user agent ``TA-aws-iot-defender/...``) calls
while the integration tests run the built inputs and alert actions (``tests/harness/addon_calls.py``); these tests
run after all the others (``conftest.py``) and compare that record with ``infra/addon-role/template.yaml``:

- a call the role does not grant fails (the add-on would get AccessDenied in a real account); the calls of the
  last ``make demo`` (``build/demo/aws-operations.json``) count too;
- a grant nothing called fails, when the session ran the whole integration suite (a subset proves nothing
  unused).

A new AWS call: add its action to the right policy of ``infra/addon-role/template.yaml`` (read-only calls of the
inputs in ``ReadPolicy``, alert-action writes in ``ResponsePolicy`` or the policy of their feature), then
``make iam-docs`` for the README. A grant without a call in the integration tests: remove it, or add the test
that exercises it. Tests that call AWS in-process through the add-on's ``AwsSession`` are recorded too: let them
call only operations the add-on itself calls.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List

import pytest

from tests.harness.addon_calls import AddonCalls

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import iam_policy  # noqa: E402  (scripts/iam_policy.py: the template's grants)

# Calls the role's policies do not decide: the add-on makes them, but no grant in infra/addon-role is needed.
NOT_GRANTED_BY_THE_ROLE = {
    "sts:GetCallerIdentity": "needs no permission: any identity may ask who it is",
    "sts:AssumeRole": "allowed by the role's trust policy (and the caller's own policy), checked below",
}
# Grants no API call of the add-on can show, each with the reason it is needed.
GRANTED_WITHOUT_A_CALL = {
    "kms:GenerateDataKey": "SNS asks KMS with the publisher's permissions when the notify topic is encrypted",
    "kms:Decrypt": "SNS asks KMS with the publisher's permissions when the notify topic is encrypted",
    "iot:TagResource": "tags passed to CreateThingGroup/CreatePolicy may be authorised as iot:TagResource too "
    "[verify]; only the add-on's tag on the configured names (aws:RequestTag, aws:TagKeys)",
}


DEMO_CALLS = ROOT / "build" / "demo" / "aws-operations.json"


def demo_calls() -> Dict[str, str]:
    """What ``make demo`` recorded, when it ran after the add-on's code last changed (``make test`` runs it first)."""
    if not DEMO_CALLS.exists():
        return {}
    newest_code = max(path.stat().st_mtime for path in (ROOT / "package" / "bin").rglob("*.py"))
    return AddonCalls.read(DEMO_CALLS) if DEMO_CALLS.stat().st_mtime >= newest_code else {}


@pytest.fixture(scope="module")
def template() -> Dict:
    return iam_policy.load_template()


def test_every_call_the_add_on_made_is_granted(addon_calls: AddonCalls, template: Dict) -> None:
    called = {**demo_calls(), **addon_calls.actions()}
    assert called, "no add-on call recorded: run this test with the integration tests (make integration)"
    granted = iam_policy.granted_actions(template)
    missing = {a: test for a, test in called.items() if a not in granted and a not in NOT_GRANTED_BY_THE_ROLE}
    assert not missing, (
        "the add-on calls operations infra/addon-role/template.yaml does not grant (action: first test that "
        f"called it): {missing}"
    )
    if "sts:AssumeRole" in called:
        assert "sts:AssumeRole" in iam_policy.trust_actions(template)


def test_every_grant_is_called(
    whole_integration_suite: bool, addon_calls: AddonCalls, failed_integration_tests: List[str], template: Dict
) -> None:
    if not whole_integration_suite:
        pytest.skip("an unused grant is judged only on the whole integration suite (make integration / make test)")
    called = addon_calls.actions()
    granted = iam_policy.granted_actions(template)
    unused = {a: policy for a, policy in granted.items() if a not in called and a not in GRANTED_WITHOUT_A_CALL}
    failed = f" ({len(failed_integration_tests)} integration tests failed: the record may be short)"
    assert not unused, (
        "infra/addon-role/template.yaml grants actions no integration test saw the add-on call (action: policy): "
        f"{unused}{failed if failed_integration_tests else ''}"
    )
    for action in GRANTED_WITHOUT_A_CALL:
        assert action in granted, f"{action} is listed as needed without a call but is no longer granted"


def test_grants_without_a_call_are_confined_to_their_reason(template: Dict) -> None:
    """The KMS grants are usable only through SNS (kms:ViaService), the one path that needs them."""
    for policy in iam_policy.role_policies(template):
        for statement in iam_policy.statements(template, policy):
            actions = set(iam_policy.as_list(statement["Action"]))
            if "iot:TagResource" in actions:  # only with the add-on's tag in the request
                condition = statement["Condition"]
                assert condition["StringEquals"]["aws:RequestTag/managed-by"] == "TA-aws-iot-defender"
                assert condition["ForAllValues:StringEquals"]["aws:TagKeys"] == ["managed-by"]
            elif actions & set(GRANTED_WITHOUT_A_CALL):
                assert actions <= set(GRANTED_WITHOUT_A_CALL), statement.get("Sid")
                via = statement["Condition"]["StringLike"]["kms:ViaService"]
                assert via == "sns.*.amazonaws.com", statement.get("Sid")
