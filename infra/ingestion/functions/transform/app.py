"""Firehose data-transformation Lambda: Device Defender payloads in, Splunk HEC events out.

Firehose (DirectPut, Splunk destination, HEC *event* endpoint) invokes ``lambda_handler`` with a batch of
base64 records. Each record is one of:

- a Detect **metrics-export** message (``{"version", "metrics": [...]}``) from the IoT rule;
- an **SNS notification envelope** (``{"Type": "Notification", "TopicArn", "Message": "<json>"}``) from the
  audit topic's (or the alert topic's) Firehose subscription, carrying an audit-completed message or a Detect
  violation message; with raw message delivery on, the bare message itself;
- anything else.

Events are shaped by the add-on's own event model (``iot_defender.events``, serialised by ``iot_defender.hec``),
never a copy of it, so an event pushed through Firehose looks like the one the modular input pulls. Per record the
result is:

- ``Ok``: ``data`` = base64 of the record's HEC events as concatenated, newline-free JSON objects (the HEC event
  endpoint accepts several events in one body, and Firehose sends each record as one body);
- ``ProcessingFailed``: malformed (not base64, not UTF-8 JSON, or one of ours with a bad datum/field), or of a
  shape this transform does not know (another JSON document, an SNS message of another kind: a future AWS format is
  kept, never dropped). Firehose writes these records, with their original data, to the S3 backup bucket's error
  prefix (``firehose-errors/processing-failed/``), from where they can be replayed;
- ``Dropped``: only a metrics export with no datum (nothing to index, nothing lost).

A thing name outside ``[a-zA-Z0-9:_-]{1,128}`` (a forged metrics message) is replaced by the event model's neutral
stand-in (``invalid-thing-name-<digest>``; the raw text stays in ``rejected_thing_name``) and counted.

The handler never raises: every record is handled in its own ``try``, every ``recordId`` comes back exactly
once, and ``Dropped``/``ProcessingFailed`` entries carry no ``data`` (as AWS's own Firehose blueprints do).

**6 MB response limit.** Lambda refuses a synchronous response above 6,291,456 bytes, and Firehose would then
fail (and retry) the whole batch. The handler sizes the response exactly as the runtime serialises it and keeps
it under ``RESPONSE_LIMIT_BYTES`` (6,000,000, the headroom AWS's blueprints use): space for a minimal entry of
every record is reserved first, then each ``Ok`` record is kept in order if its events still fit; one that does
not fit becomes ``ProcessingFailed`` (reason ``response-size``) while later, smaller records may still fit. Nothing
is lost: Firehose keeps the original record in ``firehose-errors/processing-failed/`` for replay. We do not
re-ingest with ``PutRecordBatch`` (the CloudWatch-Logs blueprint's way): it needs write access to the stream from its
own processor and can loop or duplicate on retries. The template's processor buffer (0.25 MB) is sized from the worst
expansion (an audit notification's checks, ~22x through its SNS envelope; the arithmetic is in the template), so the
path is a safety net (logged and counted) for records that arrive otherwise, not a routine one.

**Account and region.** Metrics exports carry neither: they come from the invocation's ``deliveryStreamArn``
(the stream lives in the account/region of the IoT rule). Audit messages carry ``accountId``; SNS envelopes
carry ``TopicArn`` (``arn:<partition>:sns:<region>:<account>:<topic>``).

**Speed.** The function ships three optional accelerators (see its Makefile): records are read by msgspec, their
base64 by pybase64, events written by orjson; whatever they refuse is decided by ``json``/``binascii``, and property
tests hold each to the standard library's reading. The garbage collector is paused for an invocation.

Environment: ``SPLUNK_INDEX`` (optional) sets ``index`` on every event; empty means the HEC token's default.

One JSON summary line is printed per invocation (records in, ok/dropped/failed counts, failure reasons, records of
an unknown shape, events with a rejected thing name, events out, bytes in/out, duration). Payloads are never
logged.
"""

from __future__ import annotations

import binascii
import codecs
import gc
import json
import math
import os
import sys
import time
from collections import Counter
from operator import attrgetter, itemgetter
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from iot_defender import events, hec
from iot_defender.hec import orjson

