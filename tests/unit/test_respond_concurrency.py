"""Issue 17, class 6 (idempotency and concurrency): an outcome says what THIS run did, and AWS agrees.

Seen failing on the code before the fix: OpsCenter answered a duplicate with the open OpsItem's id and the run
reported ``done: OpsItem opened`` for an OpsItem another run had opened; with the KV store down the SNS
destination published a replayed alert again (and overlapping runs both published); a row's ``orig_sid``
replaced the run's sid, folding a second alert into the first; a quarantine and a release racing on one thing
both reported ``done`` for states that no longer held."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Dict

import boto3
import pytest
from moto import mock_aws

import iot_defender_alert as alert
from iot_defender.aws import Account, AwsSession
from iot_defender.respond import IncidentOptions, MemorySuppressionStore, QuarantineOptions, RateLimiter, Responder
from tests.harness.aws import LoopbackAWS
from tests.unit.test_alert_adapter import Deps, Helper
from tests.unit.test_respond_support import (
    REGION,
    groups_of,
    make_responder,
    policies_on,
    run_context,
    seed_registry,
    status_of,
)

ROW = {"thing_name": "sensor-7", "violationId": "8a1b0c2d3e4f56789a0b1c2d3e4f5a6b", "behavior_name": "AuthFailures"}


class DownStore(MemorySuppressionStore):
    """The KV store, unreachable."""

    def get(self, key):
        raise ConnectionError("kvstore down")

    def put(self, key, value):
        raise ConnectionError("kvstore down")

    def claim(self, key, value):
        raise ConnectionError("kvstore down")


class MeetingStore(MemorySuppressionStore):
    """Two runs read the suppression state at the same moment (both see nothing yet)."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier = threading.Barrier(2, timeout=10)

    def get(self, key):
        found = super().get(key)
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait()
        return found


@pytest.fixture
def aws(monkeypatch):
    with LoopbackAWS() as loopback:
        monkeypatch.setenv("AWS_ENDPOINT_URL", loopback.endpoint_url)
        loopback.client("iot").create_thing(thingName="sensor-7")
        yield loopback


def loopback_responder(aws: LoopbackAWS, **kw: Any) -> Responder:
    import inspect

    session = AwsSession(Account(name="t", access_key_id=aws.access_key, secret_access_key=aws.secret_key))
    accepted = inspect.signature(Responder.__init__).parameters
    kw = {k: v for k, v in kw.items() if k in accepted}
    return Responder(session, account_id=aws.account_id, limiter=RateLimiter({}), **kw)


@pytest.mark.parametrize("store", [None, DownStore()], ids=["no-store", "store-down"])
def test_an_ops_item_another_run_opened_is_not_reported_as_opened(aws, store):
    options = IncidentOptions(destination="opscenter")
    outcomes = []
    for sid in ("alert-run-1", "alert-run-2", "alert-run-1"):
        result = loopback_responder(aws, store=store).start_incident(
            "sensor-7", aws.region, ROW, options, run_context(sid), violation_id=ROW["violationId"]
        )
        outcomes.append(result.outcome)
    assert outcomes == ["done", "already-in-state", "already-in-state"]
    assert len(aws.opsitems.ops_items(aws.account_id, aws.region)) == 1


