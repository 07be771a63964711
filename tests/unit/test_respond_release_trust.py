"""Issue 17, class 2 (release trusts the record too much) and the record key's life cycle.

Seen failing on the code before the fix: an unauthenticated record chose the group the thing left (a device
could leave a restrictive group), an old authenticated record written back reactivated a certificate a human had
deactivated since, a missing or rotated key made release delete the record (the certificate then stayed inactive
for good), and a short key made every action fail."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from iot_defender.respond import RECORD_ATTRIBUTE, QuarantineOptions
from tests.unit.test_respond_support import (
    KEY,
    REGION,
    groups_of,
    make_responder,
    policies_on,
    run_context,
    seed_registry,
    status_of,
)

DEACTIVATE = QuarantineOptions(deactivate_certificates=True)
NEW_KEY = b"rotated-key-" + b"x" * 24


@pytest.fixture
def iot():
    with mock_aws():
        client = boto3.client("iot", region_name=REGION)
        yield client, seed_registry(client)


def record_of(client, thing: str):
    return (client.describe_thing(thingName=thing).get("attributes") or {}).get(RECORD_ATTRIBUTE)


def write_record(client, thing: str, value: str) -> None:
    client.update_thing(thingName=thing, attributePayload={"attributes": {RECORD_ATTRIBUTE: value}, "merge": True})


@pytest.mark.parametrize("group", ["sensors", "restricted-ota", "critical-infra"])
@pytest.mark.parametrize("form", ["v1,at=2026-01-01T00:00:00Z,g={g}", "v2,at=2026-01-01T00:00:00Z,g={g},m=AAAA"])
def test_an_unauthenticated_record_never_chooses_the_group_the_thing_leaves(iot, group, form):
    client, _ = iot
    if group not in groups_of(client, "sensor-002"):
        client.create_thing_group(thingGroupName=group) if group == "restricted-ota" else None
        client.add_thing_to_thing_group(thingGroupName=group, thingName="sensor-002")
    write_record(client, "sensor-002", form.format(g=group))
    result = make_responder().release("sensor-002", REGION, QuarantineOptions(), run_context())
    assert group in groups_of(client, "sensor-002"), result.message
    assert record_of(client, "sensor-002") == form.format(g=group)  # kept: a human looks at it


@pytest.mark.parametrize("human_first", [True, False])
def test_a_replayed_record_changes_nothing(iot, human_first):
    """Quarantine, keep a copy of the record, release; then a human deactivates the certificate and someone
    writes the old record back (in either order): a second release reactivates nothing."""
    client, certs = iot
    cert = certs["sensor-002"][0]["certificateId"]
    assert make_responder().quarantine("sensor-002", REGION, DEACTIVATE, run_context()).outcome == "done"
    old = record_of(client, "sensor-002")
    assert make_responder().release("sensor-002", REGION, QuarantineOptions(), run_context()).outcome == "done"
    assert status_of(client, cert) == "ACTIVE"
    steps = [
        lambda: client.update_certificate(certificateId=cert, newStatus="INACTIVE"),
        lambda: write_record(client, "sensor-002", old),
    ]
    for step in steps if human_first else reversed(steps):
        step()
    replayed = make_responder().release("sensor-002", REGION, QuarantineOptions(), run_context())
    assert status_of(client, cert) == "INACTIVE", replayed.message
    assert replayed.outcome == "warning" and "stale" in replayed.message


def test_a_certificate_a_human_changed_after_the_quarantine_stays_as_the_human_left_it(iot):
    """No replay: the human deactivates the certificate again later (a new lastModifiedDate)."""
    client, certs = iot
    cert = certs["sensor-002"][0]["certificateId"]
    assert make_responder().quarantine("sensor-002", REGION, DEACTIVATE, run_context()).outcome == "done"
    import time

    time.sleep(1.1)  # AWS dates are whole seconds
    client.update_certificate(certificateId=cert, newStatus="ACTIVE")
    client.update_certificate(certificateId=cert, newStatus="INACTIVE")
    released = make_responder().release("sensor-002", REGION, QuarantineOptions(), run_context())
    assert status_of(client, cert) == "INACTIVE", released.message
    assert "QUARANTINED" not in groups_of(client, "sensor-002")


@pytest.mark.parametrize("keys", [(), (NEW_KEY,), (b"z" * 40, NEW_KEY)], ids=["no-key", "other-key", "two-others"])
def test_release_without_the_signing_key_keeps_the_record(iot, keys):
    """A missing, unreadable or rotated-out key: warning, the record stays (a later release with the key undoes
    it), the certificates stay as they are."""
    client, certs = iot
    cert = certs["sensor-002"][0]
    assert make_responder().quarantine("sensor-002", REGION, DEACTIVATE, run_context()).outcome == "done"
    value = record_of(client, "sensor-002")
    first = make_responder(keys=keys).release("sensor-002", REGION, QuarantineOptions(), run_context())
    assert first.outcome == "warning", first.message
    assert record_of(client, "sensor-002") == value
    assert status_of(client, cert["certificateId"]) == "INACTIVE"
    assert "key" in first.message and "record" in first.message
    # the key comes back (or is configured again as an older key): release finishes exactly
    again = make_responder(keys=(NEW_KEY, KEY)).release("sensor-002", REGION, QuarantineOptions(), run_context())
    assert again.outcome == "done", again.message
    assert status_of(client, cert["certificateId"]) == "ACTIVE"
    assert policies_on(client, cert["certificateArn"]) == [] and not record_of(client, "sensor-002")


def test_rotation_the_newest_key_signs_and_old_keys_verify(iot):
    _client, _certs = iot
    assert make_responder(keys=(KEY,)).quarantine("sensor-002", REGION, DEACTIVATE, run_context()).outcome == "done"
    assert make_responder(keys=(NEW_KEY, KEY)).quarantine("sensor-001", REGION, DEACTIVATE, run_context()).outcome == (
        "done"
    )
    # sensor-001's record is signed with the new key only: the old key alone cannot verify it
    only_old = make_responder(keys=(KEY,)).release("sensor-001", REGION, QuarantineOptions(), run_context())
    assert only_old.outcome == "warning"
    for thing in ("sensor-002", "sensor-001"):
        released = make_responder(keys=(NEW_KEY, KEY)).release(thing, REGION, QuarantineOptions(), run_context())
        assert released.outcome == "done", released.message


@pytest.mark.parametrize("short", [b"k" * 15, b"short", b"k" * 31])
def test_a_short_key_never_makes_an_action_fail(iot, short):
    client, _ = iot
    responder = make_responder(keys=(short,))
    quarantined = responder.quarantine("sensor-002", REGION, QuarantineOptions(), run_context())
    assert quarantined.outcome in ("done", "warning"), quarantined.message
    assert "QUARANTINED" in groups_of(client, "sensor-002")
    released = make_responder(keys=(short,)).release("sensor-002", REGION, QuarantineOptions(), run_context())
    assert released.outcome in ("done", "warning"), released.message
    assert "QUARANTINED" not in groups_of(client, "sensor-002")