try:  # optional accelerators, shipped with the function (see the Makefile); the standard library reads the same
    import msgspec
except ImportError:  # pragma: no cover - depends on the environment
    msgspec = None  # type: ignore[assignment]
try:
    import pybase64
except ImportError:  # pragma: no cover - depends on the environment
    pybase64 = None  # type: ignore[assignment]

RESULT_OK = "Ok"
RESULT_DROPPED = "Dropped"
RESULT_FAILED = "ProcessingFailed"

# Lambda's synchronous response limit is 6,291,456 bytes; 6,000,000 leaves headroom like AWS's blueprints.
RESPONSE_LIMIT_BYTES = 6_000_000

# ``api`` part of the ``source`` field (``aws:iot:<account>:<region>:<api>``): names the push channel.
API_METRICS = "metrics-export"
API_SNS_AUDIT = "sns-audit"
API_SNS_VIOLATION = "sns-violation"
# Reason prefix of a record whose shape this transform does not know (ProcessingFailed, counted as unknown_shape).
UNKNOWN_SHAPE = "unknown-shape"

# What the runtime wraps the entries in when it serialises the response (json.dumps default separators).
_RESPONSE_OVERHEAD = len(json.dumps({"records": []}))
_ENTRY_SEPARATOR = len(", ")
_MAX_REASON_SAMPLES = 5


class NotOurs(Exception):
    """Valid input of a shape this transform does not handle: the record is ``ProcessingFailed`` (kept in S3)."""


class Malformed(Exception):
    """The record cannot be read (encoding, JSON): the record is ``ProcessingFailed``."""


# ------------------------------------------------------------------------------------------ context


class Scope:
    """Account and region of an invocation (from the delivery stream ARN), overridable per message."""

    __slots__ = ("account_id", "region")

    def __init__(self, account_id: str, region: str):
        self.account_id = account_id
        self.region = region


def parse_arn(arn: Any) -> Tuple[str, str]:
    """``(region, account)`` of an ARN, or empty strings for whatever is missing or malformed."""
    if not isinstance(arn, str):
        return "", ""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return "", ""
    region, account = parts[3], parts[4]
    if not (account.isdigit() and len(account) == 12 and account.isascii()):
        account = ""
    if not _looks_like_region(region):
        region = ""
    return region, account


def _looks_like_region(region: str) -> bool:
    return 0 < len(region) <= 32 and region.isascii() and all(c.isalnum() or c == "-" for c in region)


_TOPIC_SCOPES: Dict[str, Tuple[str, str]] = {}


def _topic_scope(arn: Any) -> Tuple[str, str]:
    """:func:`parse_arn` of an SNS topic ARN, remembered (a batch's notifications come from a few topics)."""
    if type(arn) is not str:
        return parse_arn(arn)
    found = _TOPIC_SCOPES.get(arn)
    if found is None:
        if len(_TOPIC_SCOPES) >= 256:
            _TOPIC_SCOPES.clear()
        found = _TOPIC_SCOPES[arn] = parse_arn(arn)
    return found


def invocation_scope(event: Mapping[str, Any]) -> Scope:
    region, account = parse_arn(event.get("deliveryStreamArn"))
    if not region:
        fallback = event.get("region") or os.environ.get("AWS_REGION", "")
        region = fallback if isinstance(fallback, str) and _looks_like_region(fallback) else ""
    return Scope(account, region)


# ------------------------------------------------------------------------------------------ decoding


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# An integer of 19 digits or more (orjson reads one beyond 64 bits as a float, json keeps it exact) starts the text or
# follows one of ":,[", whitespace or "-"; with every digit read as 0 and whitespace and "-" as a space, it is one of
# these patterns. A string holding one only sends its document to json: never a wrong read, at worst a slower one.
_NUMBER_SHAPES = bytes.maketrans(b"123456789-\t\n\r", b"000000000    ")
_LONG_INTEGER = b"0" * 19
_LONG_INTEGER_AFTER = tuple(lead + _LONG_INTEGER for lead in (b":", b",", b"[", b" "))


def _may_hold_a_long_integer(raw: bytes) -> bool:
    shapes = raw.translate(_NUMBER_SHAPES)
    return shapes.startswith(_LONG_INTEGER) or any(pattern in shapes for pattern in _LONG_INTEGER_AFTER)


