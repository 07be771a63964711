from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from iot_defender import events
from iot_defender.events import MalformedRecord
from tests.fixtures import SAMPLES


def test_times_in_every_representation_become_the_same_iso_string():
    moment = dt.datetime(2025, 11, 22, 10, 10, 0, 123000, tzinfo=dt.timezone.utc)
    ms = 1763806200123
    assert events.to_iso(moment) == "2025-11-22T10:10:00.123Z"
    assert events.to_iso(ms) == "2025-11-22T10:10:00.123Z"
    assert events.to_iso(ms / 1000) == "2025-11-22T10:10:00.123Z"
    assert events.to_iso("2025-11-22T10:10:00.123Z") == "2025-11-22T10:10:00.123Z"
    assert events.to_epoch(ms) == pytest.approx(1763806200.123)


@pytest.mark.parametrize("bad", ["yesterday", True, None, [1]])
def test_unusable_times_are_refused(bad):
    with pytest.raises(ValueError):
        events.to_datetime(bad)


def violation_from_sns() -> dict:
    envelope = json.loads((SAMPLES / "sns-violation-lambda-event.json").read_text())
    return json.loads(envelope["Records"][0]["Sns"]["Message"])


def test_push_and_pull_violations_give_identical_events():
    pushed = violation_from_sns()
    pulled = dict(
        pushed, violationEventTime=dt.datetime.fromtimestamp(pushed["violationEventTime"] / 1000, dt.timezone.utc)
    )
    a = events.violation_event(pushed, account_id="123456789012", region="us-east-1")
    b = events.violation_event(pulled, account_id="123456789012", region="us-east-1")
    assert a.body() == b.body()
    assert a.time == b.time == pytest.approx(1763806200.0)
    assert a.host == "pump-station-017"
    assert a.sourcetype == "aws:iot:defender:violation"
    assert a.data["violationEventTime"] == "2025-11-22T10:10:00.000Z"
    assert a.data["account_id"] == "123456789012" and a.data["region"] == "us-east-1"
    assert events.violation_key(pushed) == events.violation_key(pulled)


@pytest.mark.parametrize("field", ["violationId", "thingName", "violationEventType", "violationEventTime"])
def test_violation_without_identity_field_is_malformed_and_says_which(field):
    record = violation_from_sns()
    del record[field]
    with pytest.raises(MalformedRecord, match=field):
        events.violation_event(record, account_id="1", region="r")


def test_unknown_violation_event_type_is_malformed():
    with pytest.raises(MalformedRecord, match="violationEventType"):
        events.violation_event(dict(violation_from_sns(), violationEventType="exploded"), account_id="1", region="r")


def test_audit_task_from_sns_and_from_describe_audit_task_match():
    envelope = json.loads((SAMPLES / "sns-audit-notification.json").read_text())
    message = json.loads(envelope["Message"])
    described = {
        "taskStatus": "COMPLETED",
        "taskType": "SCHEDULED_AUDIT_TASK",
        "taskStartTime": dt.datetime.fromtimestamp(message["taskStartTime"] / 1000, dt.timezone.utc),
        "scheduledAuditName": "DailyAudit",
        "taskStatistics": {
            "totalChecks": 15,
            "compliantChecks": 12,
            "nonCompliantChecks": 2,
            "failedChecks": 1,
            "canceledChecks": 0,
        },
        "auditDetails": {
            d["checkName"]: {k: v for k, v in d.items() if k != "checkName"} for d in message["auditDetails"]
        },
    }
    pushed = events.audit_task_events(message, account_id="123456789012", region="us-east-1")
    pulled = events.audit_task_events(
        described, account_id="123456789012", region="us-east-1", task_id=message["taskId"]
    )
    assert len(pushed) == 1 + len(message["auditDetails"])
    assert [e.data["record_type"] for e in pushed] == ["task"] + ["check"] * 4
    assert {e.data.get("checkName") for e in pushed[1:]} == {e.data.get("checkName") for e in pulled[1:]}
    assert pushed[0].data["taskStatistics"] == pulled[0].data["taskStatistics"]
    failed = next(e for e in pushed if e.data.get("checkName") == "LOGGING_DISABLED_CHECK")
    assert failed.data["errorCode"] == "INSUFFICIENT_PERMISSIONS"
    assert failed.data["taskStartTime"] == "2025-11-22T00:00:00.000Z"


