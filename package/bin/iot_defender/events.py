"""The event model: every event the add-on indexes is shaped here, whichever way it travels.

Pull (modular inputs, boto3 answers with ``datetime`` values), push (Firehose transform Lambda, SNS and
metrics-export payloads with epoch-millisecond integers) and tests all call these builders, so an
``aws:iot:defender:violation`` event looks the same whether it came through Firehose or the input.

Rules every builder follows:
- the event body is the API's own record (its field names kept) plus ``account_id`` and ``region``;
- every datetime becomes ISO-8601 UTC with milliseconds (``2025-11-22T10:10:00.000Z``);
- ``time`` (Splunk ``_time``) comes from the record's own time, never from ingest time;
- a record without the fields that identify it raises :class:`MalformedRecord` with a message that says
  which field, so callers can count and report it and carry on with the rest.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

# The event model's neutraliser, time and text helpers live in their own modules and are part of its interface.
from .names import NEUTRAL_ATTRIBUTE_PREFIX as NEUTRAL_ATTRIBUTE_PREFIX
from .names import NEUTRAL_CLIENT_ID_PREFIX as NEUTRAL_CLIENT_ID_PREFIX
from .names import NEUTRAL_GROUP_PREFIX as NEUTRAL_GROUP_PREFIX
from .names import NEUTRAL_THING_NAME_PREFIX as NEUTRAL_THING_NAME_PREFIX
from .names import REJECTED_ATTRIBUTES_FIELD as REJECTED_ATTRIBUTES_FIELD
from .names import REJECTED_CLIENT_IDS_FIELD as REJECTED_CLIENT_IDS_FIELD
from .names import REJECTED_THING_NAME_FIELD as REJECTED_THING_NAME_FIELD
from .names import THING_NAME_PATTERN as THING_NAME_PATTERN
from .names import checked_attributes, checked_client_ids, checked_thing_name
from .names import neutral_thing_name as neutral_thing_name
from .names import neutral_value as neutral_value
from .names import valid_thing_name as valid_thing_name
from .text import markdown_text as markdown_text
from .text import plain_text as plain_text
from .text import title_text as title_text
from .times import to_datetime as to_datetime
from .times import to_epoch as to_epoch
from .times import to_epoch_ms as to_epoch_ms
from .times import to_iso as to_iso

SOURCETYPE_AUDIT_FINDING = "aws:iot:defender:audit:finding"
SOURCETYPE_AUDIT_TASK = "aws:iot:defender:audit:task"
SOURCETYPE_VIOLATION = "aws:iot:defender:violation"
SOURCETYPE_ACTIVE_VIOLATION = "aws:iot:defender:active_violation"
SOURCETYPE_METRIC = "aws:iot:defender:metric"
SOURCETYPE_THING = "aws:iot:thing"
SOURCETYPE_ACTION = "aws:iot:defender:action"

ALL_SOURCETYPES = (
    SOURCETYPE_AUDIT_FINDING,
    SOURCETYPE_AUDIT_TASK,
    SOURCETYPE_VIOLATION,
    SOURCETYPE_ACTIVE_VIOLATION,
    SOURCETYPE_METRIC,
    SOURCETYPE_THING,
    SOURCETYPE_ACTION,
)

VIOLATION_EVENT_TYPES = ("in-alarm", "alarm-cleared", "alarm-invalidated")

# Fields that hold a point in time in Device Defender records. boto3 hands us datetimes for them; SNS and
# the metrics export hand us epoch integers (milliseconds, sometimes seconds).
TIME_FIELDS = frozenset(
    {
        "violationEventTime",
        "violationStartTime",
        "lastViolationTime",
        "taskStartTime",
        "findingTime",
        "timestamp",
        "creationDate",
        "lastModifiedDate",
        "notBefore",
        "notAfter",
        "acceptDate",
        "rejectDate",
        "transferDate",
    }
)

# One encoder for every event body: building a JSONEncoder per call costs more than the encoding of a small body.
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class MalformedRecord(ValueError):
    """A record that cannot become an event. The message names the record kind and the missing/bad field;
    ``reason`` is one word for the run summary's ``skipped_reasons`` (missing_field, wrong_type, invalid_name,
    too_deep, too_large, bad_time, malformed)."""

    def __init__(self, message: str, *, reason: str = "malformed"):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Event:
    """One Splunk event: metadata plus the JSON body."""

    time: float
    sourcetype: str
    source: str
    data: Dict[str, Any]
    host: Optional[str] = None
    index: Optional[str] = None

    def epoch_ms(self) -> float:
        """``time`` to the millisecond, cut the same way as the ISO strings in the body (never rounded up)."""
        return to_epoch_ms(self.time)

    def body(self) -> str:
        """The event text as indexed: compact JSON with stable key order."""
        return _ENCODER.encode(self.data)

    def to_hec(self, index: Optional[str] = None) -> Dict[str, Any]:
        """A payload for HEC's ``/services/collector/event`` endpoint."""
        payload: Dict[str, Any] = {
            "time": self.epoch_ms(),
            "sourcetype": self.sourcetype,
            "source": self.source,
            "event": self.data,
        }
        if self.host:
            payload["host"] = self.host
        if index or self.index:
            payload["index"] = index or self.index
        return payload

    def to_record(self, index: Optional[str] = None) -> Dict[str, Any]:
        """The demo/test record: what Splunk would index, as one JSON-able dict."""
        return {
            "time": self.epoch_ms(),
            "sourcetype": self.sourcetype,
            "source": self.source,
            "host": self.host,
            "index": index or self.index,
            "event": self.data,
        }