# msgspec reads what json reads, the same way (integers beyond 64 bits exact), and refuses NaN, Infinity and a float
# that overflows; it refuses some documents json reads (a lone surrogate, a BOM): json decides those.
_MSGSPEC_DECODE = None if msgspec is None else msgspec.json.Decoder().decode


def _fast_loads(raw: Union[str, bytes]) -> Any:
    """The document in ``raw`` as json reads it, by msgspec or orjson; :data:`_NOT_READ` when neither reads it
    (then json decides)."""
    if _MSGSPEC_DECODE is not None:
        try:
            return _MSGSPEC_DECODE(raw)
        except ValueError:  # msgspec.DecodeError, a UnicodeError: not JSON to msgspec
            return _NOT_READ
    if orjson is not None:
        try:
            data = raw if type(raw) is bytes else raw.encode("utf-8")
            if not _may_hold_a_long_integer(data):
                return orjson.loads(data)
        except (UnicodeEncodeError, orjson.JSONDecodeError):  # a lone surrogate, or not JSON to orjson
            pass
    return _NOT_READ


_NOT_READ = object()


def loads_strict(text: Union[str, bytes]) -> Any:
    """RFC 8259 JSON only: no NaN/Infinity, no float that overflows (HEC would reject the event).

    Read by msgspec where it is installed, else by orjson unless the text may hold an integer of 19 digits or more
    (orjson reads one beyond 64 bits as a float, json keeps it exact); whatever they refuse is read again by
    ``json``, which decides: the same documents are accepted, and read the same, either way."""
    document = _fast_loads(text)
    if document is not _NOT_READ:
        return document
    return _STRICT_DECODER.decode(text.decode("utf-8") if isinstance(text, bytes) else text)


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64decode_strict(data: str) -> bytes:
    """``binascii.a2b_base64(data, strict_mode=True)``, faster. pybase64 (where installed) reads what it validates
    (the alphabet and canonical padding only) the same way, in a fraction of the time; without it, canonical base64
    (what Firehose sends: the alphabet, a length that is a multiple of 4, at most two ``=`` at the end) is checked
    up front and read by the lenient (faster) decoder, which reads it the same. Anything else: the strict decoder."""
    if pybase64 is not None:
        try:
            return pybase64.b64decode(data, validate=True)
        except ValueError:  # binascii.Error, or not ASCII: the strict decoder decides
            pass
    raw = data.encode("ascii")
    unpadded = raw.rstrip(b"=")
    if len(raw) % 4 or len(raw) - len(unpadded) > 2 or unpadded.translate(None, _BASE64_ALPHABET):
        return binascii.a2b_base64(raw, strict_mode=True)
    return binascii.a2b_base64(raw)


def _b64encode(body: bytes) -> str:
    """Base64 of ``body`` as a string (no newline)."""
    if pybase64 is not None:
        return pybase64.b64encode_as_string(body)
    return binascii.b2a_base64(body, newline=False).decode("ascii")


def decode_record(data: Any) -> Any:
    """The JSON document in a Firehose record's base64 ``data``; :class:`Malformed` if it is not one."""
    if not isinstance(data, str):
        raise Malformed("data is not a base64 string")
    try:
        raw = b64decode_strict(data)
    except (binascii.Error, ValueError):
        raise Malformed("data is not valid base64") from None
    document = _fast_loads(raw)  # UTF-8 JSON without a BOM, as Firehose records are: read at once
    if document is not _NOT_READ:
        return document
    # The reading below accepts what json accepts and names what is wrong.
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("data is not UTF-8") from None
    if not text or text.isspace():
        raise Malformed("data is empty")
    try:
        return _STRICT_DECODER.decode(text)
    except (ValueError, RecursionError):
        raise Malformed("data is not JSON") from None


# ------------------------------------------------------------------------------------------ shaping


class Shaped:
    """One record's HEC body (its events' JSON objects back to back), what they are, how many, and how many had a
    thing name rejected."""

    __slots__ = ("body", "count", "kind", "rejected_names")

    def __init__(self, kind: str, body: bytes, count: int, rejected_names: int = 0):
        self.kind = kind
        self.body = body
        self.count = count
        self.rejected_names = rejected_names


