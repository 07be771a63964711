"""Isolation: the quarantine thing group and the IoT policy that denies the device, attached to the group (created
or checked once per region and run, when the first thing is about to be quarantined) and to each quarantined
thing's certificates.

Why both: IoT applies a thing group's policies only to connections whose MQTT client id equals the thing name; a
certificate's policies apply to every connection made with it. The group keeps the isolation visible (and covers
certificates attached later); the certificate attachments make it hold whatever client id the device uses.
Policy changes reach live connections within minutes; deactivating the certificates as well (an option) refuses
new connections outright and makes IoT close the open ones.

Every group and policy is checked by :class:`~.ownership.Ownership` before the first write; both are created
with the add-on's tag.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from botocore.exceptions import BotoCoreError, ClientError

from ..aws import error_code, error_message
from .calls import AwsCalls
from .options import QuarantineOptions
from .outcomes import NOT_OWNED_CODE
from .ownership import MANAGED_BY, Ownership, isolation_policy, tag_list
from .registry import Registry

BULK_MEMBERSHIP_MIN = 50


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


class Isolation:
    """The quarantine group, the isolation policy and their attachments, for one account and run."""

    def __init__(
        self, calls: AwsCalls, registry: Registry, ownership: Ownership, *, dry_run: bool = False, run_size: int = 0
    ):
        """``run_size``: how many targets the caller is about to act on. From BULK_MEMBERSHIP_MIN targets on,
        quarantine reads the quarantine group's members once instead of each thing's groups, unless protected
        groups need each thing's groups anyway."""
        self.calls = calls
        self.registry = registry
        self.ownership = ownership
        self.dry_run = dry_run
        self.run_size = run_size
        self._lock = threading.Lock()
        self._cache: Dict[Tuple[Any, ...], Any] = {}

    def setup(self, region: str, options: QuarantineOptions) -> GroupSetup:
        """Make sure the quarantine group exists, is the add-on's, and carries the add-on's isolation policy (once
        per region and run). In a dry run nothing is written: ``plan`` says what would be created or changed."""
        key = ("setup", region, options)
        with self._lock:
            lock = self._cache.setdefault(("lock", *key), threading.Lock())
        with lock:
            if key not in self._cache:
                try:
                    self._cache[key] = self._do_setup(region, options)
                except SetupError as exc:
                    self._cache[key] = exc
                except (ClientError, BotoCoreError) as exc:
                    code = error_code(exc)
                    self._cache[key] = SetupError(
                        f"preparing quarantine group {options.group} failed: {code}: {error_message(exc)[:300]}", code
                    )
            value = self._cache[key]
        if isinstance(value, SetupError):
            raise value
        return value

    def _do_setup(self, region: str, options: QuarantineOptions) -> GroupSetup:
        changes: List[str] = []
        plan: List[str] = []
        group_arn = self._own_group(region, options.group)
        if group_arn is None:
            if self.dry_run:
                plan.append(f"create thing group {options.group}")
            else:
                group_arn = self._create_group(region, options.group, options.policy_name)
                changes.append(f"created thing group {options.group}")
        policy_plan = self._own_policy(region, options)
        (plan if self.dry_run else changes).extend(policy_plan)
        attached = bool(group_arn) and any(
            p.get("policyName") == options.policy_name
            for p in self.calls.pages(
                "iot", region, "ListAttachedPolicies", "policies", "nextMarker", target=group_arn, pageSize=250
            )
        )
        if not attached:
            if self.dry_run:
                plan.append(f"attach policy {options.policy_name} to thing group {options.group}")
            else:
                self.calls.call("iot", region, "AttachPolicy", policyName=options.policy_name, target=group_arn)
                changes.append(f"attached policy {options.policy_name} to thing group {options.group}")
        return GroupSetup(group_arn=group_arn, changes=changes, plan=plan)

    def _own_group(self, region: str, group: str) -> Optional[str]:
        """The quarantine group's ARN when it exists and is the add-on's; None when it does not exist."""
        answer = self.registry.describe_group(region, group)
        if answer is None:
            return None
        problem = self.ownership.group_problem(region, answer)
        if problem:
            raise SetupError(f"refused before any write: {problem}", NOT_OWNED_CODE)
        return str(answer["thingGroupArn"])

    def _own_policy(self, region: str, options: QuarantineOptions) -> List[str]:
        """Check (and with ``manage_policy`` create or update) the isolation policy; what was (would be) done."""
        account = self.calls.account_id
        document = isolation_policy(self.calls.partition, region, account, options.allow_remediation)
        current = self.registry.policy(region, options.policy_name)
        if current is None:
            if not options.manage_policy:
                raise SetupError(
                    f"isolation policy {options.policy_name} does not exist (it is managed outside this action)",
                    "ResourceNotFoundException",
                )
            return self._create_policy(region, options, document)
        problem = self.ownership.policy_problem(region, current, account, self.calls.partition)
        if problem:
            raise SetupError(f"refused before any write: {problem}", NOT_OWNED_CODE)
        if not options.manage_policy or json.loads(current.get("policyDocument") or "{}") == document:
            return []
        if not self.dry_run:
            self._new_policy_version(region, options.policy_name, json.dumps(document, separators=(",", ":")))
        return [f"{'set' if self.dry_run else 'made'} a new default version of IoT policy {options.policy_name}"]

    def _create_policy(self, region: str, options: QuarantineOptions, document: Dict[str, Any]) -> List[str]:
        if not self.dry_run:
            text = json.dumps(document, separators=(",", ":"))
            try:
                self.calls.call(
                    "iot", region, "CreatePolicy", policyName=options.policy_name, policyDocument=text, tags=tag_list()
                )
            except ClientError as exc:
                if error_code(exc) != "ResourceAlreadyExistsException":  # created meanwhile: check it again
                    raise
                return self._own_policy(region, options)
        return [f"{'create' if self.dry_run else 'created'} IoT policy {options.policy_name}"]

    def group_members(self, region: str, options: QuarantineOptions) -> Optional[frozenset]:
        """The quarantine group's members, read once per region and run, for big runs without protected groups;
        None otherwise (each thing's groups are read instead)."""
        if options.protected_groups or self.run_size < BULK_MEMBERSHIP_MIN:
            return None
        return self._once(
            ("members", region, options.group),
            lambda: self.calls.pages(
                "iot", region, "ListThingsInThingGroup", "things", thingGroupName=options.group, maxResults=250
            ),
        )

    def isolated_targets(self, region: str, policy_name: str) -> frozenset:
        """What the isolation policy is attached to when the run first asks (certificates and groups)."""
        return self._once(
            ("targets", region, policy_name),
            lambda: self.calls.pages(
                "iot", region, "ListTargetsForPolicy", "targets", "nextMarker", policyName=policy_name
            ),
        )

    def _once(self, key: Tuple[str, ...], read: Any) -> frozenset:
        """``read()`` once per key and run, however many threads ask at the same moment."""
        with self._lock:
            lock = self._cache.setdefault(("lock", *key), threading.Lock())
        with lock:
            if key not in self._cache:
                try:
                    self._cache[key] = frozenset(read())
                except ClientError as exc:
                    if error_code(exc) != "ResourceNotFoundException":
                        raise
                    self._cache[key] = frozenset()  # the group or policy does not exist yet
            return self._cache[key]

    def attach(self, region: str, policy_name: str, cert_arns: List[str], changes: List[str]) -> None:
        for arn in cert_arns:
            self.calls.call("iot", region, "AttachPolicy", policyName=policy_name, target=arn)
            changes.append(f"attached policy {policy_name} to certificate {arn.rsplit('/', 1)[-1]}")

    def detach(self, region: str, policy_name: str, cert_arn: str) -> bool:
        """Detach the policy; False when it was no longer attached."""
        try:
            self.calls.call("iot", region, "DetachPolicy", policyName=policy_name, target=cert_arn)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            return False
        return True

    def _create_group(self, region: str, group: str, policy_name: str) -> str:
        try:
            return self.calls.call(
                "iot",
                region,
                "CreateThingGroup",
                thingGroupName=group,
                thingGroupProperties={
                    "thingGroupDescription": f"Quarantined things: isolated by IoT policy {policy_name}. "
                    f"Managed by {MANAGED_BY}."
                },
                tags=tag_list(),
            )["thingGroupArn"]
        except ClientError as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":  # created meanwhile by a concurrent run
                raise
            arn = self._own_group(region, group)
            if arn is None:
                raise
            return arn

    def _new_policy_version(self, region: str, name: str, text: str) -> None:
        try:
            self.calls.call(
                "iot", region, "CreatePolicyVersion", policyName=name, policyDocument=text, setAsDefault=True
            )
        except ClientError as exc:
            if error_code(exc) != "VersionsLimitExceededException":
                raise
            versions = self.calls.call("iot", region, "ListPolicyVersions", policyName=name).get("policyVersions") or []
            old = [v for v in versions if not v.get("isDefaultVersion")]
            old.sort(key=lambda v: int(v.get("versionId") or 0))
            if not old:
                raise
            self.calls.call("iot", region, "DeletePolicyVersion", policyName=name, policyVersionId=old[0]["versionId"])
            self.calls.call(
                "iot", region, "CreatePolicyVersion", policyName=name, policyDocument=text, setAsDefault=True
            )
