"""The results an action reports: one :class:`~iot_defender.events.ActionResult` per target, with the account."""

from __future__ import annotations

from typing import Any, List, Optional

from ..aws import error_code, error_message
from ..events import ActionResult
from .common import show, valid_thing_name

# The loser of a race on one thing reports this outcome (message "conflict: ..."); nothing was written by it.
CONFLICT = "conflict"
# A resource the add-on did not create (or whose document is not its own deny document): refused before any write
# with this outcome (``SetupError.code`` is NOT_OWNED_CODE).
NOT_OWNED = "refused-not-owned"
NOT_OWNED_CODE = "NotOwnedByAddOn"


class Outcomes:
    """Makes the results of one account's actions."""

    def __init__(self, account_id: str = ""):
        self.account_id = account_id

    def result(self, action: str, outcome: str, thing_name: Optional[str], region: str, message: str, **kw: Any):
        return ActionResult(
            action=action,
            outcome=outcome,
            thing_name=thing_name,
            message=message,
            account_id=self.account_id or None,
            region=region,
            **kw,
        )

    def crashed(self, action: str, thing_name: Optional[str], region: str, exc: BaseException) -> ActionResult:
        """The result for an unexpected exception (used by :func:`~.pacing.run_all`)."""
        code = error_code(exc)
        return self.result(action, "failed", thing_name, region, f"{code}: {error_message(exc)[:300]}", error_code=code)

    def failed(
        self, action: str, thing: Optional[str], region: str, exc: BaseException, changes: List[str], what: str
    ) -> ActionResult:
        code = error_code(exc)
        text = f"{what} failed: {code}: {error_message(exc)[:300]}"
        if changes:
            text += f" (already changed: {'; '.join(changes)})"
        return self.result(action, "failed", thing, region, text, error_code=code, details={"changes": changes})

    def conflict(self, action: str, thing: str, region: str, why: str, **kw: Any) -> ActionResult:
        return self.result(action, CONFLICT, thing, region, f"conflict: {why}", **kw)

    def setup_refused(self, action: str, thing: str, region: str, message: str, code: str) -> ActionResult:
        """The result when the quarantine group or policy cannot be used: ``refused-not-owned`` for a resource
        the add-on does not own (nothing written), ``failed`` with the AWS error code otherwise."""
        if code == NOT_OWNED_CODE:
            return self.result(action, NOT_OWNED, thing, region, message)
        return self.result(action, "failed", thing, region, message, error_code=code)

    def refuse_invalid_name(self, action: str, thing_name: str, region: str) -> Optional[ActionResult]:
        """The refusal for a thing name AWS would reject, before any call; None when the name is valid."""
        if valid_thing_name(thing_name):
            return None
        return self.result(
            action,
            "refused-invalid",
            None,
            region,
            f"{show(thing_name)} is not a valid thing name ([a-zA-Z0-9:_-], 1-128 characters)",
        )