def _message_kind(message: Mapping[str, Any]) -> Optional[str]:
    if "violationId" in message or "violationEventType" in message:
        return "violation"
    if "taskId" in message and ("auditDetails" in message or "taskStatus" in message):
        return "audit"
    return None


def _message_shaped(
    message: Mapping[str, Any], kind: str, account_id: str, region: str, index: Optional[str]
) -> Shaped:
    """The HEC events of a violation or audit message (the event model's, written by ``hec``)."""
    if kind == "violation":
        body, count, rejected = hec.violation_hec_body(
            message, account_id=account_id, region=region, api=API_SNS_VIOLATION, index=index
        )
        return Shaped(kind, body, count, rejected)
    audit_account = message.get("accountId")
    if type(audit_account) is str and audit_account.isdigit() and len(audit_account) == 12:
        account_id = audit_account
    body, count, rejected = hec.audit_hec_body(
        message, account_id=account_id, region=region, api=API_SNS_AUDIT, index=index
    )
    return Shaped(kind, body, count, rejected)


def _sns_shaped(envelope: Mapping[str, Any], scope: Scope, index: Optional[str]) -> Shaped:
    text = envelope.get("Message")
    if not isinstance(text, str):
        raise NotOurs("SNS notification without a string Message")
    try:
        message = loads_strict(text)
    except (ValueError, RecursionError):
        raise NotOurs("SNS notification whose Message is not JSON") from None
    if not isinstance(message, dict):
        raise NotOurs("SNS notification whose Message is not an object")
    kind = _message_kind(message)
    if kind is None:
        raise NotOurs("SNS notification of another kind")
    region, account = _topic_scope(envelope.get("TopicArn"))
    return _message_shaped(message, kind, account or scope.account_id, region or scope.region, index)


def shape(document: Any, scope: Scope, index: Optional[str] = None) -> Shaped:
    """The HEC events of one decoded record. Raises :class:`NotOurs` for other shapes and
    :class:`events.MalformedRecord` (or any error from the model) for a bad record of ours."""
    if not isinstance(document, dict):
        raise NotOurs("not a JSON object")
    if document.get("Type") == "Notification" and "Message" in document:
        return _sns_shaped(document, scope, index)
    if isinstance(document.get("metrics"), list):
        body, count, rejected = hec.metric_hec_body(
            document, account_id=scope.account_id, region=scope.region, api=API_METRICS, index=index
        )
        return Shaped("metrics", body, count, rejected)
    kind = _message_kind(document)  # SNS raw message delivery: the bare message
    if kind is not None:
        return _message_shaped(document, kind, scope.account_id, scope.region, index)
    raise NotOurs("unknown shape")


# ------------------------------------------------------------------------------------------ handler


def _entry(record_id: Any, result: str, data: Optional[str] = None) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"recordId": record_id, "result": result}
    if data is not None:
        entry["data"] = data
    return entry


# len(json.dumps(entry)) of the entries built here, computed rather than serialised (base64 data needs no escape).
_ENTRY_FIXED = {result: len(json.dumps(_entry(None, result))) - len("null") for result in (RESULT_OK, RESULT_FAILED)}
_ENTRY_FIXED[RESULT_DROPPED] = len(json.dumps(_entry(None, RESULT_DROPPED))) - len("null")
_DATA_OVERHEAD = len(json.dumps({"data": ""})) - len("{}") + len(", ")


def _json_size(value: Any) -> int:
    if type(value) is str:
        return len(json.encoder.encode_basestring_ascii(value))
    return len(json.dumps(value))


def _entry_size(entry: Mapping[str, Any], id_size: Optional[int] = None) -> int:
    """``len(json.dumps(entry))`` plus the separator before the next entry."""
    size = _ENTRY_FIXED[entry["result"]] + (_json_size(entry["recordId"]) if id_size is None else id_size)
    if "data" in entry:
        size += _DATA_OVERHEAD + len(entry["data"])
    return size + _ENTRY_SEPARATOR


