"""Issue 17, class 3 (shared certificates): cloned devices share a certificate; "Device certificate shared"
recommends quarantining each of them. A shared certificate is reactivated and freed of the isolation policy only
when no quarantine holds it any more, whatever the order of the releases.

Seen failing on the code before the fix: the second quarantine found the certificate already INACTIVE and
isolated and recorded nothing, so after both releases it stayed INACTIVE with the deny policy, and both releases
reported ``done``."""

from __future__ import annotations

import itertools

import boto3
import pytest
from moto import mock_aws

from iot_defender.respond import QuarantineOptions
from tests.unit.test_respond_support import (
    REGION,
    groups_of,
    make_responder,
    policies_on,
    run_context,
    seed_registry,
    status_of,
)

CLONES = ["sensor-002", "pump-station-017", "sensor-clone"]


@pytest.fixture
def shared():
    """sensor-002's ACTIVE certificate attached to two more things (cloned devices)."""
    with mock_aws():
        client = boto3.client("iot", region_name=REGION)
        certs = seed_registry(client)
        client.create_thing(thingName="sensor-clone")
        cert = certs["sensor-002"][0]
        for thing in CLONES[1:]:
            client.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
        yield client, cert


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("deactivate", [True, False])
def test_a_shared_certificate_is_released_with_the_last_quarantine_in_any_order(shared, count, deactivate):
    client, cert = shared
    options = QuarantineOptions(deactivate_certificates=deactivate)
    things = CLONES[:count]
    for order in itertools.permutations(things):
        for thing in things:
            result = make_responder().quarantine(thing, REGION, options, run_context())
            assert result.outcome in ("done", "already-in-state"), result.message
        assert status_of(client, cert["certificateId"]) == ("INACTIVE" if deactivate else "ACTIVE")
        for position, thing in enumerate(order):
            released = make_responder().release(thing, REGION, QuarantineOptions(), run_context())
            assert released.outcome == "done", (order, released.message)
            last = position == len(order) - 1
            assert "QUARANTINED" not in groups_of(client, thing)
            # held by the quarantines still in force; freed with the last one
            assert policies_on(client, cert["certificateArn"]) == ([] if last else ["TA-IoTDefender-Quarantine"])
            expected = "ACTIVE" if last or not deactivate else "INACTIVE"
            assert status_of(client, cert["certificateId"]) == expected, (order, position, released.message)


def test_a_certificate_inactive_before_any_quarantine_stays_inactive(shared):
    """The human's deactivation predates both quarantines: no record holds it, no release reactivates it."""
    client, cert = shared
    client.update_certificate(certificateId=cert["certificateId"], newStatus="INACTIVE")
    options = QuarantineOptions(deactivate_certificates=True)
    for thing in CLONES[:2]:
        assert make_responder().quarantine(thing, REGION, options, run_context()).outcome == "done"
    for thing in reversed(CLONES[:2]):
        assert make_responder().release(thing, REGION, QuarantineOptions(), run_context()).outcome == "done"
    assert status_of(client, cert["certificateId"]) == "INACTIVE"
    assert policies_on(client, cert["certificateArn"]) == []


def test_a_policy_someone_else_attached_to_the_shared_certificate_stays(shared):
    client, cert = shared
    make_responder().quarantine(CLONES[0], REGION, QuarantineOptions(), run_context())
    # the isolation policy was on the certificate before the second thing's quarantine, put there by the first
    make_responder().quarantine(CLONES[1], REGION, QuarantineOptions(), run_context())
    make_responder().release(CLONES[0], REGION, QuarantineOptions(), run_context())
    make_responder().release(CLONES[1], REGION, QuarantineOptions(), run_context())
    assert policies_on(client, cert["certificateArn"]) == []
    # now a human isolates the certificate by hand: a later quarantine + release of one clone leaves it so
    client.attach_policy(policyName="TA-IoTDefender-Quarantine", target=cert["certificateArn"])
    make_responder().quarantine(CLONES[0], REGION, QuarantineOptions(), run_context())
    make_responder().release(CLONES[0], REGION, QuarantineOptions(), run_context())
    assert policies_on(client, cert["certificateArn"]) == ["TA-IoTDefender-Quarantine"]


def test_a_human_change_ends_an_earlier_quarantines_hold(shared, monkeypatch):
    """Found by the state machine: the first clone's quarantine deactivated the certificate, a human reactivated
    it, the second clone's quarantine deactivated it again. Releasing the second must reactivate it (the human's
    state), not keep it INACTIVE for the first quarantine, whose hold the human's change ended."""
    import datetime as dt

    from tests.harness.aws import moto_iot

    client, cert = shared
    now = [dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)]
    monkeypatch.setattr(moto_iot, "clock", lambda: now[0])

    def later() -> None:
        now[0] += dt.timedelta(seconds=5)

    options = QuarantineOptions(deactivate_certificates=True)
    assert make_responder().quarantine(CLONES[0], REGION, options, run_context()).outcome == "done"
    later()
    client.update_certificate(certificateId=cert["certificateId"], newStatus="ACTIVE")  # the human
    later()
    assert make_responder().quarantine(CLONES[1], REGION, options, run_context()).outcome == "done"
    assert status_of(client, cert["certificateId"]) == "INACTIVE"
    later()
    released = make_responder().release(CLONES[1], REGION, QuarantineOptions(), run_context())
    assert released.outcome == "done" and status_of(client, cert["certificateId"]) == "ACTIVE", released.message
    later()
    assert make_responder().release(CLONES[0], REGION, QuarantineOptions(), run_context()).outcome == "done"
    assert status_of(client, cert["certificateId"]) == "ACTIVE"
