"""The record store: the quarantine record on the thing, read and written compare-and-set on the thing's version."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional

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

    @property
    def current(self) -> bool:
        """An authenticated record that nothing has overwritten since it was written (its ``tv`` is the thing's
        version; a v2 record, written before versions were recorded, counts as current)."""
        record = self.record
        if record is None or not record.authenticated:
            return False
        return record.version == 2 or (record.thing_version is not None and record.thing_version == self.version)

    def lease(self, now: float, trust_unsigned: bool) -> Optional[str]:
        """Which run holds this thing (``quarantine`` / ``release``), or None."""
        record = self.record
        if record is None or not (self.current or (trust_unsigned and record.mac == "none")):
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

    def write(self, region: str, thing_name: str, record: QuarantineRecord, expected: Optional[int]) -> Optional[int]:
        """Store ``record`` if the thing is still at version ``expected``; the thing's new version. Raises the
        ClientError VersionConflictException when someone wrote the thing in between."""
        bound = replace(record, thing_version=None if expected is None else expected + 1)
        value = bound.encode(self.signer(region, thing_name))
        self._update(region, thing_name, value, expected)
        record.thing_version = bound.thing_version
        return bound.thing_version

    def remove(self, region: str, thing_name: str, expected: Optional[int]) -> None:
        self._update(region, thing_name, "", expected)

    def _update(self, region: str, thing_name: str, value: str, expected: Optional[int]) -> None:
        params: Dict[str, Any] = {
            "thingName": thing_name,
            "attributePayload": {"attributes": {RECORD_ATTRIBUTE: value}, "merge": True},
        }
        if expected is not None:
            params["expectedVersion"] = expected
        self.calls.call("iot", region, "UpdateThing", **params)

    def holder(self, region: str, cert_arn: str, thing_name: str, kind: str) -> Optional[str]:
        """Another thing whose current authenticated record holds this certificate (``kind`` "c": INACTIVE, "p":
        isolated by policy), or None: a certificate is released only when no quarantine holds it any more."""
        cert_id = cert_arn.rsplit("/", 1)[-1]
        for other in self.registry.principal_things(region, cert_arn):
            if other == thing_name:
                continue
            state = self.read(region, other)
            if state is None or not state.current or state.record is None:
                continue
            held: List[str] = state.record.certificates if kind == "c" else state.record.policy_certificates
            if cert_id in resolve(held, [cert_id]).values():
                return other
        return None
