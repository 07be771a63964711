"""The quarantine and release options (alert parameters / Lambda settings), checked before any call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from .common import POLICY_NAME_RE, THING_GROUP_NAME_RE, OptionError, show

DEFAULT_QUARANTINE_GROUP = "QUARANTINED"
DEFAULT_POLICY_NAME = "TA-IoTDefender-Quarantine"


@dataclass(frozen=True)
class QuarantineOptions:
    group: str = DEFAULT_QUARANTINE_GROUP
    policy_name: str = DEFAULT_POLICY_NAME
    allow_remediation: bool = True
    deactivate_certificates: bool = False
    protected_groups: Tuple[str, ...] = ()
    # False when the isolation policy is owned by someone else (the response stack's CloudFormation): then it is
    # only checked (the add-on's tag and deny document) and attached to the group, never created or rewritten.
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
