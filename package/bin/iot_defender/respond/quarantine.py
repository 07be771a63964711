"""Quarantine one thing.

Quarantine adds the thing to the quarantine group and attaches the isolating IoT policy to the thing's
certificates (see :mod:`.isolation` for why both), optionally deactivates its ACTIVE certificates, and records
what it holds on the thing itself (:class:`~.record.QuarantineRecord`) so that release (:mod:`.release`) undoes
exactly that. It reads the current state first and writes only the difference (a repeat is ``already-in-state``);
a dry run reports the plan only; the quarantine group and policy are set up (and proven the add-on's) only when a
thing is really about to be quarantined.

Serialised per thing: the record is written *before* any other change, compare-and-set on the thing's version and
with a lease (``s=q...``); a quarantine or release of the same thing that starts meanwhile meets the lease (or
loses the compare-and-set) and reports ``conflict`` without writing anything. The last write stores the record
without the lease. A certificate another quarantined thing shares and holds is held by this record too, so it is
reactivated / freed only when the last quarantine holding it is released.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from botocore.exceptions import BotoCoreError, ClientError

from ..aws import error_code
from ..events import ActionResult, to_iso
from .common import ACTION_QUARANTINE, RunContext
from .isolation import SetupError
from .options import QuarantineOptions
from .record import QuarantineRecord, RecordTooLarge, new_lease, new_nonce
from .services import Services
from .store import ThingState

RECORD_WRITE_ATTEMPTS = 3


@dataclass
class _Found:
    """A thing as quarantine found it, and what quarantine would change and hold."""

    state: ThingState
    in_group: bool
    previous: Optional[QuarantineRecord]  # only a current authenticated record is carried over
    to_isolate: List[str]  # certificate ARNs without the isolation policy
    to_deactivate: List[Dict[str, str]]
    hold_policy: List[str]  # certificate ids another quarantine isolated and holds
    hold_inactive: List[str]  # certificate ids another quarantine deactivated and holds
    can_record: bool
    details: Dict[str, Any]


class Quarantine:
    """The quarantine action."""

    def __init__(self, services: Services):
        self.s = services

    def __call__(self, thing_name: str, region: str, options: QuarantineOptions, context: RunContext) -> ActionResult:
        refused = self.s.outcomes.refuse_invalid_name(ACTION_QUARANTINE, thing_name, region)
        if refused is not None:
            return refused
        self.s.calls.stats.reset_thread()
        changes: List[str] = []
        try:
            found = self._find(thing_name, region, options, context)
            if isinstance(found, ActionResult):
                return found
            unchanged = self._unchanged(thing_name, region, options, found)
            if unchanged is not None:
                return unchanged
            try:  # only now that this thing will be quarantined: group and policy, proven the add-on's
                setup = self.s.isolation.setup(region, options)
            except SetupError as exc:
                return self.s.outcomes.setup_refused(ACTION_QUARANTINE, thing_name, region, str(exc), exc.code)
            if setup.changes:
                found.details["setup_changes"] = setup.changes
            return self._apply(thing_name, region, options, context, found, changes)
        except (ClientError, BotoCoreError) as exc:
            return self.s.outcomes.failed(ACTION_QUARANTINE, thing_name, region, exc, changes, "quarantine")

    def _find(
        self, thing_name: str, region: str, options: QuarantineOptions, context: RunContext
    ) -> Union[_Found, ActionResult]:
        """The thing's state (or the refusal: no such thing, protected thing, another run holds it)."""
        action, registry = ACTION_QUARANTINE, self.s.registry
        state = self.s.records.read(region, thing_name)
        if state is None:
            return self.s.outcomes.result(
                action, "refused-invalid", thing_name, region, f"thing {thing_name} does not exist in {region}"
            )
        busy = state.lease(context.now().timestamp(), trust_unsigned=not self.s.records.keyring)
        if busy:
            return self.s.outcomes.conflict(action, thing_name, region, f"a {busy} of {thing_name} is in progress")
        members = self.s.isolation.group_members(region, options)
        groups = (
            registry.thing_groups(region, thing_name)
            if members is None
            else ([options.group] if thing_name in members else [])
        )
        protected = registry.protected_by(region, groups, options.protected_groups)
        if protected:
            return self.s.outcomes.result(
                action,
                "refused-protected",
                thing_name,
                region,
                f"thing {thing_name} is in protected thing group {protected}: never quarantined",
                details={"thing_groups": groups},
            )
        return self._found(thing_name, region, options, state, groups, members is None)

    def _found(
        self,
        thing_name: str,
        region: str,
        options: QuarantineOptions,
        state: ThingState,
        groups: List[str],
        listed: bool,
    ) -> _Found:
        in_group = options.group in groups
        details: Dict[str, Any] = {"quarantine_group": options.group, "policy_name": options.policy_name}
        details["was_member"] = in_group
        if listed:
            details["thing_groups_before"] = groups
        record = state.record
        trust = state.trust(groups)
        if record is not None and trust != "ok":
            details["previous_record_not_carried_over"] = trust
        plan = self._certificate_plan(thing_name, region, options, details)
        attributes = dict(state.thing.get("attributes") or {})
        others = [k for k in attributes if k != "iotdefender_quarantine"]
        return _Found(
            state=state,
            in_group=in_group,
            previous=record if trust == "ok" else None,
            to_isolate=plan[0],
            to_deactivate=plan[1],
            hold_policy=plan[2],
            hold_inactive=plan[3],
            can_record=bool(state.thing.get("thingTypeName")) or len(others) < 3,
            details=details,
        )

    def _certificate_plan(
        self, thing_name: str, region: str, options: QuarantineOptions, details: Dict[str, Any]
    ) -> Tuple[List[str], List[Dict[str, str]], List[str], List[str]]:
        """(certificates to give the isolation policy, ACTIVE ones to deactivate, ids to hold isolated, ids to
        hold INACTIVE): a certificate already isolated / INACTIVE is held when another quarantine holds it."""
        cert_arns = self.s.registry.certificate_arns(region, thing_name)
        targets = self.s.isolation.isolated_targets(region, options.policy_name)
        records = self.s.records
        to_isolate = [arn for arn in cert_arns if arn not in targets]
        hold_policy = [
            arn.rsplit("/", 1)[-1]
            for arn in cert_arns
            if arn in targets and records.holder(region, arn, thing_name, "p")
        ]
        to_deactivate: List[Dict[str, str]] = []
        hold_inactive: List[str] = []
        if options.deactivate_certificates:
            states: Dict[str, str] = {}
            for arn in cert_arns:
                cert_id = arn.rsplit("/", 1)[-1]
                answer = self.s.registry.certificate(region, cert_id)
                states[cert_id] = str(answer.get("status") or "UNKNOWN")
                modified = answer.get("lastModifiedDate")
                stamp = modified.timestamp() if isinstance(modified, _dt.datetime) else None
                if states[cert_id] == "ACTIVE":
                    to_deactivate.append({"id": cert_id, "arn": arn})
                elif states[cert_id] == "INACTIVE" and records.holder(region, arn, thing_name, "c", stamp):
                    hold_inactive.append(cert_id)
            details["certificates_before"] = states
        details["certificates"] = len(cert_arns)
        return to_isolate, to_deactivate, hold_policy, hold_inactive

    def _holds_everything(self, found: _Found) -> bool:
        """The thing's own current record already holds every certificate other quarantines hold."""
        held = found.previous
        if held is None:
            return not (found.hold_policy or found.hold_inactive)
        return set(found.hold_policy) <= set(held.policy_certificates) and set(found.hold_inactive) <= set(
            held.certificates
        )

    def _unchanged(
        self, thing_name: str, region: str, options: QuarantineOptions, found: _Found
    ) -> Optional[ActionResult]:
        """The result when nothing is to be written: already quarantined, or a dry run (with its plan)."""
        details = found.details
        if found.in_group and not found.to_deactivate and not found.to_isolate and self._holds_everything(found):
            note = f"already in quarantine group {options.group}, certificates isolated"
            if options.deactivate_certificates:
                note += "; no ACTIVE certificate left"
            return self.s.outcomes.result(
                ACTION_QUARANTINE, "already-in-state", thing_name, region, note, details=details
            )
        if not self.s.dry_run:
            return None
        try:
            setup_plan = self.s.isolation.setup(region, options).plan  # a dry run only reads
        except SetupError as exc:
            return self.s.outcomes.setup_refused(ACTION_QUARANTINE, thing_name, region, str(exc), exc.code)
        plan = list(setup_plan)
        if not found.in_group:
            plan.append(f"add to thing group {options.group}")
        plan.extend(
            f"attach policy {options.policy_name} to certificate {a.rsplit('/', 1)[-1]}" for a in found.to_isolate
        )
        plan.extend(f"deactivate certificate {c['id']}" for c in found.to_deactivate)
        details["plan"] = plan
        message = "dry run, would: " + "; ".join(plan)
        return self.s.outcomes.result(ACTION_QUARANTINE, "dry-run", thing_name, region, message, details=details)

    def _apply(
        self,
        thing_name: str,
        region: str,
        options: QuarantineOptions,
        context: RunContext,
        found: _Found,
        changes: List[str],
    ) -> ActionResult:
        """Claim the thing (record with lease), change it, store the record without the lease."""
        now = context.now()
        isolated = [a.rsplit("/", 1)[-1] for a in found.to_isolate]
        deactivated = [c["id"] for c in found.to_deactivate]
        ours = QuarantineRecord(
            at=to_iso(now),
            group=None if found.in_group else options.group,
            certificates=deactivated + found.hold_inactive,
            policy_certificates=isolated + found.hold_policy,
            policy_name=options.policy_name,
            by=context.sid,
            nonce=new_nonce(),
            lease=new_lease("q", now.timestamp()),
        )
        record = found.previous.merged(ours) if found.previous else ours
        claim = _Claim(self.s, thing_name, region, found)
        problem = claim.take(record)
        if problem == "conflict":
            return self.s.outcomes.conflict(
                ACTION_QUARANTINE, thing_name, region, "the thing changed while quarantine was reading it; run it again"
            )
        try:
            self._write(thing_name, region, options, found, deactivated, changes)
        except (ClientError, BotoCoreError):
            if problem is None:  # give the thing back at once (the record holds what was planned: release checks)
                claim.give_back(replace(record, lease=None), lambda: self._modified(region, record))
            raise
        if problem is None:
            marked = replace(record, lease=None, certificates_modified=self._modified(region, record))
            problem = claim.settle(marked)
        return self._report(thing_name, region, found, changes, isolated, deactivated, problem)

    def _write(
        self,
        thing_name: str,
        region: str,
        options: QuarantineOptions,
        found: _Found,
        deactivated: List[str],
        changes: List[str],
    ) -> None:
        if not found.in_group:
            self.s.calls.call("iot", region, "AddThingToThingGroup", thingGroupName=options.group, thingName=thing_name)
            changes.append(f"added to thing group {options.group}")
        self.s.isolation.attach(region, options.policy_name, found.to_isolate, changes)
        for cert_id in deactivated:
            self.s.calls.call("iot", region, "UpdateCertificate", certificateId=cert_id, newStatus="INACTIVE")
            changes.append(f"deactivated certificate {cert_id}")

    def _modified(self, region: str, record: QuarantineRecord) -> Optional[int]:
        """AWS's latest lastModifiedDate among the certificates the record holds INACTIVE (read back now)."""
        dates = [self.s.registry.certificate(region, c).get("lastModifiedDate") for c in record.certificates]
        stamps = [d.timestamp() for d in dates if isinstance(d, _dt.datetime)]
        latest = max(stamps, default=None)
        known = record.certificates_modified
        if latest is None:
            return known
        return max(math.ceil(latest), known or 0)

    def _report(
        self,
        thing_name: str,
        region: str,
        found: _Found,
        changes: List[str],
        isolated: List[str],
        deactivated: List[str],
        problem: Optional[str],
    ) -> ActionResult:
        details = found.details
        details.update(changes=changes, certificates_deactivated=deactivated, certificates_isolated=isolated)
        if found.hold_policy or found.hold_inactive:
            details["certificates_held_with_other_quarantines"] = sorted(set(found.hold_policy + found.hold_inactive))
        details["record_stored"] = problem is None
        if problem is None and self.s.records.signer(region, thing_name) is None and (isolated or deactivated):
            if self.s.keyless_recovery:
                details["recovery"] = f"certificates are released by {self.s.keyless_recovery}"
            else:
                problem = "the quarantine record is not authenticated (no usable record key)"
        details["throttled_retries"] = self.s.calls.stats.thread_throttled()
        message = "quarantined: " + "; ".join(changes or ["certificates held with another quarantine"])
        if problem is None:
            return self.s.outcomes.result(ACTION_QUARANTINE, "done", thing_name, region, message, details=details)
        message += f". WARNING: {problem}; release will only remove the group membership"
        if isolated or deactivated:
            message += (
                " and will not detach the isolation policy from certificates "
                f"{', '.join(isolated) or 'none'} nor reactivate certificates {', '.join(deactivated) or 'none'}"
            )
        details["warning"] = problem
        return self.s.outcomes.result(ACTION_QUARANTINE, "warning", thing_name, region, message, details=details)


