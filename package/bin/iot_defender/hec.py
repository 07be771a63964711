"""HEC serialisation of the event model: the bytes of HEC event-endpoint objects for :class:`events.Event` s.

:func:`hec_event` is ``event.to_hec(index)`` as compact UTF-8 JSON (non-ASCII kept; an event whose text holds a lone
surrogate, from a ``\\ud800`` escape in its input, is written with ``\\u`` escapes instead). It is written by orjson
where that is installed (the Firehose Lambda ships it) and by ``json`` otherwise: the same bytes, except that a float
``json`` writes in exponent form is spelled the orjson way (``1e16`` for ``1e+16``, ``1.5e-7`` for ``1.5e-07``: the same
number); an integer beyond 64 bits, which orjson refuses, is written by ``json``.

:func:`metric_hec_body` is the metrics push path's fast lane. The usual export message (one thing, one timestamp)
is written from a single encoding of its datums, the envelopes spliced in at the joints; any other message of
the export shape with plain JSON values and valid thing names is written without an Event per datum or a deep copy.
Either way the result is exactly ``b"".join(hec_event(e, index) for e in events.metric_events(...))`` (a property
test holds it to that, with and without orjson); anything else takes that general path.

:func:`audit_hec_body` and :func:`violation_hec_body` are the SNS messages' lanes: the usual audit notification and
violation message (plain values, epoch-millisecond times, a valid thing name) have their HEC payloads built directly,
without an Event or a deep copy; property tests hold them to the event model's events, byte for byte.
"""

from __future__ import annotations

import datetime as _dt
import json
from operator import itemgetter
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from iot_defender.events import (
    MAX_DEPTH,
    REJECTED_THING_NAME_FIELD,
    SNS_COUNT_TO_STATISTIC,
    SOURCETYPE_AUDIT_TASK,
    SOURCETYPE_METRIC,
    SOURCETYPE_VIOLATION,
    TIME_FIELDS,
    VIOLATION_EVENT_TYPES,
    Event,
    MalformedRecord,
    audit_task_events,
    check_audit_bounds,
    metric_events,
    source_for,
    thing_name_rejected,
    to_epoch,
    to_epoch_ms,
    to_iso,
    valid_thing_name,
    violation_event,
)

try:  # optional accelerator (the Firehose transform Lambda ships it; Splunk's Python does not need it)
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

