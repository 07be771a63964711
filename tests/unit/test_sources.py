"""The library's sources against botocore's Stubber: every request is checked against the real API model."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.stub import ANY, Stubber

from iot_defender import audit, detect
from iot_defender.aws import Account, AwsSession, ClientSettings
from iot_defender.checkpoint import InputState, MemoryJournal, MemoryStore
from iot_defender.pipeline import RunScope, RunStats, deliver

NOW = 1_763_900_000.0
ACCOUNT = Account(name="t", access_key_id="AKIAEXAMPLEEXAMPLE01", secret_access_key="s" * 40)


@pytest.fixture
def session(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return AwsSession(ACCOUNT, ClientSettings(max_attempts=1))


def violation(i: int, kind: str = "in-alarm") -> dict:
    return {
        "violationId": f"v{i:04d}",
        "thingName": f"thing-{i}",
        "securityProfileName": "DeviceRuleBaseline",
        "behavior": {"name": "AuthorizedTcpPorts", "metric": "aws:listening-tcp-ports"},
        "metricValue": {"ports": [21, 22]},
        "violationEventType": kind,
        "violationEventTime": dt.datetime.fromtimestamp(NOW - 600 + i, dt.timezone.utc),
    }


class Sink:
    def __init__(self):
        self.events = []

    def write(self, event):
        self.events.append(event)


def scope(options, *, account_id="1", now=NOW, name="i"):
    return RunScope(
        input=name, stanza="s", account="a", account_id=account_id, region="us-east-1", options=options, now=now
    )


def collect(pages, state, keep_after):
    sink, stats = Sink(), RunStats(input="i", stanza="s", account="a", region="us-east-1")
    store = MemoryStore()
    deliver(
        pages,
        state=state,
        sink=sink,
        journal=MemoryJournal(),
        save=lambda s: store.update("k", s.to_dict()),
        stats=stats,
        keep_after=keep_after,
    )
    return sink.events, stats


def test_violation_window_pages_filters_and_malformed_items(session):
    client = session.client("iot", "us-east-1")
    options = detect.ViolationOptions(
        backfill_seconds=3600,
        security_profile_name="DeviceRuleBaseline",
        behavior_criteria_type="STATIC",
        collect_active=False,
    )
    expected = {
        "startTime": dt.datetime.fromtimestamp(NOW - 3600, dt.timezone.utc),
        "endTime": dt.datetime.fromtimestamp(NOW, dt.timezone.utc),
        "maxResults": 250,
        "securityProfileName": "DeviceRuleBaseline",
        "behaviorCriteriaType": "STATIC",
    }
    broken = violation(2)
    del broken["violationId"]
    with Stubber(client) as stub:
        stub.add_response(
            "list_violation_events", {"violationEvents": [violation(0), violation(1)], "nextToken": "p2"}, expected
        )
        stub.add_response(
            "list_violation_events",
            {"violationEvents": [broken, violation(3, "alarm-cleared")]},
            dict(expected, nextToken="p2"),
        )
        state = InputState()
        out, stats = collect(
            detect.violation_pages(session, scope(options, account_id="123456789012"), state),
            state,
            detect.violation_keep_after(options),
        )
        stub.assert_no_pending_responses()
    assert [e.data["violationId"] for e in out] == ["v0000", "v0001", "v0003"]
    assert stats.malformed == 1 and "violationId" in stats.malformed_samples[0]
    assert state.high_water == NOW
    assert out[2].data["violationEventType"] == "alarm-cleared"


def test_second_run_overlaps_and_skips_repeats(session):
    client = session.client("iot", "us-east-1")
    options = detect.ViolationOptions(overlap_seconds=900, collect_active=False)
    state = InputState(high_water=NOW - 300, seen={"|".join(("v0001", "in-alarm", "x")): NOW})
    from iot_defender.events import violation_key

    state.seen = {"|".join(violation_key(violation(1))): NOW - 599}
    with Stubber(client) as stub:
        stub.add_response(
            "list_violation_events",
            {"violationEvents": [violation(1), violation(2)]},
            {
                "startTime": dt.datetime.fromtimestamp(NOW - 1200, dt.timezone.utc),
                "endTime": ANY,
                "maxResults": 250,
            },
        )
        out, stats = collect(
            detect.violation_pages(session, scope(options), state),
            state,
            detect.violation_keep_after(options),
        )
    assert [e.data["violationId"] for e in out] == ["v0002"]
    assert stats.duplicates_skipped == 1


def test_active_violations_snapshot_carries_snapshot_time(session):
    client = session.client("iot", "us-east-1")
    row = {
        k: v for k, v in violation(5).items() if k not in ("violationEventType", "violationEventTime", "metricValue")
    }
    row["lastViolationValue"] = {"ports": [21, 22]}
    row["lastViolationTime"] = dt.datetime.fromtimestamp(NOW - 60, dt.timezone.utc)
    with Stubber(client) as stub:
        stub.add_response("list_active_violations", {"activeViolations": [row]}, {"maxResults": 250})
        out, _ = collect(
            detect.active_violation_pages(session, scope(detect.ViolationOptions())),
            InputState(),
            lambda s: 0,
        )
    assert out[0].time == NOW and out[0].sourcetype == "aws:iot:defender:active_violation"
    assert out[0].data["lastViolationTime"].endswith("Z")


def test_audit_reads_finished_tasks_once_and_revisits_running_ones(session):
    client = session.client("iot", "us-east-1")
    started = dt.datetime.fromtimestamp(NOW - 7200, dt.timezone.utc)
    finished = {
        "taskStatus": "COMPLETED",
        "taskType": "SCHEDULED_AUDIT_TASK",
        "taskStartTime": started,
        "taskStatistics": {"totalChecks": 2, "nonCompliantChecks": 1, "compliantChecks": 1},
        "auditDetails": {
            "DEVICE_CERTIFICATE_EXPIRING_CHECK": {
                "checkRunStatus": "COMPLETED_NON_COMPLIANT",
                "nonCompliantResourcesCount": 2,
                "totalResourcesCount": 9,
            },
            "LOGGING_DISABLED_CHECK": {
                "checkRunStatus": "COMPLETED_COMPLIANT",
                "nonCompliantResourcesCount": 0,
                "totalResourcesCount": 1,
            },
        },
    }
    finding = {
        "taskId": "taskA",
        "checkName": "DEVICE_CERTIFICATE_EXPIRING_CHECK",
        "taskStartTime": started,
        "findingTime": started,
        "severity": "MEDIUM",
        "nonCompliantResource": {
            "resourceType": "DEVICE_CERTIFICATE",
            "resourceIdentifier": {"deviceCertificateId": "c" * 64},
        },
        "reasonForNonCompliance": "expiring",
        "isSuppressed": False,
    }
    with Stubber(client) as stub:
        stub.add_response(
            "list_audit_tasks",
            {
                "tasks": [
                    {"taskId": "taskA", "taskStatus": "COMPLETED"},
                    {"taskId": "taskB", "taskStatus": "IN_PROGRESS"},
                ]
            },
            {"startTime": ANY, "endTime": ANY, "maxResults": 250},
        )
        stub.add_response("describe_audit_task", finished, {"taskId": "taskA"})
        stub.add_response(
            "list_audit_findings",
            {"findings": [dict(finding, findingId="f1"), dict(finding, findingId="f2", isSuppressed=True)]},
            {
                "taskId": "taskA",
                "checkName": "DEVICE_CERTIFICATE_EXPIRING_CHECK",
                "maxResults": 250,
            },
        )
        stub.add_response(
            "describe_audit_task", dict(finished, taskStatus="IN_PROGRESS", auditDetails={}), {"taskId": "taskB"}
        )
        state = InputState()
        out, _ = collect(
            audit.audit_pages(session, scope(audit.AuditOptions()), state),
            state,
            audit.audit_keep_after,
        )
        stub.assert_no_pending_responses()
    kinds = [(e.sourcetype, e.data.get("record_type"), e.data.get("findingId")) for e in out]
    assert kinds == [
        ("aws:iot:defender:audit:task", "task", None),
        ("aws:iot:defender:audit:task", "check", None),
        ("aws:iot:defender:audit:task", "check", None),
        ("aws:iot:defender:audit:finding", None, "f1"),
        ("aws:iot:defender:audit:finding", None, "f2"),
    ]
    assert out[4].data["isSuppressed"] is True
    assert set(state.done_tasks) == {"taskA"} and set(state.open_tasks) == {"taskB"}
    assert not any(k.startswith("taskA/") for k in state.seen)

    # Next run: taskA is never described again; taskB is revisited even if no longer listed.
    with Stubber(client) as stub:
        stub.add_response(
            "list_audit_tasks",
            {"tasks": [{"taskId": "taskA", "taskStatus": "COMPLETED"}]},
            {"startTime": ANY, "endTime": ANY, "maxResults": 250},
        )
        stub.add_response("describe_audit_task", dict(finished, auditDetails={}), {"taskId": "taskB"})
        out2, _ = collect(
            audit.audit_pages(session, scope(audit.AuditOptions(), now=NOW + 3600), state),
            state,
            audit.audit_keep_after,
        )
        stub.assert_no_pending_responses()
    assert [e.data.get("taskId") for e in out2] == ["taskB"] and "taskB" in state.done_tasks and not state.open_tasks


@pytest.mark.parametrize(
    ("params", "message"),
    [({"backfill_hours": "721"}, "backfill_hours"), ({"overlap_minutes": "x"}, "overlap_minutes")],
)
def test_bad_input_parameters_are_refused_with_their_name(params, message):
    with pytest.raises(ValueError, match=message):
        detect.ViolationOptions.from_params(params)
