"""Splunk side of the add-on, shared by inputs, alert actions and the REST handler: configuration, secrets and
logging through solnlib. The pure library (``iot_defender``) never imports this module.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from botocore.exceptions import ClientError, ConnectionError, CredentialRetrievalError, NoCredentialsError
from solnlib import conf_manager, log

from iot_defender import APP_ID
from iot_defender.aws import Account, ClientSettings, ConfigError, error_code, redact
from iot_defender.inputs import ACCESS_CODES

REST_ROOT = "ta_aws_iot_defender"
ACCOUNT_CONF = f"{REST_ROOT}_account"
SETTINGS_CONF = f"{REST_ROOT}_settings"
LOG_PREFIX = APP_ID.lower()


def _realm(conf_name: str) -> str:
    return f"__REST_CREDENTIAL__#{APP_ID}#configs/conf-{conf_name}"


class SecretFilter(logging.Filter):
    """Scrubs known secret values from every record that reaches a handler, whatever logged it."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: List[str] = []

    def add(self, *secrets: Optional[str]) -> None:
        for secret in secrets:
            if secret and len(secret) >= 4 and secret not in self.secrets:
                self.secrets.append(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = redact(record.getMessage(), self.secrets)
            record.msg, record.args = message, None
        return True


SECRET_FILTER = SecretFilter()


def get_logger(name: str) -> logging.Logger:
    """A solnlib file logger: ``$SPLUNK_HOME/var/log/splunk/ta-aws-iot-defender_<name>.log``.

    Named as UCC names an add-on's logs (``<add-on id, lower case>_<name>``): UCC's monitoring dashboard finds
    them with ``source=*ta-aws-iot-defender*``.
    """
    logger = log.Logs().get_logger(f"{LOG_PREFIX}_{name}")
    for handler in logger.handlers:
        if SECRET_FILTER not in handler.filters:
            handler.addFilter(SECRET_FILTER)
    return logger


def set_log_level(logger: logging.Logger, session_key: str) -> None:
    """Apply the level chosen on the Logging tab (INFO when unset or unreadable)."""
    try:
        level = conf_manager.get_log_level(
            logger=logger, session_key=session_key, app_name=APP_ID, conf_name=SETTINGS_CONF
        )
    except Exception:  # the level is a nicety: a broken settings read must not stop the run
        level = "INFO"
    logger.setLevel(level)


def _conf(session_key: str, conf_name: str) -> Any:
    manager = conf_manager.ConfManager(session_key, APP_ID, realm=_realm(conf_name))
    return manager.get_conf(conf_name)


def load_account(session_key: str, name: str) -> Account:
    """The named account with its secrets decrypted, validated; :class:`ConfigError` if unusable."""
    if not name:
        raise ConfigError("no AWS account is selected")
    try:
        stanza = _conf(session_key, ACCOUNT_CONF).get(name)
    except (conf_manager.ConfStanzaNotExistException, conf_manager.ConfManagerException):
        # ConfManagerException: also raised when no account was ever saved (the conf file does not exist yet).
        raise ConfigError(f"AWS account '{name}' is not configured in the add-on") from None
    account = Account.from_conf(name, stanza)
    SECRET_FILTER.add(*account.secrets(), account.access_key_id)
    return account


def load_settings_stanzas(session_key: str) -> Dict[str, Dict[str, Any]]:
    """The settings conf (``advanced``, ``proxy``, ``logging`` stanzas); empty stanzas when absent."""
    try:
        conf = _conf(session_key, SETTINGS_CONF)
        stanzas = conf.get_all(only_current_app=True)
    except conf_manager.ConfManagerException:
        stanzas = {}
    return {name: dict(stanzas.get(name) or {}) for name in ("advanced", "proxy", "logging")}


def load_client_settings(session_key: str) -> ClientSettings:
    stanzas = load_settings_stanzas(session_key)
    SECRET_FILTER.add(stanzas["proxy"].get("proxy_password"))
    return ClientSettings.from_conf(stanzas["advanced"], stanzas["proxy"])


# ------------------------------------------------------------------------------------ UCC monitoring
# UCC's generated monitoring dashboard counts solnlib's ``events_ingested`` lines and groups errors by solnlib's
# categories (the ``exc_l`` field written by ``log.log_exception``).

AUTHENTICATION_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "IncompleteSignature",
    }
)


def error_category(exc: BaseException) -> str:
    """solnlib's error category (``exc_l``) of a run failure."""
    if isinstance(exc, (ConfigError, ValueError)):
        return "Configuration Error"
    if isinstance(exc, (NoCredentialsError, CredentialRetrievalError)):
        return "Authentication Error"
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in ACCESS_CODES:
            return "Permission Error"
        if code in AUTHENTICATION_CODES:
            return "Authentication Error"
        return "Server Error"
    if isinstance(exc, (ConnectionError, OSError)):
        return "Connection Error"
    return "Server Error"


def log_error(logger: logging.Logger, exc: BaseException, category: str, message: str) -> None:
    """One ERROR line: ``exc_l="<category>" <message>``, then the exception's own one-line text (no traceback)."""
    log.log_exception(logger, exc, category, full_msg=False, msg_before=message)


def report_ingested(
    logger: logging.Logger, input_name: str, counts: Dict[str, int], index: Optional[str], account: str
) -> None:
    """``action=events_ingested`` per sourcetype written (``input_name`` is ``<kind>://<stanza>``)."""
    for sourcetype, count in sorted(counts.items()):
        if count:
            log.events_ingested(logger, input_name, sourcetype, count, index or "default", account=account)
