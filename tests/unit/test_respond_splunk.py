"""The response actions' splunkd helpers against the loopback splunkd stand-in, through solnlib/splunklib."""

from __future__ import annotations

import threading

import pytest

import iot_defender_respond_splunk as rs
from tests.harness.splunkd import APP_ID, SplunkdStandIn


@pytest.fixture
def splunkd(monkeypatch):
    monkeypatch.delenv("SPLUNK_HOME", raising=False)
    with SplunkdStandIn() as standin:
        yield standin


def test_caller_reads_the_sessions_user_and_capabilities(splunkd):
    splunkd.set_conf("authorize", "role_admin", {rs.RESPOND_CAPABILITY: "enabled"}, app=APP_ID)
    user, capabilities = rs.caller(splunkd.session_key, splunkd.uri)
    assert user == "admin" and rs.RESPOND_CAPABILITY in capabilities
    analyst = splunkd.add_user("analyst", roles=["user"])
    assert rs.caller(analyst, splunkd.uri) == ("analyst", ["search"])
    with pytest.raises(rs.CallerUnknown, match="could not be read"):
        rs.caller("not-a-session", splunkd.uri)


def test_record_key_is_created_once_and_shared(splunkd):
    keys = []
    threads = [
        threading.Thread(target=lambda: keys.append(rs.record_key(splunkd.session_key, splunkd.uri))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(keys) == 4 and len(set(keys)) == 1 and len(keys[0]) == 32
    assert rs.record_key(splunkd.session_key, splunkd.uri) == keys[0]
    stored = [p for p in splunkd._passwords.values() if p.realm == rs.RECORD_KEY_REALM]
    assert len(stored) == 1 and bytes.fromhex(stored[0].clear_password) == keys[0]
