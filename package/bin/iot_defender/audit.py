"""Device Defender Audit source: audit tasks by time window, per-check results, one event per finding.

Driven by tasks, not by finding time: ``ListAuditTasks`` over the window → ``DescribeAuditTask`` → for each
non-compliant check ``ListAuditFindings(taskId, checkName)``. Finished tasks are remembered and never read
again; tasks still running are revisited on later runs until they finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import events
from .aws import AwsSession
from .checkpoint import DAY, InputState, advance_to, next_window, utc_datetime
from .events import FINISHED_TASK_STATUSES, MalformedRecord
from .params import boolean, integer
from .pipeline import Page, RunScope

AUDIT_RETENTION_SECONDS = 90 * DAY
# Scheduled audits can take hours to finish; re-list a day behind the high-water mark so a task that
# appears late in ListAuditTasks is still found. Finished task ids make the overlap free.
TASK_OVERLAP_SECONDS = DAY
PAGE_SIZE = 250
NON_COMPLIANT = "COMPLETED_NON_COMPLIANT"


@dataclass(frozen=True)
class AuditOptions:
    backfill_seconds: float = 7 * DAY
    include_suppressed: bool = True

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> AuditOptions:
        return cls(
            backfill_seconds=integer(params.get("backfill_days"), "backfill_days", 7, 0, 90) * DAY,
            include_suppressed=boolean(params.get("include_suppressed"), "include_suppressed", True),
        )


def _task_prefix(task_id: str) -> str:
    return f"{task_id}/"


def _finding_items(
    records: List[Any], *, task_id: str, account_id: str, region: str
) -> Tuple[List[Tuple[Optional[str], events.Event]], List[Any]]:
    items: List[Tuple[Optional[str], events.Event]] = []
    malformed: List[Any] = []
    for record in records:
        try:
            event = events.audit_finding_event(record, account_id=account_id, region=region)
            items.append((f"{_task_prefix(task_id)}finding/{record['findingId']}", event))
        except MalformedRecord as exc:
            malformed.append(MalformedRecord(f"{exc} (task {task_id})", reason=exc.reason))
    return items, malformed


def audit_pages(session: AwsSession, scope: RunScope, state: InputState) -> Iterator[Page]:
    """The audit input: tasks listed in this run's window (and tasks still open from earlier runs), oldest first."""
    client = session.client("iot", scope.region)
    start, end = next_window(
        state,
        scope.now,
        overlap_seconds=TASK_OVERLAP_SECONDS,
        backfill_seconds=scope.options.backfill_seconds,
        retention_seconds=AUDIT_RETENTION_SECONDS,
    )
    candidates: Dict[str, float] = dict(state.open_tasks)
    for tasks, _token in session.paginate(
        client,
        "list_audit_tasks",
        result_key="tasks",
        page_size=PAGE_SIZE,
        startTime=utc_datetime(start),
        endTime=utc_datetime(end),
    ):
        for task in tasks:
            task_id = task.get("taskId") if isinstance(task, dict) else None
            if task_id and task_id not in state.done_tasks:
                candidates.setdefault(task_id, start)

    for task_id in sorted(candidates, key=lambda tid: (candidates[tid], tid)):
        yield from _task_pages(session, client, task_id, scope)

    yield Page(progress=advance_to(end))


def _task_pages(session: AwsSession, client: Any, task_id: str, scope: RunScope) -> Iterator[Page]:
    """One task: remembered as open while it runs; once finished, its task/check events, its findings, done."""
    described = session.call(client, "describe_audit_task", taskId=task_id)
    try:
        status = described.get("taskStatus")
        started = events.to_epoch(described.get("taskStartTime"))
    except (ValueError, TypeError):
        yield Page(
            malformed=[
                MalformedRecord(
                    f"audit task {task_id}: DescribeAuditTask answer has no usable taskStartTime", reason="bad_time"
                )
            ]
        )
        return
    if status not in FINISHED_TASK_STATUSES:

        def remember_open(target: InputState) -> None:
            target.open_tasks[task_id] = started

        yield Page(progress=remember_open)
        return
    yield _task_event_page(described, task_id, scope)
    details = described.get("auditDetails") or {}
    for check_name in sorted(details):
        if _has_findings(details[check_name] or {}):
            yield from _finding_pages(session, client, task_id, check_name, scope)

    def finish(target: InputState) -> None:
        target.done_tasks[task_id] = started
        target.open_tasks.pop(task_id, None)
        prefix = _task_prefix(task_id)
        # The task is never read again, so its event keys are no longer needed.
        target.seen = {key: when for key, when in target.seen.items() if not key.startswith(prefix)}

    yield Page(progress=finish)


def _task_event_page(described: Dict[str, Any], task_id: str, scope: RunScope) -> Page:
    try:
        task_events = events.audit_task_events(
            described, account_id=scope.account_id, region=scope.region, task_id=task_id
        )
    except MalformedRecord as exc:
        return Page(malformed=[MalformedRecord(f"{exc} (task {task_id})", reason=exc.reason)])
    items: List[Tuple[Optional[str], events.Event]] = []
    for event in task_events:
        suffix = "task" if event.data["record_type"] == "task" else f"check/{event.data.get('checkName')}"
        items.append((f"{_task_prefix(task_id)}{suffix}", event))
    return Page(items=items)


def _has_findings(detail: Dict[str, Any]) -> bool:
    counted = (detail.get("nonCompliantResourcesCount") or 0) + (
        detail.get("suppressedNonCompliantResourcesCount") or 0
    )
    return detail.get("checkRunStatus") == NON_COMPLIANT or counted > 0


def _finding_pages(session: AwsSession, client: Any, task_id: str, check_name: str, scope: RunScope) -> Iterator[Page]:
    # listSuppressedFindings=True would list ONLY suppressed findings; leaving it out lists both.
    suppressed: Dict[str, Any] = {} if scope.options.include_suppressed else {"listSuppressedFindings": False}
    for records, _token in session.paginate(
        client,
        "list_audit_findings",
        result_key="findings",
        page_size=PAGE_SIZE,
        taskId=task_id,
        checkName=check_name,
        **suppressed,
    ):
        found, malformed = _finding_items(records, task_id=task_id, account_id=scope.account_id, region=scope.region)
        yield Page(items=found, malformed=malformed)


def audit_keep_after(state: InputState) -> float:
    """Finished-task ids are kept as long as AWS keeps the tasks (they could otherwise be listed again)."""
    if state.high_water is None:
        return float("-inf")
    return state.high_water - AUDIT_RETENTION_SECONDS - DAY
