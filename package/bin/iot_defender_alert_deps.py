"""What an alert run takes from Splunk and AWS (:class:`Deps`, replaced in tests): the configured account and API
settings, the AWS session and account id, the incident suppression store in the KV store, the secret log
filter, the clock, the triggering user's capabilities and the quarantine record key. Splunk's own modules are
imported only when used, so the alert adapter loads without them.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from iot_defender import APP_ID
from iot_defender.aws import Account, AwsSession, ClientSettings, caller_identity
from iot_defender.respond import Keyring, RateLimiter, SuppressionStore, show
from iot_defender_respond_splunk import RESPOND_CAPABILITY

SUPPRESSION_COLLECTION = "ta_aws_iot_defender_incident_suppression"


class KvSuppressionStore(SuppressionStore):
    """Incident suppression state in the KV store (solnlib checkpointer; the collection is created on demand).

    Chosen over deriving it from AWS: ListIncidentRecords cannot filter by thing (it would take one
    ListRelatedItems call per open incident), and an SNS destination leaves nothing in AWS to ask.
    """

    def __init__(self, session_key: str, server_uri: Optional[str] = None):
        from urllib.parse import urlparse

        from solnlib.modular_input import checkpointer

        kwargs: Dict[str, Any] = {}
        if server_uri:
            parsed = urlparse(server_uri)
            kwargs = {"scheme": parsed.scheme, "host": parsed.hostname, "port": parsed.port}
        self._ckpt = checkpointer.KVStoreCheckpointer(SUPPRESSION_COLLECTION, session_key, APP_ID, **kwargs)
        self._lock = threading.Lock()

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        with self._lock:
            return self._ckpt.get(key)

    def put(self, key: str, value: Dict[str, Any]) -> None:
        with self._lock:
            self._ckpt.update(key, value)

    def claim(self, key: str, value: Dict[str, Any]) -> bool:
        """Insert-only (the KV store answers 409 for an existing ``_key``): atomic across overlapping runs.
        solnlib's checkpointer has no insert, so its collection (the same documents: ``_key`` and the JSON
        ``state``) is used directly."""
        import json

        from splunklib import binding

        with self._lock:
            try:
                self._ckpt._collection_data.insert(json.dumps({"_key": key, "state": json.dumps(value)}))
            except binding.HTTPError as exc:
                if exc.status == 409:
                    return False
                raise
        return True

    def forget(self, key: str) -> None:
        with self._lock:
            self._ckpt.delete(key)


class Deps:
    """Everything :func:`run` needs from Splunk and AWS, injectable for tests."""

    def load_account(self, session_key: str, name: str) -> Account:
        from iot_defender_splunk import load_account

        return load_account(session_key, name)

    def load_settings(self, session_key: str) -> ClientSettings:
        from iot_defender_splunk import load_client_settings

        return load_client_settings(session_key)

    def session(self, account: Account, settings: ClientSettings) -> AwsSession:
        return AwsSession(account, settings)

    def account_id(self, session: AwsSession) -> str:
        return caller_identity(session)["account"]

    def store(self, helper: Any) -> Optional[SuppressionStore]:
        return KvSuppressionStore(helper.session_key, (helper.settings or {}).get("server_uri"))

    def limiter(self) -> RateLimiter:
        return RateLimiter()

    def secret_filter(self) -> Optional[logging.Filter]:
        from iot_defender_splunk import SECRET_FILTER

        return SECRET_FILTER

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.timezone.utc)

    def unauthorized(self, helper: Any) -> Optional[str]:
        """Why the user who triggered the run may not act (None when they hold the capability). Fails closed."""
        try:
            user, capabilities = self.caller(helper)
        except Exception as exc:
            return (
                f"the user who triggered the alert could not be checked for the capability {RESPOND_CAPABILITY} "
                f"({type(exc).__name__}); nothing was done"
            )
        if RESPOND_CAPABILITY in capabilities:
            return None
        return (
            f"user {show(user)} lacks the capability {RESPOND_CAPABILITY} that the add-on's response actions "
            "require (granted to admin and ess_admin; Settings > Roles); nothing was done"
        )

    def keyring(self, helper: Any) -> Keyring:
        """The quarantine record keys; unreadable or unusable keys are a warning (never a failed run): records
        are then written unauthenticated and release keeps the records it cannot verify."""
        try:
            keyring = self.record_keyring(helper)
        except Exception as exc:
            helper.message(
                f"quarantine record keys unavailable ({type(exc).__name__}): quarantine records will not be "
                "authenticated and release keeps the records it cannot verify",
                level=logging.WARNING,
            )
            return Keyring()
        for problem in keyring.problems:
            helper.message(f"quarantine record keys: {problem}", level=logging.WARNING)
        if not keyring:
            helper.message(
                "no quarantine record key is configured (Configuration > Response actions): quarantine records will "
                "not be authenticated",
                level=logging.WARNING,
            )
        return keyring

    def owners(self, helper: Any, account_id: str) -> Dict[str, Any]:
        """What the start-incident action is handed about owners (``Responder``'s ``owner_of``, ``owner_topics``)."""
        return {"owner_of": self.owner_of(helper, account_id), "owner_topics": self.owner_topics(helper)}

    def owner_of(self, helper: Any, account_id: str) -> Optional[Callable[[str, str], Mapping[str, str]]]:
        """The thing's owner, priority and business unit for incidents: its asset row, else its inventory row
        (one KV GET by key each). Unavailable: incidents are started without the owner (a warning)."""
        from iot_defender_respond_splunk import OwnerLookup, kv_get

        try:
            return OwnerLookup(kv_get(helper.session_key, (helper.settings or {}).get("server_uri")), account_id)
        except Exception as exc:
            helper.message(f"thing owners unavailable ({type(exc).__name__})", level=logging.WARNING)
            return None

    def owner_topics(self, helper: Any) -> Dict[str, str]:
        """owner -> SNS topic of the owning team (``lookups/iot_defender_owner_topics.csv``); a refused row is a
        warning naming the row (never its values)."""
        from iot_defender_respond_splunk import owner_topic_routes

        routes, problems = owner_topic_routes()
        for problem in problems:
            helper.message(problem, level=logging.WARNING)
        return routes

    def caller(self, helper: Any) -> Tuple[str, List[str]]:
        """The user of the alert payload's session and their capabilities (current-context)."""
        from iot_defender_respond_splunk import caller

        return caller(helper.session_key, (helper.settings or {}).get("server_uri"))

    def record_keyring(self, helper: Any) -> Keyring:
        """The record keys configured at setup (never created here)."""
        from iot_defender_respond_splunk import record_keyring

        return record_keyring(helper.session_key, (helper.settings or {}).get("server_uri"))
