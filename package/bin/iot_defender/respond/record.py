"""The quarantine record: what a quarantine changed on one thing, so that release undoes exactly that.

It lives in ONE thing attribute (``iotdefender_quarantine``), which fits the 3-attribute limit of things without a
thing type and AWS's attribute charset ``[a-zA-Z0-9_.,@/:#=\\[\\]-]*`` (no spaces, <= 800 characters)::

    v2,at=<ISO time>,g=<group>,c=<cert ids>,p=<cert ids>,pn=<policy>,by=<sid>,m=<MAC>

- ``g``: quarantine added the thing to this group (it was not a member before);
- ``c``: certificates quarantine switched from ACTIVE to INACTIVE;
- ``p``: certificates quarantine attached the isolation policy ``pn`` to (it was not attached before);
- ``m``: HMAC-SHA256 over the record *and* the account, region and thing it belongs to, with a key kept in
  Splunk's credential store (:class:`RecordSigner`).

Anyone with ``iot:UpdateThing`` can write thing attributes, the device side included. So release acts on ``c``
and ``p`` only when the MAC proves the add-on wrote this record for this very thing (a record copied from another
thing, edited, or written without the key is *unauthenticated*), and only on certificates still attached to the
thing. An unauthenticated record is still read for ``g`` (leaving the quarantine group gives nothing away).

When certificate ids do not fit, ``by`` is dropped first, then the ids are shortened to a common prefix (>= 16
hex digits) that release resolves against the thing's own certificates; if even that does not fit, the record
cannot be stored and the quarantine ends with a warning that says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

RECORD_ATTRIBUTE = "iotdefender_quarantine"
RECORD_VALUE_MAX = 800
MAC_LENGTH = 22  # base64url characters: 132 bits of HMAC-SHA256
_SAFE = re.compile(r"[^A-Za-z0-9_.:@-]")
_ATTRIBUTE_VALUE_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]*$")
_GROUP_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
_POLICY_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")  # policy names whose characters the attribute can hold
_CERT_RE = re.compile(r"^[0-9a-f]{16,64}$")


class RecordTooLarge(ValueError):
    """The record does not fit one thing attribute even with shortened certificate ids."""


class RecordSigner:
    """Authenticates records for one thing: HMAC-SHA256 keyed with the add-on's record key."""

    def __init__(self, key: bytes, account_id: str, region: str, thing_name: str):
        if len(key) < 16:
            raise ValueError("the record key must be at least 16 bytes")
        self._key = key
        self._scope = "\x1f".join(("ta-aws-iot-defender/quarantine-record/v2", account_id, region, thing_name))

    def mac(self, body: str) -> str:
        digest = hmac.new(self._key, f"{self._scope}\x1f{body}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii")[:MAC_LENGTH]

    def verify(self, body: str, mac: str) -> bool:
        return hmac.compare_digest(self.mac(body), mac or "")


def _union(first: List[str], second: List[str]) -> List[str]:
    return list(dict.fromkeys([*first, *second]))


@dataclass
class QuarantineRecord:
    at: str
    group: Optional[str] = None
    certificates: List[str] = field(default_factory=list)
    policy_certificates: List[str] = field(default_factory=list)
    policy_name: Optional[str] = None
    by: str = ""
    # Set by decode: the MAC proves the add-on wrote exactly this record for this thing.
    authenticated: bool = False
    version: int = 2

    def _body(self, certs: List[str], policy_certs: List[str], by: str) -> str:
        parts = ["v2", f"at={self.at}"]
        if self.group:
            parts.append(f"g={self.group}")
        if certs:
            parts.append("c=" + "/".join(certs))
        if policy_certs:
            parts.append("p=" + "/".join(policy_certs))
        if self.policy_name and _POLICY_RE.match(self.policy_name):
            parts.append(f"pn={self.policy_name}")
        if by:
            parts.append(f"by={by}")
        return ",".join(parts)

    def encode(self, signer: Optional[RecordSigner] = None) -> str:
        """The attribute value; raises :class:`RecordTooLarge` when it cannot fit."""
        mac_room = len(",m=") + MAC_LENGTH if signer else 0
        limit = RECORD_VALUE_MAX - mac_room
        by = _SAFE.sub("_", self.by or "")[:160]
        body = self._body(self.certificates, self.policy_certificates, by)
        if len(body) > limit:
            body = self._body(self.certificates, self.policy_certificates, "")
        length = 64
        everything = set(self.certificates) | set(self.policy_certificates)
        while len(body) > limit and length > 16:
            length -= 8
            if len({c[:length] for c in everything}) < len(everything):
                break  # shorter ids would no longer tell the recorded certificates apart
            body = self._body(
                [c[:length] for c in self.certificates], [c[:length] for c in self.policy_certificates], ""
            )
        if len(body) > limit:
            count = len(set(self.certificates) | set(self.policy_certificates))
            raise RecordTooLarge(
                f"the quarantine record of {count} certificates does not fit in one thing attribute "
                f"({RECORD_VALUE_MAX} characters)"
            )
        value = f"{body},m={signer.mac(body)}" if signer else body
        if not _ATTRIBUTE_VALUE_RE.match(value):
            raise ValueError("quarantine record holds characters AWS does not allow in attributes")
        return value

    @classmethod
    def decode(cls, value: Optional[str], signer: Optional[RecordSigner] = None) -> Optional[QuarantineRecord]:
        """The record, or None when absent or not ours. ``authenticated`` is True only for a v2 record whose
        MAC ``signer`` verifies; v1 records (no MAC) and anything edited are unauthenticated."""
        if not value or not value.startswith(("v1,", "v2,")):
            return None
        body, mac = value, ""
        if value.startswith("v2,") and ",m=" in value:
            body, _, mac = value.rpartition(",m=")
        fields: Dict[str, str] = {}
        for part in body.split(",")[1:]:
            key, sep, val = part.partition("=")
            if sep:
                fields[key] = val
        if "at" not in fields:
            return None
        group = fields.get("g") or None
        if group and not _GROUP_RE.match(group):
            group = None
        policy_name = fields.get("pn") or None
        if policy_name and not _POLICY_RE.match(policy_name):
            policy_name = None

        def certs(key: str) -> List[str]:
            return [c for c in (fields.get(key) or "").split("/") if _CERT_RE.match(c)]

        authenticated = bool(signer and mac and value.startswith("v2,") and signer.verify(body, mac))
        return cls(
            at=fields["at"],
            group=group,
            certificates=certs("c"),
            policy_certificates=certs("p") if value.startswith("v2,") else [],
            policy_name=policy_name,
            by=fields.get("by", ""),
            authenticated=authenticated,
            version=2 if value.startswith("v2,") else 1,
        )

    def merged(self, newer: QuarantineRecord) -> QuarantineRecord:
        """This (authenticated, earlier) record with what a later quarantine of the same thing changed: nothing
        either of them did is lost."""
        return replace(
            newer,
            at=self.at,
            group=self.group or newer.group,
            certificates=_union(self.certificates, newer.certificates),
            policy_certificates=_union(self.policy_certificates, newer.policy_certificates),
            policy_name=newer.policy_name or self.policy_name,
            by=self.by or newer.by,
        )


def resolve(recorded: List[str], attached: List[str]) -> Dict[str, Optional[str]]:
    """Recorded (possibly shortened) certificate ids -> the one certificate now attached to the thing that each
    names, or None when none or several do."""
    out: Dict[str, Optional[str]] = {}
    for cert in recorded:
        matches = [a for a in attached if a.startswith(cert)]
        out[cert] = matches[0] if len(matches) == 1 else None
    return out
