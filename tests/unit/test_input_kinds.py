"""The registry of input kinds and the run of one kind (iot_defender.inputs), with memory ports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from iot_defender import events, inputs
from iot_defender.checkpoint import DAY, InputState, MemoryJournal, MemoryStore, advance_to
from iot_defender.pipeline import Page, RunScope, RunStats

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_763_900_000.0
NOT_AVAILABLE = (
    "AWS IoT Device Defender Detect is not available to account 123456789012: the feature is not enabled "
    "(the service is closed to new customers)."
)


def denied(message: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "ListViolationEvents",
    )


class Sink:
    def __init__(self):
        self.events = []

    def write(self, event):
        self.events.append(event)


class Source:
    """A page source that fails with ``error`` while it is set, else yields one event and a checkpoint."""

    def __init__(self):
        self.error = None
        self.calls = 0

    def __call__(self, session, scope, state, lookup):
        self.calls += 1
        if self.error is not None:
            raise self.error
        event = events.Event(time=scope.now - 5, sourcetype="st:a", source="s", data={"n": self.calls})
        yield Page(items=[(f"k{self.calls}", event)])
        yield Page(progress=advance_to(scope.now))


def kind_with(source, recheck=DAY):
    return inputs.InputKind(
        name="test_kind",
        parse_options=lambda params: None,
        pages=source,
        feature_hint="Feature X is not available",
        keep_after=lambda _options: lambda state: float("-inf"),
        recheck_unavailable_seconds=recheck,
    )


def run(kind, store, now):
    scope = RunScope(input=kind.name, stanza="s", account="a", account_id="1", region="r", options=None, now=now)
    stats = RunStats(input=kind.name, stanza="s", account="a", region="r")
    ports = inputs.Ports(sink=Sink(), store=store, journal_for=lambda key: MemoryJournal())
    outcome = inputs.collect(kind, scope, session=None, ports=ports, stats=stats)
    return outcome, stats, ports.sink.events


def state_of(store):
    (document,) = store.data.values()
    return InputState.from_dict(document)


def test_a_feature_not_available_is_remembered_and_asked_again_daily():
    source, store = Source(), MemoryStore()
    kind = kind_with(source)
    source.error = denied(NOT_AVAILABLE)

    outcome, stats, written = run(kind, store, NOW)
    assert outcome.status == inputs.NEWLY_UNAVAILABLE and written == []
    assert stats.status == "unavailable" and stats.error_code == "AccessDeniedException"
    assert state_of(store).unavailable_until == NOW + DAY
    assert "status=unavailable" in stats.summary_line() and "next_check=" in stats.summary_line()

    outcome, stats, _ = run(kind, store, NOW + 3600)  # next interval: AWS is not asked
    assert outcome.status == inputs.WAITING and source.calls == 1 and stats.status == "unavailable"
    assert stats.error_code is None and stats.next_check == NOW + DAY

    outcome, _, _ = run(kind, store, NOW + DAY + 1)  # the daily re-check, still unavailable
    assert outcome.status == inputs.STILL_UNAVAILABLE and source.calls == 2
    assert state_of(store).unavailable_until == NOW + 2 * DAY + 1

    source.error = None  # enabled again: collection resumes and the mark is gone
    outcome, stats, written = run(kind, store, NOW + 2 * DAY + 2)
    assert outcome.status == inputs.DELIVERED and len(written) == 1 and stats.status == "ok"
    assert state_of(store).unavailable_until is None


@pytest.mark.parametrize(
    "error",
    [
        denied("User: arn:aws:iam::123456789012:user/x is not authorized to perform: iot:ListViolationEvents"),
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "ListViolationEvents"),
    ],
)
def test_a_missing_grant_or_another_failure_still_raises(error):
    source, store = Source(), MemoryStore()
    source.error = error
    with pytest.raises(ClientError):
        run(kind_with(source), store, NOW)
    assert store.data == {}


def test_a_kind_without_recheck_raises_even_when_not_available():
    source = Source()
    source.error = denied(NOT_AVAILABLE)
    with pytest.raises(ClientError):
        run(kind_with(source, recheck=None), MemoryStore(), NOW)


def test_only_the_violations_input_backs_off_and_every_kind_parses_its_defaults():
    assert {name for name, kind in inputs.KINDS.items() if kind.recheck_unavailable_seconds} == {
        "iot_defender_violations"
    }
    for name, kind in inputs.KINDS.items():
        assert kind.name == name and kind.feature_hint
        kind.parse_options({})
    with pytest.raises(ValueError, match="backfill_days"):
        inputs.parse_params("iot_defender_audit", {"backfill_days": "91"})


def test_the_registry_and_the_ui_declare_the_same_inputs():
    config = json.loads((ROOT / "globalConfig.json").read_text())
    services = {service["name"] for service in config["pages"]["inputs"]["services"]}
    assert services == set(inputs.KINDS)
    for name in services:
        helper = (ROOT / "package" / "bin" / f"{name}_helper.py").read_text()
        assert f'INPUT = "{name}"' in helper


def test_pacer_waits_only_after_a_throttle_then_keeps_calls_at_the_quota():
    clock = {"t": 0.0}
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock["t"] += seconds

    pacer = inputs.Pacer({"ListViolationEvents": 10}, fraction=1.0, burst=3, clock=lambda: clock["t"], sleep=sleep)
    send = "before-send.iot.ListViolationEvents"
    for _ in range(3):
        pacer._before_send(event_name=send)
    assert slept == []  # not throttled yet: no pacing
    throttled = (None, {"Error": {"Code": "ThrottlingException"}})
    pacer._needs_retry(event_name="needs-retry.iot.ListViolationEvents", response=throttled)
    pacer._needs_retry(event_name="needs-retry.iot.DescribeThing", response=throttled)  # no quota: never paced
    for _ in range(4):  # AWS's bucket just ran dry: start empty, one call per 0.1 s
        pacer._before_send(event_name=send)
        pacer._before_send(event_name="before-send.iot.DescribeThing")
    assert slept == pytest.approx([0.1] * 4) and clock["t"] == pytest.approx(0.4)
    clock["t"] += 1.0  # a slow page: the next 3 calls catch up at once (burst), then the quota again
    del slept[:]
    sent = []
    for _ in range(12):
        pacer._before_send(event_name=send)
        sent.append(clock["t"])
    assert sent[:3] == [sent[0]] * 3 and slept == pytest.approx([0.1] * 9)
    for i in range(len(sent)):  # never more than the quota over any window, plus the burst
        for j in range(i, len(sent)):
            assert j - i + 1 <= 10 * (sent[j] - sent[i]) + 3 + 1e-9
