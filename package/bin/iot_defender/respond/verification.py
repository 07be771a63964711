"""Set a Device Defender violation's verification state: the analyst's verdict sent back to AWS."""

from __future__ import annotations

from typing import Any, Dict, Optional

from botocore.exceptions import BotoCoreError, ClientError

from .. import incident as inc
from ..events import ActionResult
from .calls import AwsCalls
from .common import ACTION_VERIFICATION, VIOLATION_ID_RE, show, valid_thing_name
from .outcomes import Outcomes
from .registry import Registry

VERIFICATION_STATES = ("TRUE_POSITIVE", "FALSE_POSITIVE", "BENIGN_POSITIVE", "UNKNOWN")


class Verification:
    """The set-verification-state action, handed the account's AWS calls, results and registry reads."""

    def __init__(self, calls: AwsCalls, outcomes: Outcomes, registry: Registry, *, dry_run: bool = False):
        self.calls = calls
        self.outcomes = outcomes
        self.registry = registry
        self.dry_run = dry_run

    def set_verification_state(
        self,
        violation_id: str,
        region: str,
        state: str,
        description: str = "",
        *,
        thing_name: Optional[str] = None,
    ) -> ActionResult:
        action = ACTION_VERIFICATION
        if not VIOLATION_ID_RE.match(violation_id or ""):
            return self.outcomes.result(
                action,
                "refused-invalid",
                thing_name if valid_thing_name(thing_name) else None,
                region,
                f"{show(violation_id)} is not a Device Defender violation id ([a-zA-Z0-9-], 1-128)",
            )
        if state not in VERIFICATION_STATES:
            return self.outcomes.result(
                action, "refused-invalid", thing_name, region, f"unknown verification state {show(state)}"
            )
        text = inc.clean_text(description, inc.DESCRIPTION_MAX)
        details: Dict[str, Any] = {"violation_id": violation_id, "verification_state": state}
        if text:
            details["description"] = text
        if self.dry_run:
            return self.outcomes.result(
                action, "dry-run", thing_name, region, f"dry run, would set {violation_id} to {state}", details=details
            )
        self.calls.stats.reset_thread()
        params: Dict[str, Any] = {"violationId": violation_id, "verificationState": state}
        if text:
            params["verificationStateDescription"] = text
        try:
            self.calls.call("iot", region, "PutVerificationStateOnViolation", **params)
        except (ClientError, BotoCoreError) as exc:
            return self.outcomes.failed(action, thing_name, region, exc, [], "set verification state")
        details["throttled_retries"] = self.calls.stats.thread_throttled()
        return self.outcomes.result(
            action, "done", thing_name, region, f"violation {violation_id} set to {state}", details=details
        )