class Outcome:
    """What became of one record: its response entry, why (kind or reason), events out, thing names rejected."""

    __slots__ = ("count", "entry", "reason", "rejected_names")

    def __init__(self, entry: Dict[str, Any], reason: str, count: int = 0, rejected_names: int = 0):
        self.entry = entry
        self.reason = reason
        self.count = count
        self.rejected_names = rejected_names


def transform_record(record: Any, scope: Scope, index: Optional[str]) -> Outcome:
    """The :class:`Outcome` of one input record. Never raises."""
    record_id = record.get("recordId") if isinstance(record, dict) else None
    try:
        shaped = shape(decode_record(record.get("data") if isinstance(record, dict) else None), scope, index)
        if not shaped.count:
            return Outcome(_entry(record_id, RESULT_DROPPED), f"{shaped.kind}:empty")
        data = _b64encode(shaped.body)
        return Outcome(_entry(record_id, RESULT_OK, data), shaped.kind, shaped.count, shaped.rejected_names)
    except NotOurs as exc:  # kept: Firehose writes it to the error prefix, from where it can be replayed
        return Outcome(_entry(record_id, RESULT_FAILED), f"{UNKNOWN_SHAPE}:{exc}")
    except Malformed as exc:
        return Outcome(_entry(record_id, RESULT_FAILED), f"malformed:{exc}")
    except events.MalformedRecord:
        return Outcome(_entry(record_id, RESULT_FAILED), "malformed:bad-field")
    except Exception as exc:  # an error in the model on hostile input must not lose the batch
        return Outcome(_entry(record_id, RESULT_FAILED), f"error:{type(exc).__name__}")


_RESULT, _RECORD_ID = itemgetter("result"), itemgetter("recordId")


def _exact_total(entries: List[Dict[str, Any]]) -> Optional[int]:
    """``len(json.dumps({"records": entries}))`` when every record id is a string (computed, not serialised),
    else None."""
    try:
        ids = sum(map(len, map(_ENCODE_ASCII, map(_RECORD_ID, entries))))
    except TypeError:  # a record id that is not a string
        return None
    fixed = sum(_ENTRY_FIXED[result] * count for result, count in Counter(map(_RESULT, entries)).items())
    datas = [len(entry["data"]) + _DATA_OVERHEAD for entry in entries if "data" in entry]
    separators = _ENTRY_SEPARATOR * (len(entries) - 1) if entries else 0
    return _RESPONSE_OVERHEAD + fixed + ids + sum(datas) + separators


_ENCODE_ASCII = json.encoder.encode_basestring_ascii


def fit_response(entries: List[Dict[str, Any]], limit: int = RESPONSE_LIMIT_BYTES) -> Tuple[List[int], int]:
    """Turn ``Ok`` entries that would push the serialised response over ``limit`` into ``ProcessingFailed``
    (without data), in order, keeping every entry that fits. Returns ``(positions changed, response bytes)``."""
    total = _exact_total(entries)
    if total is not None and total <= limit:
        return [], total
    id_sizes = [_json_size(entry["recordId"]) for entry in entries]
    minimal = [_ENTRY_FIXED[RESULT_FAILED] + size + _ENTRY_SEPARATOR for size in id_sizes]
    total = _RESPONSE_OVERHEAD + sum(minimal) - (_ENTRY_SEPARATOR if entries else 0)
    for position, entry in enumerate(entries):  # a Dropped entry is smaller than its reserve: room for any Ok one
        if entry["result"] == RESULT_DROPPED:
            total += _entry_size(entry, id_sizes[position]) - minimal[position]
    budget = limit - total
    overflowed: List[int] = []
    for position, entry in enumerate(entries):
        if entry["result"] != RESULT_OK:
            continue
        extra = _entry_size(entry, id_sizes[position]) - minimal[position]
        if extra <= budget:
            budget -= extra
            total += extra
        else:
            entries[position] = _entry(entry["recordId"], RESULT_FAILED)
            overflowed.append(position)
    return overflowed, total


_COUNT, _REJECTED, _REASON = attrgetter("count"), attrgetter("rejected_names"), attrgetter("reason")


