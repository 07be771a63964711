"""Property-based fuzz of the Firehose transform: whatever Firehose hands it, the Lambda

- never raises,
- returns every recordId exactly once, in order, each with Ok / Dropped / ProcessingFailed,
- gives every Ok record data that decodes to newline-free, concatenated, valid HEC events,
- keeps the whole response under the 6 MB Lambda limit.

The strategies are cheap on purpose (small JSON trees, mutated samples) so the CI run covers >= 10,000
invocations in well under a minute. ``FUZZ_EXAMPLES`` overrides the count for a longer local soak.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, Dict, List

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from iot_defender import events
from tests.infra.conftest import SNS_AUDIT_NOTIFICATION, SNS_VIOLATION_LAMBDA_EVENT, load_transform

TRANSFORM = load_transform()
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
PUSH_SOURCETYPES = {events.SOURCETYPE_METRIC, events.SOURCETYPE_AUDIT_TASK, events.SOURCETYPE_VIOLATION}
RESULTS = {"Ok", "Dropped", "ProcessingFailed"}

AUDIT_MESSAGE = json.loads(SNS_AUDIT_NOTIFICATION["Message"])
VIOLATION_MESSAGE = json.loads(SNS_VIOLATION_LAMBDA_EVENT["Records"][0]["Sns"]["Message"])

# ------------------------------------------------------------------------------------- strategies

# Cheap strategies: a small alphabet (with a quote, a backslash, a newline, non-ASCII and a lone surrogate) and
# dictionary keys drawn from the names the transform looks at, so junk often *almost* looks like ours.
small_text = st.text(alphabet='ab-Z09 "\\\n\u00fc\u4e2d\ud800', max_size=8)
KEYS = ["metrics", "Type", "Message", "TopicArn", "violationId", "taskId", "thing", "name", "value", "x"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    small_text,
)
any_json = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(st.tuples(st.sampled_from(KEYS), children), max_size=3).map(dict),
    ),
    max_leaves=4,
)
times = st.one_of(
    st.integers(min_value=0, max_value=4_102_444_800_000),  # seconds or milliseconds up to 2100
    st.integers(),  # anything, including values that overflow a datetime
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["2025-11-22T10:00:00Z", "1763805600", "yesterday", "", None, True]),
)
metric_names = st.sampled_from(
    [
        "aws:listening-tcp-ports",
        "aws:num-listening-tcp-ports",
        "aws:listening-udp-ports",
        "aws:all-bytes-out",
        "aws:destination-ip-addresses",
        "aws:source-ip-address",
        "custom:thing",
    ]
)
metric_values = st.one_of(
    st.fixed_dictionaries({"count": st.integers(min_value=0, max_value=10**12)}),
    st.fixed_dictionaries({"ports": st.lists(st.integers(min_value=0, max_value=65535), max_size=5)}),
    st.fixed_dictionaries({"cidrs": st.lists(st.just("203.0.113.7/32"), max_size=3)}),
    st.fixed_dictionaries({"number": st.floats(allow_nan=False, allow_infinity=False)}),
    any_json,
)


DATUM_KEYS = ("name", "thing", "value", "version", "timestamp")
thing_names = st.one_of(st.sampled_from(["pump-1", "pump-2", "S\u00fcd-3"]), small_text)
versions = st.one_of(st.integers(min_value=0, max_value=5), st.sampled_from(["2", None, 1.5]))
datum_times = st.one_of(st.sampled_from([1763805600000, 1763805600]), times)
dimensions = st.one_of(st.just({"name": "TopicFilter", "operator": "IN"}), any_json)
choice = st.integers(min_value=0, max_value=9)


@st.composite
def metric_datum(draw: Any) -> Any:
    # Strategies are built once at import: building them inside a composite costs milliseconds per draw.
    if draw(choice) == 0:
        return draw(any_json)  # not even an object, now and then
    datum: Dict[str, Any] = {
        "name": draw(metric_names),
        "thing": draw(thing_names),
        "value": draw(metric_values),
        "version": draw(versions),
        "timestamp": draw(datum_times),
    }
    if draw(choice) < 3:
        datum["dimension"] = draw(dimensions)
    if draw(choice) == 0:
        datum.pop(DATUM_KEYS[draw(choice) % len(DATUM_KEYS)])  # a missing field
    return datum


metrics_message = st.fixed_dictionaries({"version": st.just("1.0"), "metrics": st.lists(metric_datum(), max_size=3)})


def mutated(base: Dict[str, Any], fields: Dict[str, Any]) -> Any:
    @st.composite
    def build(draw: Any) -> Dict[str, Any]:
        message = dict(base)
        for key, strategy in fields.items():
            roll = draw(choice)
            if roll == 0:
                message.pop(key, None)
            elif roll <= 2:
                message[key] = draw(strategy)
        return message

    return build()


violation_message = mutated(
    VIOLATION_MESSAGE,
    {
        "violationEventType": st.sampled_from(["in-alarm", "alarm-cleared", "alarm-invalidated", "nope", 3]),
        "violationEventTime": times,
        "thingName": st.one_of(small_text, any_json),
        "violationId": st.one_of(small_text, st.none()),
        "metricValue": any_json,
    },
)
audit_message = mutated(
    AUDIT_MESSAGE,
    {
        "taskStartTime": times,
        "taskStatus": st.one_of(st.sampled_from(["COMPLETED", "FAILED"]), any_json),
        "auditDetails": st.one_of(
            st.lists(st.fixed_dictionaries({"checkName": small_text, "checkRunStatus": small_text}), max_size=3),
            any_json,
        ),
        "accountId": st.one_of(st.just("123456789012"), small_text),
        "totalChecksCount": any_json,
    },
)
topic_arns = st.sampled_from(
    ["arn:aws:sns:us-east-1:123456789012:iot-defender-audit", "arn:aws-cn:sns:cn-north-1:210987654321:a", "x", ""]
)


sns_messages = st.one_of(violation_message, audit_message, any_json)


@st.composite
def sns_envelope(draw: Any) -> Dict[str, Any]:
    message = draw(sns_messages)
    text = draw(small_text) if draw(choice) == 0 else json.dumps(message)
    return {"Type": "Notification", "TopicArn": draw(topic_arns), "Message": text, "MessageId": "m"}


def as_b64(payload: Any) -> str:
    return base64.b64encode(json.dumps(payload).encode("utf-8")).decode("ascii")


record_data = st.one_of(
    metrics_message.map(as_b64),
    sns_envelope().map(as_b64),
    violation_message.map(as_b64),
    audit_message.map(as_b64),
    any_json.map(as_b64),
    st.binary(max_size=64).map(lambda raw: base64.b64encode(raw).decode("ascii")),  # not JSON / not UTF-8
    small_text,  # usually not base64 at all
    st.sampled_from([None, 7, ""]),
)


@st.composite
def invocation(draw: Any) -> Dict[str, Any]:
    datas: List[Any] = draw(st.lists(record_data, min_size=1, max_size=3))
    return {
        "invocationId": "fuzz",
        "deliveryStreamArn": draw(
            st.sampled_from(
                [
                    "arn:aws:firehose:us-east-1:123456789012:deliverystream/iot-defender-to-splunk",
                    "arn:aws-us-gov:firehose:us-gov-west-1:123456789012:deliverystream/s",
                    "nonsense",
                ]
            )
        ),
        "region": "us-east-1",
        "records": [{"recordId": f"id-{i}", "data": data} for i, data in enumerate(datas)],
    }


# ----------------------------------------------------------------------------------------- checks


def check_hec_stream(data: str) -> int:
    text = base64.b64decode(data, validate=True).decode("utf-8")  # strict: valid UTF-8 for HEC
    assert text and "\n" not in text and "\r" not in text
    decoder, position, count = json.JSONDecoder(), 0, 0
    while position < len(text):
        event, position = decoder.raw_decode(text, position)
        count += 1
        assert isinstance(event["time"], (int, float)) and not isinstance(event["time"], bool)
        assert isinstance(event["event"], dict)
        assert event["sourcetype"] in PUSH_SOURCETYPES
        assert isinstance(event["source"], str) and event["source"].startswith("aws:iot:")
        if "host" in event:
            assert isinstance(event["host"], str) and event["host"]
        assert set(event) <= {"time", "event", "sourcetype", "source", "host", "index"}
    return count


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(invocation_event=invocation())
def test_transform_fuzz(invocation_event: Dict[str, Any]) -> None:
    response = TRANSFORM.lambda_handler(invocation_event, None)
    entries = response["records"]
    assert [entry["recordId"] for entry in entries] == [r["recordId"] for r in invocation_event["records"]]
    for entry in entries:
        assert entry["result"] in RESULTS
        event(f"some record {entry['result']}")  # shown by --hypothesis-show-statistics
        if entry["result"] == "Ok":
            assert check_hec_stream(entry["data"]) >= 1
        else:
            assert "data" not in entry
    assert len(json.dumps(response).encode("utf-8")) <= LAMBDA_RESPONSE_LIMIT
