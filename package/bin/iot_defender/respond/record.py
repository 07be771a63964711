"""The quarantine record: what a quarantine changed on one thing, kept in one thing attribute so that release
restores exactly that and nothing else."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .common import THING_GROUP_NAME_RE

RECORD_ATTRIBUTE = "iotdefender_quarantine"
RECORD_VALUE_MAX = 800
_RECORD_SAFE = re.compile(r"[^A-Za-z0-9_.:@-]")
_ATTRIBUTE_VALUE_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]*$")


@dataclass
class QuarantineRecord:
    """What a quarantine changed on one thing, kept in ONE thing attribute so it fits the 3-attribute limit of
    things without a thing type and AWS's attribute charset ``[a-zA-Z0-9_.,@/:#=\\[\\]-]*`` (no spaces).

    Encoding (<= 800 characters): ``v1,at=<ISO time>,g=<group joined>,c=<cert id>/<cert id>,by=<sid>``.
    ``g`` is present only if quarantine added the thing to the group (it was not a member before); ``c`` lists
    only certificates quarantine switched from ACTIVE to INACTIVE. If full certificate ids do not fit, ``by`` is
    dropped first, then ids are shortened to a common prefix (>= 16 hex digits) that release resolves against
    the thing's own certificates.
    """

    at: str
    group: Optional[str] = None
    certificates: List[str] = field(default_factory=list)
    by: str = ""

    def encode(self) -> str:
        def build(certs: List[str], by: str) -> str:
            parts = ["v1", f"at={self.at}"]
            if self.group:
                parts.append(f"g={self.group}")
            if certs:
                parts.append("c=" + "/".join(certs))
            if by:
                parts.append(f"by={by}")
            return ",".join(parts)

        by = _RECORD_SAFE.sub("_", self.by or "")[:160]
        value = build(self.certificates, by)
        if len(value) > RECORD_VALUE_MAX:
            value = build(self.certificates, "")
        length = 64
        while len(value) > RECORD_VALUE_MAX and length > 16:
            length -= 8
            value = build([cert[:length] for cert in self.certificates], "")
        if len(value) > RECORD_VALUE_MAX:
            raise ValueError(f"{len(self.certificates)} certificate ids do not fit in one thing attribute")
        if not _ATTRIBUTE_VALUE_RE.match(value):
            raise ValueError("quarantine record holds characters AWS does not allow in attributes")
        return value

    @classmethod
    def decode(cls, value: Optional[str]) -> Optional[QuarantineRecord]:
        """The record, or None when absent or not ours (anything unparsable is treated as absent)."""
        if not value or not value.startswith("v1,"):
            return None
        fields: Dict[str, str] = {}
        for part in value.split(",")[1:]:
            key, sep, val = part.partition("=")
            if sep:
                fields[key] = val
        if "at" not in fields:
            return None
        group = fields.get("g") or None
        if group and not THING_GROUP_NAME_RE.match(group):
            group = None
        certs = [c for c in (fields.get("c") or "").split("/") if re.match(r"^[0-9a-f]{16,64}$", c)]
        return cls(at=fields["at"], group=group, certificates=certs, by=fields.get("by", ""))