def test_overlapping_runs_open_one_ops_item_and_one_says_so(aws):
    options = IncidentOptions(destination="opscenter")
    results: Dict[str, Any] = {}

    def run(sid: str) -> None:
        results[sid] = loopback_responder(aws).start_incident(
            "sensor-7", aws.region, ROW, options, run_context(sid), violation_id=ROW["violationId"]
        )

    threads = [threading.Thread(target=run, args=(f"run-{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.outcome for r in results.values()) == ["already-in-state", "already-in-state", "done"]


def publishes(aws: LoopbackAWS) -> int:
    return len(aws.requests.filter(operation="Publish"))


@pytest.mark.parametrize("store", [None, DownStore()], ids=["no-store", "store-down"])
def test_a_standard_topic_refuses_to_publish_what_it_cannot_deduplicate(aws, store):
    topic = aws.client("sns").create_topic(Name="iot-incidents")["TopicArn"]
    options = IncidentOptions(destination="sns", sns_topic_arn=topic)
    aws.reset_log()
    for _ in range(2):  # the alert replayed
        result = loopback_responder(aws, store=store, dedup_required=True).start_incident(
            "sensor-7", aws.region, ROW, options, run_context("replayed"), violation_id=ROW["violationId"]
        )
        assert (result.outcome, result.error_code) == ("failed", "NoDeduplication"), result.message
    assert publishes(aws) == 0


def test_a_fifo_topic_deduplicates_by_itself(aws):
    topic = aws.client("sns").create_topic(
        Name="iot-incidents.fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "false"}
    )["TopicArn"]
    options = IncidentOptions(destination="sns", sns_topic_arn=topic)
    result = loopback_responder(aws, dedup_required=True).start_incident(
        "sensor-7", aws.region, ROW, options, run_context("x"), violation_id=ROW["violationId"]
    )
    assert result.outcome == "done", result.message


def test_overlapping_runs_of_one_alert_publish_once(aws):
    topic = aws.client("sns").create_topic(Name="iot-incidents")["TopicArn"]
    options = IncidentOptions(destination="sns", sns_topic_arn=topic)
    store = MeetingStore()
    aws.reset_log()
    results = []

    def run() -> None:
        results.append(
            loopback_responder(aws, store=store, dedup_required=True).start_incident(
                "sensor-7", aws.region, ROW, options, run_context("same-alert"), violation_id=ROW["violationId"]
            )
        )

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.outcome for r in results) == ["already-in-state", "done"]
    assert publishes(aws) == 1


@pytest.mark.parametrize("origins", [("notable-1", "notable-1"), ("notable-1", ""), ("", "notable-1")])
def test_a_rows_orig_sid_never_folds_one_alert_into_another(origins):
    """Two different alerts (run sids) whose rows carry the same (or one) orig_sid: two incidents, not one."""
    with mock_aws():
        seed_registry(boto3.client("iot", region_name=REGION))
        topic = boto3.client("sns", region_name=REGION).create_topic(Name="alerts")["TopicArn"]
        deps = Deps()
        outcomes = []
        for sid, origin in zip(("1763806200.42", "1763806800.43"), origins):
            row = {"thing_name": "sensor-002", "violationId": "v-1", **({"orig_sid": origin} if origin else {})}
            helper = Helper({"account": "prod", "destination": "sns", "sns_topic_arn": topic}, [row], sid=sid)
            alert.run(helper, alert.START_INCIDENT, deps)
            outcomes.append(helper.results()[0]["outcome"])
        assert outcomes == ["done", "done"]


# ------------------------------------------------------------------ quarantine and release on one thing


class Hold:
    """Holds one responder's run at its first call of ``operation`` (after its reads, before its writes)."""

    def __init__(self, responder: Responder, operation: str):
        self.operation = operation
        self.reached, self.resume = threading.Event(), threading.Event()
        if hasattr(responder, "calls"):
            responder.calls.observers.append(lambda s, r, op, p: self._maybe(op))
        else:  # the code before the fix: one call method on the responder
            original = responder.call
            responder.call = lambda s, r, op, **p: (self._maybe(op), original(s, r, op, **p))[1]  # type: ignore

    def _maybe(self, operation: str) -> None:
        if operation == self.operation and not self.reached.is_set():
            self.reached.set()
            assert self.resume.wait(30)


@pytest.fixture
def iot():
    with mock_aws():
        client = boto3.client("iot", region_name=REGION)
        yield client, seed_registry(client)


def race(first, second) -> Dict[str, Any]:
    """``first`` runs until its hold, ``second`` runs to the end, then ``first`` finishes."""
    results: Dict[str, Any] = {}
    hold, work = first
    thread = threading.Thread(target=lambda: results.setdefault("first", work()))
    thread.start()
    assert hold.reached.wait(30)
    results["second"] = second()
    hold.resume.set()
    thread.join(30)
    return results


def is_quarantined(client, thing: str, cert: Dict[str, str]) -> bool:
    return "QUARANTINED" in groups_of(client, thing) and policies_on(client, cert["certificateArn"]) == [
        "TA-IoTDefender-Quarantine"
    ]


@pytest.mark.parametrize("hold_at", ["ListThingGroupsForThing", "ListThingPrincipals"])
@pytest.mark.parametrize("held", ["release", "quarantine"])
def test_a_run_overtaken_by_the_other_action_does_not_claim_done(iot, hold_at, held):
    """The held run read the thing, the other one ran to its end: the held one reports conflict, AWS is what the
    other one said."""
    client, certs = iot
    cert = certs["sensor-002"][0]
    assert make_responder().quarantine("sensor-002", REGION, QuarantineOptions(), run_context()).outcome == "done"
    options = QuarantineOptions(deactivate_certificates=True)
    slow = make_responder()
    hold = Hold(slow, hold_at)

    def quarantine(responder: Responder) -> Any:
        return responder.quarantine("sensor-002", REGION, options, run_context("b"))

    def release(responder: Responder) -> Any:
        return responder.release("sensor-002", REGION, QuarantineOptions(), run_context())

    first, second = (release, quarantine) if held == "release" else (quarantine, release)
    results = race((hold, lambda: first(slow)), lambda: second(make_responder()))
    assert results["second"].outcome == "done", results["second"].message
    assert results["first"].outcome == "conflict" and results["first"].message.startswith("conflict"), results
    quarantined = held == "release"  # the run that finished decides
    assert is_quarantined(client, "sensor-002", cert) == quarantined
    assert status_of(client, cert["certificateId"]) == ("INACTIVE" if quarantined else "ACTIVE")


class Fail:
    """Makes one responder's first call of ``operation`` fail as AWS would (an internal error after retries)."""

    def __init__(self, responder: Responder, operation: str):
        from botocore.exceptions import ClientError

        def observe(service: str, region: str, op: str, params: Dict[str, Any]) -> None:
            if op == operation and not self.fired:
                self.fired = True
                raise ClientError({"Error": {"Code": "InternalFailure", "Message": "injected"}}, op)

        self.fired = False
        responder.calls.observers.append(observe)


@pytest.mark.parametrize("operation", ["AddThingToThingGroup", "AttachPolicy", "UpdateCertificate"])
def test_a_quarantine_failing_half_way_does_not_lock_the_thing(iot, operation):
    """The failed run gives the thing back (no lease left): a release right after undoes what was done."""
    client, certs = iot
    cert = certs["sensor-002"][0]
    failing = make_responder()
    Fail(failing, operation)
    options = QuarantineOptions(deactivate_certificates=True)
    failed = failing.quarantine("sensor-002", REGION, options, run_context())
    assert failed.outcome == "failed" and failed.error_code == "InternalFailure", failed.message
    released = make_responder().release("sensor-002", REGION, QuarantineOptions(), run_context())
    assert released.outcome in ("done", "already-in-state"), released.message
    assert not is_quarantined(client, "sensor-002", cert) and status_of(client, cert["certificateId"]) == "ACTIVE"


@pytest.mark.parametrize("operation", ["RemoveThingFromThingGroup", "DetachPolicy", "UpdateCertificate"])
def test_a_release_failing_half_way_can_be_run_again_at_once(iot, operation):
    client, certs = iot
    cert = certs["sensor-002"][0]
    options = QuarantineOptions(deactivate_certificates=True)
    assert make_responder().quarantine("sensor-002", REGION, options, run_context()).outcome == "done"
    failing = make_responder()
    Fail(failing, operation)
    assert failing.release("sensor-002", REGION, QuarantineOptions(), run_context()).outcome == "failed"
    again = make_responder().release("sensor-002", REGION, QuarantineOptions(), run_context())
    assert again.outcome == "done", again.message
    assert not is_quarantined(client, "sensor-002", cert) and status_of(client, cert["certificateId"]) == "ACTIVE"
