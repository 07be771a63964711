"""The shipped add-on role (infra/addon-role/template.yaml) evaluated against every AWS call the response actions
make: each call (IAM action, every resource ARN it names, the resource's tags, the request's tags, the region) must
be allowed by a statement of the role, and every statement of the response policies must be needed by some call
(action and each resource pattern), so no grant is broader than the calls. Calls on resources the add-on did not
create (untagged group or policy, a customer's group) must be denied by IAM too: ownership is enforced twice.

The evaluator implements the IAM subset the template uses: Allow statements, ``*``/``?`` wildcards in actions and
resources, StringEquals / StringLike / ForAllValues:StringEquals, one request per resource (IAM authorises an action
that names several resources, e.g. AddThingToThingGroup's group and thing, resource by resource). Where IAM cannot
express ownership (AttachPolicy/DetachPolicy name only their target), docs/security.md says so.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from iot_defender import respond
from iot_defender.aws import Account, AwsSession
from iot_defender.respond import IncidentOptions, MemorySuppressionStore, QuarantineOptions, RateLimiter, Responder
from tests.harness.aws import LoopbackAWS
from tests.unit.test_respond_support import KEY, OWN_TAGS, certificate_pems, run_context

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import iam_policy  # noqa: E402

ACCOUNT = "123456789012"
REGION = "us-east-1"
PLAN_NAME = "iot-critical"
RESPONSE_POLICIES = ("ResponsePolicy", "IncidentPolicy", "NotifyPolicy")
# Granted although no call shows it, each with its reason.
_TAG_ON_CREATE = (
    "tags passed on create may be authorised as iot:TagResource as well [verify against the Service Authorization "
    "Reference]; the same conditions hold: only the add-on's tag, only on the configured name"
)
WITHOUT_A_CALL = {
    ("iot:TagResource", "CreateTheQuarantineGroupWithTheAddOnsTagOnly"): _TAG_ON_CREATE,
    ("iot:TagResource", "CreateTheIsolationPolicyWithTheAddOnsTagOnly"): _TAG_ON_CREATE,
}


class Role:
    """The template's statements with its parameters and conditions resolved for one deployment."""

    def __init__(self, topic: str, plan: str, owner_topics: Tuple[str, ...] = ()):
        self.template = iam_policy.load_template()
        self.values = {
            "AWS::Partition": "aws",
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "QuarantineGroupName": "QUARANTINED",
            "IsolationPolicyName": respond.DEFAULT_POLICY_NAME,
            "ResponsePlanArn": plan,
            "NotifyTopicArn": topic,
            "NotifyTopicKmsKeyArn": "",
            "OwnerTopicArns": list(owner_topics),
            "Regions": [],
        }
        self.conditions = {
            "AllRegionsDefault": True,
            "Respond": True,
            "RespondWithIncidents": True,
            "RespondWithNotifications": True,
            "RespondWithEncryptedNotifications": False,
            "RespondToOwners": bool(owner_topics),
        }
        self.statements: List[Tuple[str, Dict[str, Any]]] = [
            (policy, self.resolve(statement))
            for policy in iam_policy.role_policies(self.template)
            if self.conditions.get(self.template["Resources"][policy].get("Condition", "Respond"), True)
            for statement in iam_policy.statements(self.template, policy)
        ]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, inner),) = value.items()
            if key == "Ref":
                return self.values[inner]
            if key == "Fn::Sub":
                return re.sub(r"\$\{([\w:]+)\}", lambda m: str(self.values[m.group(1)]), inner)
            if key == "Fn::If":
                return self.resolve(inner[1] if self.conditions[inner[0]] else inner[2])
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def allowing(self, action: str, resource: str, context: Dict[str, Any]) -> List[Tuple[str, str, str]]:
        """(policy, Sid, resource pattern) of every Allow statement that allows the request."""
        found = []
        for policy, statement in self.statements:
            if statement.get("Effect") != "Allow" or not _any(statement["Action"], action, ci=True):
                continue
            patterns = [p for p in iam_policy.as_list(statement["Resource"]) if _match(p, resource)]
            if patterns and _conditions(statement.get("Condition") or {}, context):
                found.extend((policy, statement.get("Sid", "?"), p) for p in patterns)
        return found