def thing_name_rejected(event: Event) -> bool:
    """True when the event's thing name was invalid and replaced by its neutral stand-in."""
    return REJECTED_THING_NAME_FIELD in event.data


def neutralised(event: Event) -> bool:
    """True when any device-influenced name of the event was replaced by a stand-in (for the run summary)."""
    data = event.data
    return REJECTED_THING_NAME_FIELD in data or REJECTED_CLIENT_IDS_FIELD in data or REJECTED_ATTRIBUTES_FIELD in data


# Deepest nesting a record may have: Device Defender records nest a handful of levels; a record nested deeper is
# refused (MalformedRecord, reason too_deep) before recursion could hit Python's limit and fail the whole page.
MAX_DEPTH = 32


def normalize(value: Any, key: Optional[str] = None, _depth: int = 0) -> Any:
    """Deep copy of an API record with datetimes (and epoch numbers in known time fields) as ISO strings.

    Raises :class:`MalformedRecord` (reason ``too_deep``) for a record nested deeper than :data:`MAX_DEPTH`."""
    kind = type(value)
    if kind is dict:
        if _depth >= MAX_DEPTH:
            raise _too_deep()
        return {k: normalize(v, k, _depth + 1) for k, v in value.items() if k != "ResponseMetadata"}
    if kind is list:
        if _depth >= MAX_DEPTH:
            raise _too_deep()
        return [normalize(v, None, _depth + 1) for v in value]
    if kind is str or value is None or kind is bool:
        return value
    if kind is float or kind is int:
        return to_iso(value) if key in TIME_FIELDS else value
    if isinstance(value, _dt.datetime):
        return to_iso(value)
    if isinstance(value, Mapping):
        return normalize({str(k): v for k, v in value.items()}, key, _depth)
    if isinstance(value, tuple):
        return normalize(list(value), key, _depth)
    return value


def _too_deep() -> MalformedRecord:
    return MalformedRecord(f"record: nested deeper than {MAX_DEPTH} levels", reason="too_deep")


def _is_mapping(value: Any) -> bool:
    """``isinstance(value, Mapping)``, with the common case (a dict) first: the ABC check costs ten times more."""
    return type(value) is dict or isinstance(value, Mapping)


def _require(record: Mapping[str, Any], kind: str, fields: Iterable[str]) -> None:
    if not _is_mapping(record):
        raise MalformedRecord(f"{kind}: expected an object, got {type(record).__name__}", reason="wrong_type")
    for name in fields:
        value = record.get(name)
        if value is None or value == "":
            raise MalformedRecord(f"{kind}: required field '{name}' is missing", reason="missing_field")


def _time_of(record: Mapping[str, Any], kind: str, name: str) -> float:
    try:
        return to_epoch(record[name])
    except (KeyError, ValueError, OverflowError, TypeError) as exc:
        raise MalformedRecord(f"{kind}: field '{name}' is not a time ({exc})", reason="bad_time") from None


def source_for(account_id: str, region: str, api: str) -> str:
    """``source`` names where an event came from: account, region and the API (or push channel)."""
    return f"aws:iot:{account_id or 'unknown'}:{region or 'unknown'}:{api}"


