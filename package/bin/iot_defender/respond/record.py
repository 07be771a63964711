"""The quarantine record: what one quarantine changed on one thing, so that release undoes exactly that.

It lives in ONE thing attribute (``iotdefender_quarantine``), which fits the 3-attribute limit of things without a
thing type and AWS's attribute charset ``[a-zA-Z0-9_.,@/:#=\\[\\]-]*`` (no spaces, <= 800 characters)::

    v3,at=<ISO time>,n=<nonce>,tv=<thing version>,g=<group>,c=<cert ids>,p=<cert ids>,pn=<policy>,cm=<epoch>,
    s=<lease>,by=<sid>,k=<key id>,m=<MAC>

- ``n``: the quarantine's nonce: one record, one quarantine (a later quarantine of the same thing while it is still
  quarantined adds to the same record; after a release the next quarantine draws a new nonce);
- ``tv``: the thing's registry version once this record is written: any later write of the thing (a record copied
  back, an edit) moves the version on, and release then treats the record as stale and changes nothing it names;
- ``g``: quarantine added the thing to this group, the one the add-on chose (it was not a member before);
- ``c``: certificates this quarantine holds INACTIVE (it deactivated them, or another quarantine of a thing
  sharing them did and still holds them);
- ``p``: certificates this quarantine holds isolated by policy ``pn`` (same rule);
- ``cm``: AWS's ``lastModifiedDate`` of the certificates held INACTIVE, read back once they were (a later date
  means someone changed a certificate after the quarantine: release then leaves it alone);
- ``s``: a lease ``q.<epoch>.<id>`` / ``r.<epoch>.<id>`` while a quarantine / release of the thing is between its
  first and last write: another run meeting a live lease reports ``conflict`` and writes nothing;
- ``k``, ``m``: the key (:mod:`.keys`) and HMAC-SHA256 over the record *and* the account, region and thing.

Anyone with ``iot:UpdateThing`` can write thing attributes. So release acts on ``c`` and ``p`` only when the MAC
proves the add-on wrote this record for this very thing, ``tv`` is the thing's version, and only on certificates
still attached. v2 records (no nonce, no version) from earlier releases are still verified and released.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

from .keys import Keyring

RECORD_ATTRIBUTE = "iotdefender_quarantine"
RECORD_VALUE_MAX = 800
LEASE_SECONDS = 300
_SAFE = re.compile(r"[^A-Za-z0-9_.:@-]")
_ATTRIBUTE_VALUE_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]*$")
_GROUP_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
_POLICY_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")  # policy names whose characters the attribute can hold
_CERT_RE = re.compile(r"^[0-9a-f]{16,64}$")
_LEASE_RE = re.compile(r"^([qr])\.(\d{1,12})\.([0-9a-f]{8})$")
_SCOPES = {2: "ta-aws-iot-defender/quarantine-record/v2", 3: "ta-aws-iot-defender/quarantine-record/v3"}
_TAIL = 3 + 8 + 3 + 22  # ",k=" + key id + ",m=" + MAC


class RecordTooLarge(ValueError):
    """The record does not fit one thing attribute even with shortened certificate ids."""


def new_nonce() -> str:
    return secrets.token_hex(6)


def new_lease(kind: str, now: float) -> str:
    return f"{kind}.{int(now)}.{secrets.token_hex(4)}"


def live_lease(lease: Optional[str], now: float) -> Optional[str]:
    """``quarantine`` / ``release`` when ``lease`` is held and not expired, else None. Another host's clock may run
    ahead of this one: a lease up to LEASE_SECONDS in the future is held too."""
    match = _LEASE_RE.match(lease or "")
    if not match or not abs(now - int(match.group(2))) < LEASE_SECONDS:
        return None
    return "quarantine" if match.group(1) == "q" else "release"


class RecordSigner:
    """Authenticates records for one thing with the keyring (newest key signs, every key verifies)."""

    def __init__(self, keyring: Keyring, account_id: str, region: str, thing_name: str):
        self.keyring = keyring
        self._scope = "\x1f".join(("", account_id, region, thing_name))

    def message(self, version: int, body: str) -> bytes:
        return f"{_SCOPES[version]}{self._scope}\x1f{body}".encode()

    def tail(self, body: str) -> str:
        kid, mac = self.keyring.sign(self.message(3, f"{body},k={self.keyring.newest_id}"))
        return f",k={kid},m={mac}"


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
    nonce: str = ""
    thing_version: Optional[int] = None
    lease: Optional[str] = None
    # AWS's own lastModifiedDate (epoch seconds) of the certificates held INACTIVE, read once they were: a later
    # date means someone changed the certificate after the quarantine (no clock but AWS's is compared).
    certificates_modified: Optional[int] = None
    # Set by decode. "ok": the MAC verifies; "bad": a key that should have made it does not (edited, copied,
    # forged); "unverifiable": signed, but no configured key can check it (missing, unreadable or rotated out);
    # "none": no MAC (v1, or written without a key).
    mac: str = "none"
    version: int = 3

    @property
    def authenticated(self) -> bool:
        return self.mac == "ok"

    def _body(self, certs: List[str], policy_certs: List[str], by: str) -> str:
        parts = ["v3", f"at={self.at}", f"n={self.nonce}"]
        if self.thing_version is not None:
            parts.append(f"tv={self.thing_version}")
        if self.group:
            parts.append(f"g={self.group}")
        if certs:
            parts.append("c=" + "/".join(certs))
        if policy_certs:
            parts.append("p=" + "/".join(policy_certs))
        if self.policy_name and _POLICY_RE.match(self.policy_name):
            parts.append(f"pn={self.policy_name}")
        if self.certificates_modified is not None:
            parts.append(f"cm={self.certificates_modified}")
        if self.lease:
            parts.append(f"s={self.lease}")
        if by:
            parts.append(f"by={by}")
        return ",".join(parts)

    def encode(self, signer: Optional[RecordSigner] = None) -> str:
        """The attribute value; raises :class:`RecordTooLarge` when it cannot fit."""
        limit = RECORD_VALUE_MAX - (_TAIL if signer else 0)
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
            raise RecordTooLarge(
                f"the quarantine record of {len(everything)} certificates does not fit in one thing attribute "
                f"({RECORD_VALUE_MAX} characters)"
            )
        value = body + (signer.tail(body) if signer else "")
        if not _ATTRIBUTE_VALUE_RE.match(value):
            raise ValueError("quarantine record holds characters AWS does not allow in attributes")
        return value

    @classmethod
    def decode(cls, value: Optional[str], signer: Optional[RecordSigner] = None) -> Optional[QuarantineRecord]:
        """The record, or None when absent or not ours (see ``mac`` for how far it can be trusted)."""
        if not value or not value.startswith(("v1,", "v2,", "v3,")):
            return None
        version = int(value[1])
        body, mac = value, ""
        if version >= 2 and ",m=" in value:
            body, _, mac = value.rpartition(",m=")
        fields: Dict[str, str] = {}
        for part in body.split(",")[1:]:
            key, sep, val = part.partition("=")
            if sep:
                fields.setdefault(key, val)
        if "at" not in fields:
            return None
        record = _record_of(fields, version)
        record.mac = _check(signer, version, body, fields.get("k", "") if version == 3 else "", mac)
        return record

    def merged(self, newer: QuarantineRecord) -> QuarantineRecord:
        """This (authenticated, earlier) record with what a later quarantine of the same thing holds: nothing
        either of them did is lost; the nonce stays (one quarantine, still in force)."""
        return replace(
            newer,
            at=self.at,
            group=self.group or newer.group,
            certificates=_union(self.certificates, newer.certificates),
            policy_certificates=_union(self.policy_certificates, newer.policy_certificates),
            policy_name=newer.policy_name or self.policy_name,
            by=self.by or newer.by,
            nonce=self.nonce or newer.nonce,
            certificates_modified=max(
                (m for m in (self.certificates_modified, newer.certificates_modified) if m is not None), default=None
            ),
        )


def _record_of(fields: Dict[str, str], version: int) -> QuarantineRecord:
    group = fields.get("g") or None
    policy_name = fields.get("pn") or None
    version_text = fields.get("tv", "")
    modified = fields.get("cm", "")
    nonce = fields.get("n", "")

    def certs(key: str) -> List[str]:
        return [c for c in (fields.get(key) or "").split("/") if _CERT_RE.match(c)]

    return QuarantineRecord(
        at=fields["at"],
        group=group if group and _GROUP_RE.match(group) else None,
        certificates=certs("c"),
        policy_certificates=certs("p") if version >= 2 else [],
        policy_name=policy_name if policy_name and _POLICY_RE.match(policy_name) else None,
        by=fields.get("by", ""),
        nonce=nonce if re.match(r"^[0-9a-f]{12}$", nonce) else "",
        thing_version=int(version_text) if version_text.isascii() and version_text.isdigit() else None,
        lease=fields.get("s") if _LEASE_RE.match(fields.get("s", "")) else None,
        certificates_modified=int(modified) if modified.isascii() and modified.isdigit() else None,
        version=version,
    )


def _check(signer: Optional[RecordSigner], version: int, body: str, kid: str, mac: str) -> str:
    if not mac:
        return "none"
    if signer is None or not signer.keyring:
        return "unverifiable"
    if version == 3 and kid not in signer.keyring.ids():
        return "unverifiable"
    return "ok" if signer.keyring.verify(signer.message(version, body), kid or None, mac) else "bad"


def resolve(recorded: List[str], attached: List[str]) -> Dict[str, Optional[str]]:
    """Recorded (possibly shortened) certificate ids -> the one certificate now attached to the thing that each
    names, or None when none or several do."""
    out: Dict[str, Optional[str]] = {}
    for cert in recorded:
        matches = [a for a in attached if a.startswith(cert)]
        out[cert] = matches[0] if len(matches) == 1 else None
    return out