def _match(pattern: str, value: str, ci: bool = False) -> bool:
    if ci:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _any(patterns: Any, value: str, ci: bool = False) -> bool:
    return any(_match(p, value, ci) for p in iam_policy.as_list(patterns))


def _conditions(block: Dict[str, Dict[str, Any]], context: Dict[str, Any]) -> bool:
    for operator, tests in block.items():
        for key, wanted in tests.items():
            wanted = [str(w) for w in iam_policy.as_list(wanted)]
            have = context.get(key)
            if operator == "StringEquals" and (have is None or str(have) not in wanted):
                return False
            if operator == "StringLike" and (have is None or not _any(wanted, str(have))):
                return False
            if operator == "ForAllValues:StringEquals" and not all(v in wanted for v in (have or [])):
                return False
            if operator not in ("StringEquals", "StringLike", "ForAllValues:StringEquals"):
                raise AssertionError(f"the evaluator does not know condition operator {operator}")
    return True


# ------------------------------------------------------------------ what one call asks IAM


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:{kind}/{name}"


IOT_RESOURCES = {
    "DescribeThing": lambda p: [_arn("thing", p["thingName"])],
    "UpdateThing": lambda p: [_arn("thing", p["thingName"])],
    "DescribeThingGroup": lambda p: [_arn("thinggroup", p["thingGroupName"])],
    "ListThingsInThingGroup": lambda p: [_arn("thinggroup", p["thingGroupName"])],
    "CreateThingGroup": lambda p: [_arn("thinggroup", p["thingGroupName"])],
    "AddThingToThingGroup": lambda p: [_arn("thinggroup", p["thingGroupName"]), _arn("thing", p["thingName"])],
    "RemoveThingFromThingGroup": lambda p: [_arn("thinggroup", p["thingGroupName"]), _arn("thing", p["thingName"])],
    "AttachPolicy": lambda p: [p["target"]],
    "DetachPolicy": lambda p: [p["target"]],
    "CreatePolicy": lambda p: [_arn("policy", p["policyName"])],
    "GetPolicy": lambda p: [_arn("policy", p["policyName"])],
    "ListTargetsForPolicy": lambda p: [_arn("policy", p["policyName"])],
    "ListPolicyVersions": lambda p: [_arn("policy", p["policyName"])],
    "CreatePolicyVersion": lambda p: [_arn("policy", p["policyName"])],
    "DeletePolicyVersion": lambda p: [_arn("policy", p["policyName"])],
    "ListTagsForResource": lambda p: [p["resourceArn"]],
    "DescribeCertificate": lambda p: [_arn("cert", p["certificateId"])],
    "UpdateCertificate": lambda p: [_arn("cert", p["certificateId"])],
}


class Recorder:
    """Every call the actions make, as IAM requests: (IAM action, resource, context)."""

    def __init__(self, aws: LoopbackAWS):
        self.iot = aws.client("iot")
        self.requests: List[Tuple[str, str, Dict[str, Any], str]] = []

    def tags(self, arn: str) -> Dict[str, str]:
        if ":thinggroup/" not in arn and ":policy/" not in arn:
            return {}
        try:
            return {t["Key"]: t["Value"] for t in self.iot.list_tags_for_resource(resourceArn=arn)["tags"]}
        except self.iot.exceptions.ResourceNotFoundException:
            return {}

    def __call__(self, service: str, region: str, operation: str, params: Dict[str, Any]) -> None:
        base: Dict[str, Any] = {"aws:RequestedRegion": region}
        request_tags = {t["Key"]: t["Value"] for t in params.get("tags") or []}
        if request_tags:
            base["aws:TagKeys"] = sorted(request_tags)
            base.update({f"aws:RequestTag/{k}": v for k, v in request_tags.items()})
        for resource in self.resources(service, operation, params):
            context = dict(base)
            context.update({f"aws:ResourceTag/{k}": v for k, v in self.tags(resource).items()})
            self.requests.append((f"{service}:{operation}", resource, context, operation))

    @staticmethod
    def resources(service: str, operation: str, params: Dict[str, Any]) -> List[str]:
        if service == "iot":
            return IOT_RESOURCES.get(operation, lambda p: ["*"])(params)
        if service == "ssm" and operation == "GetOpsItem":
            return [f"arn:aws:ssm:{REGION}:{ACCOUNT}:opsitem/{params['OpsItemId']}"]
        if service == "ssm-incidents":
            return [params["responsePlanArn"]]
        if service == "sns":
            return [params["TopicArn"]]
        return ["*"]