def _with_scope(data: Dict[str, Any], account_id: str, region: str) -> Dict[str, Any]:
    data["account_id"] = account_id
    data["region"] = region
    return data


# ---------------------------------------------------------------------------------------- detect


def violation_key(record: Mapping[str, Any]) -> Tuple[str, str, str]:
    """Identity of one violation event: the same alarm transition seen twice has the same key."""
    _require(record, "violation event", ("violationId", "violationEventType", "violationEventTime"))
    return (
        str(record["violationId"]),
        str(record["violationEventType"]),
        to_iso(record["violationEventTime"]),
    )


def violation_event(
    record: Mapping[str, Any], *, account_id: str, region: str, api: str = "ListViolationEvents"
) -> Event:
    """One ``aws:iot:defender:violation`` event from a ListViolationEvents item or a violation SNS message."""
    kind = "violation event"
    _require(record, kind, ("violationId", "thingName", "violationEventType", "violationEventTime"))
    if record["violationEventType"] not in VIOLATION_EVENT_TYPES:
        raise MalformedRecord(f"{kind}: unknown violationEventType {record['violationEventType']!r}")
    when = _time_of(record, kind, "violationEventTime")
    data = _with_scope(normalize(record), account_id, region)
    host = checked_thing_name(data, "thingName")
    return Event(
        time=when,
        sourcetype=SOURCETYPE_VIOLATION,
        source=source_for(account_id, region, api),
        host=host,
        data=data,
    )


def violation_event_key(event: Event) -> str:
    """:func:`violation_key` of an already shaped violation event, as one string (no second time parse)."""
    data = event.data
    return f"{data['violationId']}|{data['violationEventType']}|{data['violationEventTime']}"


def active_violation_event(record: Mapping[str, Any], *, account_id: str, region: str, snapshot_time: Any) -> Event:
    """One row of an active-violations snapshot. ``_time`` is the snapshot's time, so the latest snapshot
    is one ``earliest``/``latest`` window away; the alarm's own times stay in the body."""
    kind = "active violation"
    _require(record, kind, ("violationId", "thingName"))
    data = _with_scope(normalize(record), account_id, region)
    data["snapshot_time"] = to_iso(snapshot_time)
    host = checked_thing_name(data, "thingName")
    return Event(
        time=to_epoch(snapshot_time),
        sourcetype=SOURCETYPE_ACTIVE_VIOLATION,
        source=source_for(account_id, region, "ListActiveViolations"),
        host=host,
        data=data,
    )


# ----------------------------------------------------------------------------------------- audit

SNS_COUNT_TO_STATISTIC = {
    "totalChecksCount": "totalChecks",
    "compliantChecksCount": "compliantChecks",
    "nonCompliantChecksCount": "nonCompliantChecks",
    "failedChecksCount": "failedChecks",
    "canceledChecksCount": "canceledChecks",
}

FINISHED_TASK_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED"})


# What an audit task may hold (DescribeAuditTask's model; the SNS notification uses the same values). Each check
# becomes an event carrying the task's fields, so these bounds also bound how much a message expands in the
# Firehose transform (infra/ingestion/template.yaml sizes the processor buffer from them).
AUDIT_TASK_STATUSES = ("IN_PROGRESS", "COMPLETED", "FAILED", "CANCELED")
AUDIT_TASK_TYPES = ("ON_DEMAND_AUDIT_TASK", "SCHEDULED_AUDIT_TASK")
MAX_AUDIT_CHECKS = 100  # Device Defender has about 25 audit checks; each task lists each at most once
_AUDIT_TASK_ID = re.compile(r"[a-zA-Z0-9_-]{1,40}")
_AUDIT_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")  # scheduled audit names and check names


def _check_audit_fields(merged: Mapping[str, Any], kind: str) -> None:
    task_id, status, task_type = merged["taskId"], merged["taskStatus"], merged.get("taskType")
    if type(task_id) is not str or _AUDIT_TASK_ID.fullmatch(task_id) is None:
        raise MalformedRecord(f"{kind}: taskId is not an audit task id ([a-zA-Z0-9_-], 1-40)", reason="wrong_type")
    if status not in AUDIT_TASK_STATUSES:
        raise MalformedRecord(f"{kind}: taskStatus is not one of {', '.join(AUDIT_TASK_STATUSES)}", reason="wrong_type")
    if task_type is not None and task_type not in AUDIT_TASK_TYPES:
        raise MalformedRecord(f"{kind}: taskType is not one of {', '.join(AUDIT_TASK_TYPES)}", reason="wrong_type")
    name = merged.get("scheduledAuditName")
    if name is not None and (type(name) is not str or _AUDIT_NAME.fullmatch(name) is None):
        raise MalformedRecord(f"{kind}: scheduledAuditName is not an audit name", reason="wrong_type")


