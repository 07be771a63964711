"""Isolation: the quarantine thing group and the IoT policy that denies the device, attached to the group (created
or checked once per region and run, when the first thing is about to be quarantined) and to each quarantined
thing's certificates.

Why both: IoT applies a thing group's policies only to connections whose MQTT client id equals the thing name; a
certificate's policies apply to every connection made with it. The group keeps the isolation visible (and covers
certificates attached later); the certificate attachments make it hold whatever client id the device uses.
Policy changes reach live connections within minutes; deactivating the certificates as well (an option) refuses
new connections outright and makes IoT close the open ones.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from botocore.exceptions import BotoCoreError, ClientError

from ..aws import error_code, error_message
from .common import parse_arn
from .core import ResponderCore

if TYPE_CHECKING:
    from .quarantine import QuarantineOptions

DEFAULT_QUARANTINE_GROUP = "QUARANTINED"
DEFAULT_POLICY_NAME = "TA-IoTDefender-Quarantine"
BULK_MEMBERSHIP_MIN = 50
MANAGED_BY = "TA-aws-iot-defender"


def isolation_policy(partition: str, region: str, account_id: str, allow_remediation: bool) -> Dict[str, Any]:
    """The IoT policy attached to the quarantine group. Explicit Deny statements override any Allow the device's
    own certificate policies grant (IoT evaluates policies like IAM: an explicit deny always wins).

    - ``allow_remediation=False``: deny every IoT action (AWS's own Device Defender quarantine example).
    - ``allow_remediation=True``: deny all messaging except the thing's own shadow and jobs topics (so a fix can
      still be pushed through the shadow or a job), and deny the credentials provider and retained messages.

    Thing-group policies apply only when the MQTT client id equals the thing name, so quarantine also attaches
    this policy to the thing's certificates (see the module docstring).
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


class SetupError(Exception):
    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


@dataclass
class GroupSetup:
    """The quarantine group as a run found (and prepared) it in one region."""

    group_arn: Optional[str]
    changes: List[str]
    plan: List[str]


