"""Quarantine and release one thing.

Quarantine adds the thing to the quarantine group (isolated by its IoT policy, see :mod:`.isolation`) and
optionally deactivates its ACTIVE certificates, then records what it changed on the thing itself
(:class:`~.record.QuarantineRecord`). Release undoes exactly what the record says and nothing else: a certificate
that was inactive or revoked before quarantine is never recorded, so never reactivated. Both read the current
state first and write only the difference (a repeat is ``already-in-state``); a dry run reports the plan only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from botocore.exceptions import BotoCoreError, ClientError

from ..aws import error_code
from ..events import ActionResult, to_iso
from .common import (
    ACTION_QUARANTINE,
    ACTION_RELEASE,
    CERT_ID_RE,
    POLICY_NAME_RE,
    THING_GROUP_NAME_RE,
    OptionError,
    RunContext,
    show,
)
from .isolation import DEFAULT_POLICY_NAME, DEFAULT_QUARANTINE_GROUP, GroupSetup, IsolationSetup, SetupError
from .record import RECORD_ATTRIBUTE, QuarantineRecord


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


@dataclass
class _Found:
    """A thing as quarantine found it, and what quarantine would change."""

    in_group: bool
    previous: Optional[QuarantineRecord]
    to_deactivate: List[Dict[str, str]]
    can_record: bool
    details: Dict[str, Any]


@dataclass
class _ReleasePlan:
    """What release found on a thing and what it would undo."""

    raw_record: Optional[str]
    record: Optional[QuarantineRecord]
    leave: Optional[str]
    reactivate: List[str]
    plan: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


class QuarantineActions(IsolationSetup):
    """The responder's quarantine and release actions."""

    # ---------------------------------------------------------------- quarantine

    def quarantine(self, thing_name: str, region: str, options: QuarantineOptions, context: RunContext) -> ActionResult:
        action = ACTION_QUARANTINE
        refused = self.refuse_invalid_name(action, thing_name, region)
        if refused is not None:
            return refused
        self.stats.reset_thread()
        changes: List[str] = []
        try:
            try:
                setup = self.quarantine_setup(region, options)
            except SetupError as exc:
                return self.result(action, "failed", thing_name, region, str(exc), error_code=exc.code)
            found = self._find_for_quarantine(thing_name, region, options, setup)
            if isinstance(found, ActionResult):
                return found
            unchanged = self._quarantine_unchanged(thing_name, region, options, setup, found)
            if unchanged is not None:
                return unchanged
            deactivated = self._isolate(thing_name, region, options, found, changes)
            return self._record_quarantine(thing_name, region, options, context, found, changes, deactivated)
        except (ClientError, BotoCoreError) as exc:
            return self._failed(action, thing_name, region, exc, changes, "quarantine")

    def _find_for_quarantine(
        self, thing_name: str, region: str, options: QuarantineOptions, setup: GroupSetup
    ) -> Union[_Found, ActionResult]:
        """The thing's state (or the refusal: no such thing, protected thing) before any write."""
        action = ACTION_QUARANTINE
        thing = self.describe_thing(region, thing_name)
        if thing is None:
            return self.result(
                action, "refused-invalid", thing_name, region, f"thing {thing_name} does not exist in {region}"
            )
        if setup.members is None:
            groups = self.thing_groups(region, thing_name)
        else:
            groups = [options.group] if thing_name in setup.members else []
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
        to_deactivate: List[Dict[str, str]] = []
        cert_states: Dict[str, str] = {}
        if options.deactivate_certificates:
            for cert in self.certificates(region, thing_name):
                cert_states[cert["id"]] = cert["status"]
                if cert["status"] == "ACTIVE":
                    to_deactivate.append(cert)
        other_attributes = [k for k in attributes if k != RECORD_ATTRIBUTE]
        in_group = options.group in groups
        details: Dict[str, Any] = {
            "quarantine_group": options.group,
            "policy_name": options.policy_name,
            "was_member": in_group,
        }
        if setup.members is None:
            details["thing_groups_before"] = groups
        if cert_states:
            details["certificates_before"] = cert_states
        if setup.changes:
            details["setup_changes"] = setup.changes
        return _Found(
            in_group=in_group,
            previous=QuarantineRecord.decode(attributes.get(RECORD_ATTRIBUTE)),
            to_deactivate=to_deactivate,
            can_record=bool(thing.get("thingTypeName")) or len(other_attributes) < 3,
            details=details,
        )

    def _quarantine_unchanged(
        self, thing_name: str, region: str, options: QuarantineOptions, setup: GroupSetup, found: _Found
    ) -> Optional[ActionResult]:
        """The result when nothing is to be written: already quarantined, or a dry run (with its plan)."""
        details = found.details
        if found.in_group and not found.to_deactivate:
            note = "already in quarantine group " + options.group
            if options.deactivate_certificates:
                note += "; no ACTIVE certificate left"
            return self.result(ACTION_QUARANTINE, "already-in-state", thing_name, region, note, details=details)
        if not self.dry_run:
            return None
        plan = []
        if not found.in_group:
            plan.append(f"add to thing group {options.group}")
        plan.extend(f"deactivate certificate {c['id']}" for c in found.to_deactivate)
        details["plan"] = setup.plan + plan
        return self.result(
            ACTION_QUARANTINE,
            "dry-run",
            thing_name,
            region,
            "dry run, would: " + "; ".join(details["plan"]),
            details=details,
        )

    def _isolate(
        self, thing_name: str, region: str, options: QuarantineOptions, found: _Found, changes: List[str]
    ) -> List[str]:
        """Join the quarantine group and deactivate the ACTIVE certificates; returns the deactivated ids."""
        if not found.in_group:
            self.call("iot", region, "AddThingToThingGroup", thingGroupName=options.group, thingName=thing_name)
            changes.append(f"added to thing group {options.group}")
        deactivated = []
        for cert in found.to_deactivate:
            self.call("iot", region, "UpdateCertificate", certificateId=cert["id"], newStatus="INACTIVE")
            deactivated.append(cert["id"])
            changes.append(f"deactivated certificate {cert['id']}")
        return deactivated

    def _record_quarantine(
        self,
        thing_name: str,
        region: str,
        options: QuarantineOptions,
        context: RunContext,
        found: _Found,
        changes: List[str],
        deactivated: List[str],
    ) -> ActionResult:
        """Store what this quarantine (and any earlier one) changed in the thing's record attribute."""
        previous = found.previous
        record = QuarantineRecord(
            at=previous.at if previous else to_iso(context.now()),
            group=options.group if (not found.in_group or (previous and previous.group)) else None,
            certificates=list(dict.fromkeys((previous.certificates if previous else []) + deactivated)),
            by=(previous.by if previous else "") or context.sid,
        )
        details = found.details
        details.update(changes=changes, certificates_deactivated=deactivated)
        message = "quarantined: " + "; ".join(changes)
        try:
            if not found.can_record:
                raise ValueError(
                    "the thing has no thing type and already 3 attributes (AWS's limit), so the quarantine "
                    "record cannot be stored"
                )
            value = record.encode()
        except ValueError as exc:
            details["record_stored"] = False
            message += f". WARNING: {exc}; release will only remove the group membership"
            if deactivated:
                message += f" and will not reactivate certificates {', '.join(deactivated)}"
        else:
            self.call(
                "iot",
                region,
                "UpdateThing",
                thingName=thing_name,
                attributePayload={"attributes": {RECORD_ATTRIBUTE: value}, "merge": True},
            )
            details["record_stored"] = True
            details["record"] = value
        details["throttled_retries"] = self.stats.thread_throttled()
        return self.result(ACTION_QUARANTINE, "done", thing_name, region, message, details=details)

    # ---------------------------------------------------------------- release

    def release(self, thing_name: str, region: str, options: QuarantineOptions, context: RunContext) -> ActionResult:
        """Undo exactly what quarantine recorded on the thing.

        Without a record (quarantined by hand or by a Device Defender mitigation action), membership of the
        quarantine group is removed and certificates are left alone: release never reactivates a certificate it
        cannot prove quarantine deactivated.
        """
        action = ACTION_RELEASE
        refused = self.refuse_invalid_name(action, thing_name, region)
        if refused is not None:
            return refused
        self.stats.reset_thread()
        changes: List[str] = []
        try:
            thing = self.describe_thing(region, thing_name)
            if thing is None:
                return self.result(
                    action, "refused-invalid", thing_name, region, f"thing {thing_name} does not exist in {region}"
                )
            details: Dict[str, Any] = {}
            planned = self._plan_release(thing_name, region, options, thing, details)
            if not planned.plan:
                return self.result(
                    action,
                    "already-in-state",
                    thing_name,
                    region,
                    f"not quarantined (not in {options.group}, no quarantine record)",
                    details=details,
                )
            if self.dry_run:
                return self.result(
                    action, "dry-run", thing_name, region, "dry run, would: " + "; ".join(planned.plan), details=details
                )
            self._undo_quarantine(thing_name, region, planned, changes)
            details["changes"] = changes
            details["certificates_reactivated"] = planned.reactivate
            details["throttled_retries"] = self.stats.thread_throttled()
            message = "released: " + "; ".join(changes)
            if planned.notes:
                message += " (" + "; ".join(planned.notes) + ")"
            return self.result(action, "done", thing_name, region, message, details=details)
        except (ClientError, BotoCoreError) as exc:
            return self._failed(action, thing_name, region, exc, changes, "release")

    def _plan_release(
        self, thing_name: str, region: str, options: QuarantineOptions, thing: Dict[str, Any], details: Dict[str, Any]
    ) -> _ReleasePlan:
        """What release would undo on ``thing`` (reads only); fills ``details`` with what it found."""
        raw_record = dict(thing.get("attributes") or {}).get(RECORD_ATTRIBUTE)
        record = QuarantineRecord.decode(raw_record)
        groups = self.thing_groups(region, thing_name)
        details["thing_groups_before"] = groups
        if raw_record:
            details["record"] = raw_record
        planned = _ReleasePlan(raw_record=raw_record, record=record, leave=None, reactivate=[])
        if record is not None:
            if record.group and record.group in groups:
                planned.leave = record.group
            elif record.group:
                planned.notes.append(f"no longer in thing group {record.group}")
            elif options.group in groups:
                planned.notes.append(f"stays in thing group {options.group}: it was a member before quarantine")
        elif options.group in groups:
            planned.leave = options.group
            planned.notes.append("no quarantine record on the thing: certificates left unchanged")
        if planned.leave:
            planned.plan.append(f"remove from thing group {planned.leave}")
        if record is not None and record.certificates:
            planned.reactivate, cert_notes = self._certificates_to_reactivate(region, thing_name, record, planned.leave)
            planned.notes.extend(cert_notes)
            planned.plan.extend(f"reactivate certificate {c}" for c in planned.reactivate)
        if raw_record is not None:
            planned.plan.append(f"remove attribute {RECORD_ATTRIBUTE}")
        details["plan"] = planned.plan
        if planned.notes:
            details["notes"] = planned.notes
        return planned

    def _undo_quarantine(self, thing_name: str, region: str, planned: _ReleasePlan, changes: List[str]) -> None:
        if planned.leave:
            self.call("iot", region, "RemoveThingFromThingGroup", thingGroupName=planned.leave, thingName=thing_name)
            changes.append(f"removed from thing group {planned.leave}")
        for cert_id in planned.reactivate:
            self.call("iot", region, "UpdateCertificate", certificateId=cert_id, newStatus="ACTIVE")
            changes.append(f"reactivated certificate {cert_id}")
        if planned.raw_record is not None:
            self.call(
                "iot",
                region,
                "UpdateThing",
                thingName=thing_name,
                attributePayload={"attributes": {RECORD_ATTRIBUTE: ""}, "merge": True},
            )
            changes.append(f"removed attribute {RECORD_ATTRIBUTE}")

    def _certificates_to_reactivate(
        self, region: str, thing_name: str, record: QuarantineRecord, leaving: Optional[str]
    ) -> Tuple[List[str], List[str]]:
        notes: List[str] = []
        recorded = list(record.certificates)
        if any(not CERT_ID_RE.match(c) for c in recorded):
            # shortened ids (very many certificates): resolve against the thing's own certificates
            principals = [
                arn.rsplit("/", 1)[-1]
                for arn in self._pages("iot", region, "ListThingPrincipals", "principals", thingName=thing_name)
                if ":cert/" in arn
            ]
            resolved = []
            for cert in recorded:
                matches = [p for p in principals if p.startswith(cert)]
                if len(matches) == 1:
                    resolved.append(matches[0])
                else:
                    notes.append(f"certificate {cert}... is no longer attached to the thing: left unchanged")
            recorded = resolved
        reactivate = []
        for cert_id in recorded:
            status = self._certificate_status(region, cert_id)
            if status != "INACTIVE":
                notes.append(f"certificate {cert_id} is {status}: left unchanged")
                continue
            holder = self._quarantined_co_owner(region, cert_id, thing_name, leaving or record.group)
            if holder:
                notes.append(f"certificate {cert_id} stays INACTIVE: shared with quarantined thing {holder}")
                continue
            reactivate.append(cert_id)
        return reactivate, notes

    def _quarantined_co_owner(self, region: str, cert_id: str, thing_name: str, group: Optional[str]) -> Optional[str]:
        """Another thing using this certificate that is still quarantined (reactivating would free it too)."""
        cert_arn = f"arn:{self.partition}:iot:{region}:{self.account_id}:cert/{cert_id}"
        try:
            others = [
                t
                for t in self._pages("iot", region, "ListPrincipalThings", "things", principal=cert_arn, maxResults=250)
                if t != thing_name
            ]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise
        for other in others:
            other_thing = self.describe_thing(region, other)
            other_groups = self.thing_groups(region, other) if other_thing else []
            record = QuarantineRecord.decode(((other_thing or {}).get("attributes") or {}).get(RECORD_ATTRIBUTE))
            if record is not None or (group and group in other_groups):
                return other
        return None