def _audit_checks(details: Any, kind: str) -> List[Dict[str, Any]]:
    """The checks of a task (a map by name from DescribeAuditTask, a list from SNS): objects with distinct names of
    the audit-name pattern, at most :data:`MAX_AUDIT_CHECKS`."""
    if _is_mapping(details):
        if not all(_is_mapping(detail) for detail in details.values()):
            raise MalformedRecord(f"{kind}: auditDetails holds an entry that is not an object", reason="wrong_type")
        checks = [dict(detail, checkName=name) for name, detail in sorted(details.items())]
    elif isinstance(details, list):
        checks = [dict(detail) for detail in details if _is_mapping(detail)]
        if len(checks) != len(details):
            raise MalformedRecord(f"{kind}: auditDetails holds an entry that is not an object", reason="wrong_type")
        if any(not check.get("checkName") for check in checks):
            raise MalformedRecord(f"{kind}: an auditDetails entry has no checkName", reason="missing_field")
    else:
        raise MalformedRecord(f"{kind}: auditDetails is neither an object nor a list", reason="wrong_type")
    _check_check_names([check["checkName"] for check in checks], kind)
    return checks


def _check_check_names(names: List[Any], kind: str) -> None:
    if len(names) > MAX_AUDIT_CHECKS:
        raise MalformedRecord(f"{kind}: more than {MAX_AUDIT_CHECKS} checks", reason="too_large")
    if not all(type(n) is str and _AUDIT_NAME.fullmatch(n) for n in names) or len(set(names)) != len(names):
        raise MalformedRecord(f"{kind}: check names are not distinct audit check names", reason="wrong_type")


def check_audit_bounds(message: Mapping[str, Any]) -> None:
    """What :func:`normalize_audit_task` refuses in a notification whose ``auditDetails`` is a list of objects with
    a ``checkName`` (the HEC fast path's case), without copying it: raises :class:`MalformedRecord` alike."""
    kind = "audit task"
    _check_audit_fields(message, kind)
    _check_check_names([detail["checkName"] for detail in message.get("auditDetails") or ()], kind)


def normalize_audit_task(task: Mapping[str, Any], task_id: Optional[str] = None) -> Dict[str, Any]:
    """One shape for an audit task from DescribeAuditTask (statistics object, checks keyed by name) or from
    an audit SNS notification (flat ``*ChecksCount`` fields, checks as a list)."""
    kind = "audit task"
    if not _is_mapping(task):
        raise MalformedRecord(f"{kind}: expected an object, got {type(task).__name__}", reason="wrong_type")
    merged = dict(task)
    if task_id:
        merged.setdefault("taskId", task_id)
    _require(merged, kind, ("taskId", "taskStatus", "taskStartTime"))
    _check_audit_fields(merged, kind)
    statistics = dict(merged.get("taskStatistics") or {})
    for sns_name, statistic in SNS_COUNT_TO_STATISTIC.items():
        if sns_name in merged and statistic not in statistics:
            statistics[statistic] = merged[sns_name]
    return {
        "taskId": merged["taskId"],
        "taskStatus": merged["taskStatus"],
        "taskType": merged.get("taskType"),
        "taskStartTime": merged["taskStartTime"],
        "scheduledAuditName": merged.get("scheduledAuditName"),
        "taskStatistics": statistics,
        "checks": _audit_checks(merged.get("auditDetails") or {}, kind),
    }


