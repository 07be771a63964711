"""REST handler of the account tab: proves the credentials work (STS GetCallerIdentity through the configured
path, role included) before an account is saved, and refuses with a message that never echoes a secret."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from splunktaucclib.rest_handler.admin_external import AdminExternalHandler

from iot_defender.aws import Account, AccountValidationError, ConfigError, validate_account
from iot_defender_splunk import get_logger, load_account, load_client_settings

MASK = "********"
SECRET_FIELDS = ("aws_secret_access_key", "external_id")


def merged_payload(
    name: str, payload: Dict[str, Any], stored: Optional[Callable[[str], Optional[Account]]]
) -> Dict[str, Any]:
    """On edit the UI sends masked (or empty) secrets when they were not changed: use the stored ones."""
    merged = dict(payload)
    previous = None
    for secret in SECRET_FIELDS:
        if merged.get(secret) in (None, "", MASK) and stored is not None:
            previous = previous or stored(name)
            if previous is not None:
                value = previous.secret_access_key if secret == "aws_secret_access_key" else previous.external_id
                merged[secret] = value or ""
    return merged


def validation_error(
    name: str,
    payload: Dict[str, Any],
    *,
    stored: Optional[Callable[[str], Optional[Account]]] = None,
    settings: Any = None,
    validate: Callable[..., Dict[str, str]] = validate_account,
) -> Optional[str]:
    """None when AWS accepts the account, else a message for the admin (secrets never included)."""
    try:
        account = Account.from_conf(name, merged_payload(name, payload, stored))
        validate(account, settings)
    except ConfigError as exc:
        return str(exc)
    except AccountValidationError as exc:
        return str(exc)
    return None


class AccountHandler(AdminExternalHandler):
    def _validate(self) -> None:
        from splunk import admin  # splunkd's own module, present where this handler runs

        name = self.callerArgs.id
        session_key = self.getSessionKey()

        def stored(account_name: str) -> Optional[Account]:
            try:
                return load_account(session_key, account_name)
            except ConfigError:
                return None

        try:
            settings = load_client_settings(session_key)
        except ConfigError as exc:
            raise admin.ArgValidationException(f"Add-on settings are not usable: {exc}") from None
        message = validation_error(name, self.payload, stored=stored, settings=settings)
        if message:
            get_logger("account_validation").warning("account %s refused: %s", name, message)
            raise admin.ArgValidationException(message)

    def handleCreate(self, confInfo: Any) -> None:
        self._validate()
        super().handleCreate(confInfo)

    def handleEdit(self, confInfo: Any) -> None:
        # Enabling/disabling an account changes no credential: no AWS round trip for that.
        if set(self.payload) - {"disabled"}:
            self._validate()
        super().handleEdit(confInfo)