def test_metrics_export_keeps_highest_version_of_duplicates():
    message = json.loads((SAMPLES / "metrics-export.json").read_text())
    datum = dict(message["metrics"][1])
    message["metrics"].append(dict(datum, version=7, value={"ports": [21]}))
    message["metrics"].append(dict(datum, version=3, value={"ports": [23]}))
    out = events.metric_events(message, account_id="123456789012", region="us-east-1")
    tcp = [e for e in out if e.data["name"] == "aws:listening-tcp-ports"]
    assert len(tcp) == 1 and tcp[0].data["value"] == {"ports": [21]} and tcp[0].data["version"] == 7
    assert len(out) == len(json.loads((SAMPLES / "metrics-export.json").read_text())["metrics"])
    assert all(e.host == "pump-station-017" for e in out)
    assert out[0].data["timestamp"] == "2025-11-22T10:00:00.000Z"


def test_metric_timestamp_in_seconds_is_accepted():
    message = {
        "metrics": [
            {"name": "aws:all-bytes-out", "thing": "t", "value": {"count": 1}, "version": 1, "timestamp": 1763805600}
        ]
    }
    (event,) = events.metric_events(message, account_id="1", region="r")
    assert event.data["timestamp"] == "2025-11-22T10:00:00.000Z"


@pytest.mark.parametrize(
    "datum",
    [
        {"thing": "t", "value": {"count": 1}, "timestamp": 1},
        {"name": "n", "thing": "t", "value": 5, "timestamp": 1},
        {"name": "n", "thing": "t", "value": {}, "timestamp": "soon"},
        "not an object",
    ],
)
def test_a_bad_datum_makes_the_message_malformed(datum):
    with pytest.raises(MalformedRecord):
        events.metric_events({"metrics": [datum]}, account_id="1", region="r")


def test_hec_payload_and_record_shapes():
    event = events.violation_event(violation_from_sns(), account_id="1", region="r")
    hec = event.to_hec(index="iot")
    assert set(hec) == {"time", "sourcetype", "source", "event", "host", "index"}
    assert json.loads(json.dumps(hec))["event"]["violationId"] == "8a1b0c2d3e4f56789a0b1c2d3e4f5a6b"
    record = event.to_record()
    assert set(record) == {"time", "sourcetype", "source", "host", "index", "event"}
    assert base64.b64encode(event.body().encode())  # body is plain UTF-8 JSON


def test_action_result_refuses_unknown_outcomes():
    with pytest.raises(ValueError):
        events.ActionResult(action="iot_quarantine_thing", outcome="maybe")


from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=2000, deadline=None)
@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
@example(2199023256.2519994)  # fraction .2519994: microseconds 251999, so .251 (rounding the milliseconds gave .252)
def test_epoch_numbers_and_botocore_datetimes_give_the_same_iso(seconds):
    from botocore.utils import parse_timestamp

    assert events.to_iso(seconds) == events.to_iso(parse_timestamp(seconds))
    if seconds >= 1e8:  # epoch milliseconds are told from seconds by size (both cover 1973 onwards)
        assert events.to_iso(round(seconds * 1000)) == events.to_iso(round(seconds * 1000) / 1000.0)


def test_violation_event_key_matches_violation_key():
    record = violation_from_sns()
    event = events.violation_event(record, account_id="1", region="r")
    assert events.violation_event_key(event) == "|".join(events.violation_key(record))