class IsolationSetup(ResponderCore):
    """The responder's quarantine-group and isolation-policy setup."""

    def quarantine_setup(self, region: str, options: QuarantineOptions) -> GroupSetup:
        """Make sure the quarantine group exists and carries the isolation policy (once per region and run).

        In a dry run nothing is written: the result's ``plan`` says what would be created or changed.
        """
        key = (region, options, self.dry_run)
        with self._lock:
            lock = self._setups.setdefault(("lock", *key), threading.Lock())
        with lock:
            if key not in self._setups:
                try:
                    self._setups[key] = self._do_setup(region, options)
                except SetupError as exc:
                    self._setups[key] = exc
                except (ClientError, BotoCoreError) as exc:
                    code = error_code(exc)
                    self._setups[key] = SetupError(
                        f"preparing quarantine group {options.group} failed: {code}: {error_message(exc)[:300]}", code
                    )
            value = self._setups[key]
        if isinstance(value, SetupError):
            raise value
        return value

    def _do_setup(self, region: str, options: QuarantineOptions) -> GroupSetup:
        changes: List[str] = []
        plan: List[str] = []
        group_arn: Optional[str] = None
        try:
            group_arn = self.call("iot", region, "DescribeThingGroup", thingGroupName=options.group)["thingGroupArn"]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
        if group_arn is None:
            if self.dry_run:
                plan.append(f"create thing group {options.group}")
            else:
                group_arn = self._create_group(region, options.group, options.policy_name)
                changes.append(f"created thing group {options.group}")
        arn = parse_arn(group_arn or "")
        account = arn.get("account") or self.account_id
        document = isolation_policy(self.partition, region, account, options.allow_remediation)
        if options.manage_policy:
            policy_plan = self._ensure_policy(region, options.policy_name, document)
            (plan if self.dry_run else changes).extend(policy_plan)
        else:
            try:
                self.call("iot", region, "GetPolicy", policyName=options.policy_name)
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                raise SetupError(
                    f"isolation policy {options.policy_name} does not exist (it is managed outside this action)",
                    "ResourceNotFoundException",
                ) from None
        attached = False
        if group_arn:
            attached = any(
                p.get("policyName") == options.policy_name
                for p in self._pages(
                    "iot", region, "ListAttachedPolicies", "policies", "nextMarker", target=group_arn, pageSize=250
                )
            )
        if not attached:
            if self.dry_run:
                plan.append(f"attach policy {options.policy_name} to thing group {options.group}")
            else:
                self.call("iot", region, "AttachPolicy", policyName=options.policy_name, target=group_arn)
                changes.append(f"attached policy {options.policy_name} to thing group {options.group}")
        return GroupSetup(group_arn=group_arn, changes=changes, plan=plan)

    def group_members(self, region: str, options: QuarantineOptions) -> Optional[frozenset]:
        """The quarantine group's members, read once per region and run (reads only), for big runs without
        protected groups; None otherwise (each thing's groups are read instead)."""
        if options.protected_groups or self.run_size < BULK_MEMBERSHIP_MIN:
            return None
        key = ("members", region, options.group)
        with self._lock:
            if key in self._setups:
                return self._setups[key]
        try:
            found = frozenset(
                self._pages(
                    "iot", region, "ListThingsInThingGroup", "things", thingGroupName=options.group, maxResults=250
                )
            )
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            found = frozenset()
        with self._lock:
            self._setups[key] = found
        return found

    def isolated_targets(self, region: str, policy_name: str) -> frozenset:
        """What the isolation policy is attached to when the run first asks (certificates and groups)."""
        key = ("targets", region, policy_name)
        with self._lock:
            if key in self._setups:
                return self._setups[key]
        try:
            found = frozenset(
                self._pages("iot", region, "ListTargetsForPolicy", "targets", "nextMarker", policyName=policy_name)
            )
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            found = frozenset()  # the policy does not exist yet: attached to nothing
        with self._lock:
            self._setups[key] = found
        return found

    def attach_to_certificates(self, region: str, policy_name: str, cert_arns: List[str], changes: List[str]) -> None:
        for arn in cert_arns:
            self.call("iot", region, "AttachPolicy", policyName=policy_name, target=arn)
            changes.append(f"attached policy {policy_name} to certificate {arn.rsplit('/', 1)[-1]}")

    def detach_from_certificate(self, region: str, policy_name: str, cert_arn: str) -> bool:
        """Detach the policy; False when it was no longer attached."""
        try:
            self.call("iot", region, "DetachPolicy", policyName=policy_name, target=cert_arn)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            return False
        return True

    def _create_group(self, region: str, group: str, policy_name: str) -> str:
        try:
            return self.call(
                "iot",
                region,
                "CreateThingGroup",
                thingGroupName=group,
                thingGroupProperties={
                    "thingGroupDescription": f"Quarantined things: isolated by IoT policy {policy_name}. "
                    f"Managed by {MANAGED_BY}."
                },
                # no tags: tagging on create would also need iot:TagResource in the add-on's role
            )["thingGroupArn"]
        except ClientError as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":  # created meanwhile by a concurrent run
                raise
            return self.call("iot", region, "DescribeThingGroup", thingGroupName=group)["thingGroupArn"]

    def _ensure_policy(self, region: str, name: str, document: Dict[str, Any]) -> List[str]:
        """The isolation policy with ``document`` as its default version; returns what was (or would be) done."""
        text = json.dumps(document, separators=(",", ":"))
        try:
            current = self.call("iot", region, "GetPolicy", policyName=name)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            if not self.dry_run:
                try:
                    self.call("iot", region, "CreatePolicy", policyName=name, policyDocument=text)
                except ClientError as create_exc:
                    if error_code(create_exc) != "ResourceAlreadyExistsException":
                        raise
                    return self._ensure_policy(region, name, document)
            return [f"{'create' if self.dry_run else 'created'} IoT policy {name}"]
        try:
            same = json.loads(current.get("policyDocument") or "{}") == document
        except ValueError:
            same = False
        if same:
            return []
        if not self.dry_run:
            self._new_policy_version(region, name, text)
        return [f"{'set' if self.dry_run else 'made'} a new default version of IoT policy {name}"]

    def _new_policy_version(self, region: str, name: str, text: str) -> None:
        try:
            self.call("iot", region, "CreatePolicyVersion", policyName=name, policyDocument=text, setAsDefault=True)
        except ClientError as exc:
            if error_code(exc) != "VersionsLimitExceededException":
                raise
            versions = self.call("iot", region, "ListPolicyVersions", policyName=name).get("policyVersions") or []
            old = [v for v in versions if not v.get("isDefaultVersion")]
            old.sort(key=lambda v: int(v.get("versionId") or 0))
            if not old:
                raise
            self.call("iot", region, "DeletePolicyVersion", policyName=name, policyVersionId=old[0]["versionId"])
            self.call("iot", region, "CreatePolicyVersion", policyName=name, policyDocument=text, setAsDefault=True)
