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
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from iot_defender.events import (
    SOURCETYPE_METRIC,
    TIME_FIELDS,
    Event,
    metric_events,
    source_for,
    thing_name_rejected,
    to_epoch,
    to_epoch_ms,
    to_iso,
    valid_thing_name,
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
    make = getattr(json.encoder, "c_make_encoder", None)
    try:
        encoder = make(None, _HEC_ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    except TypeError:  # no C accelerator (make is None), or another signature
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


def _plain(value: Any) -> bool:
    """True when :func:`events.normalize` would return an equal copy of ``value``: JSON types only, and no time
    field or ``ResponseMetadata`` key at any depth."""
    if type(value) is dict:
        if not _NORMALIZED_KEYS.isdisjoint(value):
            return False
        items: Any = value.values()
    elif type(value) is list:
        items = value
    else:
        return type(value) in _SCALARS
    for item in items:  # noqa: SIM110 - a loop: all() over a generator is slower on this hot path
        if type(item) not in _SCALARS and not _plain(item):
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
    body = _uniform_lane(message, account_id, region, api, index)
    if body is not None:
        return body, len(message["metrics"]), 0
    datums = _plain_datums(message)
    if datums is not None:
        return hec_events_body(_plain_payloads(datums, account_id, region, api, index)), len(datums), 0
    shaped = metric_events(message, account_id=account_id, region=region, api=api)
    rejected = sum(1 for event in shaped if thing_name_rejected(event))
    return hec_events_body([event.to_hec(index=index) for event in shaped]), len(shaped), rejected


_UNIFORM_KEYS = frozenset({"name", "thing", "value", "version", "timestamp"})
_PASSTHROUGH = 0 if orjson is None else orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def _uniform_lane(message: Any, account_id: str, region: str, api: str, index: Optional[str]) -> Optional[bytes]:
    """The usual export message (one thing, one integer timestamp, no dimension, no repeated metric, every datum's
    first key the same) written from one encoding of its datums: the timestamps swapped for their ISO string, and
    each datum wrapped in its HEC envelope by replacing the joints between datums. Exactly what the general path
    writes; None (that way) for any other message, or when the text does not prove the swap and joints unambiguous.
    ``message`` is a decoded JSON document."""
    datums = message.get("metrics") if orjson is not None and type(message) is dict else None
    if type(datums) is not list or not datums or type(datums[0]) is not dict:
        return None
    thing, stamp, key = datums[0].get("thing"), datums[0].get("timestamp"), next(iter(datums[0]), None)
    if type(stamp) is not int or not valid_thing_name(thing):
        return None
    names = set()
    for datum in datums:
        if type(datum) is not dict or not datum.keys() <= _UNIFORM_KEYS or next(iter(datum)) != key:
            return None
        name, version = datum.get("name"), datum.get("version", 0)
        value = datum.get("value")
        if datum.get("thing") != thing or datum.get("timestamp") != stamp or type(value) is not dict:
            return None
        if not _NORMALIZED_KEYS.isdisjoint(value):
            return None
        if type(name) is not str or not name or name in names or type(version) not in _NUMBERS:
            return None
        names.add(name)
    try:
        text = orjson.dumps(datums, option=_PASSTHROUGH)
        scope = b',"account_id":' + _string(account_id) + b',"region":' + _string(region) + b"}"
        source = _string(source_for(account_id, region, api))
        tail = b',"host":' + _string(thing) + (b',"index":' + _string(index) + b"}" if index else b"}")
    except (TypeError, UnicodeEncodeError):  # an integer beyond 64 bits, a lone surrogate, not JSON
        return None
    count = len(datums)
    number = b'"timestamp":' + str(stamp).encode()
    joint = b'},{"' + key.encode() + b'":'
    if text.count(b'"timestamp":') != count or text.count(joint) != count - 1:
        return None  # a nested "timestamp" key, or a nested list of objects whose first key is the datums' first
    if text.count(number + b",") + text.count(number + b"}") != count:
        return None  # a timestamp of another spelling (true, 1.0)
    if text.count(b"{") != 2 * count:
        return None  # an object inside a value (only the values' own keys were checked), or a brace in a string
    iso, when = _times(stamp)
    iso = b'"timestamp":"' + iso + b'"'
    text = text.replace(number + b",", iso + b",").replace(number + b"}", iso + b"}")
    head = b'{"time":' + when + b',"sourcetype":"' + _METRIC + b'","source":' + source + b',"event":'
    return head + text[1:-2].replace(joint, scope + tail + head + b'{"' + key.encode() + b'":') + scope + tail


_METRIC = SOURCETYPE_METRIC.encode()
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
