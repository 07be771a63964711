"""Firehose data-transformation Lambda: Device Defender payloads in, Splunk HEC events out.

Firehose (DirectPut, Splunk destination, HEC *event* endpoint) invokes ``lambda_handler`` with a batch of
base64 records. Each record is one of:

- a Detect **metrics-export** message (``{"version", "metrics": [...]}``) from the IoT rule;
- an **SNS notification envelope** (``{"Type": "Notification", "TopicArn", "Message": "<json>"}``) from the
  audit topic's (or the alert topic's) Firehose subscription, carrying an audit-completed message or a Detect
  violation message; with raw message delivery on, the bare message itself;
- anything else.

Events are shaped by the add-on's own event model (``iot_defender.events``), never a copy of it, so an event
pushed through Firehose looks like the one the modular input pulls. Per record the result is:

- ``Ok``: ``data`` = base64 of the record's HEC events as concatenated, newline-free JSON objects (the HEC event
  endpoint accepts several events in one body, and Firehose sends each record as one body);
- ``Dropped``: valid JSON that is not ours (another shape, an SNS message of another kind, an empty export);
- ``ProcessingFailed``: malformed (not base64, not UTF-8 JSON, or one of ours with a bad datum/field). Firehose
  writes these records, with their original data, to the S3 backup bucket's ``processing-failed/`` prefix.

The handler never raises: every record is handled in its own ``try``, every ``recordId`` comes back exactly
once, and ``Dropped``/``ProcessingFailed`` entries carry no ``data`` (as AWS's own Firehose blueprints do).

**6 MB response limit.** Lambda refuses a synchronous response above 6,291,456 bytes, and Firehose would then
fail (and retry) the whole batch. The handler sizes the response exactly as the runtime serialises it and keeps
it under ``RESPONSE_LIMIT_BYTES`` (6,000,000, the headroom AWS's blueprints use): space for a minimal entry of
every record is reserved first, then each ``Ok`` record is kept in order if its events still fit; one that does
not fit becomes ``ProcessingFailed`` (reason ``response-size``) while later, smaller records may still fit. Nothing
is lost: Firehose keeps the original record in ``processing-failed/`` for replay. We do not re-ingest with
``PutRecordBatch`` (the CloudWatch-Logs blueprint's way): it needs write access to the stream from its own
processor and can loop or duplicate on retries. The template's processor buffer (1 MB) keeps a batch's worst
expansion well below the limit, so the path is a safety net (logged and counted), not a routine one.

**Account and region.** Metrics exports carry neither: they come from the invocation's ``deliveryStreamArn``
(the stream lives in the account/region of the IoT rule). Audit messages carry ``accountId``; SNS envelopes
carry ``TopicArn`` (``arn:<partition>:sns:<region>:<account>:<topic>``).

Environment: ``SPLUNK_INDEX`` (optional) sets ``index`` on every event; empty means the HEC token's default.

One JSON summary line is printed per invocation (records in, ok/dropped/failed counts, failure reasons, events
out, bytes in/out, duration). Payloads are never logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import sys
import time
from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Tuple

from iot_defender import events

RESULT_OK = "Ok"
RESULT_DROPPED = "Dropped"
RESULT_FAILED = "ProcessingFailed"

# Lambda's synchronous response limit is 6,291,456 bytes; 6,000,000 leaves headroom like AWS's blueprints.
RESPONSE_LIMIT_BYTES = 6_000_000

# ``api`` part of the ``source`` field (``aws:iot:<account>:<region>:<api>``): names the push channel.
API_METRICS = "metrics-export"
API_SNS_AUDIT = "sns-audit"
API_SNS_VIOLATION = "sns-violation"

# What the runtime wraps the entries in when it serialises the response (json.dumps default separators).
_RESPONSE_OVERHEAD = len(json.dumps({"records": []}))
_ENTRY_SEPARATOR = len(", ")
_MAX_REASON_SAMPLES = 5


class NotOurs(Exception):
    """Valid input of a shape this transform does not handle: the record is ``Dropped``."""


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


def loads_strict(text: Any) -> Any:
    """RFC 8259 JSON only: no NaN/Infinity, no float that overflows (HEC would reject the event)."""
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def decode_record(data: Any) -> Any:
    """The JSON document in a Firehose record's base64 ``data``; :class:`Malformed` if it is not one."""
    if not isinstance(data, str):
        raise Malformed("data is not a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed("data is not valid base64") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Malformed("data is not UTF-8") from None
    if not text.strip():
        raise Malformed("data is empty")
    try:
        return loads_strict(text)
    except (ValueError, RecursionError):
        raise Malformed("data is not JSON") from None


# ------------------------------------------------------------------------------------------ shaping


def _message_kind(message: Mapping[str, Any]) -> Optional[str]:
    if "violationId" in message or "violationEventType" in message:
        return "violation"
    if "taskId" in message and ("auditDetails" in message or "taskStatus" in message):
        return "audit"
    return None


def _message_events(message: Mapping[str, Any], kind: str, account_id: str, region: str) -> List[events.Event]:
    if kind == "violation":
        return [events.violation_event(message, account_id=account_id, region=region, api=API_SNS_VIOLATION)]
    audit_account = message.get("accountId")
    if isinstance(audit_account, str) and audit_account.isdigit() and len(audit_account) == 12:
        account_id = audit_account
    return events.audit_task_events(message, account_id=account_id, region=region, api=API_SNS_AUDIT)


def _sns_events(envelope: Mapping[str, Any], scope: Scope) -> Tuple[str, List[events.Event]]:
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
    region, account = parse_arn(envelope.get("TopicArn"))
    return kind, _message_events(message, kind, account or scope.account_id, region or scope.region)


def shape(document: Any, scope: Scope) -> Tuple[str, List[events.Event]]:
    """``(kind, events)`` for one decoded record. Raises :class:`NotOurs` for other shapes and
    :class:`events.MalformedRecord` (or any error from the model) for a bad record of ours."""
    if not isinstance(document, dict):
        raise NotOurs("not a JSON object")
    if document.get("Type") == "Notification" and "Message" in document:
        return _sns_events(document, scope)
    if isinstance(document.get("metrics"), list):
        return "metrics", events.metric_events(
            document, account_id=scope.account_id, region=scope.region, api=API_METRICS
        )
    kind = _message_kind(document)  # SNS raw message delivery: the bare message
    if kind is not None:
        return kind, _message_events(document, kind, scope.account_id, scope.region)
    raise NotOurs("unknown shape")


def _dumps(payload: Dict[str, Any]) -> bytes:
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: keep it escaped
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def encode_events(shaped: List[events.Event], index: Optional[str]) -> bytes:
    """HEC event-endpoint body: the events' JSON objects back to back, no newline anywhere."""
    return b"".join(_dumps(event.to_hec(index=index)) for event in shaped)


# ------------------------------------------------------------------------------------------ handler


def _entry(record_id: Any, result: str, data: Optional[str] = None) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"recordId": record_id, "result": result}
    if data is not None:
        entry["data"] = data
    return entry


