"""The response actions' splunkd helpers against the loopback splunkd stand-in, through solnlib/splunklib."""

from __future__ import annotations

import pytest

import iot_defender_respond_splunk as rs
from iot_defender.respond.keys import key_id
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


KEYS = "n" * 40 + ", " + "o" * 32  # as the Response tab stores them: newest first


def configure_keys(splunkd, text: str) -> None:
    """What saving the Response tab does: the field encrypted in storage/passwords, ****** in the conf."""
    splunkd.create_account("response", {}, {"record_keys": text}, conf=rs.SETTINGS_CONF)


def test_record_keys_come_from_setup_and_are_never_created(splunkd):
    """Seen failing on the old code: release and quarantine created a key on first use, silently."""
    assert not rs.record_keyring(splunkd.session_key, splunkd.uri)
    assert not [p for p in splunkd._passwords.values() if p.realm == rs.RECORD_KEY_REALM]  # nothing created
    configure_keys(splunkd, KEYS)
    keyring = rs.record_keyring(splunkd.session_key, splunkd.uri)
    assert keyring.ids() == [key_id(b"n" * 40), key_id(b"o" * 32)] and keyring.newest_id == key_id(b"n" * 40)


def test_the_former_key_still_verifies_after_setup(splunkd):
    """Records signed with the key earlier versions created on first use stay releasable: it verifies, last."""
    legacy = bytes(range(32))
    splunkd.set_credential(rs.RECORD_KEY_REALM, rs.RECORD_KEY_NAME, legacy.hex(), APP_ID)
    configure_keys(splunkd, "p" * 32)
    keyring = rs.record_keyring(splunkd.session_key, splunkd.uri)
    assert keyring.ids() == [key_id(b"p" * 32), key_id(legacy)]


def test_short_keys_are_ignored_with_a_problem_that_names_no_key(splunkd):
    configure_keys(splunkd, "short-key, " + "q" * 32)
    keyring = rs.record_keyring(splunkd.session_key, splunkd.uri)
    assert keyring.ids() == [key_id(b"q" * 32)]
    assert keyring.problems and "short-key" not in " ".join(keyring.problems)


def test_setup_refuses_what_a_run_would_ignore():
    """The Response tab's validator and the runs agree: the same minimum length, the same separators."""
    import re
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import global_config_response as tab

    from iot_defender.respond.keys import MIN_KEY_CHARACTERS, Keyring

    assert tab.MIN_KEY_CHARACTERS == MIN_KEY_CHARACTERS
    pattern = re.compile(tab.response_tab()["entity"][0]["validators"][0]["pattern"])
    good, short = "a" * 32, "b" * 31
    for text in (good, f"{good}, {'c' * 40}", f" {good} "):
        assert pattern.match(text) and not Keyring.from_text(text).problems
    for text in (short, f"{good},{short}", "", f"{good};{good}"):
        assert not pattern.match(text)