def audit_task_events(
    task: Mapping[str, Any],
    *,
    account_id: str,
    region: str,
    task_id: Optional[str] = None,
    api: str = "DescribeAuditTask",
) -> List[Event]:
    """One ``record_type=task`` event for the audit run plus one ``record_type=check`` event per check."""
    shaped = normalize_audit_task(task, task_id)
    when = _time_of(shaped, "audit task", "taskStartTime")
    source = source_for(account_id, region, api)
    common = {
        "taskId": shaped["taskId"],
        "taskStatus": shaped["taskStatus"],
        "taskType": shaped["taskType"],
        "taskStartTime": to_iso(shaped["taskStartTime"]),
        "scheduledAuditName": shaped["scheduledAuditName"],
    }
    common = {k: v for k, v in common.items() if v is not None}
    checks = [normalize(check) for check in shaped["checks"]]
    task_data = dict(common, record_type="task", taskStatistics=shaped["taskStatistics"], auditDetails=checks)
    events = [
        Event(
            time=when,
            sourcetype=SOURCETYPE_AUDIT_TASK,
            source=source,
            host=account_id,
            data=_with_scope(task_data, account_id, region),
        )
    ]
    for check in checks:
        events.append(
            Event(
                time=when,
                sourcetype=SOURCETYPE_AUDIT_TASK,
                source=source,
                host=account_id,
                data=_with_scope(dict(common, record_type="check", **check), account_id, region),
            )
        )
    return events


def audit_finding_event(
    finding: Mapping[str, Any], *, account_id: str, region: str, api: str = "ListAuditFindings"
) -> Event:
    """One ``aws:iot:defender:audit:finding`` event: one non-compliant resource of one check run."""
    kind = "audit finding"
    _require(finding, kind, ("findingId", "checkName"))
    time_field = "findingTime" if finding.get("findingTime") is not None else "taskStartTime"
    _require(finding, kind, (time_field,))
    when = _time_of(finding, kind, time_field)
    data = _with_scope(normalize(finding), account_id, region)
    data.setdefault("isSuppressed", False)
    checked_client_ids(data)
    return Event(
        time=when,
        sourcetype=SOURCETYPE_AUDIT_FINDING,
        source=source_for(account_id, region, api),
        host=account_id,
        data=data,
    )


# ------------------------------------------------------------------------------------- inventory


def thing_event(
    thing: Mapping[str, Any],
    *,
    account_id: str,
    region: str,
    snapshot_time: Any,
    groups: Optional[List[str]] = None,
    certificates: Optional[List[Mapping[str, Any]]] = None,
) -> Event:
    """One ``aws:iot:thing`` inventory event: the thing with its groups and certificate statuses."""
    _require(thing, "thing", ("thingName",))
    data = _with_scope(normalize(thing), account_id, region)
    data.setdefault("attributes", {})
    data["thingGroups"] = sorted(groups or [])
    data["certificates"] = [normalize(cert) for cert in (certificates or [])]
    data["snapshot_time"] = to_iso(snapshot_time)
    host = checked_thing_name(data, "thingName")
    checked_attributes(data)
    return Event(
        time=to_epoch(snapshot_time),
        sourcetype=SOURCETYPE_THING,
        source=source_for(account_id, region, "ListThings"),
        host=host,
        data=data,
    )


# --------------------------------------------------------------------------------------- metrics


def _metric_identity(datum: Mapping[str, Any]) -> Tuple[str, str, Any, str]:
    dimension = datum.get("dimension")
    dimension_key = json.dumps(dimension, sort_keys=True) if dimension else ""
    return (str(datum["thing"]), str(datum["name"]), datum["timestamp"], dimension_key)


def _check_metric_datum(datum: Any, position: int) -> None:
    kind = f"metric datum #{position}"
    _require(datum, kind, ("name", "thing", "timestamp"))
    if not _is_mapping(datum.get("value")):
        raise MalformedRecord(f"{kind}: field 'value' must be an object")
    if isinstance(datum["timestamp"], bool) or not isinstance(datum["timestamp"], (int, float)):
        raise MalformedRecord(f"{kind}: field 'timestamp' must be an epoch number")
    version = datum.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, (int, float)):
        raise MalformedRecord(f"{kind}: field 'version' must be a number")