def test_time_fields_cover_every_timestamp_the_inputs_read():
    """The inputs keep AWS timestamps raw (epoch numbers); the event model must know every such field."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("iot")
    operations = [
        "ListViolationEvents",
        "ListActiveViolations",
        "ListAuditTasks",
        "DescribeAuditTask",
        "ListAuditFindings",
        "ListThings",
        "ListThingGroupsForThing",
        "ListThingPrincipals",
        "DescribeCertificate",
    ]
    found = set()

    def walk(shape, name=None, seen=()):
        if shape.name in seen:
            return
        if shape.type_name == "timestamp":
            found.add(name)
        elif shape.type_name == "structure":
            for member, sub in shape.members.items():
                walk(sub, member, (*seen, shape.name))
        elif shape.type_name == "list":
            walk(shape.member, name, (*seen, shape.name))
        elif shape.type_name == "map":
            walk(shape.value, name, (*seen, shape.name))

    for operation in operations:
        walk(model.operation_model(operation).output_shape)
    assert found and found <= events.TIME_FIELDS, found - events.TIME_FIELDS


@settings(max_examples=1000, deadline=None)
@given(st.floats(min_value=1e9, max_value=4e9, allow_nan=False))
def test_event_time_metadata_and_body_time_agree_to_the_millisecond(seconds):
    event = events.metric_event(
        {"name": "aws:all-bytes-out", "thing": "t", "value": {"count": 1}, "version": 1, "timestamp": seconds},
        account_id="1",
        region="r",
    )
    assert events.to_iso(event.to_hec()["time"]) == event.data["timestamp"]
    assert event.to_record()["time"] == event.epoch_ms()


# ------------------------------------------------------------------------------------ thing names


@pytest.mark.parametrize("name", ["a", "pump-station-017", "A:b_c-9", "z" * 128, "arn:aws:iot:thing"])
def test_valid_thing_names(name):
    assert events.valid_thing_name(name)


@pytest.mark.parametrize(
    "name", ["", "z" * 129, 'x" OR 1=1', "a|delete", "a b", "pump.1", "Süd", "x\ud800", "a\n", 17, None, ["a"]]
)
def test_invalid_thing_names(name):
    assert not events.valid_thing_name(name)


HOSTILE = 'pump-1" | outputlookup iot_thing_inventory | eval x="'


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda r, n: events.violation_event(dict(r, thingName=n), account_id="1", region="r"), "thingName"),
        (
            lambda r, n: events.active_violation_event(
                dict(r, thingName=n), account_id="1", region="r", snapshot_time=1763806200000
            ),
            "thingName",
        ),
        (
            lambda r, n: events.thing_event({"thingName": n}, account_id="1", region="r", snapshot_time=1763806200000),
            "thingName",
        ),
        (
            lambda r, n: events.metric_event(
                {"name": "aws:all-bytes-out", "thing": n, "value": {"count": 1}, "timestamp": 1763806200000},
                account_id="1",
                region="r",
            ),
            "thing",
        ),
    ],
)
def test_a_hostile_thing_name_never_reaches_the_name_field_or_host(build, field):
    """Issue 13: the inputs (pull) and the Firehose transform (push) shape events here, so one check covers both."""
    hostile = build(violation_from_sns(), HOSTILE)
    neutral = events.neutral_thing_name(HOSTILE)
    assert hostile.data[field] == hostile.host == neutral and events.valid_thing_name(neutral)
    assert hostile.data["rejected_thing_name"] == HOSTILE and events.thing_name_rejected(hostile)
    assert events.neutral_thing_name("x" * 300) == events.neutral_thing_name("x" * 300) != neutral  # stable per name
    honest = build(violation_from_sns(), "pump-station-017")
    assert honest.data[field] == honest.host == "pump-station-017"
    assert "rejected_thing_name" not in honest.data and not events.thing_name_rejected(honest)


def test_the_rejected_name_is_kept_cut_to_256_characters():
    event = events.violation_event(dict(violation_from_sns(), thingName="|" * 1000), account_id="1", region="r")
    assert event.data["rejected_thing_name"] == "|" * 256


# ------------------------------------------------------------------------- HEC serialisation (hec.py)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from iot_defender import hec  # noqa: E402

_leaf = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet='ab0"\\\u00fc\ud800', max_size=4),
    st.booleans(),
    st.none(),
)
_json = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["count", "ports", "time", "timestamp", "name", "x"]), inner, max_size=3),
    ),
    max_leaves=5,
)
_datum = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["aws:all-bytes-out", "aws:listening-tcp-ports", ""]),
        "thing": st.sampled_from(["pump-1", "pump-2", 'x"|y']),
        "value": st.one_of(st.fixed_dictionaries({"count": st.integers(0, 10)}), _json),
        "timestamp": st.sampled_from([1763805600000, 1763805900000, 1763805600, 1763805600000.5, 10**40]),
    },
    optional={
        "version": st.one_of(st.integers(0, 3), st.floats(0, 3)),
        "dimension": st.one_of(st.none(), _json),
        "ResponseMetadata": st.just({}),
    },
)
_message = st.fixed_dictionaries({"version": st.just("1.0"), "metrics": st.lists(_datum, max_size=6)})


def _general(message, index):
    shaped = events.metric_events(message, account_id="123456789012", region="us-east-1", api="metrics-export")
    body = b"".join(hec.hec_event(event, index) for event in shaped)
    return body, len(shaped), sum(1 for event in shaped if events.thing_name_rejected(event))


def _outcome(call):
    try:
        return call()
    except Exception as exc:  # the same error either way
        return type(exc).__name__


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(message=_message, index=st.sampled_from([None, "iot"]), use_orjson=st.booleans())
def test_the_metrics_fast_lane_writes_exactly_the_event_models_events(message, index, use_orjson, monkeypatch):
    """hec.metric_hec_body (no Event per datum, one encoding per record) == the model's events one by one."""
    monkeypatch.setattr(hec, "orjson", hec.orjson if use_orjson else None)
    fast = _outcome(
        lambda: hec.metric_hec_body(
            message, account_id="123456789012", region="us-east-1", api="metrics-export", index=index
        )
    )
    assert fast == _outcome(lambda: _general(message, index))


