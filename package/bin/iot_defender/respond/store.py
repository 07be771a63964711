"""The record store: the quarantine record on the thing, read and written compare-and-set on the thing's version."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .calls import AwsCalls
from .keys import Keyring
from .record import RECORD_ATTRIBUTE, QuarantineRecord, RecordSigner, live_lease, resolve
from .registry import Registry


@dataclass
class ThingState:
    """A thing as one DescribeThing found it, with its decoded record."""

    name: str
    thing: Dict[str, Any]
    version: Optional[int]
    raw: Optional[str]
    record: Optional[QuarantineRecord]

    def trust(self, groups: Sequence[str]) -> Optional[str]:
        """How far the record can be trusted: "ok", or why not ("none" / "bad" / "unverifiable": see
        :class:`~.record.QuarantineRecord`; "stale": written over since); None without a record.

        An authenticated record is current when its ``tv`` is the thing's version. When the thing was written
        since (another attribute edited, or a record copied back), it is still trusted if the quarantine it
        describes is evidently in force - the thing is still in the group the record says quarantine added it to;
        otherwise it is stale (a record copied back after a release finds the thing out of that group)."""
        record = self.record
        if record is None:
            return None
        if record.mac != "ok":
            return record.mac
        if record.version == 2 or (record.thing_version is not None and record.thing_version == self.version):
            return "ok"
        return "ok" if record.group and record.group in groups else "stale"

    def lease(self, now: float, trust_unsigned: bool) -> Optional[str]:
        """Which run holds this thing (``quarantine`` / ``release``), or None."""
        record = self.record
        if record is None or not (record.authenticated or (trust_unsigned and record.mac == "none")):
            return None
        return live_lease(record.lease, now)


class RecordStore:
    """Reads and writes quarantine records for one account."""

    def __init__(self, calls: AwsCalls, registry: Registry, keyring: Keyring):
        self.calls = calls
        self.registry = registry
        self.keyring = keyring

    def signer(self, region: str, thing_name: str) -> Optional[RecordSigner]:
        """What authenticates this thing's record, or None without a usable key."""
        if not self.keyring:
            return None
        return RecordSigner(self.keyring, self.calls.account_id, region, thing_name)

    def read(self, region: str, thing_name: str) -> Optional[ThingState]:
        thing = self.registry.describe_thing(region, thing_name)
        if thing is None:
            return None
        raw = (thing.get("attributes") or {}).get(RECORD_ATTRIBUTE) or None
        version = thing.get("version")
        return ThingState(
            name=thing_name,
            thing=thing,
            version=int(version) if isinstance(version, int) else None,
            raw=raw,
            record=QuarantineRecord.decode(raw, self.signer(region, thing_name)),
        )

    def write(
        self, region: str, thing_name: str, record: QuarantineRecord, expected: Optional[int]
    ) -> Tuple[Optional[int], str]:
        """Store ``record`` if the thing is still at version ``expected``: (the thing's new version, the value
        stored). Raises the ClientError VersionConflictException when someone wrote the thing in between."""
        bound = replace(record, thing_version=None if expected is None else expected + 1)
        value = bound.encode(self.signer(region, thing_name))
        self._update(region, thing_name, value, expected)
        record.thing_version = bound.thing_version
        return bound.thing_version, value

    def put_raw(self, region: str, thing_name: str, value: str, expected: Optional[int]) -> None:
        """Set the attribute to ``value`` as it is ("" removes it), compare-and-set."""
        self._update(region, thing_name, value, expected)

    def _groups_if_needed(self, region: str, state: ThingState) -> Sequence[str]:
        record = state.record
        if record is None or record.thing_version == state.version or not record.group:
            return ()
        return self.registry.thing_groups(region, state.name)

    def _update(self, region: str, thing_name: str, value: str, expected: Optional[int]) -> None:
        params: Dict[str, Any] = {
            "thingName": thing_name,
            "attributePayload": {"attributes": {RECORD_ATTRIBUTE: value}, "merge": True},
        }
        if expected is not None:
            params["expectedVersion"] = expected
        self.calls.call("iot", region, "UpdateThing", **params)

    def holder(
        self, region: str, cert_arn: str, thing_name: str, kind: str, modified: Optional[float] = None
    ) -> Optional[str]:
        """Another thing whose current authenticated record holds this certificate (``kind`` "c": INACTIVE, "p":
        isolated by policy), or None: a certificate is released only when no quarantine holds it any more. With
        ``modified`` (the certificate's lastModifiedDate), a record holds it INACTIVE only if nobody changed the
        certificate after that quarantine deactivated it (else the human who did owns its state)."""
        cert_id = cert_arn.rsplit("/", 1)[-1]
        for other in self.registry.principal_things(region, cert_arn):
            if other == thing_name:
                continue
            state = self.read(region, other)
            if state is None or state.record is None or not state.record.authenticated:
                continue
            if state.trust(self._groups_if_needed(region, state)) != "ok":
                continue
            held: List[str] = state.record.certificates if kind == "c" else state.record.policy_certificates
            if cert_id not in resolve(held, [cert_id]).values():
                continue
            mark = state.record.certificates_modified
            if kind == "c" and modified is not None and mark is not None and modified > mark:
                continue
            return other
        return None
