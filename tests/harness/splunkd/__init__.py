"""Loopback splunkd stand-in, fake ``$SPLUNK_HOME`` and Splunk's bundled ``splunk`` module stand-in."""

from __future__ import annotations

from .env import splunk_environment
from .home import SplunkHome
from .server import (
    APP_ID,
    CRED_END_MARK,
    CRED_SEP,
    KV_NOT_READY,
    PLACEHOLDER,
    REST_ROOT,
    Faults,
    RequestRecord,
    SplunkdStandIn,
    credential_realm,
)

__all__ = [
    "APP_ID",
    "CRED_END_MARK",
    "CRED_SEP",
    "KV_NOT_READY",
    "PLACEHOLDER",
    "REST_ROOT",
    "Faults",
    "RequestRecord",
    "SplunkHome",
    "SplunkdStandIn",
    "credential_realm",
    "splunk_environment",
]