def test_the_fast_lane_is_taken_for_the_usual_export_message(monkeypatch):
    message = json.loads((SAMPLES / "metrics-export.json").read_text())
    monkeypatch.setattr(events, "metric_events", None)  # the general path would fail
    body, count, rejected = hec.metric_hec_body(message, account_id="1", region="r")
    assert count == 10 and rejected == 0 and body.count(b'{"time":') == 10


def _joined(message, *datums):
    return {"version": "1.0", "metrics": [*message["metrics"], *datums]}


def _usual(**value_of):
    datums = [
        {"name": name, "value": value, "version": 1, "thing": "pump-1", "timestamp": 1763805600000}
        for name, value in value_of.items()
    ]
    return {"version": "1.0", "metrics": datums}


@pytest.mark.parametrize(
    "message",
    [
        _usual(a={"count": 1}, b={"ports": [22, 443]}, c={"cidrs": ["203.0.113.7/32"]}),
        _usual(a={"count": 1}, b={"x": [{"timestamp": 1763805600000}]}),  # a nested time field
        _usual(a={"count": 1}, b={"notBefore": 1763805600000}),  # a time field in a value
        _usual(a={"strings": ['},{"name":"b"']}, b={"count": 2}),  # a joint in a string
        _usual(a={"strings": ['"timestamp":1763805600000,']}, b={"count": 2}),  # the swap in a string
        _usual(a={"x": [{"name": 1}, {"name": 2}]}, b={"count": 2}),  # a nested joint
        _usual(a={"number": 1.5e-07}, b={"count": 2**64}),  # exponent float, integer beyond 64 bits
        _usual(a={"strings": ["\ud800"]}),  # a lone surrogate
        _joined(_usual(a={"count": 1}), {"value": {"count": 2}, **_usual(b={})["metrics"][0]}),  # another first key
        _joined(_usual(a={"count": 1}, b={"count": 2}), dict(_usual(a={"n": 9})["metrics"][0], version=2)),  # repeated
        _joined(_usual(a={"count": 1}, b={"count": 2}), dict(_usual(a={"n": 9})["metrics"][0], version=0)),
    ],
)
@pytest.mark.parametrize("use_orjson", [True, False])
def test_the_usual_message_lane_writes_what_the_general_path_writes(message, use_orjson, monkeypatch):
    monkeypatch.setattr(hec, "orjson", hec.orjson if use_orjson else None)
    fast = hec.metric_hec_body(message, account_id="123456789012", region="us-east-1", index="iot")
    assert fast == _general(message, "iot")


