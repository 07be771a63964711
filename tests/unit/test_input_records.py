"""Issue 17, class 7: a malformed record in a Detect or Audit page (deeply nested, wrong types, invalid names) is
skipped and counted with its reason; the rest of the page and the run go on. Against the loopback AWS, with the
session built as the input builds it (raw timestamps: a record reaches the library as AWS sent it)."""

from __future__ import annotations

import datetime as dt

import pytest

from iot_defender import detect, events
from iot_defender.aws import Account, AwsSession, ClientSettings
from iot_defender.checkpoint import InputState, MemoryJournal
from iot_defender.pipeline import RunScope, RunStats, deliver
from tests.harness.aws import LoopbackAWS

REGION = "us-east-1"


@pytest.fixture(scope="module")
def server():
    with LoopbackAWS(seed=5) as aws:
        yield aws


@pytest.fixture()
def aws(server, monkeypatch):
    server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield server


def nested(depth):
    value = 1
    for _ in range(depth):
        value = {"count": value}
    return value


def deep_list(depth):
    value = [1]
    for _ in range(depth):
        value = [value]
    return value


def violation(i, now, **overrides):
    record = {
        "violationId": f"v-{i:05d}",
        "thingName": f"thing-{i}",
        "securityProfileName": "Baseline",
        "behavior": {"name": "Ports", "metric": "aws:listening-tcp-ports"},
        "metricValue": {"count": i},
        "violationEventType": "in-alarm",
        "violationEventTime": now - 600 + i,
    }
    record.update(overrides)
    return record


class Sink:
    def __init__(self):
        self.events = []

    def write(self, event):
        self.events.append(event)


def run_violations(aws, now):
    account = Account(name="t", access_key_id=aws.access_key, secret_access_key=aws.secret_key)
    session = AwsSession(account, ClientSettings(max_attempts=2, retry_mode="standard"), raw_timestamps=True)
    options = detect.ViolationOptions(backfill_seconds=3600, collect_active=False)
    scope = RunScope(
        input="v", stanza="s", account="t", account_id=aws.account_id, region=REGION, options=options, now=now
    )
    sink, stats = Sink(), RunStats(input="v", stanza="s", account="t", region=REGION)
    deliver(
        detect.pages(session, scope, InputState()),
        state=InputState(),
        sink=sink,
        journal=MemoryJournal(),
        save=lambda s: None,
        stats=stats,
        keep_after=lambda s: float("-inf"),
    )
    return sink.events, stats


BAD = {
    "nested-100": (lambda now: violation(900, now, metricValue=nested(100)), "too_deep"),
    "nested-600": (lambda now: violation(901, now, metricValue=nested(600)), "too_deep"),
    "nested-list": (lambda now: violation(902, now, behavior={"criteria": deep_list(40)}), "too_deep"),
    "no-id": (lambda now: {k: v for k, v in violation(903, now).items() if k != "violationId"}, "missing_field"),
    "bad-time": (lambda now: violation(904, now, violationEventTime={"t": 1}), "bad_time"),
    "not-an-object": (lambda now: "violation", "wrong_type"),
}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_malformed_violation_is_skipped_with_its_reason(aws, bad):
    now = aws.clock() if callable(getattr(aws, "clock", None)) else dt.datetime.now(dt.timezone.utc).timestamp()
    aws.defender.add_violation_events([violation(i, now) for i in range(5)], account_id=aws.account_id, region=REGION)
    make, reason = BAD[bad]
    aws.faults.malformed_next_page("ListViolationEvents", make(now), "violationEvents")
    delivered, stats = run_violations(aws, now)
    assert stats.status == "ok" and len(delivered) == 5
    assert stats.skipped_reasons == {reason: 1} and stats.summary()["skipped_records"] == 1


@pytest.mark.parametrize("depth", [events.MAX_DEPTH - 2, events.MAX_DEPTH + 1, 250])
def test_nesting_limit_in_the_event_model(depth):
    record = violation(1, 1_764_000_000.0, metricValue=nested(depth))
    if depth < events.MAX_DEPTH - 1:
        assert events.violation_event(record, account_id="1", region=REGION).data["metricValue"]
    else:
        with pytest.raises(events.MalformedRecord) as info:
            events.violation_event(record, account_id="1", region=REGION)
        assert info.value.reason == "too_deep"
