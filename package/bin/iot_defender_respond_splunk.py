"""What the response actions need from splunkd besides configuration: who triggered the run (and whether they may
act), and the key that authenticates quarantine records.

- :func:`caller`: the user of the alert payload's session and their capabilities, from
  ``/services/authentication/current-context`` (the session is the search owner's for a scheduled alert, the
  analyst's for an ad hoc adaptive response). Every response action requires :data:`RESPOND_CAPABILITY`
  (``authorize.conf``: granted to admin and ess_admin).
- :func:`record_keyring`: the keys that authenticate quarantine records, entered at setup (the *Response* tab,
  encrypted in ``storage/passwords``); never created here. See ``iot_defender.respond.keys`` and docs/security.md.
- :class:`OwnerLookup`: the thing's owner, priority and business unit for incidents (its asset row, else its
  inventory row), and :func:`owner_topic_routes`: the owner -> SNS topic lookup (docs/assets.md, "Owner on
  responses").
"""

from __future__ import annotations

import csv
import json
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import urlparse

from iot_defender import APP_ID, assets
from iot_defender.respond import Keyring
from iot_defender.respond.common import SNS_TOPIC_ARN_RE

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


# ----------------------------------------------------------------------------- the thing's owner (issue 18)

INVENTORY_COLLECTION = "iot_thing_inventory"
PRIORITY_LOOKUP = "iot_defender_asset_priority.csv"
OWNER_TOPICS_LOOKUP = "iot_defender_owner_topics.csv"
_KV_KEY_RE = re.compile(r"[A-Za-z0-9:_.-]{1,600}")
KvGet = Callable[[str, str], Optional[Dict[str, Any]]]  # (collection, key) -> the row, None when there is none


def owner_fields(
    asset_row: Optional[Mapping[str, Any]], inventory_row: Optional[Mapping[str, Any]], rules: assets.PriorityRules
) -> Dict[str, str]:
    """The owner, priority and business unit a response carries: the thing's published asset row (what the Lookup
    Gen search computed with the deployment's own macros and rules) when there is one; else the inventory row
    mapped with the shipped defaults (the ``owner`` and ``site`` attributes, the priority lookup), so responses
    carry the owner without the asset searches; else unknown."""
    asset = assets.from_kv_row(asset_row)
    if asset is None and inventory_row:
        try:
            asset = assets.asset_of(inventory_row, rules)
        except assets.MalformedInventoryRow:
            asset = None
    return assets.response_fields(asset)


def _lookup_rows(name: str) -> List[Dict[str, str]]:
    """The rows of one of the app's CSV lookups (``$SPLUNK_HOME/etc/apps/<app>/lookups/<name>``, where an in-place
    edit lands too; next to ``bin`` when SPLUNK_HOME is not set)."""
    app = os.path.join(os.environ.get("SPLUNK_HOME") or "", "etc", "apps", APP_ID)
    if not os.environ.get("SPLUNK_HOME") or not os.path.isdir(app):
        app = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
    path = os.path.join(app, "lookups", name)
    with open(path, newline="", encoding="utf-8") as handle:
        return [dict(row) for row in csv.DictReader(handle)]


class OwnerLookup:
    """``(region, thing_name) -> {"owner", "priority", "bunit"}`` for one account: one KV GET by key on
    ``iot_defender_assets`` (never a collection read), and one on ``iot_thing_inventory`` only when the thing has
    no published asset row. What the respond services are handed as ``owner_of``."""

    def __init__(self, kv_get: KvGet, account_id: str, rules: Optional[assets.PriorityRules] = None):
        self.kv_get = kv_get
        self.account_id = account_id
        self._rules = rules

    @property
    def rules(self) -> assets.PriorityRules:
        if self._rules is None:
            try:
                self._rules = assets.PriorityRules.from_rows(_lookup_rows(PRIORITY_LOOKUP))
            except (OSError, assets.AssetConfigError):  # no usable rules: the fallback's priority is "unknown"
                self._rules = assets.PriorityRules()
        return self._rules

    def __call__(self, region: str, thing_name: str) -> Dict[str, str]:
        key = assets.asset_key(self.account_id, region, thing_name)
        asset_row = self.kv_get(assets.COLLECTION, key)
        inventory_row = None if assets.from_kv_row(asset_row) else self.kv_get(INVENTORY_COLLECTION, key)
        return owner_fields(asset_row, inventory_row, self.rules)


def owner_topics(rows: Iterable[Mapping[str, Any]]) -> Tuple[Dict[str, str], List[str]]:
    """The owner -> SNS topic routes of ``lookups/iot_defender_owner_topics.csv`` (``owner,sns_topic_arn``), and
    the problems of the rows refused (a topic that is not an SNS topic ARN; an owner listed twice: both refused,
    never guessed). An empty owner or topic is no route."""
    routes: Dict[str, str] = {}
    problems: List[str] = []
    twice = set()
    for number, row in enumerate(rows, start=2):
        owner = assets.clean(row.get("owner")).strip()
        topic = str(row.get("sns_topic_arn") or "").strip()
        if not owner or not topic:
            continue
        if not SNS_TOPIC_ARN_RE.fullmatch(topic):
            problems.append(f"{OWNER_TOPICS_LOOKUP} row {number}: sns_topic_arn is not an SNS topic ARN")
        elif owner in routes or owner in twice:
            problems.append(f"{OWNER_TOPICS_LOOKUP} row {number}: owner listed twice (no route for it)")
            routes.pop(owner, None)
            twice.add(owner)
        else:
            routes[owner] = topic
    return routes, problems


def owner_topic_routes() -> Tuple[Dict[str, str], List[str]]:
    """The shipped (or edited) owner -> topic lookup; a missing file is no routes."""
    try:
        return owner_topics(_lookup_rows(OWNER_TOPICS_LOOKUP))
    except OSError:
        return {}, []


def kv_get(session_key: str, server_uri: Optional[str] = None) -> KvGet:
    """One KV row by ``_key`` (GET storage/collections/data/<collection>/<key>); None when there is none."""
    from solnlib.splunk_rest_client import SplunkRestClient
    from splunklib import binding

    client = SplunkRestClient(session_key, APP_ID, owner="nobody", **_where(server_uri))

    def get(collection: str, key: str) -> Optional[Dict[str, Any]]:
        # splunklib URL-encodes the path itself (quoting here would encode twice); the key is made of a validated
        # account id, region and thing name, and anything else is refused rather than sent
        if not _KV_KEY_RE.fullmatch(key) or not _KV_KEY_RE.fullmatch(collection):
            raise ValueError("not a KV key of the add-on's collections")
        path = f"storage/collections/data/{collection}/{key}"
        try:
            body = client.get(path, output_mode="json").body.read()
        except binding.HTTPError as exc:
            if exc.status == 404:
                return None
            raise
        row = json.loads(body)
        return row if isinstance(row, dict) else None

    return get
