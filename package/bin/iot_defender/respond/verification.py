"""Set a Device Defender violation's verification state: the analyst's verdict sent back to AWS."""

from __future__ import annotations

from typing import Any, Dict, Optional

from botocore.exceptions import BotoCoreError, ClientError

from .. import incident as inc
from ..events import ActionResult
from .common import ACTION_VERIFICATION, VIOLATION_ID_RE, show, valid_thing_name
from .core import ResponderCore

VERIFICATION_STATES = ("TRUE_POSITIVE", "FALSE_POSITIVE", "BENIGN_POSITIVE", "UNKNOWN")


class VerificationActions(ResponderCore):
    """The responder's set-verification-state action."""

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
            return self.result(
                action,
                "refused-invalid",
                thing_name if valid_thing_name(thing_name) else None,
                region,
                f"{show(violation_id)} is not a Device Defender violation id ([a-zA-Z0-9-], 1-128)",
            )
        if state not in VERIFICATION_STATES:
            return self.result(
                action, "refused-invalid", thing_name, region, f"unknown verification state {show(state)}"
            )
        text = inc.clean_text(description, inc.DESCRIPTION_MAX)
        details: Dict[str, Any] = {"violation_id": violation_id, "verification_state": state}
        if text:
            details["description"] = text
        if self.dry_run:
            return self.result(
                action, "dry-run", thing_name, region, f"dry run, would set {violation_id} to {state}", details=details
            )
        self.stats.reset_thread()
        params: Dict[str, Any] = {"violationId": violation_id, "verificationState": state}
        if text:
            params["verificationStateDescription"] = text
        try:
            self.call("iot", region, "PutVerificationStateOnViolation", **params)
        except (ClientError, BotoCoreError) as exc:
            return self._failed(action, thing_name, region, exc, [], "set verification state")
        details["throttled_retries"] = self.stats.thread_throttled()
        return self.result(
            action, "done", thing_name, region, f"violation {violation_id} set to {state}", details=details
        )
