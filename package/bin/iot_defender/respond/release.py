"""Release one thing: undo exactly one quarantine, and nothing it cannot prove it did.

- The record must be authenticated (its MAC proves the add-on wrote it for this very thing, see :mod:`.record`)
  and current (its ``tv`` is the thing's version: no record copied back or edited since). Only then are its
  certificates released, and only those still attached, still INACTIVE (resp. still carrying the policy), not
  changed since the quarantine (AWS's ``lastModifiedDate`` later than the one the quarantine read back), and held
  by no other quarantine (a certificate shared by several quarantined things is released with the last of them).
- Any other record (unauthenticated, stale, or signed with a key this run does not have) can only take the thing
  out of the add-on's own quarantine group; the record is kept and the release ends as ``warning`` naming the
  certificates a human should look at. No record: the thing leaves the quarantine group (quarantined by hand or
  by a Device Defender mitigation action).
- Serialised per thing like quarantine: release first writes the record back with its lease (``s=r...``,
  compare-and-set), undoes, then removes the record (compare-and-set); a run meeting a live lease reports
  ``conflict`` and writes nothing. If the undo fails half-way the record stays, and a later release finishes it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple

from botocore.exceptions import BotoCoreError, ClientError

from ..aws import error_code
from ..events import ActionResult, to_iso
from .common import ACTION_RELEASE, RunContext
from .options import QuarantineOptions
from .record import RECORD_ATTRIBUTE, QuarantineRecord, new_lease, new_nonce, resolve
from .services import Services
from .store import ThingState

# AWS's lastModifiedDate against the date the quarantine read back (both from AWS's clock).
MODIFIED_SLACK_SECONDS = 0  # the recorded date is already rounded up to the next whole second
_WHY_UNTRUSTED = {
    "none": "is not authenticated (written without the add-on's key, or before records were authenticated)",
    "bad": "is not authenticated (changed, copied from another thing, or forged)",
    "unverifiable": "cannot be verified: no configured record key made it (missing, unreadable or rotated out)",
    "stale": "is stale: the thing was written after it and is no longer in the group it names (a record copied back?)",
}


@dataclass
class _Plan:
    """What release found on a thing and what it would undo."""

    state: ThingState
    trusted: bool
    claimed: bool = False
    leave: Optional[str] = None
    reactivate: List[str] = field(default_factory=list)
    detach: List[str] = field(default_factory=list)  # certificate ARNs
    policy_name: str = ""
    plan: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


class Release:
    """The release action."""

    def __init__(self, services: Services):
        self.s = services

    def __call__(self, thing_name: str, region: str, options: QuarantineOptions, context: RunContext) -> ActionResult:
        action = ACTION_RELEASE
        refused = self.s.outcomes.refuse_invalid_name(action, thing_name, region)
        if refused is not None:
            return refused
        self.s.calls.stats.reset_thread()
        changes: List[str] = []
        try:
            state = self.s.records.read(region, thing_name)
            if state is None:
                return self.s.outcomes.result(
                    action, "refused-invalid", thing_name, region, f"thing {thing_name} does not exist in {region}"
                )
            busy = state.lease(context.now().timestamp(), trust_unsigned=not self.s.records.keyring)
            if busy:
                return self.s.outcomes.conflict(action, thing_name, region, f"a {busy} of {thing_name} is in progress")
            details: Dict[str, Any] = {}
            planned = self._plan(thing_name, region, options, state, details)
            early = self._early(thing_name, region, options, planned, details)
            if early is not None:
                return early
            if not self._claim(thing_name, region, planned, context):
                return self.s.outcomes.conflict(
                    action, thing_name, region, "the thing changed while release was reading it; run it again"
                )
            try:
                self._undo(thing_name, region, planned, changes)
            except (ClientError, BotoCoreError):
                self._give_back(thing_name, region, planned)
                raise
            return self._report(thing_name, region, planned, changes, details)
        except (ClientError, BotoCoreError) as exc:
            return self.s.outcomes.failed(action, thing_name, region, exc, changes, "release")

    def _early(
        self, thing_name: str, region: str, options: QuarantineOptions, planned: _Plan, details: Dict[str, Any]
    ) -> Optional[ActionResult]:
        """The result when nothing is to be written (or a dry run)."""
        if not planned.plan:
            text = f"not quarantined (not in {options.group}, no quarantine record to undo)"
            outcome = "already-in-state"
            if planned.warnings:
                text, outcome = f"{text}. WARNING: {'; '.join(planned.warnings)}", "warning"
            return self.s.outcomes.result(ACTION_RELEASE, outcome, thing_name, region, text, details=details)
        if self.s.dry_run:
            message = "dry run, would: " + "; ".join(planned.plan)
            return self.s.outcomes.result(ACTION_RELEASE, "dry-run", thing_name, region, message, details=details)
        return None

    def _plan(
        self, thing_name: str, region: str, options: QuarantineOptions, state: ThingState, details: Dict[str, Any]
    ) -> _Plan:
        """What release would undo (reads only); fills ``details`` with what it found."""
        record = state.record
        groups = self.s.registry.thing_groups(region, thing_name)
        details["thing_groups_before"] = groups
        trust = state.trust(groups)
        planned = _Plan(state=state, trusted=trust == "ok")
        if state.raw:
            details["record"] = state.raw
            details["record_authenticated"] = bool(record and record.authenticated)
        planned.policy_name = (record.policy_name if record and planned.trusted else None) or options.policy_name
        cert_arns = self.s.registry.certificate_arns(region, thing_name)
        if planned.trusted and record is not None:
            self._plan_group(region, planned, record, groups, options)
            self._plan_certificates(thing_name, region, record, planned, cert_arns)
        else:
            self._plan_untrusted(region, planned, groups, cert_arns, options, trust)
        if planned.detach and not self._own_policy(region, planned.policy_name):
            planned.warnings.append(
                f"IoT policy {planned.policy_name} is no longer the add-on's (tag or document): it stays attached to "
                f"certificates {', '.join(a.rsplit('/', 1)[-1] for a in planned.detach)}"
            )
            planned.detach = []
        planned.plan.extend(
            f"detach policy {planned.policy_name} from certificate {a.rsplit('/', 1)[-1]}" for a in planned.detach
        )
        planned.plan.extend(f"reactivate certificate {c}" for c in planned.reactivate)
        if planned.trusted:
            planned.plan.append(f"remove attribute {RECORD_ATTRIBUTE}")
        details["plan"] = planned.plan
        if planned.notes:
            details["notes"] = planned.notes
        if planned.warnings:
            details["warnings"] = planned.warnings
        return planned

    def _own_policy(self, region: str, name: str) -> bool:
        answer = self.s.registry.policy(region, name)
        calls = self.s.calls
        ownership = self.s.isolation.ownership
        return (
            answer is not None and ownership.policy_problem(region, answer, calls.account_id, calls.partition) is None
        )

    def _own_group(self, region: str, group: str) -> bool:
        answer = self.s.registry.describe_group(region, group)
        return answer is not None and self.s.isolation.ownership.group_problem(region, answer) is None

    def _plan_group(
        self, region: str, planned: _Plan, record: QuarantineRecord, groups: List[str], options: QuarantineOptions
    ) -> None:
        if record.group and record.group in groups:
            if self._own_group(region, record.group):
                planned.leave = record.group
            else:
                planned.warnings.append(f"thing group {record.group} is not the add-on's: membership left as is")
        elif record.group:
            planned.notes.append(f"no longer in thing group {record.group}")
        elif options.group in groups:
            planned.notes.append(f"stays in thing group {options.group}: it was a member before quarantine")
        if planned.leave:
            planned.plan.append(f"remove from thing group {planned.leave}")

    def _plan_untrusted(
        self,
        region: str,
        planned: _Plan,
        groups: List[str],
        cert_arns: List[str],
        options: QuarantineOptions,
        trust: Optional[str],
    ) -> None:
        """Without a trusted record: at most leave the add-on's own quarantine group; name what a human checks."""
        record = planned.state.record
        # A record no configured key can check may become verifiable again (the key restored): change nothing,
        # so that it still matches the thing when the key is back.
        keep_all = trust == "unverifiable"
        if not keep_all and options.group in groups and self._own_group(region, options.group):
            planned.leave = options.group
            planned.plan.append(f"remove from thing group {options.group}")
            if record is None:
                planned.notes.append("no quarantine record on the thing")
        if record is not None:
            why = _WHY_UNTRUSTED[trust or "none"]
            named = sorted(set(record.certificates) | set(record.policy_certificates))
            text = f"the quarantine record {why}; it was kept"
            if keep_all:
                text += " and nothing was undone (configure the record key and release again)"
            if named:
                text += f", and the certificates it names were left unchanged: {', '.join(named)}"
            planned.warnings.append(text)
        targets = self.s.isolation.isolated_targets(region, planned.policy_name)
        still = [arn.rsplit("/", 1)[-1] for arn in cert_arns if arn in targets]
        if still:
            planned.warnings.append(
                f"certificates {', '.join(still)} still carry isolation policy {planned.policy_name}: no trusted "
                "record says this quarantine attached it; detach it by hand if the device may connect again"
            )

    def _plan_certificates(
        self, thing_name: str, region: str, record: QuarantineRecord, planned: _Plan, cert_arns: List[str]
    ) -> None:
        """From a trusted record: what to detach and reactivate among the certificates still attached."""
        by_id = {arn.rsplit("/", 1)[-1]: arn for arn in cert_arns}
        records = self.s.records
        for recorded, cert_id in resolve(record.policy_certificates, list(by_id)).items():
            if cert_id is None:
                planned.notes.append(f"certificate {recorded} is no longer attached to the thing: policy left as is")
                continue
            holder = records.holder(region, by_id[cert_id], thing_name, "p")
            if holder:
                planned.notes.append(f"certificate {cert_id} keeps the isolation policy: held by quarantined {holder}")
            else:
                planned.detach.append(by_id[cert_id])
        quarantined_at = record.certificates_modified
        for recorded, cert_id in resolve(record.certificates, list(by_id)).items():
            if cert_id is None:
                planned.notes.append(f"certificate {recorded} is no longer attached to the thing: left unchanged")
                continue
            why, stamp = self._keep_inactive(region, cert_id, quarantined_at)
            holder = None if why else records.holder(region, by_id[cert_id], thing_name, "c", stamp)
            if why:
                planned.notes.append(f"certificate {cert_id} left unchanged: {why}")
            elif holder:
                planned.notes.append(f"certificate {cert_id} stays INACTIVE: held by quarantined thing {holder}")
            else:
                planned.reactivate.append(cert_id)

    def _keep_inactive(
        self, region: str, cert_id: str, quarantined_at: Optional[int]
    ) -> Tuple[Optional[str], Optional[float]]:
        """(Why a recorded certificate must not be reactivated - not INACTIVE, or changed since the quarantine -
        or None; its lastModifiedDate)."""
        answer = self.s.registry.certificate(region, cert_id)
        status = str(answer.get("status") or "UNKNOWN")
        modified = answer.get("lastModifiedDate")
        stamp = modified.timestamp() if isinstance(modified, _dt.datetime) else None
        if status != "INACTIVE":
            return f"it is {status}", stamp
        if stamp is not None and quarantined_at is not None and stamp > quarantined_at + MODIFIED_SLACK_SECONDS:
            return "it was changed after the quarantine (by someone else): reactivate it by hand if intended", stamp
        return None, stamp

    def _claim(self, thing_name: str, region: str, planned: _Plan, context: RunContext) -> bool:
        """Hold the thing for this release (compare-and-set): a trusted record is written back with the lease; any
        other case gets a lease-only record, and the original value is put back at the end. False when another
        run wrote the thing first."""
        state, now = planned.state, context.now()
        lease = new_lease("r", now.timestamp())
        if planned.trusted and state.record is not None:
            leased = replace(state.record, lease=lease)
        else:
            others = [k for k in (state.thing.get("attributes") or {}) if k != RECORD_ATTRIBUTE]
            if not (state.raw or state.thing.get("thingTypeName") or len(others) < 3):
                planned.notes.append("the thing cannot hold a lease attribute: release not serialised")
                return True
            leased = QuarantineRecord(at=to_iso(now), nonce=new_nonce(), lease=lease)
        try:
            state.version, _ = self.s.records.write(region, thing_name, leased, state.version)
        except ClientError as exc:
            if error_code(exc) != "VersionConflictException":
                raise
            return False
        planned.claimed = True
        return True

    def _give_back(self, thing_name: str, region: str, planned: _Plan) -> None:
        """After a failed undo: the record as it was, without the lease, so a later release can finish (best
        effort: a failure here leaves the lease to expire)."""
        if not planned.claimed:
            return
        record = planned.state.record
        try:
            if planned.trusted and record is not None:
                self.s.records.write(region, thing_name, replace(record, lease=None), planned.state.version)
            else:
                self.s.records.put_raw(region, thing_name, planned.state.raw or "", planned.state.version)
        except (ClientError, BotoCoreError):
            pass

    def _undo(self, thing_name: str, region: str, planned: _Plan, changes: List[str]) -> None:
        calls, isolation = self.s.calls, self.s.isolation
        if planned.leave:
            calls.call("iot", region, "RemoveThingFromThingGroup", thingGroupName=planned.leave, thingName=thing_name)
            changes.append(f"removed from thing group {planned.leave}")
        for arn in planned.detach:
            if isolation.detach(region, planned.policy_name, arn):
                changes.append(f"detached policy {planned.policy_name} from certificate {arn.rsplit('/', 1)[-1]}")
        for cert_id in planned.reactivate:
            calls.call("iot", region, "UpdateCertificate", certificateId=cert_id, newStatus="ACTIVE")
            changes.append(f"reactivated certificate {cert_id}")
        if not planned.claimed:
            return
        try:  # a trusted record is undone: removed; any other value goes back as it was (evidence for a human)
            self.s.records.put_raw(
                region, thing_name, "" if planned.trusted else planned.state.raw or "", planned.state.version
            )
        except ClientError as exc:
            if error_code(exc) != "VersionConflictException":
                raise
            planned.warnings.append(
                f"the thing was changed during release: attribute {RECORD_ATTRIBUTE} kept (release it again)"
            )
            return
        if planned.trusted:
            changes.append(f"removed attribute {RECORD_ATTRIBUTE}")

    def _report(
        self, thing_name: str, region: str, planned: _Plan, changes: List[str], details: Dict[str, Any]
    ) -> ActionResult:
        details.update(
            changes=changes,
            certificates_reactivated=planned.reactivate,
            certificates_released=[a.rsplit("/", 1)[-1] for a in planned.detach],
            throttled_retries=self.s.calls.stats.thread_throttled(),
        )
        message = "released: " + "; ".join(changes or ["nothing left to undo"])
        if planned.notes:
            message += " (" + "; ".join(planned.notes) + ")"
        outcome = "done"
        if planned.warnings:
            details["warnings"] = planned.warnings
            message += ". WARNING: " + "; ".join(planned.warnings)
            outcome = "warning"
        return self.s.outcomes.result(ACTION_RELEASE, outcome, thing_name, region, message, details=details)
