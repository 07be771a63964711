"""Ownership: the add-on changes only AWS resources it created and can prove it did.

What the add-on creates (the quarantine thing group, the isolation policy) carries the tag :data:`MANAGED_TAG`;
the response stack's CloudFormation tags the group and policy it creates the same way. Before any write that
changes, attaches, versions or deletes a group or policy, the action checks:

- the thing group: tagged, and a root group (the add-on creates it without a parent, so a child of a site or
  protected group can never be a quarantine group);
- the IoT policy: tagged, and its default document is one of the add-on's own deny documents
  (:func:`isolation_policy`), so a customer policy that happens to have the configured name is never rewritten,
  attached or versioned.

The add-on role says the same with ``aws:ResourceTag`` conditions where IAM supports them (docs/security.md lists
where it does not: AttachPolicy and DetachPolicy name only their target, never the policy).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, Optional, Tuple

from .registry import Registry

MANAGED_BY = "TA-aws-iot-defender"
MANAGED_TAG = ("managed-by", MANAGED_BY)


def isolation_policy(partition: str, region: str, account_id: str, allow_remediation: bool) -> Dict[str, Any]:
    """The isolating IoT policy. Explicit Deny statements override any Allow the device's own certificate policies
    grant (IoT evaluates policies like IAM: an explicit deny always wins).

    - ``allow_remediation=False``: deny every IoT action (AWS's own Device Defender quarantine example).
    - ``allow_remediation=True``: deny all messaging except the thing's own shadow and jobs topics (so a fix can
      still be pushed through the shadow or a job), and deny the credentials provider and retained messages.
    """
    if not allow_remediation:
        return {
            "Version": "2012-10-17",
            "Statement": [{"Sid": "QuarantineDenyAll", "Effect": "Deny", "Action": "iot:*", "Resource": "*"}],
        }
    prefix = f"arn:{partition}:iot:{region}:{account_id}"
    own = "$aws/things/${iot:Connection.Thing.ThingName}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "QuarantineDenyMessagingExceptOwnShadowAndJobs",
                "Effect": "Deny",
                "Action": ["iot:Publish", "iot:RetainPublish", "iot:Receive"],
                "NotResource": [f"{prefix}:topic/{own}/shadow/*", f"{prefix}:topic/{own}/jobs/*"],
            },
            {
                "Sid": "QuarantineDenySubscribeExceptOwnShadowAndJobs",
                "Effect": "Deny",
                "Action": "iot:Subscribe",
                "NotResource": [f"{prefix}:topicfilter/{own}/shadow/*", f"{prefix}:topicfilter/{own}/jobs/*"],
            },
            {
                "Sid": "QuarantineDenyCredentialsAndRetained",
                "Effect": "Deny",
                "Action": ["iot:AssumeRoleWithCertificate", "iot:GetRetainedMessage", "iot:ListRetainedMessages"],
                "Resource": "*",
            },
        ],
    }


def is_own_document(text: Any, partition: str, region: str, account_id: str) -> bool:
    """True when ``text`` (a policy document) is one of the add-on's deny documents for this account and region."""
    try:
        document = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return False
    return any(document == isolation_policy(partition, region, account_id, allow) for allow in (True, False))


def tag_list() -> list:
    return [{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}]


class Ownership:
    """Proves (or refuses) that a group or policy is the add-on's; tag answers are cached for the run."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self._lock = threading.Lock()
        self._tags: Dict[Tuple[str, str], bool] = {}

    def tagged(self, region: str, arn: str) -> bool:
        key = (region, arn)
        with self._lock:
            if key in self._tags:
                return self._tags[key]
        found = self.registry.tags(region, arn).get(MANAGED_TAG[0]) == MANAGED_TAG[1]
        with self._lock:
            self._tags[key] = found
        return found

    def group_problem(self, region: str, answer: Dict[str, Any]) -> Optional[str]:
        """Why the described thing group is not the add-on's to use, or None."""
        name = answer.get("thingGroupName") or "?"
        parents = (answer.get("thingGroupMetadata") or {}).get("rootToParentThingGroups") or []
        if parents:
            return f"thing group {name} has a parent group: the add-on's quarantine group is a root group"
        if not self.tagged(region, str(answer.get("thingGroupArn") or "")):
            return (
                f"thing group {name} was not created by the add-on (no tag {MANAGED_TAG[0]}={MANAGED_TAG[1]}); "
                "choose another quarantine group name, or tag it if the add-on did create it"
            )
        return None

    def policy_problem(self, region: str, answer: Dict[str, Any], account_id: str, partition: str) -> Optional[str]:
        """Why the IoT policy (a GetPolicy answer) is not the add-on's to attach or change, or None."""
        name = answer.get("policyName") or "?"
        if not is_own_document(answer.get("policyDocument"), partition, region, account_id):
            return f"IoT policy {name} is not the add-on's deny document: it is never attached, versioned or changed"
        if not self.tagged(region, str(answer.get("policyArn") or "")):
            return f"IoT policy {name} was not created by the add-on (no tag {MANAGED_TAG[0]}={MANAGED_TAG[1]})"
        return None