class _Claim:
    """The record's two writes: the claim (with the lease, compare-and-set on the version quarantine read) and
    the settling write (without the lease, compare-and-set on the version the claim left)."""

    def __init__(self, services: Services, thing_name: str, region: str, found: _Found):
        self.s, self.thing_name, self.region, self.found = services, thing_name, region, found
        self.version: Optional[int] = found.state.version
        self.lease: Optional[str] = None

    def take(self, record: QuarantineRecord) -> Optional[str]:
        """None when claimed; "conflict" when another run wrote the thing first; else why no record is kept."""
        if not self.found.can_record:
            return (
                "the thing has no thing type and already 3 attributes (AWS's limit), so the quarantine record "
                "cannot be stored"
            )
        try:
            self.version, _ = self.s.records.write(self.region, self.thing_name, record, self.version)
        except RecordTooLarge as exc:
            return str(exc)
        except ClientError as exc:
            if error_code(exc) != "VersionConflictException":
                raise
            return "conflict"
        self.lease = record.lease
        self.found.details["record_nonce"] = record.nonce
        return None

    def give_back(self, record: QuarantineRecord, modified: Callable[[], Optional[int]]) -> None:
        """After a failed write: the record without the lease, best effort (else the lease expires)."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self.settle(replace(record, certificates_modified=modified()))

    def settle(self, record: QuarantineRecord) -> Optional[str]:
        for _ in range(RECORD_WRITE_ATTEMPTS):
            try:
                _, self.found.details["record"] = self.s.records.write(
                    self.region, self.thing_name, record, self.version
                )
                return None
            except ClientError as exc:
                if error_code(exc) != "VersionConflictException":
                    raise
            state = self.s.records.read(self.region, self.thing_name)
            if state is None or state.record is None or state.record.lease != self.lease:
                return "the thing's record was overwritten during quarantine (see docs/security.md)"
            self.version = state.version  # someone else wrote another attribute: our claim still stands
        return f"the thing kept changing while its record was written ({RECORD_WRITE_ATTEMPTS} attempts)"
