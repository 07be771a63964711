"""What the response actions need from splunkd besides configuration: who triggered the run (and whether they may
act), and the key that authenticates quarantine records.

- :func:`caller`: the user of the alert payload's session and their capabilities, from
  ``/services/authentication/current-context`` (the session is the search owner's for a scheduled alert, the
  analyst's for an ad hoc adaptive response). Every response action requires :data:`RESPOND_CAPABILITY`
  (``authorize.conf``: granted to admin and ess_admin).
- :func:`record_keyring`: the keys that authenticate quarantine records, entered at setup (the *Response* tab,
  encrypted in ``storage/passwords``); never created here. See ``iot_defender.respond.keys`` and docs/security.md.
"""

from __future__ import annotations

import json
from typing import List, Optional, Tuple
from urllib.parse import urlparse

from iot_defender import APP_ID
from iot_defender.respond import Keyring

RESPOND_CAPABILITY = "iot_defender_respond"
RECORD_KEY_REALM = f"{APP_ID}#quarantine_record"
RECORD_KEY_NAME = "hmac_key"
SETTINGS_CONF = "ta_aws_iot_defender_settings"
SETTINGS_REALM = f"__REST_CREDENTIAL__#{APP_ID}#configs/conf-{SETTINGS_CONF}"
RESPONSE_STANZA = "response"


class CallerUnknown(Exception):
    """The triggering user or their capabilities could not be read (the run is refused: fail closed)."""


def _where(server_uri: Optional[str]) -> dict:
    if not server_uri:
        return {}
    parsed = urlparse(server_uri)
    return {"scheme": parsed.scheme, "host": parsed.hostname, "port": parsed.port}


def caller(session_key: str, server_uri: Optional[str] = None) -> Tuple[str, List[str]]:
    """(username, capabilities) of the session."""
    from solnlib.splunk_rest_client import SplunkRestClient

    try:
        client = SplunkRestClient(session_key, "-", **_where(server_uri))
        body = client.get("/services/authentication/current-context", output_mode="json").body.read()
        content = json.loads(body)["entry"][0]["content"]
    except Exception as exc:
        raise CallerUnknown(f"the user who triggered the alert could not be read ({type(exc).__name__})") from None
    capabilities = content.get("capabilities") or []
    if isinstance(capabilities, str):
        capabilities = [capabilities]
    return str(content.get("username") or ""), [str(c) for c in capabilities]


class KeyUnavailable(Exception):
    """The record keys could not be read (the message never holds a key)."""


def record_keyring(session_key: str, server_uri: Optional[str] = None) -> Keyring:
    """The quarantine record keys: the *Response* tab's ``record_keys`` (newest first), then the key earlier
    versions created on first use (realm ``TA-aws-iot-defender#quarantine_record``), which now only verifies.
    Nothing is created here: keys come from setup only. Raises :class:`KeyUnavailable` when the credential store
    cannot be read."""
    from solnlib import conf_manager
    from solnlib.credentials import CredentialManager
    from solnlib.splunk_rest_client import SplunkRestClient

    configured = ""
    try:
        manager = conf_manager.ConfManager(session_key, APP_ID, realm=SETTINGS_REALM, **_where(server_uri))
        stanza = manager.get_conf(SETTINGS_CONF).get(RESPONSE_STANZA)
        configured = str(stanza.get("record_keys") or "")
    except (conf_manager.ConfStanzaNotExistException, conf_manager.ConfManagerException):
        configured = ""
    except Exception as exc:
        raise KeyUnavailable(f"the record keys could not be read ({type(exc).__name__})") from None
    legacy: List[bytes] = []
    try:  # looked for first: its absence is the normal case, and solnlib logs a failed look-up as an error
        client = SplunkRestClient(session_key, APP_ID, owner="nobody", **_where(server_uri))
        if any(p.realm == RECORD_KEY_REALM for p in client.storage_passwords.list(count=-1)):
            credentials = CredentialManager(session_key, APP_ID, realm=RECORD_KEY_REALM, **_where(server_uri))
            legacy.append(bytes.fromhex(credentials.get_password(RECORD_KEY_NAME)))
    except Exception as exc:
        raise KeyUnavailable(f"the former record key could not be read ({type(exc).__name__})") from None
    return Keyring.from_text(configured, legacy)