def metric_events(
    message: Mapping[str, Any], *, account_id: str, region: str, api: str = "metrics-export"
) -> List[Event]:
    """One ``aws:iot:defender:metric`` event per datum of a Device Defender metrics-export message.

    Duplicate datums (same thing, metric, timestamp and dimension) keep the highest ``version``, as the
    export documentation says. Any malformed datum makes the whole message malformed: the caller fails the
    message as a unit (e.g. Firehose ``ProcessingFailed``) rather than indexing part of it.
    """
    if not isinstance(message, Mapping) or not isinstance(message.get("metrics"), list):
        raise MalformedRecord("metrics export: expected an object with a 'metrics' list")
    best: Dict[Tuple[str, str, Any, str], Mapping[str, Any]] = {}
    for position, datum in enumerate(message["metrics"]):
        _check_metric_datum(datum, position)
        identity = _metric_identity(datum)
        kept = best.get(identity)
        if kept is None or datum.get("version", 0) > kept.get("version", 0):
            best[identity] = datum
    source = source_for(account_id, region, api)
    return [metric_event(datum, account_id=account_id, region=region, source=source) for datum in best.values()]


def metric_event(datum: Mapping[str, Any], *, account_id: str, region: str, source: Optional[str] = None) -> Event:
    """One metric datum (export shape: name, thing, value, version, timestamp[, dimension])."""
    _check_metric_datum(datum, 0)
    data = _with_scope(normalize(datum), account_id, region)
    host = checked_thing_name(data, "thing")
    return Event(
        time=to_epoch(datum["timestamp"]),
        sourcetype=SOURCETYPE_METRIC,
        source=source or source_for(account_id, region, "metrics-export"),
        host=host,
        data=data,
    )


# --------------------------------------------------------------------------------------- actions

ACTION_OUTCOMES = (
    "done",
    "already-in-state",
    "dry-run",
    # done, but with a caveat the analyst must act on (e.g. the quarantine record could not be stored, so release
    # cannot undo certificate changes by itself); the message says why
    "warning",
    "refused-protected",
    "refused-invalid",
    "refused-limit",
    # the user who triggered the run lacks the capability iot_defender_respond
    "refused-unauthorized",
    # the group or policy the action would change is not the add-on's (no tag, or not its own deny document):
    # refused before any write
    "refused-not-owned",
    # another run holds the thing (a quarantine or release in progress, or it wrote the thing first): this run
    # wrote nothing; the other run's event says how the thing ended
    "conflict",
    "failed",
)


@dataclass
class ActionResult:
    """What an alert action did for one result row; becomes one ``aws:iot:defender:action`` event."""

    action: str
    outcome: str
    thing_name: Optional[str] = None
    message: str = ""
    error_code: Optional[str] = None
    account_id: Optional[str] = None
    region: Optional[str] = None
    orig_sid: Optional[str] = None
    orig_rid: Optional[str] = None
    search_name: Optional[str] = None
    details: Dict[str, Any] = field(default_factory=dict)
    # The alert run itself (its sid; the row's rid) and whether it was a dry run.
    sid: Optional[str] = None
    rid: Optional[str] = None
    dry_run: Optional[bool] = None

    def __post_init__(self) -> None:
        if self.outcome not in ACTION_OUTCOMES:
            raise ValueError(f"unknown action outcome {self.outcome!r}")

    @property
    def ok(self) -> bool:
        """True when the row ended as asked (changed, already so, or planned in a dry run)."""
        return self.outcome in ("done", "already-in-state", "dry-run")


def action_event(result: ActionResult, *, when: Any) -> Event:
    """One ``aws:iot:defender:action`` event: an alert action's result for one row (ES adaptive response).

    ``action_status`` is the CAM vocabulary (success/failure) next to the finer ``outcome``; ``dest`` names the
    device for CIM.
    """
    data: Dict[str, Any] = {
        "action": result.action,
        "outcome": result.outcome,
        "action_status": "success" if result.ok else "failure",
        "thing_name": result.thing_name,
        "dest": result.thing_name,
        "message": result.message,
        "error_code": result.error_code,
        "account_id": result.account_id,
        "region": result.region,
        "orig_sid": result.orig_sid,
        "orig_rid": result.orig_rid,
        "sid": result.sid,
        "rid": result.rid,
        "search_name": result.search_name,
        "dry_run": result.dry_run,
        "details": normalize(result.details),
        "action_time": to_iso(when),
    }
    data = {k: v for k, v in data.items() if v is not None}
    host = None
    if result.thing_name is not None:
        host = checked_thing_name(data, "thing_name")  # a row's text: neutralised like any device name
        data["dest"] = host
    return Event(
        time=to_epoch(when),
        sourcetype=SOURCETYPE_ACTION,
        source=source_for(result.account_id or "", result.region or "", result.action),
        host=host,
        data=data,
    )
