"""Release one thing: undo exactly what quarantine recorded, and nothing it cannot prove it did.

- Group membership: the record's group (any record: leaving the quarantine group gives nothing away); without a
  record, the quarantine group (quarantined by hand or by a Device Defender mitigation action).
- Certificates (reactivation, detaching the isolation policy): only from an *authenticated* record (its MAC proves
  the add-on wrote it for this very thing, see :mod:`.record`), only for certificates still attached to the
  thing, only if still INACTIVE (resp. still carrying the policy), and never for a certificate another
  quarantined thing shares. A certificate named by an unauthenticated record (forged, copied from another thing,
  written before records were authenticated, or by a response Lambda without the key) is left unchanged and the
  release ends as ``warning`` saying which certificates a human should look at.
- The record is removed compare-and-set on the thing's version: a quarantine that wrote in between is not erased.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from botocore.exceptions import BotoCoreError, ClientError

from ..aws import error_code
from ..events import ActionResult
from .common import ACTION_RELEASE, RunContext
from .isolation import IsolationSetup
from .record import RECORD_ATTRIBUTE, QuarantineRecord, resolve

if TYPE_CHECKING:  # QuarantineOptions lives in .quarantine, which imports this module
    from .quarantine import QuarantineOptions


@dataclass
class _ReleasePlan:
    """What release found on a thing and what it would undo."""

    raw_record: Optional[str]
    version: Optional[int]
    leave: Optional[str] = None
    reactivate: List[str] = field(default_factory=list)
    detach: List[str] = field(default_factory=list)  # certificate ARNs
    policy_name: str = ""
    plan: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


class ReleaseActions(IsolationSetup):
    """The responder's release action."""

    def release(self, thing_name: str, region: str, options: QuarantineOptions, context: RunContext) -> ActionResult:
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
            outcome = "warning" if planned.warnings else "done"
            if not planned.plan:
                text = f"not quarantined (not in {options.group}, no quarantine record)"
                if planned.warnings:
                    text = f"{text}. WARNING: {'; '.join(planned.warnings)}"
                return self.result(
                    action,
                    outcome if planned.warnings else "already-in-state",
                    thing_name,
                    region,
                    text,
                    details=details,
                )
            if self.dry_run:
                return self.result(
                    action, "dry-run", thing_name, region, "dry run, would: " + "; ".join(planned.plan), details=details
                )
            self._undo_quarantine(thing_name, region, planned, changes)
            details.update(
                changes=changes,
                certificates_reactivated=planned.reactivate,
                certificates_released=[a.rsplit("/", 1)[-1] for a in planned.detach],
                throttled_retries=self.stats.thread_throttled(),
            )
            message = "released: " + "; ".join(changes)
            if planned.notes:
                message += " (" + "; ".join(planned.notes) + ")"
            if planned.warnings:
                message += ". WARNING: " + "; ".join(planned.warnings)
            return self.result(action, outcome, thing_name, region, message, details=details)
        except (ClientError, BotoCoreError) as exc:
            return self._failed(action, thing_name, region, exc, changes, "release")

    def _plan_release(
        self,
        thing_name: str,
        region: str,
        options: QuarantineOptions,
        thing: Dict[str, Any],
        details: Dict[str, Any],
    ) -> _ReleasePlan:
        """What release would undo on ``thing`` (reads only); fills ``details`` with what it found."""
        raw_record = dict(thing.get("attributes") or {}).get(RECORD_ATTRIBUTE)
        record = QuarantineRecord.decode(raw_record, self.signer(region, thing_name))
        groups = self.thing_groups(region, thing_name)
        details["thing_groups_before"] = groups
        planned = _ReleasePlan(raw_record=raw_record, version=thing.get("version"))
        if raw_record:
            details["record"] = raw_record
            details["record_authenticated"] = bool(record and record.authenticated)
        self._plan_group(planned, record, groups, options)
        cert_arns = self.certificate_arns(region, thing_name)
        planned.policy_name = (record.policy_name if record else None) or options.policy_name
        if record is not None and record.authenticated:
            self._plan_certificates(thing_name, region, record, planned, cert_arns)
        else:
            self._untrusted_certificates(region, record, planned, cert_arns, options)
        planned.plan.extend(
            f"detach policy {planned.policy_name} from certificate {a.rsplit('/', 1)[-1]}" for a in planned.detach
        )
        planned.plan.extend(f"reactivate certificate {c}" for c in planned.reactivate)
        if raw_record is not None:
            planned.plan.append(f"remove attribute {RECORD_ATTRIBUTE}")
        details["plan"] = planned.plan
        if planned.notes:
            details["notes"] = planned.notes
        if planned.warnings:
            details["warnings"] = planned.warnings
        return planned

    @staticmethod
    def _plan_group(
        planned: _ReleasePlan, record: Optional[QuarantineRecord], groups: List[str], options: QuarantineOptions
    ) -> None:
        if record is not None:
            if record.group and record.group in groups:
                planned.leave = record.group
            elif record.group:
                planned.notes.append(f"no longer in thing group {record.group}")
            elif options.group in groups:
                planned.notes.append(f"stays in thing group {options.group}: it was a member before quarantine")
        elif options.group in groups:
            planned.leave = options.group
            planned.notes.append("no quarantine record on the thing")
        if planned.leave:
            planned.plan.append(f"remove from thing group {planned.leave}")

    def _plan_certificates(
        self, thing_name: str, region: str, record: QuarantineRecord, planned: _ReleasePlan, cert_arns: List[str]
    ) -> None:
        """From an authenticated record: what to detach and reactivate among the certificates still attached."""
        by_id = {arn.rsplit("/", 1)[-1]: arn for arn in cert_arns}
        leaving = planned.leave or record.group
        for recorded, cert_id in resolve(record.policy_certificates, list(by_id)).items():
            if cert_id is None:
                planned.notes.append(f"certificate {recorded} is no longer attached to the thing: policy left as is")
                continue
            holder = self._quarantined_co_owner(region, cert_id, thing_name, leaving)
            if holder:
                planned.notes.append(
                    f"certificate {cert_id} keeps the isolation policy: shared with quarantined thing {holder}"
                )
                continue
            planned.detach.append(by_id[cert_id])
        for recorded, cert_id in resolve(record.certificates, list(by_id)).items():
            if cert_id is None:
                planned.notes.append(f"certificate {recorded} is no longer attached to the thing: left unchanged")
                continue
            status = self._certificate_status(region, cert_id)
            if status != "INACTIVE":
                planned.notes.append(f"certificate {cert_id} is {status}: left unchanged")
                continue
            holder = self._quarantined_co_owner(region, cert_id, thing_name, leaving)
            if holder:
                planned.notes.append(f"certificate {cert_id} stays INACTIVE: shared with quarantined thing {holder}")
                continue
            planned.reactivate.append(cert_id)

    def _untrusted_certificates(
        self,
        region: str,
        record: Optional[QuarantineRecord],
        planned: _ReleasePlan,
        cert_arns: List[str],
        options: QuarantineOptions,
    ) -> None:
        """Without an authenticated record no certificate is touched; say what a human should check."""
        if record is not None and (record.certificates or record.policy_certificates):
            named = sorted(set(record.certificates) | set(record.policy_certificates))
            planned.warnings.append(
                "the quarantine record is not authenticated (changed, copied from another thing, or written "
                f"without the add-on's key), so certificates it names were left unchanged: {', '.join(named)}"
            )
        targets = self.isolated_targets(region, planned.policy_name)
        still = [arn.rsplit("/", 1)[-1] for arn in cert_arns if arn in targets]
        if still:
            planned.warnings.append(
                f"certificates {', '.join(still)} still carry isolation policy {planned.policy_name}: no "
                "authenticated record says quarantine attached it; detach it by hand if the device may connect again"
            )

    def _undo_quarantine(self, thing_name: str, region: str, planned: _ReleasePlan, changes: List[str]) -> None:
        if planned.leave:
            self.call("iot", region, "RemoveThingFromThingGroup", thingGroupName=planned.leave, thingName=thing_name)
            changes.append(f"removed from thing group {planned.leave}")
        for arn in planned.detach:
            if self.detach_from_certificate(region, planned.policy_name, arn):
                changes.append(f"detached policy {planned.policy_name} from certificate {arn.rsplit('/', 1)[-1]}")
        for cert_id in planned.reactivate:
            self.call("iot", region, "UpdateCertificate", certificateId=cert_id, newStatus="ACTIVE")
            changes.append(f"reactivated certificate {cert_id}")
        if planned.raw_record is not None:
            self._remove_record(thing_name, region, planned, changes)

    def _remove_record(self, thing_name: str, region: str, planned: _ReleasePlan, changes: List[str]) -> None:
        """Remove the record unless a quarantine wrote a new one since release read it."""
        params: Dict[str, Any] = {
            "thingName": thing_name,
            "attributePayload": {"attributes": {RECORD_ATTRIBUTE: ""}, "merge": True},
        }
        if planned.version is not None:
            params["expectedVersion"] = planned.version
        try:
            self.call("iot", region, "UpdateThing", **params)
        except ClientError as exc:
            if error_code(exc) != "VersionConflictException":
                raise
            planned.warnings.append(
                f"the thing was changed during release (a new quarantine?): attribute {RECORD_ATTRIBUTE} kept"
            )
            return
        changes.append(f"removed attribute {RECORD_ATTRIBUTE}")

    def _quarantined_co_owner(self, region: str, cert_id: str, thing_name: str, group: Optional[str]) -> Optional[str]:
        """Another thing using this certificate that is still quarantined (releasing it would free that one too)."""
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