def _entry_size(entry: Mapping[str, Any]) -> int:
    return len(json.dumps(entry)) + _ENTRY_SEPARATOR


def transform_record(record: Any, scope: Scope, index: Optional[str]) -> Tuple[Dict[str, Any], str, int]:
    """``(response entry, outcome reason, event count)`` for one input record. Never raises."""
    record_id = record.get("recordId") if isinstance(record, dict) else None
    try:
        document = decode_record(record.get("data") if isinstance(record, dict) else None)
        kind, shaped = shape(document, scope)
        if not shaped:
            return _entry(record_id, RESULT_DROPPED), f"{kind}:empty", 0
        body = encode_events(shaped, index)
        return _entry(record_id, RESULT_OK, base64.b64encode(body).decode("ascii")), kind, len(shaped)
    except NotOurs:
        return _entry(record_id, RESULT_DROPPED), "not-ours", 0
    except Malformed as exc:
        return _entry(record_id, RESULT_FAILED), f"malformed:{exc}", 0
    except events.MalformedRecord:
        return _entry(record_id, RESULT_FAILED), "malformed:bad-field", 0
    except Exception as exc:  # an error in the model on hostile input must not lose the batch
        return _entry(record_id, RESULT_FAILED), f"error:{type(exc).__name__}", 0


