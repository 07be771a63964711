"""props.conf timestamp rules agree with the event model: for every sourcetype, the TIME_PREFIX finds the field
that carries _time in bodies the real builders produce, and TIME_FORMAT reads it back to the event's time."""

from __future__ import annotations

import configparser
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from iot_defender import events
from tests.fixtures import SAMPLES

PROPS = Path(__file__).resolve().parents[2] / "package" / "default" / "props.conf"
WHEN = dt.datetime(2025, 11, 22, 10, 10, 0, 123000, tzinfo=dt.timezone.utc)


def sample_events():
    violation = json.loads(
        json.loads((SAMPLES / "sns-violation-lambda-event.json").read_text())["Records"][0]["Sns"]["Message"]
    )
    audit = json.loads(json.loads((SAMPLES / "sns-audit-notification.json").read_text())["Message"])
    metrics = json.loads((SAMPLES / "metrics-export.json").read_text())
    scope = {"account_id": "123456789012", "region": "us-east-1"}
    yield events.violation_event(violation, **scope)
    yield events.active_violation_event({"violationId": "v", "thingName": "t"}, snapshot_time=WHEN, **scope)
    yield from events.audit_task_events(audit, **scope)
    yield events.audit_finding_event(
        {"findingId": "f", "checkName": "C", "findingTime": WHEN, "severity": "LOW"}, **scope
    )
    yield from events.metric_events(metrics, **scope)
    yield events.thing_event({"thingName": "t"}, snapshot_time=WHEN, **scope)
    yield events.action_event(events.ActionResult(action="iot_release_thing", outcome="done"), when=WHEN)


def props():
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(PROPS)
    return parser


def test_every_sourcetype_has_json_props():
    parser = props()
    for sourcetype in events.ALL_SOURCETYPES:
        section = parser[sourcetype]
        assert section["KV_MODE"] == "json" and section["SHOULD_LINEMERGE"] == "false"
        assert int(section["TRUNCATE"]) >= 100000


@pytest.mark.parametrize("event", list(sample_events()), ids=lambda e: e.sourcetype)
def test_time_prefix_and_format_read_the_events_own_time(event):
    section = props()[event.sourcetype]
    body = event.body()
    match = re.search(section["TIME_PREFIX"], body)
    assert match, f"{section['TIME_PREFIX']} not in {body[:200]}"
    text = body[match.end() : match.end() + int(section["MAX_TIMESTAMP_LOOKAHEAD"])]
    strptime_format = section["TIME_FORMAT"].replace("%3N", "%f")
    parsed = dt.datetime.strptime(text[:24], strptime_format).replace(tzinfo=dt.timezone.utc)
    assert parsed.timestamp() == pytest.approx(event.time, abs=0.001)