class Tally:
    """The invocation's counts for its summary line."""

    def __init__(self) -> None:
        self.reasons: Counter = Counter()
        self.kinds: Counter = Counter()
        self.samples: Dict[str, List[str]] = {}
        self.events_out = 0
        self.rejected_names = 0
        self.unknown_shape = 0

    def add_all(self, outcomes: List[Outcome]) -> None:
        """:meth:`add` for each of ``outcomes``, in a few passes made in C for the usual (all ``Ok``) case."""
        self.events_out += sum(map(_COUNT, outcomes))
        self.rejected_names += sum(map(_REJECTED, outcomes))
        not_ok = [outcome for outcome in outcomes if outcome.entry["result"] != RESULT_OK]
        self.kinds.update(Counter(map(_REASON, outcomes)) - Counter(map(_REASON, not_ok)))
        for outcome in not_ok:
            self.reasons[outcome.reason] += 1
            if outcome.entry["result"] == RESULT_FAILED:
                self.unknown_shape += outcome.reason.startswith(UNKNOWN_SHAPE + ":")
                self.sample(outcome.reason, outcome.entry["recordId"])

    def add(self, outcome: Outcome) -> None:
        result = outcome.entry["result"]
        self.events_out += outcome.count
        self.rejected_names += outcome.rejected_names
        if result == RESULT_OK:
            self.kinds[outcome.reason] += 1
            return
        self.reasons[outcome.reason] += 1
        if result == RESULT_FAILED:
            self.unknown_shape += outcome.reason.startswith(UNKNOWN_SHAPE + ":")
            self.sample(outcome.reason, outcome.entry["recordId"])

    def overflowed(self, outcome: Outcome) -> None:
        self.events_out -= outcome.count
        self.reasons["response-size"] += 1
        self.sample("response-size", outcome.entry["recordId"])

    def sample(self, reason: str, record_id: Any) -> None:
        found = self.samples.setdefault(reason, [])
        if len(found) < _MAX_REASON_SAMPLES:
            found.append(str(record_id)[:80])


def _log(summary: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(summary, separators=(",", ":"), sort_keys=True) + "\n")
    sys.stdout.flush()


def lambda_handler(event: Any, context: Any) -> Dict[str, List[Dict[str, Any]]]:
    """The Firehose response for ``event`` (see the module docstring). Python's cyclic garbage collector is paused
    for the invocation and resumed after it (as it was): the transform makes no reference cycles, so it would only
    walk the batch's live objects, again and again, for nothing; anything cyclic is collected after the invocation."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _handle(event)
    finally:
        if paused:
            gc.enable()


def _handle(event: Any) -> Dict[str, List[Dict[str, Any]]]:
    started = time.perf_counter()
    if not isinstance(event, dict):
        event = {}
    records = event.get("records")
    if not isinstance(records, list):
        records = []
    scope = invocation_scope(event)
    index = os.environ.get("SPLUNK_INDEX", "").strip() or None

    tally = Tally()
    outcomes = [transform_record(record, scope, index) for record in records]
    tally.add_all(outcomes)
    entries = [outcome.entry for outcome in outcomes]
    overflowed, response_bytes = fit_response(entries)
    for position in overflowed:
        outcomes[position].entry = entries[position]
        tally.overflowed(outcomes[position])

    results = Counter(map(_RESULT, entries))
    _log(
        {
            "message": "firehose transform summary",
            "invocation_id": str(event.get("invocationId", ""))[:80],
            "records_in": len(records),
            "ok": results.get(RESULT_OK, 0),
            "dropped": results.get(RESULT_DROPPED, 0),
            "failed": results.get(RESULT_FAILED, 0),
            "ok_kinds": dict(tally.kinds),
            "not_ok_reasons": dict(tally.reasons),
            "unknown_shape": tally.unknown_shape,
            "rejected_thing_names": tally.rejected_names,
            "failed_record_ids": tally.samples,
            "events_out": tally.events_out,
            "bytes_in": sum(len(r["data"]) for r in records if isinstance(r, dict) and isinstance(r.get("data"), str)),
            "bytes_out": sum(len(entry["data"]) for entry in entries if "data" in entry),
            "response_bytes": response_bytes,
            "duration_ms": round((time.perf_counter() - started) * 1000.0, 3),
        }
    )
    return {"records": entries}