def fit_response(entries: List[Dict[str, Any]], limit: int = RESPONSE_LIMIT_BYTES) -> Tuple[List[int], int]:
    """Turn ``Ok`` entries that would push the serialised response over ``limit`` into ``ProcessingFailed``
    (without data), in order, keeping every entry that fits. Returns ``(positions changed, response bytes)``."""
    minimal = [_entry_size(_entry(e["recordId"], RESULT_FAILED)) for e in entries]
    total = _RESPONSE_OVERHEAD + sum(minimal) - (_ENTRY_SEPARATOR if entries else 0)
    budget = limit - total
    overflowed: List[int] = []
    for position, entry in enumerate(entries):
        if entry["result"] == RESULT_FAILED:
            continue
        extra = _entry_size(entry) - minimal[position]  # negative for a Dropped entry
        if entry["result"] != RESULT_OK or extra <= budget:
            budget -= extra
            total += extra
        else:
            entries[position] = _entry(entry["recordId"], RESULT_FAILED)
            overflowed.append(position)
    return overflowed, total


def _log(summary: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(summary, separators=(",", ":"), sort_keys=True) + "\n")
    sys.stdout.flush()


def lambda_handler(event: Any, context: Any) -> Dict[str, List[Dict[str, Any]]]:
    started = time.perf_counter()
    if not isinstance(event, dict):
        event = {}
    records = event.get("records")
    if not isinstance(records, list):
        records = []
    scope = invocation_scope(event)
    index = os.environ.get("SPLUNK_INDEX", "").strip() or None

    entries: List[Dict[str, Any]] = []
    reasons: Counter = Counter()
    kinds: Counter = Counter()
    samples: Dict[str, List[str]] = {}
    event_counts: List[int] = []
    bytes_in = 0
    for record in records:
        if isinstance(record, dict) and isinstance(record.get("data"), str):
            bytes_in += len(record["data"])
        entry, reason, count = transform_record(record, scope, index)
        entries.append(entry)
        event_counts.append(count)
        if entry["result"] == RESULT_OK:
            kinds[reason] += 1
        else:
            reasons[reason] += 1
            if entry["result"] == RESULT_FAILED:
                samples.setdefault(reason, [])
                if len(samples[reason]) < _MAX_REASON_SAMPLES:
                    samples[reason].append(str(entry["recordId"])[:80])

    overflowed, response_bytes = fit_response(entries)
    for position in overflowed:
        event_counts[position] = 0
        reasons["response-size"] += 1
        samples.setdefault("response-size", [])
        if len(samples["response-size"]) < _MAX_REASON_SAMPLES:
            samples["response-size"].append(str(entries[position]["recordId"])[:80])

    response = {"records": entries}
    results = Counter(entry["result"] for entry in entries)
    _log(
        {
            "message": "firehose transform summary",
            "invocation_id": str(event.get("invocationId", ""))[:80],
            "records_in": len(records),
            "ok": results.get(RESULT_OK, 0),
            "dropped": results.get(RESULT_DROPPED, 0),
            "failed": results.get(RESULT_FAILED, 0),
            "ok_kinds": dict(kinds),
            "not_ok_reasons": dict(reasons),
            "failed_record_ids": samples,
            "events_out": sum(event_counts),
            "bytes_in": bytes_in,
            "bytes_out": sum(len(entry.get("data", "")) for entry in entries),
            "response_bytes": response_bytes,
            "duration_ms": round((time.perf_counter() - started) * 1000.0, 3),
        }
    )
    return response
