"""Quarantine one thing.

Quarantine adds the thing to the quarantine group and attaches the isolating IoT policy to the thing's
certificates (see :mod:`.isolation` for why both), optionally deactivates its ACTIVE certificates, then records
what it changed on the thing itself (:class:`~.record.QuarantineRecord`, authenticated with the add-on's record
key) so that release (:mod:`.release`) undoes exactly that. It reads the current state first and writes only the
difference (a repeat is ``already-in-state``); a dry run reports the plan only; the quarantine group and policy
are set up only when a thing is really about to be quarantined.

The record is written with ``UpdateThing(expectedVersion=...)``: when another quarantine of the same thing wrote
in between, the record is read again and both quarantines' changes are merged, so overlapping runs never lose
what either did. A record that cannot be stored ends the quarantine as ``warning`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

from botocore.exceptions import BotoCoreError, ClientError

from ..aws import error_code
from ..events import ActionResult, to_iso
from .common import (
    ACTION_QUARANTINE,
    POLICY_NAME_RE,
    THING_GROUP_NAME_RE,
    OptionError,
    RunContext,
    show,
)
from .isolation import DEFAULT_POLICY_NAME, DEFAULT_QUARANTINE_GROUP, SetupError
from .record import RECORD_ATTRIBUTE, QuarantineRecord, RecordTooLarge
from .release import ReleaseActions

RECORD_WRITE_ATTEMPTS = 5


@dataclass(frozen=True)
class QuarantineOptions:
    group: str = DEFAULT_QUARANTINE_GROUP
    policy_name: str = DEFAULT_POLICY_NAME
    allow_remediation: bool = True
    deactivate_certificates: bool = False
    protected_groups: Tuple[str, ...] = ()
    # False when the isolation policy is owned by someone else (the response stack's CloudFormation): then it is
    # only checked to exist and attached to the group, never created or rewritten.
    manage_policy: bool = True

    def check(self) -> None:
        if not THING_GROUP_NAME_RE.match(self.group or ""):
            raise OptionError(f"quarantine group {show(self.group)} is not a thing group name ([a-zA-Z0-9:_-], 1-128)")
        if not POLICY_NAME_RE.match(self.policy_name or ""):
            raise OptionError(f"policy name {show(self.policy_name)} is not an IoT policy name ([\\w+=,.@-], 1-128)")
        for name in self.protected_groups:
            if not THING_GROUP_NAME_RE.match(name):
                raise OptionError(f"protected thing group {show(name)} is not a thing group name")
        if self.group in self.protected_groups:
            raise OptionError(f"the quarantine group {self.group} is also listed as protected")


class RecordConflict(Exception):
    """The thing's record kept changing while quarantine tried to write it."""


@dataclass
class _Found:
    """A thing as quarantine found it, and what quarantine would change."""

    in_group: bool
    previous: Optional[QuarantineRecord]  # only an authenticated record: nothing else is merged
    version: Optional[int]
    to_isolate: List[str]  # certificate ARNs without the isolation policy
    to_deactivate: List[Dict[str, str]]
    can_record: bool
    details: Dict[str, Any]