def test_the_usual_message_takes_the_one_encoding_lane():
    message = _usual(a={"count": 1}, b={"ports": [22, 443]})
    assert hec._uniform_lane(message, "123456789012", "us-east-1", "metrics-export", None) is not None
    assert hec._uniform_lane(_usual(a={"x": [{"timestamp": 1}]}), "1", "r", "m", None) is None
    repeated = _joined(message, dict(message["metrics"][0], version=2, value={"count": 9}))
    assert hec._uniform_lane(repeated, "1", "r", "m", None)[1] == 2  # the repeated metric: its highest version only
    other_first_key = _joined(message, {"value": {"count": 2}, **_usual(c={})["metrics"][0]})
    assert hec._uniform_lane(other_first_key, "1", "r", "m", None) is None


# ---------------------------------------------------------------- SNS message fast lanes (hec.audit/violation)


def audit_from_sns() -> dict:
    envelope = json.loads((SAMPLES / "sns-audit-notification.json").read_text())
    return json.loads(envelope["Message"])


def _mostly(valid, *others):
    """Strategies that mostly draw a valid value (so the lanes are reached), now and then one of ``others``."""
    return st.sampled_from([valid] * (2 * len(others) + 2) + list(others))


_times = st.one_of(
    _mostly(1763769600000, 1763769600, 1763769600000.5, 0, 10**40, -(10**20), True, None, "", "x"),
    st.sampled_from(["2025-11-22T00:00:00Z", "1763769600", [1763769600000], {"t": 1}]),
)
_nested = st.one_of(_json, st.just({"x": [{"timestamp": 1763769600000}]}), st.just([{"notAfter": 1}]))
_detail = st.one_of(
    st.fixed_dictionaries(
        {"checkName": _mostly("LOGGING_DISABLED_CHECK", "", None, 3)},
        optional={
            "checkRunStatus": st.sampled_from(["COMPLETED_COMPLIANT", "FAILED"]),
            "nonCompliantResourcesCount": st.integers(-1, 2**65),
            "errorCode": st.none(),
            "taskId": st.just("from-the-check"),
            "account_id": st.just("999"),
            "nested": _nested,
        },
    ),
    st.sampled_from(
        [
            {"checkName": "C", "record_type": "x"},
            {"checkName": "C", "rejected_thing_name": "|"},
            {"checkName": "C", "findingTime": 1763769600000},
            {"checkName": "C", "findingTime": "2025-11-22T00:00:00Z"},
            {"checkName": "C", "ResponseMetadata": {}},
            {"checkName": "C", "x": {"lastModifiedDate": 1763769600}},
        ]
    ),
    _json,
)
_audit = st.fixed_dictionaries(
    {
        "taskId": _mostly("4e2bcd1c", "", None, 7),
        "taskStatus": _mostly("COMPLETED", "FAILED", "", None, ["COMPLETED"]),
        "taskStartTime": _times,
        "auditDetails": st.one_of(st.lists(_detail, max_size=3), _json),
    },
    optional={
        "accountId": st.sampled_from(["123456789012", "x"]),
        "taskType": st.sampled_from(["SCHEDULED_AUDIT_TASK", None, 5]),
        "scheduledAuditName": st.sampled_from(["DailyAudit", None, {"a": 1}]),
        "totalChecksCount": _json,
        "failedChecksCount": st.integers(0, 3),
        "taskStatistics": _mostly(None, {}, {"totalChecks": 9}, [["totalChecks", 1]], 3),
    },
)