# ------------------------------------------------------------------ the scenario


@pytest.fixture(scope="module")
def recorded():
    with LoopbackAWS() as aws:
        mp = pytest.MonkeyPatch()
        mp.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
        try:
            yield _scenario(aws)
        finally:
            mp.undo()


def _responder(aws: LoopbackAWS, recorder: Recorder, **kw: Any) -> Responder:
    session = AwsSession(Account(name="t", access_key_id=aws.access_key, secret_access_key=aws.secret_key))
    made = Responder(session, account_id=aws.account_id, limiter=RateLimiter({}), keyring=respond.Keyring([KEY]), **kw)
    made.calls.observers.append(recorder)
    return made


def _scenario(aws: LoopbackAWS) -> Tuple[Recorder, Role]:
    assert aws.account_id == ACCOUNT and aws.region == REGION
    iot = aws.client("iot")
    pems = iter(certificate_pems())
    for thing in ("dev-a", "dev-b", "dev-c"):
        iot.create_thing(thingName=thing)
        cert = iot.register_certificate_without_ca(certificatePem=next(pems), status="ACTIVE")
        iot.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
    iot.attach_thing_principal(thingName="dev-b", principal=cert["certificateArn"])  # dev-b and dev-c share one
    topic = aws.client("sns").create_topic(Name="iot-incidents")["TopicArn"]
    plan = aws.client("ssm-incidents").create_response_plan(
        name=PLAN_NAME, incidentTemplate={"title": "IoT", "impact": 3}
    )["arn"]
    recorder = Recorder(aws)
    ctx, deactivate = run_context(), QuarantineOptions(deactivate_certificates=True)
    for thing in ("dev-a", "dev-b", "dev-c"):
        assert _responder(aws, recorder).quarantine(thing, REGION, deactivate, ctx).outcome == "done"
    bulk = _responder(aws, recorder, run_size=respond.BULK_MEMBERSHIP_MIN)
    assert bulk.quarantine("dev-a", REGION, QuarantineOptions(), ctx).outcome == "already-in-state"
    for thing in ("dev-b", "dev-c", "dev-a"):
        assert _responder(aws, recorder).release(thing, REGION, QuarantineOptions(), ctx).outcome == "done"
    for remediation in (False, True) * 3:  # mode changes until IoT's five-version limit: the oldest goes
        options = QuarantineOptions(allow_remediation=remediation)
        assert _responder(aws, recorder).quarantine("dev-a", REGION, options, ctx).outcome == "done"
        assert _responder(aws, recorder).release("dev-a", REGION, options, ctx).outcome == "done"
    row = {"thing_name": "dev-a", "violationId": "v-1"}
    for options in (
        IncidentOptions(destination="opscenter"),
        IncidentOptions(destination="incident_manager", response_plan_arn=plan),
        IncidentOptions(destination="sns", sns_topic_arn=topic),
    ):
        started = _responder(aws, recorder, store=MemorySuppressionStore()).start_incident(
            "dev-a", REGION, row, options, ctx, violation_id="v-1"
        )
        assert started.outcome == "done", started.message
    team = aws.client("sns").create_topic(Name="ot-team-north")["TopicArn"]  # the owning team's topic (issue 18)
    told = _responder(
        aws,
        recorder,
        store=MemorySuppressionStore(),
        owner_of=lambda region, thing: {"owner": "ot-north", "priority": "high", "bunit": "line-a"},
        owner_topics={"ot-north": team},
    ).start_incident("dev-b", REGION, {"thing_name": "dev-b"}, IncidentOptions(destination="opscenter"), ctx)
    assert told.details.get("owner_notification") == f"published to {team}", told.details
    _responder(aws, recorder).set_verification_state("v-1", REGION, "TRUE_POSITIVE", thing_name="dev-a")
    return recorder, Role(topic, plan, (team,))