class QuarantineActions(ReleaseActions):
    """The responder's quarantine action (and, inherited, release)."""

    def check_protected_groups(self, region: str, options: QuarantineOptions) -> None:
        """Refuse (OptionError) protected group names that do not exist: a misspelt or wrongly cased name would
        otherwise protect nothing."""
        missing = self.missing_groups(region, options.protected_groups)
        if missing:
            raise OptionError(
                f"protected thing group(s) {', '.join(missing)} do not exist in {region} (thing group names are "
                "case-sensitive); nothing was changed"
            )

    def quarantine(self, thing_name: str, region: str, options: QuarantineOptions, context: RunContext) -> ActionResult:
        action = ACTION_QUARANTINE
        refused = self.refuse_invalid_name(action, thing_name, region)
        if refused is not None:
            return refused
        self.stats.reset_thread()
        changes: List[str] = []
        try:
            found = self._find_for_quarantine(thing_name, region, options)
            if isinstance(found, ActionResult):
                return found
            unchanged = self._quarantine_unchanged(thing_name, region, options, found)
            if unchanged is not None:
                return unchanged
            try:  # only now that this thing will be quarantined: group and policy
                setup = self.quarantine_setup(region, options)
            except SetupError as exc:
                return self.result(action, "failed", thing_name, region, str(exc), error_code=exc.code)
            if setup.changes:
                found.details["setup_changes"] = setup.changes
            isolated, deactivated = self._isolate(thing_name, region, options, found, changes)
            return self._record_quarantine(thing_name, region, options, context, found, changes, isolated, deactivated)
        except (ClientError, BotoCoreError) as exc:
            return self._failed(action, thing_name, region, exc, changes, "quarantine")

    def _find_for_quarantine(
        self, thing_name: str, region: str, options: QuarantineOptions
    ) -> Union[_Found, ActionResult]:
        """The thing's state (or the refusal: no such thing, protected thing) before any write."""
        action = ACTION_QUARANTINE
        thing = self.describe_thing(region, thing_name)
        if thing is None:
            return self.result(
                action, "refused-invalid", thing_name, region, f"thing {thing_name} does not exist in {region}"
            )
        members = self.group_members(region, options)
        groups = (
            self.thing_groups(region, thing_name)
            if members is None
            else ([options.group] if thing_name in members else [])
        )
        protected = self.protected_by(region, groups, options.protected_groups)
        if protected:
            return self.result(
                action,
                "refused-protected",
                thing_name,
                region,
                f"thing {thing_name} is in protected thing group {protected}: never quarantined",
                details={"thing_groups": groups},
            )
        attributes = dict(thing.get("attributes") or {})
        previous = QuarantineRecord.decode(attributes.get(RECORD_ATTRIBUTE), self.signer(region, thing_name))
        in_group = options.group in groups
        details: Dict[str, Any] = {"quarantine_group": options.group, "policy_name": options.policy_name}
        details["was_member"] = in_group
        if members is None:
            details["thing_groups_before"] = groups
        if previous is not None and not previous.authenticated:
            details["previous_record_unauthenticated"] = True
        to_isolate, to_deactivate = self._certificate_plan(thing_name, region, options, details)
        other_attributes = [k for k in attributes if k != RECORD_ATTRIBUTE]
        return _Found(
            in_group=in_group,
            previous=previous if previous is not None and previous.authenticated else None,
            version=thing.get("version"),
            to_isolate=to_isolate,
            to_deactivate=to_deactivate,
            can_record=bool(thing.get("thingTypeName")) or len(other_attributes) < 3,
            details=details,
        )

    def _certificate_plan(
        self, thing_name: str, region: str, options: QuarantineOptions, details: Dict[str, Any]
    ) -> Tuple[List[str], List[Dict[str, str]]]:
        """The certificates to give the isolation policy, and (with the option) the ACTIVE ones to deactivate."""
        cert_arns = self.certificate_arns(region, thing_name)
        targets = self.isolated_targets(region, options.policy_name)
        to_isolate = [arn for arn in cert_arns if arn not in targets]
        to_deactivate: List[Dict[str, str]] = []
        if options.deactivate_certificates:
            states: Dict[str, str] = {}
            for arn in cert_arns:
                cert_id = arn.rsplit("/", 1)[-1]
                states[cert_id] = self._certificate_status(region, cert_id)
                if states[cert_id] == "ACTIVE":
                    to_deactivate.append({"id": cert_id, "arn": arn})
            details["certificates_before"] = states
        details["certificates"] = len(cert_arns)
        return to_isolate, to_deactivate

    def _quarantine_unchanged(
        self, thing_name: str, region: str, options: QuarantineOptions, found: _Found
    ) -> Optional[ActionResult]:
        """The result when nothing is to be written: already quarantined, or a dry run (with its plan)."""
        details = found.details
        if found.in_group and not found.to_deactivate and not found.to_isolate:
            note = f"already in quarantine group {options.group}, certificates isolated"
            if options.deactivate_certificates:
                note += "; no ACTIVE certificate left"
            return self.result(ACTION_QUARANTINE, "already-in-state", thing_name, region, note, details=details)
        if not self.dry_run:
            return None
        try:
            setup_plan = self.quarantine_setup(region, options).plan  # a dry run only reads
        except SetupError as exc:
            return self.result(ACTION_QUARANTINE, "failed", thing_name, region, str(exc), error_code=exc.code)
        plan = list(setup_plan)
        if not found.in_group:
            plan.append(f"add to thing group {options.group}")
        plan.extend(
            f"attach policy {options.policy_name} to certificate {a.rsplit('/', 1)[-1]}" for a in found.to_isolate
        )
        plan.extend(f"deactivate certificate {c['id']}" for c in found.to_deactivate)
        details["plan"] = plan
        message = "dry run, would: " + "; ".join(plan)
        return self.result(ACTION_QUARANTINE, "dry-run", thing_name, region, message, details=details)

    def _isolate(
        self, thing_name: str, region: str, options: QuarantineOptions, found: _Found, changes: List[str]
    ) -> Tuple[List[str], List[str]]:
        """Join the group, isolate the certificates, deactivate the ACTIVE ones; returns (isolated, deactivated)
        certificate ids."""
        if not found.in_group:
            self.call("iot", region, "AddThingToThingGroup", thingGroupName=options.group, thingName=thing_name)
            changes.append(f"added to thing group {options.group}")
        self.attach_to_certificates(region, options.policy_name, found.to_isolate, changes)
        deactivated = []
        for cert in found.to_deactivate:
            self.call("iot", region, "UpdateCertificate", certificateId=cert["id"], newStatus="INACTIVE")
            deactivated.append(cert["id"])
            changes.append(f"deactivated certificate {cert['id']}")
        return [a.rsplit("/", 1)[-1] for a in found.to_isolate], deactivated

    def _record_quarantine(
        self,
        thing_name: str,
        region: str,
        options: QuarantineOptions,
        context: RunContext,
        found: _Found,
        changes: List[str],
        isolated: List[str],
        deactivated: List[str],
    ) -> ActionResult:
        """Store what this quarantine (and any earlier one) changed in the thing's record attribute."""
        ours = QuarantineRecord(
            at=to_iso(context.now()),
            group=None if found.in_group else options.group,
            certificates=deactivated,
            policy_certificates=isolated,
            policy_name=options.policy_name,
            by=context.sid,
        )
        details = found.details
        details.update(changes=changes, certificates_deactivated=deactivated, certificates_isolated=isolated)
        problem: Optional[str] = None
        try:
            if not found.can_record:
                raise RecordTooLarge(
                    "the thing has no thing type and already 3 attributes (AWS's limit), so the quarantine "
                    "record cannot be stored"
                )
            details["record"] = self._write_record(thing_name, region, found, ours)
            details["record_stored"] = True
            if self.signer(region, thing_name) is None and (isolated or deactivated):
                if self.keyless_recovery:
                    details["recovery"] = f"certificates are released by {self.keyless_recovery}"
                else:
                    problem = "the quarantine record is not authenticated (no record key)"
        except (RecordTooLarge, RecordConflict) as exc:
            details["record_stored"] = False
            problem = str(exc)
        details["throttled_retries"] = self.stats.thread_throttled()
        message = "quarantined: " + "; ".join(changes)
        if problem is None:
            return self.result(ACTION_QUARANTINE, "done", thing_name, region, message, details=details)
        message += f". WARNING: {problem}; release will only remove the group membership"
        if isolated or deactivated:
            message += (
                " and will not detach the isolation policy from certificates "
                f"{', '.join(isolated) or 'none'} nor reactivate certificates {', '.join(deactivated) or 'none'}"
            )
        details["warning"] = problem
        return self.result(ACTION_QUARANTINE, "warning", thing_name, region, message, details=details)

    def _write_record(self, thing_name: str, region: str, found: _Found, ours: QuarantineRecord) -> str:
        """Write ``ours`` merged into the thing's authenticated record, compare-and-set on the thing's version:
        a concurrent write makes it read the record again and merge once more."""
        signer = self.signer(region, thing_name)
        version, previous = found.version, found.previous
        for _ in range(RECORD_WRITE_ATTEMPTS):
            value = (previous.merged(ours) if previous else ours).encode(signer)
            params: Dict[str, Any] = {
                "thingName": thing_name,
                "attributePayload": {"attributes": {RECORD_ATTRIBUTE: value}, "merge": True},
            }
            if version is not None:
                params["expectedVersion"] = version
            try:
                self.call("iot", region, "UpdateThing", **params)
                return value
            except ClientError as exc:
                if error_code(exc) != "VersionConflictException":
                    raise
            thing = self.describe_thing(region, thing_name) or {}
            version = thing.get("version")
            current = QuarantineRecord.decode((thing.get("attributes") or {}).get(RECORD_ATTRIBUTE), signer)
            previous = current if current is not None and current.authenticated else None
        raise RecordConflict(f"the thing's record changed {RECORD_WRITE_ATTEMPTS} times while it was being written")