def _audit_general(message, index):
    shaped = events.audit_task_events(message, account_id="123456789012", region="us-east-1", api="sns-audit")
    body = b"".join(hec.hec_event(event, index) for event in shaped)
    return body, len(shaped), sum(1 for event in shaped if events.thing_name_rejected(event))


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(message=_audit, index=st.sampled_from([None, "iot"]), use_orjson=st.booleans(), base=st.booleans())
def test_the_audit_lane_writes_exactly_the_event_models_events(message, index, use_orjson, base, monkeypatch):
    """hec.audit_hec_body (payloads built directly) == the model's events one by one, or the same error."""
    monkeypatch.setattr(hec, "orjson", hec.orjson if use_orjson else None)
    if base:
        message = {**audit_from_sns(), **message}
    fast = _outcome(
        lambda: hec.audit_hec_body(message, account_id="123456789012", region="us-east-1", api="sns-audit", index=index)
    )
    assert fast == _outcome(lambda: _audit_general(message, index))


def test_the_usual_audit_notification_takes_the_direct_lane(monkeypatch):
    message = audit_from_sns()
    expected = _audit_general(message, "iot")
    monkeypatch.setattr(hec, "audit_task_events", None)  # the general path would fail
    assert hec.audit_hec_body(message, account_id="123456789012", region="us-east-1", api="sns-audit", index="iot") == (
        expected
    )
    assert expected[1] == 5


_violation = st.fixed_dictionaries(
    {
        "violationId": _mostly("v-1", "", None, 0),
        "thingName": _mostly("pump-1", "", 'x"|y', None, 5),
        "violationEventType": _mostly("in-alarm", "alarm-cleared", "alarm-invalidated", "nope", None),
        "violationEventTime": _times,
        "behavior": _nested,
    },
    optional={
        "violationStartTime": _times,
        "metricValue": _nested,
        "securityProfileName": st.sampled_from(["Baseline", None]),
        "extra": st.sampled_from(
            [{"rejected_thing_name": "|"}, {"ResponseMetadata": {}}, {"ResponseMetadata": 5}, {"timestamp": 1}]
        ),
    },
).map(lambda message: dict(message, **message.pop("extra", {})))  # pop first: the extra keys join the top level


def _violation_general(message, index):
    event = events.violation_event(message, account_id="123456789012", region="us-east-1", api="sns-violation")
    return hec.hec_event(event, index), 1, int(events.thing_name_rejected(event))


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(message=_violation, index=st.sampled_from([None, "iot"]), use_orjson=st.booleans(), base=st.booleans())
def test_the_violation_lane_writes_exactly_the_event_models_event(message, index, use_orjson, base, monkeypatch):
    """hec.violation_hec_body (payload built directly) == the model's event, or the same error."""
    monkeypatch.setattr(hec, "orjson", hec.orjson if use_orjson else None)
    if base:
        message = {**violation_from_sns(), **message}
    fast = _outcome(
        lambda: hec.violation_hec_body(
            message, account_id="123456789012", region="us-east-1", api="sns-violation", index=index
        )
    )
    assert fast == _outcome(lambda: _violation_general(message, index))


def test_the_usual_violation_message_takes_the_direct_lane(monkeypatch):
    message = violation_from_sns()
    expected = _violation_general(message, None)
    monkeypatch.setattr(hec, "violation_event", None)  # the general path would fail
    assert hec.violation_hec_body(message, account_id="123456789012", region="us-east-1", api="sns-violation") == (
        expected
    )


@settings(max_examples=5000, deadline=None, database=None)
@given(
    value=st.one_of(
        st.integers(min_value=10**11 - 5, max_value=4_102_444_800_005),
        st.sampled_from([10**11, 4_102_444_800_000, 1763769600000, 1763769600999, 10**11 - 1, -(10**11)]),
        st.integers(),
        st.floats(min_value=1e11, max_value=4.2e12),
    )
)
def test_the_lanes_times_are_the_models(value):
    """hec.event_time / iso_time (short cuts for epoch milliseconds) == to_epoch_ms(to_epoch()) / to_iso()."""
    assert _outcome(lambda: repr(hec.event_time(value))) == _outcome(
        lambda: repr(events.to_epoch_ms(events.to_epoch(value)))
    )
    assert _outcome(lambda: hec.iso_time(value)) == _outcome(lambda: events.to_iso(value))