# ------------------------------------------------------------------ the checks


def test_every_call_the_actions_make_is_allowed_by_the_role(recorded):
    recorder, role = recorded
    denied = [
        (action, resource, json.dumps(context, sort_keys=True))
        for action, resource, context, _ in recorder.requests
        if not role.allowing(action, resource, context)
    ]
    assert recorder.requests and not denied, denied


def test_no_grant_of_the_response_policies_is_broader_than_the_calls(recorded):
    recorder, role = recorded
    used = set()
    for action, resource, context, _ in recorder.requests:
        for policy, sid, pattern in role.allowing(action, resource, context):
            used.add((policy, sid, action.lower(), pattern))
    unused = []
    for policy, statement in role.statements:
        if policy not in RESPONSE_POLICIES:
            continue
        sid = statement.get("Sid", "?")
        for action in iam_policy.as_list(statement["Action"]):
            for pattern in iam_policy.as_list(statement["Resource"]):
                if (policy, sid, action.lower(), pattern) not in used and (action, sid) not in WITHOUT_A_CALL:
                    unused.append((sid, action, pattern))
    assert not unused, f"granted but no call needs it (remove it, or test the call that does): {unused}"


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        ("iot:AttachPolicy", _arn("thinggroup", "QUARANTINED"), {}),  # a quarantine group the add-on did not tag
        ("iot:AddThingToThingGroup", _arn("thinggroup", "QUARANTINED"), {}),
        (
            "iot:AddThingToThingGroup",
            _arn("thinggroup", "site-a"),
            {"aws:ResourceTag/managed-by": "TA-aws-iot-defender"},
        ),
        ("iot:CreatePolicyVersion", _arn("policy", respond.DEFAULT_POLICY_NAME), {}),  # a customer's policy
        ("iot:DeletePolicyVersion", _arn("policy", respond.DEFAULT_POLICY_NAME), {"aws:ResourceTag/managed-by": "x"}),
        (
            "iot:CreatePolicyVersion",
            _arn("policy", "CustomerFleet"),
            {"aws:ResourceTag/managed-by": "TA-aws-iot-defender"},
        ),
        ("iot:CreateThingGroup", _arn("thinggroup", "QUARANTINED"), {}),  # created without the add-on's tag
        ("iot:CreatePolicy", _arn("policy", respond.DEFAULT_POLICY_NAME), {"aws:RequestTag/managed-by": "other"}),
        ("iot:AttachPolicy", _arn("thinggroup", "site-a"), {"aws:ResourceTag/managed-by": "TA-aws-iot-defender"}),
    ],
)
def test_iam_refuses_what_the_add_on_refuses(recorded, action, resource, context):
    _, role = recorded
    context = {"aws:RequestedRegion": REGION, **context}
    assert not role.allowing(action, resource, context)


def test_the_calls_cover_the_ownership_sensitive_operations(recorded):
    """The scenario really exercised the writes ownership is about (else the checks above prove little)."""
    recorder, _ = recorded
    seen = {operation for _, _, _, operation in recorder.requests}
    assert {
        "CreateThingGroup",
        "CreatePolicy",
        "CreatePolicyVersion",
        "DeletePolicyVersion",
        "AttachPolicy",
        "DetachPolicy",
        "AddThingToThingGroup",
        "RemoveThingFromThingGroup",
        "ListThingsInThingGroup",
        "ListPrincipalThings",
        "GetOpsItem",
        "Publish",
        "StartIncident",
    } <= seen
    tagged = [c for _, r, c, op in recorder.requests if op == "AttachPolicy" and ":thinggroup/" in r]
    assert tagged and all(c.get("aws:ResourceTag/managed-by") == OWN_TAGS[0]["Value"] for c in tagged)
