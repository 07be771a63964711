"""What the response actions need from splunkd besides configuration: who triggered the run (and whether they may
act), and the key that authenticates quarantine records.

- :func:`caller`: the user of the alert payload's session and their capabilities, from
  ``/services/authentication/current-context`` (the session is the search owner's for a scheduled alert, the
  analyst's for an ad hoc adaptive response). Every response action requires :data:`RESPOND_CAPABILITY`
  (``authorize.conf``: granted to admin and ess_admin).
- :func:`record_key`: a random 256-bit key kept in Splunk's credential store (``storage/passwords``), created on
  first use; the first writer wins when two runs create it at once, and both then use the stored one. Quarantine
  records signed with it cannot be written by the device side (see ``iot_defender.respond.record``).
"""

from __future__ import annotations

import json
import secrets
from typing import List, Optional, Tuple
from urllib.parse import urlparse

from iot_defender import APP_ID

RESPOND_CAPABILITY = "iot_defender_respond"
RECORD_KEY_REALM = f"{APP_ID}#quarantine_record"
RECORD_KEY_NAME = "hmac_key"


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


def record_key(session_key: str, server_uri: Optional[str] = None) -> bytes:
    """The quarantine record key from the credential store, created on first use."""
    from solnlib.credentials import CredentialManager, CredentialNotExistException
    from solnlib.splunk_rest_client import SplunkRestClient
    from splunklib import binding

    manager = CredentialManager(session_key, APP_ID, realm=RECORD_KEY_REALM, **_where(server_uri))
    try:
        return bytes.fromhex(manager.get_password(RECORD_KEY_NAME))
    except CredentialNotExistException:
        pass
    client = SplunkRestClient(session_key, APP_ID, owner="nobody", **_where(server_uri))
    try:  # create, never overwrite: a concurrent first run may have created it a moment ago
        client.post("storage/passwords", name=RECORD_KEY_NAME, password=secrets.token_hex(32), realm=RECORD_KEY_REALM)
    except binding.HTTPError as exc:
        if exc.status != 409:
            raise
    return bytes.fromhex(manager.get_password(RECORD_KEY_NAME))