# Compact, keys in the order built, non-ASCII kept, NaN/Infinity refused (HEC rejects them).
_HEC_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_HEC_ENCODER_ASCII = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _make_encoder() -> Callable[[Any], str]:
    """``_HEC_ENCODER.encode`` without building a C encoder per call (``json`` does); no circular-reference check,
    so only for acyclic values (anything ``json.loads`` returns and the events built from it)."""
    make: Optional[Callable[..., Any]] = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator
        return _HEC_ENCODER.encode
    try:
        encoder = make(None, _HEC_ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    except TypeError:  # another signature
        return _HEC_ENCODER.encode
    return lambda value: "".join(encoder(value, 0))


_encode = _make_encoder()


def hec_event(event: Event, index: Optional[str] = None) -> bytes:
    """``event.to_hec(index)`` as compact JSON bytes: one HEC event-endpoint object, no newline anywhere."""
    return _dumps(event.to_hec(index=index))


def _dumps(payload: Dict[str, Any]) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(payload)
        except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a lone surrogate
            pass
    try:
        return _encode(payload).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: keep it escaped
        return _HEC_ENCODER_ASCII.encode(payload).encode("ascii")


# ------------------------------------------------------------------------------------- metrics fast lane

_PLAIN_DATUM_KEYS = frozenset({"name", "thing", "value", "version", "timestamp", "dimension"})
_NORMALIZED_KEYS = TIME_FIELDS | {"ResponseMetadata"}
_SCALARS = frozenset({str, int, float, bool, type(None)})
_NUMBERS = frozenset({int, float})


# Nesting the fast paths take; deeper values go to the event model, which refuses past events.MAX_DEPTH. The margin
# covers where a value sits in its record (a check in an audit message's list, a datum's value...).
_PLAIN_DEPTH = MAX_DEPTH - 8


def _plain(value: Any, _depth: int = 0) -> bool:
    """True when :func:`events.normalize` would return an equal copy of ``value``: JSON types only, and no time
    field or ``ResponseMetadata`` key at any depth, nested less than :data:`_PLAIN_DEPTH` levels."""
    if _depth >= _PLAIN_DEPTH:
        return False
    if type(value) is dict:
        if not _NORMALIZED_KEYS.isdisjoint(value):
            return False
        items: Any = value.values()
    elif type(value) is list:
        items = value
    else:
        return type(value) in _SCALARS
    for item in items:  # noqa: SIM110 - a loop: all() over a generator is slower on this hot path
        if type(item) not in _SCALARS and not _plain(item, _depth + 1):
            return False
    return True


def _plain_datums(message: Any) -> Optional[List[Dict[str, Any]]]:
    """The datums :func:`events.metric_events` would keep, when every datum is plain with a valid thing name; else
    None (the general path)."""
    if type(message) is not dict or type(message.get("metrics")) is not list:
        return None
    kept: Dict[Tuple[str, str, Any, str], Dict[str, Any]] = {}
    things = set()
    for datum in message["metrics"]:
        if type(datum) is not dict or not datum.keys() <= _PLAIN_DATUM_KEYS:
            return None
        thing, name, version, value = datum.get("thing"), datum.get("name"), datum.get("version", 0), datum.get("value")
        if type(name) is not str or type(thing) is not str or type(value) is not dict or not name:
            return None
        if type(datum.get("timestamp")) not in _NUMBERS or type(version) not in _NUMBERS:
            return None
        if thing not in things:
            if not valid_thing_name(thing):
                return None
            things.add(thing)
        if not _NORMALIZED_KEYS.isdisjoint(value):
            return None
        for item in value.values():
            if type(item) not in _SCALARS and not _plain(item):
                return None
        dimension = datum.get("dimension")
        if dimension is not None and not _plain(dimension):
            return None
        identity = (thing, name, datum["timestamp"], json.dumps(dimension, sort_keys=True) if dimension else "")
        previous = kept.get(identity)
        if previous is None or version > previous.get("version", 0):
            kept[identity] = datum
    return list(kept.values())


def metric_hec_body(
    message: Mapping[str, Any],
    *,
    account_id: str,
    region: str,
    api: str = "metrics-export",
    index: Optional[str] = None,
) -> Tuple[bytes, int, int]:
    """``(body, events, rejected)``: the HEC bytes of :func:`events.metric_events` (``message``, ...) (each event as
    :func:`hec_event` writes it), how many events, and how many had their thing name neutralised. Raises as
    :func:`events.metric_events` does."""
    uniform = _uniform_lane(message, account_id, region, api, index)
    if uniform is not None:
        return uniform[0], uniform[1], 0
    datums = _plain_datums(message)
    if datums is not None:
        return hec_events_body(_plain_payloads(datums, account_id, region, api, index)), len(datums), 0
    shaped = metric_events(message, account_id=account_id, region=region, api=api)
    rejected = sum(1 for event in shaped if thing_name_rejected(event))
    return hec_events_body([event.to_hec(index=index) for event in shaped]), len(shaped), rejected


_UNIFORM_KEYS = frozenset({"name", "thing", "value", "version", "timestamp"})
_THING_AND_STAMP = itemgetter("thing", "timestamp")
_PASSTHROUGH = 0 if orjson is None else orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def _uniform_lane(
    message: Any, account_id: str, region: str, api: str, index: Optional[str]
) -> Optional[Tuple[bytes, int]]:
    """The usual export message (one thing, one integer timestamp, no dimension, every datum's first key the same; a
    repeated metric keeps its highest version) written from one encoding of its datums: the timestamps swapped for
    their ISO string, and each datum wrapped in its HEC envelope by replacing the joints between datums. Exactly what
    the general path writes, with the number of events; None (that way) for any other message, or when the text
    does not prove the swap and joints unambiguous. ``message`` is a decoded JSON document."""
    datums = message.get("metrics") if orjson is not None and type(message) is dict else None
    if type(datums) is not list or not datums or type(datums[0]) is not dict:
        return None
    thing, stamp, key = datums[0].get("thing"), datums[0].get("timestamp"), next(iter(datums[0]), None)
    if type(stamp) is not int or not isinstance(thing, str) or not isinstance(key, str) or not valid_thing_name(thing):
        return None
    kept: Dict[str, Dict[str, Any]] = {}
    identity = (thing, stamp)
    for datum in datums:  # each datum's first key is checked on the text below (the joints)
        if type(datum) is not dict or not _UNIFORM_KEYS.issuperset(datum):
            return None
        try:
            if _THING_AND_STAMP(datum) != identity:
                return None
            name, value = datum["name"], datum["value"]
        except KeyError:
            return None
        if type(value) is not dict or type(name) is not str or not name or not _NORMALIZED_KEYS.isdisjoint(value):
            return None
        for item in value.values():  # lists nested past the model's depth limit: the model refuses them
            if type(item) is list and not _plain(item, 2):
                return None
        version = datum.get("version", 0)
        if type(version) not in _NUMBERS:
            return None
        previous = kept.setdefault(name, datum)
        if previous is not datum and version > previous.get("version", 0):
            kept[name] = datum  # as metric_events: a repeated metric keeps its highest version, in its first place
    if len(kept) != len(datums):
        datums = list(kept.values())
    try:
        text = orjson.dumps(datums, option=_PASSTHROUGH)
        scope, middle, end = _metric_envelope(account_id, region, api, index)
    except (TypeError, UnicodeEncodeError):  # an integer beyond 64 bits, a lone surrogate, not JSON
        return None
    tail = b',"host":"' + thing.encode() + b'"' + end  # a valid thing name: nothing to escape
    count = len(datums)
    number = b'"timestamp":' + str(stamp).encode()
    joint = b'},{"' + key.encode() + b'":'
    if text.count(b'"timestamp":') != count or text.count(joint) != count - 1:
        return None  # a nested "timestamp" key; a datum whose first key is another (with the brace count below: a
        # "{" only opens a datum or its value, so every "},{" is a joint and each is followed by a datum's first key)
    if text.count(number + b",") + text.count(number + b"}") != count:
        return None  # a timestamp of another spelling (true, 1.0)
    if text.count(b"{") != 2 * count:
        return None  # an object inside a value (only the values' own keys were checked), or a brace in a string
    iso, when = _times(stamp)
    iso = b'"timestamp":"' + iso + b'"'
    text = text.replace(number + b",", iso + b",").replace(number + b"}", iso + b"}")
    head = b'{"time":' + when + middle
    body = head + text[1:-2].replace(joint, scope + tail + head + b'{"' + key.encode() + b'":') + scope + tail
    return body, count


_METRIC = SOURCETYPE_METRIC.encode()
_ENVELOPES: Dict[Tuple[str, str, str, Optional[str]], Tuple[bytes, bytes, bytes]] = {}


def _metric_envelope(account_id: str, region: str, api: str, index: Optional[str]) -> Tuple[bytes, bytes, bytes]:
    """The parts of a metric event's HEC text that depend on the invocation only: the body's end (account and
    region), what follows ``time`` up to the body, and what follows ``host``. Remembered; a lone surrogate raises."""
    key = (account_id, region, api, index)
    found = _ENVELOPES.get(key)
    if found is None:
        scope = b',"account_id":' + _string(account_id) + b',"region":' + _string(region) + b"}"
        middle = b',"sourcetype":"' + _METRIC + b'","source":' + _string(source_for(account_id, region, api))
        end = b',"index":' + _string(index) + b"}" if index else b"}"
        if len(_ENVELOPES) >= 64:
            _ENVELOPES.clear()
        found = _ENVELOPES[key] = (scope, middle + b',"event":', end)
    return found


_TIMES: Dict[int, Tuple[bytes, bytes]] = {}


def _times(stamp: int) -> Tuple[bytes, bytes]:
    """``(ISO time, HEC time)`` of an export timestamp as JSON text; remembered, for a batch's datums share a few."""
    found = _TIMES.get(stamp)
    if found is None:
        if len(_TIMES) >= 4096:
            _TIMES.clear()
        iso = to_iso(stamp)  # as metric_event: the body's ISO time first (it raises first), then the event time
        found = _TIMES[stamp] = (iso.encode(), repr(to_epoch_ms(to_epoch(stamp))).encode())
    return found


def _string(value: str) -> bytes:
    """A JSON string exactly as orjson and ``json`` (non-ASCII kept) write it; a lone surrogate raises."""
    return json.encoder.encode_basestring(value).encode("utf-8")


def _plain_payloads(
    datums: List[Dict[str, Any]], account_id: str, region: str, api: str, index: Optional[str]
) -> List[Dict[str, Any]]:
    """``metric_event(datum, ...).to_hec(index)`` for plain datums, each record's times computed once."""
    source = source_for(account_id, region, api)
    stamps: Dict[Any, Tuple[str, float]] = {}
    payloads = []
    for datum in datums:
        stamp = datum["timestamp"]
        cached = stamps.get(stamp)
        if cached is None:  # as metric_event: the body's ISO time first, then the event time
            iso = to_iso(stamp)
            cached = stamps[stamp] = (iso, to_epoch_ms(to_epoch(stamp)))
        payload = {
            "time": cached[1],
            "sourcetype": SOURCETYPE_METRIC,
            "source": source,
            "event": {**datum, "timestamp": cached[0], "account_id": account_id, "region": region},
            "host": datum["thing"],
        }
        if index:
            payload["index"] = index
        payloads.append(payload)
    return payloads


_EVENT_JOINT = b'},{"time":'
_EVENT_JOINT_TEXT = _EVENT_JOINT.decode()


def hec_events_body(payloads: List[Dict[str, Any]]) -> bytes:
    """HEC payloads (``Event.to_hec`` dicts) as one event-endpoint body: each as :func:`hec_event` writes it, back to
    back. Written in one encoder call as a JSON list, whose brackets and whose commas between events come off: those
    commas are the only ``},{"time":`` in it when it holds exactly one fewer than there are events (else each event is
    written on its own)."""
    if not payloads:
        return b""
    joints = len(payloads) - 1
    if orjson is not None:
        try:
            text = orjson.dumps(payloads)
        except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a lone surrogate
            return b"".join(_dumps(payload) for payload in payloads)
        if text.count(_EVENT_JOINT) == joints:
            return text[1:-1].replace(_EVENT_JOINT, b'}{"time":')
        return b"".join(_dumps(payload) for payload in payloads)
    listed = _encode(payloads)
    if listed.count(_EVENT_JOINT_TEXT) == joints:
        try:
            return listed[1:-1].replace(_EVENT_JOINT_TEXT, '}{"time":').encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the events that hold one are escaped
            pass
    return b"".join(_dumps(payload) for payload in payloads)


# ------------------------------------------------------------------------------- SNS message fast lanes

# Epoch milliseconds from 1973 (where to_datetime starts reading numbers as milliseconds) to 2100: each such integer
# is an exact number of milliseconds to the model's float arithmetic too (its error stays far below a microsecond).
_MS_FIRST, _MS_LAST = 100_000_000_000, 4_102_444_800_000
_UTC_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def event_time(value: Any) -> float:
    """``to_epoch_ms(to_epoch(value))`` (an event's ``time``), at once for epoch milliseconds."""
    if type(value) is int and _MS_FIRST <= value <= _MS_LAST:
        return value / 1000
    return to_epoch_ms(to_epoch(value))


def iso_time(value: Any) -> str:
    """``to_iso(value)``, with less arithmetic for epoch milliseconds."""
    if type(value) is int and _MS_FIRST <= value <= _MS_LAST:
        return (_UTC_EPOCH + _dt.timedelta(milliseconds=value)).isoformat(timespec="milliseconds")[:-6] + "Z"
    return to_iso(value)


def audit_hec_body(
    message: Mapping[str, Any], *, account_id: str, region: str, api: str, index: Optional[str] = None
) -> Tuple[bytes, int, int]:
    """``(body, events, rejected)``: the HEC bytes of :func:`events.audit_task_events` (``message``, ...) (each
    event as :func:`hec_event` writes it), how many events, and how many hold a ``rejected_thing_name``. The usual
    audit notification (plain checks, an epoch start time) has its payloads built directly, without an Event or a
    deep copy; anything else takes the event model. Raises as :func:`events.audit_task_events` does."""
    payloads = _audit_payloads(message, account_id, region, api, index)
    if payloads is not None:
        return hec_events_body(payloads), len(payloads), 0
    shaped = audit_task_events(message, account_id=account_id, region=region, api=api)
    rejected = sum(1 for event in shaped if thing_name_rejected(event))
    return hec_events_body([event.to_hec(index=index) for event in shaped]), len(shaped), rejected


# A check holding one of these keys is left to the model: ``record_type`` makes it raise, a rejected name is counted.
_AUDIT_RESERVED = frozenset({"record_type", REJECTED_THING_NAME_FIELD})


def _audit_payloads(
    message: Any, account_id: str, region: str, api: str, index: Optional[str]
) -> Optional[List[Dict[str, Any]]]:
    """``[e.to_hec(index) for e in audit_task_events(message, ...)]`` for an audit message whose fields need no
    normalising (string id and status, epoch start time, a list of plain checks, no ``taskStatistics``); else None."""
    if type(message) is not dict or message.get("taskStatistics") is not None:
        return None
    task_id, status, start = message.get("taskId"), message.get("taskStatus"), message.get("taskStartTime")
    details = message.get("auditDetails")
    if type(task_id) is not str or type(status) is not str or not task_id or not status:
        return None
    if type(start) not in _NUMBERS or (details is not None and type(details) is not list):
        return None
    for detail in details or ():
        if type(detail) is not dict or not detail.get("checkName") or not _AUDIT_RESERVED.isdisjoint(detail):
            return None
        if not _plain(detail):
            return None
    try:  # the model's bounds (ids, names, statuses, check count): what it refuses, it refuses itself
        check_audit_bounds(message)
    except MalformedRecord:
        return None
    try:  # a time the model refuses: its error, from the general path
        when, iso = event_time(start), iso_time(start)
    except Exception:  # whatever it is, the general path raises it
        return None
    common = {"taskId": task_id, "taskStatus": status}
    for key, value in (("taskType", message.get("taskType")), ("taskStartTime", iso)):
        if value is not None:
            common[key] = value
    if message.get("scheduledAuditName") is not None:
        common["scheduledAuditName"] = message["scheduledAuditName"]
    statistics = {stat: message[name] for name, stat in SNS_COUNT_TO_STATISTIC.items() if name in message}
    scope = {"account_id": account_id, "region": region}
    head = {"time": when, "sourcetype": SOURCETYPE_AUDIT_TASK, "source": source_for(account_id, region, api)}
    tail = {"host": account_id} if account_id else {}
    if index:
        tail["index"] = index
    task = {**common, "record_type": "task", "taskStatistics": statistics, "auditDetails": details or [], **scope}
    payloads = [{**head, "event": task, **tail}]
    for detail in details or ():
        payloads.append({**head, "event": {**common, "record_type": "check", **detail, **scope}, **tail})
    return payloads


def violation_hec_body(
    message: Mapping[str, Any], *, account_id: str, region: str, api: str, index: Optional[str] = None
) -> Tuple[bytes, int, int]:
    """``(body, 1, rejected)``: the HEC bytes of :func:`events.violation_event` (``message``, ...) as
    :func:`hec_event` writes it, and whether its thing name was neutralised. The usual violation message (plain
    values, epoch times, a valid thing name) has its payload built directly; anything else takes the event model.
    Raises as :func:`events.violation_event` does."""
    payload = _violation_payload(message, account_id, region, api, index)
    if payload is not None:
        return _dumps(payload), 1, 0
    event = violation_event(message, account_id=account_id, region=region, api=api)
    return hec_event(event, index), 1, int(thing_name_rejected(event))


def _violation_payload(
    message: Any, account_id: str, region: str, api: str, index: Optional[str]
) -> Optional[Dict[str, Any]]:
    """``violation_event(message, ...).to_hec(index)`` for a message whose values need no normalising beyond its
    top-level epoch times, with a valid thing name and a known event type; else None."""
    if type(message) is not dict or message.get("violationEventType") not in VIOLATION_EVENT_TYPES:
        return None
    if REJECTED_THING_NAME_FIELD in message:  # counted as a rejected name by the model
        return None
    host, identity, stamp = message.get("thingName"), message.get("violationId"), message.get("violationEventTime")
    if identity is None or identity == "" or type(stamp) not in _NUMBERS or not valid_thing_name(host):
        return None
    data = {}
    try:
        when = event_time(stamp)
        for key, value in message.items():
            kind = type(value)
            if key in _NORMALIZED_KEYS:
                if key == "ResponseMetadata" or kind not in _NUMBERS:
                    return None
                value = iso_time(value)
            elif kind not in _SCALARS and not _plain(value):
                return None
            data[key] = value
    except Exception:  # a time the model refuses: its error, from the general path
        return None
    data["account_id"] = account_id
    data["region"] = region
    payload = {
        "time": when,
        "sourcetype": SOURCETYPE_VIOLATION,
        "source": source_for(account_id, region, api),
        "event": data,
        "host": host,
    }
    if index:
        payload["index"] = index
    return payload
