"""The quarantine record: fits one thing attribute, and only the add-on can write one release trusts."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iot_defender.respond.keys import Keyring
from iot_defender.respond.record import (
    RECORD_VALUE_MAX,
    QuarantineRecord,
    RecordSigner,
    RecordTooLarge,
    resolve,
)

KEY = bytes(range(32))


def cert(i: int) -> str:
    """A certificate id as AWS makes them (SHA-256 of the DER): 64 hex digits, no shared prefix."""
    return hashlib.sha256(str(i).encode()).hexdigest()


CERTS = [cert(i) for i in range(1, 5)]
ATTRIBUTE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]*$")


def signer(thing="pump-station-001", key=KEY, account="123456789012", region="us-east-1"):
    return RecordSigner(Keyring([key]), account, region, thing)


def record(**kw):
    base = {
        "at": "2026-12-01T14:00:00Z",
        "group": "QUARANTINED",
        "certificates": CERTS[:2],
        "policy_certificates": CERTS[:3],
        "policy_name": "TA-IoTDefender-Quarantine",
        "by": "scheduler__admin__search__RMD5_at_1",
    }
    base.update(kw)
    return QuarantineRecord(**base)


def test_round_trip_is_authenticated_for_its_own_thing_only():
    value = record().encode(signer())
    assert ATTRIBUTE.match(value) and len(value) <= RECORD_VALUE_MAX
    back = QuarantineRecord.decode(value, signer())
    assert back.authenticated and back.certificates == CERTS[:2] and back.policy_certificates == CERTS[:3]
    assert back.group == "QUARANTINED" and back.policy_name == "TA-IoTDefender-Quarantine"
    # the same value on another thing, account or region, or read with another key, proves nothing
    for other in (signer("pump-station-002"), signer(account="210987654321"), signer(region="eu-west-1")):
        assert not QuarantineRecord.decode(value, other).authenticated
    assert not QuarantineRecord.decode(value, signer(key=b"k" * 32)).authenticated
    assert not QuarantineRecord.decode(value, None).authenticated


def test_forged_or_edited_records_are_not_authenticated():
    value = record().encode(signer())
    body, _, mac = value.rpartition(",m=")
    forged_cert = "ff" * 32
    edits = [
        body.replace(CERTS[0], forged_cert) + ",m=" + mac,  # names another certificate
        body + f"/{forged_cert},m=" + mac,
        body + ",m=" + "A" * len(mac),
        body,  # MAC stripped
        record(certificates=[forged_cert]).encode(None),  # written without the key
        "v1,at=2026-01-01T00:00:00Z,g=QUARANTINED,c=" + forged_cert,  # a v1 record
    ]
    for edited in edits:
        back = QuarantineRecord.decode(edited, signer())
        assert back is not None and not back.authenticated, edited
    assert QuarantineRecord.decode("v1,at=x,c=" + CERTS[0], signer()).policy_certificates == []
    assert QuarantineRecord.decode("something else", signer()) is None


def test_many_certificates_shorten_then_refuse():
    twelve = [cert(i) for i in range(12)]
    value = record(certificates=twelve, policy_certificates=twelve).encode(signer())
    back = QuarantineRecord.decode(value, signer())
    assert back.authenticated and len(value) <= RECORD_VALUE_MAX
    assert all(len(c) < 64 for c in back.certificates) and "by=" not in value
    assert resolve(back.certificates, twelve) == {c[: len(back.certificates[0])]: c for c in twelve}
    # ids that share a long prefix are never shortened into ambiguity: the record is refused instead
    alike = [f"{i:064x}" for i in range(12)]
    with pytest.raises(RecordTooLarge):
        record(certificates=alike, policy_certificates=alike).encode(signer())
    sixty_one = [cert(i) for i in range(61)]
    with pytest.raises(RecordTooLarge, match="61 certificates"):
        record(certificates=sixty_one, policy_certificates=sixty_one).encode(signer())


def test_resolve_needs_exactly_one_attached_match():
    assert resolve(["abcdef0123456789"], ["abcdef0123456789" + "0" * 48]) == {
        "abcdef0123456789": "abcdef0123456789" + "0" * 48
    }
    assert resolve(["abcdef0123456789"], []) == {"abcdef0123456789": None}
    two = ["abcdef0123456789" + "0" * 48, "abcdef0123456789" + "1" * 48]
    assert resolve(["abcdef0123456789"], two) == {"abcdef0123456789": None}


def test_merge_keeps_what_either_quarantine_did():
    first = record(certificates=[CERTS[0]], policy_certificates=[CERTS[0]], by="run-1")
    second = record(group=None, certificates=[CERTS[1]], policy_certificates=[CERTS[1]], by="run-2", at="later")
    merged = first.merged(second)
    assert merged.group == "QUARANTINED" and merged.at == first.at and merged.by == "run-1"
    assert merged.certificates == CERTS[:2] and merged.policy_certificates == CERTS[:2]


@settings(max_examples=80, deadline=None)
@given(
    by=st.text(max_size=300),
    certs=st.lists(
        st.sampled_from([cert(i) for i in range(40)] + [f"{i:064x}" for i in range(8)]), max_size=40, unique=True
    ),
    group=st.one_of(st.none(), st.from_regex(r"[a-zA-Z0-9:_-]{1,128}", fullmatch=True)),
)
def test_any_record_that_encodes_is_a_valid_attribute_and_round_trips(by, certs, group):
    rec = record(by=by, certificates=certs, policy_certificates=certs[::-1], group=group)
    try:
        value = rec.encode(signer())
    except RecordTooLarge:
        return
    assert ATTRIBUTE.match(value) and len(value) <= RECORD_VALUE_MAX
    back = QuarantineRecord.decode(value, signer())
    assert back.authenticated and back.group == group
    assert set(resolve(back.certificates, certs).values()) == set(certs)


@pytest.mark.parametrize(
    ("offset", "held"), [(0, True), (299, True), (-299, True), (300, False), (-300, False), (86400, False)]
)
def test_a_lease_is_held_for_five_minutes_either_side_of_this_clock(offset, held):
    """Two search heads' clocks differ: a lease another host took "in the future" still holds."""
    from iot_defender.respond.record import LEASE_SECONDS, live_lease, new_lease

    now = 1_800_000_000.0
    lease = new_lease("r", now + offset)
    assert LEASE_SECONDS == 300
    assert (live_lease(lease, now) == "release") is held
    assert live_lease("r.12.zzzzzzzz", now) is None and live_lease(None, now) is None
