"""Device Defender state (per account and region) and the emulated Detect / Audit operations."""

from __future__ import annotations

import bisect
import copy
import hashlib
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .common import DAY, RequestContext, decode_token, encode_token, page_size, to_epoch
from .models import RequestError

VIOLATION_RETENTION = 30 * DAY
AUDIT_RETENTION = 90 * DAY
METRIC_RETENTION = 14 * DAY
DEFAULT_PAGE_SIZE = 25

DETECT_OPERATIONS = {
    "ListViolationEvents",
    "ListActiveViolations",
    "ListSecurityProfiles",
    "ListMetricValues",
    "PutVerificationStateOnViolation",
    "StartDetectMitigationActionsTask",
    "DescribeDetectMitigationActionsTask",
    "ListDetectMitigationActionsExecutions",
}
AUDIT_OPERATIONS = {
    "ListAuditTasks",
    "DescribeAuditTask",
    "ListAuditFindings",
    "StartOnDemandAuditTask",
    "ListScheduledAudits",
    "DescribeAuditFinding",
}
SHARED_OPERATIONS = {"CreateMitigationAction"}
MITIGATION_ACTION_TYPES = {
    "updateDeviceCertificateParams": "UPDATE_DEVICE_CERTIFICATE",
    "updateCACertificateParams": "UPDATE_CA_CERTIFICATE",
    "addThingsToThingGroupParams": "ADD_THINGS_TO_THING_GROUP",
    "replaceDefaultPolicyVersionParams": "REPLACE_DEFAULT_POLICY_VERSION",
    "enableIoTLoggingParams": "ENABLE_IOT_LOGGING",
    "publishFindingToSnsParams": "PUBLISH_FINDING_TO_SNS",
}

AUDIT_CHECKS = (
    "AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
    "CA_CERTIFICATE_EXPIRING_CHECK",
    "CA_CERTIFICATE_KEY_QUALITY_CHECK",
    "CONFLICTING_CLIENT_IDS_CHECK",
    "DEVICE_CERTIFICATE_AGE_CHECK",
    "DEVICE_CERTIFICATE_EXPIRING_CHECK",
    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK",
    "DEVICE_CERTIFICATE_SHARED_CHECK",
    "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK",
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
    "IOT_POLICY_POTENTIAL_MIS_CONFIGURATION_CHECK",
    "IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK",
    "IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK",
    "LOGGING_DISABLED_CHECK",
    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK",
    "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
    "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
)

_INF = float("inf")
_EVENT_TIME_FIELDS = ("violationEventTime",)
_ACTIVE_TIME_FIELDS = ("lastViolationTime", "violationStartTime")
_FINDING_TIME_FIELDS = ("taskStartTime", "findingTime")


def behavior_criteria_type(behavior: Dict[str, Any]) -> str:
    criteria = behavior.get("criteria") or {}
    if "mlDetectionConfig" in criteria:
        return "MACHINE_LEARNING"
    if "statisticalThreshold" in criteria:
        return "STATISTICAL"
    return "STATIC"


def _public(item: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in item.items() if k[0] != "_"}


def _normalize(item: Dict[str, Any], time_fields: Iterable[str]) -> Dict[str, Any]:
    out = {k: v for k, v in item.items() if v is not None}
    for f in time_fields:
        if f in out and out[f] is not None:
            out[f] = to_epoch(out[f])
    for src in ("visible_at", "_visible_at"):
        if src in out:
            v = out.pop(src)
            out["_visible_at"] = None if v is None else to_epoch(v)
    return out


def _visible(item: Dict[str, Any], now: float) -> bool:
    v = item.get("_visible_at")
    return v is None or v <= now


def _scan(keys: List[Any], items: List[Dict[str, Any]], lo: int, hi: int, pred, limit: int):
    """Collect up to ``limit`` items matching ``pred`` from items[lo:hi]; report whether another match exists."""
    page: List[Dict[str, Any]] = []
    last_key = None
    i = lo
    while i < hi and len(page) < limit:
        it = items[i]
        if pred(it):
            page.append(it)
            last_key = keys[i]
        i += 1
    more = False
    while i < hi:
        if pred(items[i]):
            more = True
            break
        i += 1
    return page, last_key, more


class _SortedItems:
    """Items kept sorted by a key, bulk-appendable (sorted lazily), bisectable."""

    def __init__(self, keyfunc: Callable[[Dict[str, Any]], Tuple]):
        self.keyfunc = keyfunc
        self.items: List[Dict[str, Any]] = []
        self.keys: List[Tuple] = []
        self._dirty = False

    def extend(self, items: Iterable[Dict[str, Any]]) -> None:
        for it in items:
            self.items.append(it)
            self.keys.append(self.keyfunc(it))
        self._dirty = True

    def sorted(self) -> _SortedItems:
        if self._dirty:
            order = sorted(range(len(self.keys)), key=self.keys.__getitem__)
            self.items = [self.items[i] for i in order]
            self.keys = [self.keys[i] for i in order]
            self._dirty = False
        return self

    def remove_where(self, pred) -> int:
        keep = [(k, it) for k, it in zip(self.keys, self.items) if not pred(it)]
        n = len(self.items) - len(keep)
        self.keys = [k for k, _ in keep]
        self.items = [it for _, it in keep]
        return n

    def __len__(self) -> int:
        return len(self.items)


class RegionData:
    def __init__(self):
        self.seq = 0
        self.events = _SortedItems(lambda e: (e["violationEventTime"], e["_seq"]))
        self.active: Dict[str, Dict[str, Any]] = {}
        self._active_sorted: Optional[_SortedItems] = None
        self.tasks: Dict[str, Dict[str, Any]] = {}
        self.findings = _SortedItems(lambda f: (f.get("findingTime", f.get("taskStartTime", 0.0)), f["_seq"]))
        self.findings_by_task: Dict[str, _SortedItems] = {}
        self.profiles: Dict[str, Dict[str, Any]] = {}
        self.metrics: Dict[Tuple[str, str], _SortedItems] = {}
        self.metric_source: Optional[Callable[..., Iterable[Tuple[float, Dict[str, Any]]]]] = None
        self.mitigation_actions: Dict[str, Dict[str, Any]] = {}
        self.detect_tasks: Dict[str, Dict[str, Any]] = {}
        self.detect_executions: List[Dict[str, Any]] = []
        self.scheduled_audits: Dict[str, Dict[str, Any]] = {}

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def active_sorted(self) -> _SortedItems:
        if self._active_sorted is None:
            s = _SortedItems(lambda v: (v.get("violationStartTime") or 0.0, v["violationId"]))
            s.extend(self.active.values())
            self._active_sorted = s.sorted()
        return self._active_sorted


class DefenderStore:
    """In-process Device Defender data: ``accounts[account_id][region] -> RegionData``.

    Items are stored in wire form (timestamps as epoch seconds) in the exact API shapes, plus private keys
    starting with ``_`` (``_visible_at``: epoch seconds before which list calls do not return the item — for
    late-arriving data). Add data with the ``add_*`` methods (datetimes, epoch seconds or epoch ms accepted).
    """

    def __init__(self, clock, default_account: str, default_region: str):
        self.clock = clock
        self.default_account = default_account
        self.default_region = default_region
        self.lock = threading.RLock()
        self.accounts: Dict[str, Dict[str, RegionData]] = {}
        self.audit_completion_delay_seconds = 2.0
        # (ctx, task) -> (auditDetails, findings); default: re-run the checks against the newest completed task
        self.on_demand_audit_result: Optional[Callable[[RequestContext, Dict[str, Any]], Tuple[dict, list]]] = None
        self.verification_states: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
        # (account, region, thing_name, group_names) -> None; raise to make the execution FAILED.
        # LoopbackAWS wires this to moto's registry (the thing really moves into the groups).
        self.add_things_to_thing_group: Optional[Callable[[str, str, str, List[str]], None]] = None

    # ------------------------------------------------------------------ state access
    def data(self, account_id: Optional[str] = None, region: Optional[str] = None) -> RegionData:
        a = account_id or self.default_account
        r = region or self.default_region
        with self.lock:
            regions = self.accounts.setdefault(a, {})
            rd = regions.get(r)
            if rd is None:
                rd = regions[r] = RegionData()
            return rd

    def clear(self) -> None:
        with self.lock:
            self.accounts.clear()
            self.verification_states.clear()
            self.audit_completion_delay_seconds = 2.0
            self.on_demand_audit_result = None

    def add_violation_events(self, events: Iterable[Dict[str, Any]], account_id=None, region=None) -> int:
        rd = self.data(account_id, region)
        with self.lock:
            batch = []
            for e in events:
                ne = _normalize(e, _EVENT_TIME_FIELDS)
                ne["_seq"] = rd.next_seq()
                batch.append(ne)
            rd.events.extend(batch)
            rd.events.sorted()
            return len(batch)

    def add_active_violations(self, violations: Iterable[Dict[str, Any]], account_id=None, region=None) -> int:
        rd = self.data(account_id, region)
        n = 0
        with self.lock:
            for v in violations:
                nv = _normalize(v, _ACTIVE_TIME_FIELDS)
                rd.active[nv["violationId"]] = nv
                n += 1
            rd._active_sorted = None
        return n

    def remove_active_violation(self, violation_id: str, account_id=None, region=None) -> bool:
        rd = self.data(account_id, region)
        with self.lock:
            rd._active_sorted = None
            return rd.active.pop(violation_id, None) is not None

    def add_audit_task(self, task: Dict[str, Any], account_id=None, region=None) -> Dict[str, Any]:
        """``task``: DescribeAuditTask output + ``taskId`` (+ ``visible_at``, ``completes_at``, and for an
        IN_PROGRESS task that should complete: ``pending`` = {"auditDetails": .., "findings": [..]})."""
        rd = self.data(account_id, region)
        t = _normalize(task, ("taskStartTime",))
        if "completes_at" in t:
            v = t.pop("completes_at")
            t["_completes_at"] = None if v is None else to_epoch(v)
        if "pending" in t:
            t["_pending"] = t.pop("pending")
        t.setdefault("auditDetails", {})
        if "taskStatistics" not in t:
            t["taskStatistics"] = task_statistics(t["auditDetails"])
        with self.lock:
            rd.tasks[t["taskId"]] = t
        return t

    def add_audit_findings(self, findings: Iterable[Dict[str, Any]], account_id=None, region=None) -> int:
        rd = self.data(account_id, region)
        n = 0
        with self.lock:
            batch = []
            for f in findings:
                nf = _normalize(f, _FINDING_TIME_FIELDS)
                nf["_seq"] = rd.next_seq()
                batch.append(nf)
                n += 1
            rd.findings.extend(batch)
            rd.findings.sorted()
            for nf in batch:
                rd.findings_by_task.setdefault(nf["taskId"], _SortedItems(rd.findings.keyfunc)).extend([nf])
            for s in rd.findings_by_task.values():
                s.sorted()
        return n

    def add_security_profile(
        self,
        name: str,
        behaviors: Optional[List[Dict[str, Any]]] = None,
        arn: Optional[str] = None,
        account_id=None,
        region=None,
        **extra: Any,
    ) -> Dict[str, Any]:
        a = account_id or self.default_account
        r = region or self.default_region
        prof = {
            "name": name,
            "arn": arn or f"arn:aws:iot:{r}:{a}:securityprofile/{name}",
            "behaviors": behaviors or [],
            **extra,
        }
        with self.lock:
            self.data(a, r).profiles[name] = prof
        return prof

    def add_metric_values(
        self,
        thing_name: str,
        metric_name: str,
        points: Iterable[Tuple[Any, Dict[str, Any]]],
        account_id=None,
        region=None,
    ) -> int:
        rd = self.data(account_id, region)
        with self.lock:
            s = rd.metrics.setdefault((thing_name, metric_name), _SortedItems(lambda d: (d["timestamp"],)))
            batch = [{"timestamp": to_epoch(ts), "value": value} for ts, value in points]
            s.extend(batch)
            s.sorted()
            return len(batch)

    def set_metric_source(self, source, account_id=None, region=None) -> None:
        """``source(thing_name, metric_name, start_epoch, end_epoch) -> iterable of (epoch, value dict)``
        supplies metric values on demand (the fleet simulator uses this instead of storing millions of points).
        """
        with self.lock:
            self.data(account_id, region).metric_source = source

    def violation_events(self, account_id=None, region=None) -> List[Dict[str, Any]]:
        with self.lock:
            return [_public(e) for e in self.data(account_id, region).events.sorted().items]

    def active_violations(self, account_id=None, region=None) -> List[Dict[str, Any]]:
        with self.lock:
            return [_public(v) for v in self.data(account_id, region).active_sorted().items]

    def audit_tasks(self, account_id=None, region=None) -> List[Dict[str, Any]]:
        with self.lock:
            return [_public(t) | {"taskId": t["taskId"]} for t in self.data(account_id, region).tasks.values()]

    # ------------------------------------------------------------------ helpers
    def _maybe_complete(self, ctx: RequestContext, rd: RegionData, task: Dict[str, Any]) -> None:
        done_at = task.get("_completes_at")
        if task.get("taskStatus") != "IN_PROGRESS" or done_at is None or done_at > ctx.now:
            return
        pending = task.pop("_pending", None)
        if pending is None:
            details, findings = self._default_audit_result(ctx, rd, task)
        else:
            details, findings = pending.get("auditDetails", {}), pending.get("findings", [])
        task["auditDetails"] = details
        task["taskStatistics"] = task_statistics(details)
        task["taskStatus"] = "COMPLETED"
        task["_completes_at"] = None
        if findings:
            self.add_audit_findings(findings, ctx.account_id, ctx.region)

    def _default_audit_result(self, ctx: RequestContext, rd: RegionData, task: Dict[str, Any]):
        if self.on_demand_audit_result is not None:
            return self.on_demand_audit_result(ctx, task)
        checks = list(task.get("auditDetails", {}).keys())
        done_at = task.get("_completes_at") or ctx.now
        completed = sorted(
            (t for t in rd.tasks.values() if t.get("taskStatus") == "COMPLETED" and t is not task),
            key=lambda t: t.get("taskStartTime", 0.0),
            reverse=True,
        )
        details: Dict[str, Any] = {}
        findings: List[Dict[str, Any]] = []
        for check in checks:
            src = next((t for t in completed if check in t.get("auditDetails", {})), None)
            if src is None:
                details[check] = {
                    "checkRunStatus": "COMPLETED_COMPLIANT",
                    "checkCompliant": True,
                    "totalResourcesCount": 0,
                    "nonCompliantResourcesCount": 0,
                    "suppressedNonCompliantResourcesCount": 0,
                }
                continue
            details[check] = copy.deepcopy(src["auditDetails"][check])
            for f in rd.findings_by_task.get(src["taskId"], _SortedItems(rd.findings.keyfunc)).items:
                if f.get("checkName") != check:
                    continue
                nf = copy.deepcopy(_public(f))
                nf["taskId"] = task["taskId"]
                nf["taskStartTime"] = task["taskStartTime"]
                nf["findingTime"] = done_at
                nf["findingId"] = hashlib.sha256(f"{task['taskId']}/{f['findingId']}".encode()).hexdigest()[:32]
                findings.append(nf)
        return details, findings

    @staticmethod
    def _window(ctx: RequestContext, params: Dict[str, Any]) -> Tuple[float, float]:
        start = params["startTime"].timestamp()
        end = params["endTime"].timestamp()
        if end < start:
            raise RequestError(ctx.error_code, "endTime must be after startTime.")
        return start, end

    # ------------------------------------------------------------------ Detect operations
    def _violation_pred(self, ctx: RequestContext, params: Dict[str, Any]):
        thing = params.get("thingName")
        profile = params.get("securityProfileName")
        ctype = params.get("behaviorCriteriaType")
        suppressed = params.get("listSuppressedAlerts")
        vstate = params.get("verificationState")
        now = ctx.now

        def pred(it: Dict[str, Any]) -> bool:
            if thing is not None and it.get("thingName") != thing:
                return False
            if profile is not None and it.get("securityProfileName") != profile:
                return False
            beh = it.get("behavior") or {}
            if ctype is not None and behavior_criteria_type(beh) != ctype:
                return False
            if suppressed is not None and bool(beh.get("suppressAlerts", False)) != suppressed:
                return False
            if vstate is not None and it.get("verificationState", "UNKNOWN") != vstate:
                return False
            return _visible(it, now)

        return pred

    def op_ListViolationEvents(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        start, end = self._window(ctx, params)
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        rd = self.data(ctx.account_id, ctx.region)
        lo_t = max(start, ctx.now - VIOLATION_RETENTION)
        pred = self._violation_pred(ctx, params)
        with self.lock:
            ev = rd.events.sorted()
            if params.get("nextToken"):
                key = decode_token(ctx, params["nextToken"], params)
                lo = bisect.bisect_right(ev.keys, tuple(key))
            else:
                lo = bisect.bisect_left(ev.keys, (lo_t, -1))
            lo = max(lo, bisect.bisect_left(ev.keys, (lo_t, -1)))
            hi = bisect.bisect_right(ev.keys, (end, _INF))
            page, last, more = _scan(ev.keys, ev.items, lo, hi, pred, limit)
            out: Dict[str, Any] = {"violationEvents": [_public(e) for e in page]}
        if more:
            out["nextToken"] = encode_token(ctx.operation, list(last), params)
        return out

    def op_ListActiveViolations(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        rd = self.data(ctx.account_id, ctx.region)
        pred = self._violation_pred(ctx, params)
        with self.lock:
            av = rd.active_sorted()
            lo = 0
            if params.get("nextToken"):
                lo = bisect.bisect_right(av.keys, tuple(decode_token(ctx, params["nextToken"], params)))
            page, last, more = _scan(av.keys, av.items, lo, len(av.items), pred, limit)
            out: Dict[str, Any] = {"activeViolations": [_public(v) for v in page]}
        if more:
            out["nextToken"] = encode_token(ctx.operation, list(last), params)
        return out

    def op_ListSecurityProfiles(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        dim, metric = params.get("dimensionName"), params.get("metricName")
        if dim is not None and metric is not None:
            raise RequestError(ctx.error_code, "dimensionName and metricName cannot be used together.")
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        rd = self.data(ctx.account_id, ctx.region)
        with self.lock:
            profs = sorted(rd.profiles.values(), key=lambda p: p["name"])

        def pred(p):
            behs = p.get("behaviors") or []
            if metric is not None and not any(b.get("metric") == metric for b in behs):
                return False
            dims = {(b.get("metricDimension") or {}).get("dimensionName") for b in behs}
            return dim is None or dim in dims

        keys = [(p["name"],) for p in profs]
        lo = 0
        if params.get("nextToken"):
            lo = bisect.bisect_right(keys, tuple(decode_token(ctx, params["nextToken"], params)))
        page, last, more = _scan(keys, profs, lo, len(profs), pred, limit)
        out: Dict[str, Any] = {"securityProfileIdentifiers": [{"name": p["name"], "arn": p["arn"]} for p in page]}
        if more:
            out["nextToken"] = encode_token(ctx.operation, list(last), params)
        return out

    def op_ListMetricValues(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        start, end = self._window(ctx, params)
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        lo_t = max(start, ctx.now - METRIC_RETENTION)
        hi_t = min(end, ctx.now)
        rd = self.data(ctx.account_id, ctx.region)
        thing, metric = params["thingName"], params["metricName"]
        points: List[Dict[str, Any]] = []
        with self.lock:
            stored = rd.metrics.get((thing, metric))
            source = rd.metric_source
            if stored is not None:
                s = stored.sorted()
                a = bisect.bisect_left(s.keys, (lo_t,))
                b = bisect.bisect_right(s.keys, (hi_t,))
                points.extend(s.items[a:b])
        if source is not None and lo_t <= hi_t:
            points.extend({"timestamp": float(ts), "value": v} for ts, v in source(thing, metric, lo_t, hi_t))
        points.sort(key=lambda d: d["timestamp"])
        keys = [(d["timestamp"],) for d in points]
        lo = 0
        if params.get("nextToken"):
            lo = bisect.bisect_right(keys, tuple(decode_token(ctx, params["nextToken"], params)))
        page, last, more = _scan(keys, points, lo, len(points), lambda _d: True, limit)
        out: Dict[str, Any] = {"metricDatumList": page}
        if more:
            out["nextToken"] = encode_token(ctx.operation, list(last), params)
        return out

    def op_PutVerificationStateOnViolation(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        vid = params["violationId"]
        state = params["verificationState"]
        desc = params.get("verificationStateDescription")
        rd = self.data(ctx.account_id, ctx.region)
        found = False
        with self.lock:
            targets = []
            if vid in rd.active:
                targets.append(rd.active[vid])
            targets.extend(e for e in rd.events.items if e.get("violationId") == vid)
            for it in targets:
                found = True
                it["verificationState"] = state
                if desc is not None:
                    it["verificationStateDescription"] = desc
                else:
                    it.pop("verificationStateDescription", None)
            if found:
                self.verification_states[(ctx.account_id, ctx.region, vid)] = {
                    "verificationState": state,
                    "verificationStateDescription": desc,
                    "time": ctx.now,
                    "caller": ctx.caller_arn,
                }
        if not found:
            raise RequestError(ctx.error_code, f"Violation {vid} does not exist.")
        return {}

    # ------------------------------------------------------------------ Audit operations
    def op_ListAuditTasks(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        start, end = self._window(ctx, params)
        if start < ctx.now - AUDIT_RETENTION:
            raise RequestError(ctx.error_code, "startTime must be within the last 90 days.")
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        ttype, tstatus = params.get("taskType"), params.get("taskStatus")
        rd = self.data(ctx.account_id, ctx.region)
        with self.lock:
            for t in list(rd.tasks.values()):
                self._maybe_complete(ctx, rd, t)
            tasks = sorted(rd.tasks.values(), key=lambda t: (t["taskStartTime"], t["taskId"]))
            keys = [(t["taskStartTime"], t["taskId"]) for t in tasks]

            def pred(t):
                if ttype is not None and t.get("taskType") != ttype:
                    return False
                if tstatus is not None and t.get("taskStatus") != tstatus:
                    return False
                return _visible(t, ctx.now)

            if params.get("nextToken"):
                lo = bisect.bisect_right(keys, tuple(decode_token(ctx, params["nextToken"], params)))
            else:
                lo = bisect.bisect_left(keys, (start, ""))
            hi = bisect.bisect_right(keys, (end, "\uffff"))
            page, last, more = _scan(keys, tasks, lo, hi, pred, limit)
            out: Dict[str, Any] = {
                "tasks": [
                    {"taskId": t["taskId"], "taskStatus": t["taskStatus"], "taskType": t["taskType"]} for t in page
                ]
            }
        if more:
            out["nextToken"] = encode_token(ctx.operation, list(last), params)
        return out

    def op_DescribeAuditTask(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self.data(ctx.account_id, ctx.region)
        with self.lock:
            t = rd.tasks.get(params["taskId"])
            if t is None or not _visible(t, ctx.now) or t.get("taskStartTime", ctx.now) < ctx.now - AUDIT_RETENTION:
                raise RequestError("ResourceNotFoundException", f"Audit task {params['taskId']} not found.", 404)
            self._maybe_complete(ctx, rd, t)
            out = {k: copy.deepcopy(v) for k, v in _public(t).items() if k != "taskId"}
        return out

    def op_ListAuditFindings(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        task_id = params.get("taskId")
        has_window = "startTime" in params or "endTime" in params
        if task_id is not None and has_window:
            raise RequestError(ctx.error_code, "Specify either taskId or startTime and endTime, not both.")
        if task_id is None and not ("startTime" in params and "endTime" in params):
            raise RequestError(ctx.error_code, "Either taskId or startTime and endTime must be specified.")
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        check = params.get("checkName")
        rid = params.get("resourceIdentifier")
        suppressed = params.get("listSuppressedFindings")
        retention_floor = ctx.now - AUDIT_RETENTION
        rd = self.data(ctx.account_id, ctx.region)

        def pred(f):
            if check is not None and f.get("checkName") != check:
                return False
            if suppressed is not None and bool(f.get("isSuppressed", False)) != suppressed:
                return False
            if rid:
                have = (f.get("nonCompliantResource") or {}).get("resourceIdentifier") or {}
                if any(have.get(k) != v for k, v in rid.items()):
                    return False
            if f.get("taskStartTime", 0.0) < retention_floor:
                return False
            return _visible(f, ctx.now)

        with self.lock:
            if task_id is not None:
                task = rd.tasks.get(task_id)
                if task is not None:
                    self._maybe_complete(ctx, rd, task)
                src = rd.findings_by_task.get(task_id)
                if src is None:
                    return {"findings": []}
                src = src.sorted()
                lo, hi = 0, len(src.items)
            else:
                start, end = self._window(ctx, params)
                src = rd.findings.sorted()
                lo = bisect.bisect_left(src.keys, (max(start, retention_floor), -1))
                hi = bisect.bisect_right(src.keys, (end, _INF))
            if params.get("nextToken"):
                lo = max(lo, bisect.bisect_right(src.keys, tuple(decode_token(ctx, params["nextToken"], params))))
            page, last, more = _scan(src.keys, src.items, lo, hi, pred, limit)
            out: Dict[str, Any] = {"findings": [_public(f) for f in page]}
        if more:
            out["nextToken"] = encode_token(ctx.operation, list(last), params)
        return out

    def op_StartOnDemandAuditTask(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        checks = params["targetCheckNames"]
        unknown = [c for c in checks if c not in AUDIT_CHECKS]
        if unknown:
            raise RequestError(ctx.error_code, f"Unknown or disabled audit checks: {', '.join(unknown)}")
        task_id = hashlib.sha256(f"{ctx.account_id}/{ctx.region}/{ctx.now}/{checks}".encode()).hexdigest()[:32]
        with self.lock:
            rd = self.data(ctx.account_id, ctx.region)
            while task_id in rd.tasks:
                task_id = hashlib.sha256(task_id.encode()).hexdigest()[:32]
            details = {c: {"checkRunStatus": "IN_PROGRESS"} for c in dict.fromkeys(checks)}
            self.add_audit_task(
                {
                    "taskId": task_id,
                    "taskStatus": "IN_PROGRESS",
                    "taskType": "ON_DEMAND_AUDIT_TASK",
                    "taskStartTime": ctx.now,
                    "auditDetails": details,
                    "completes_at": ctx.now + self.audit_completion_delay_seconds,
                },
                ctx.account_id,
                ctx.region,
            )
        return {"taskId": task_id}

    # ------------------------------------------------------------------ more audit reads
    def add_scheduled_audit(self, name: str, frequency: str = "DAILY", account_id=None, region=None, **extra):
        a = account_id or self.default_account
        r = region or self.default_region
        audit = {
            "scheduledAuditName": name,
            "scheduledAuditArn": f"arn:aws:iot:{r}:{a}:scheduledaudit/{name}",
            "frequency": frequency,
            **extra,
        }
        with self.lock:
            self.data(a, r).scheduled_audits[name] = audit
        return audit

    def op_ListScheduledAudits(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        rd = self.data(ctx.account_id, ctx.region)
        with self.lock:
            audits = dict(rd.scheduled_audits)
            for t in rd.tasks.values():
                name = t.get("scheduledAuditName")
                if name and name not in audits:
                    audits[name] = {
                        "scheduledAuditName": name,
                        "scheduledAuditArn": f"arn:aws:iot:{ctx.region}:{ctx.account_id}:scheduledaudit/{name}",
                        "frequency": "DAILY",
                    }
        items = [audits[k] for k in sorted(audits)]
        keys = [(a["scheduledAuditName"],) for a in items]
        lo = 0
        if params.get("nextToken"):
            lo = bisect.bisect_right(keys, tuple(decode_token(ctx, params["nextToken"], params)))
        page, last, more = _scan(keys, items, lo, len(items), lambda _a: True, limit)
        out: Dict[str, Any] = {"scheduledAudits": page}
        if more:
            out["nextToken"] = encode_token(ctx.operation, list(last), params)
        return out

    def op_DescribeAuditFinding(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self.data(ctx.account_id, ctx.region)
        fid = params["findingId"]
        with self.lock:
            for f in rd.findings.items:
                fresh = f.get("taskStartTime", 0.0) >= ctx.now - AUDIT_RETENTION
                if f["findingId"] == fid and fresh and _visible(f, ctx.now):
                    return {"finding": copy.deepcopy(_public(f))}
        raise RequestError("ResourceNotFoundException", f"Audit finding {fid} not found.", 404)

    # ------------------------------------------------------------------ mitigation actions (Detect)
    def op_CreateMitigationAction(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        name = params["actionName"]
        kinds = [k for k in MITIGATION_ACTION_TYPES if k in params["actionParams"]]
        if len(kinds) != 1:
            raise RequestError(ctx.error_code, "actionParams must contain exactly one action type.")
        rd = self.data(ctx.account_id, ctx.region)
        with self.lock:
            if name in rd.mitigation_actions:
                raise RequestError("ResourceAlreadyExistsException", f"Mitigation action {name} already exists.", 409)
            if len(rd.mitigation_actions) >= 100:
                raise RequestError("LimitExceededException", "At most 100 mitigation actions.", 410)
            action_id = hashlib.sha256(f"{ctx.account_id}/{ctx.region}/{name}".encode()).hexdigest()[:32]
            action = {
                "name": name,
                "id": action_id,
                "arn": f"arn:aws:iot:{ctx.region}:{ctx.account_id}:mitigationaction/{name}",
                "roleArn": params["roleArn"],
                "actionParams": copy.deepcopy(params["actionParams"]),
                "_type": MITIGATION_ACTION_TYPES[kinds[0]],
            }
            rd.mitigation_actions[name] = action
        return {"actionArn": action["arn"], "actionId": action_id}

    def op_StartDetectMitigationActionsTask(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        task_id = params["taskId"]
        target = params["target"]
        rd = self.data(ctx.account_id, ctx.region)
        with self.lock:
            old = rd.detect_tasks.get(task_id)
            if old is not None:
                if old["_token"] == params["clientRequestToken"]:
                    return {"taskId": task_id}
                raise RequestError("TaskAlreadyExistsException", f"Task {task_id} already exists.", 400)
            actions = []
            for name in params["actions"]:
                a = rd.mitigation_actions.get(name)
                if a is None:
                    raise RequestError(ctx.error_code, f"Mitigation action {name} does not exist.")
                if a["_type"] != "ADD_THINGS_TO_THING_GROUP":
                    raise RequestError(
                        ctx.error_code,
                        f"Mitigation action {name} of type {a['_type']} is not supported for Detect; "
                        "only ADD_THINGS_TO_THING_GROUP is.",
                    )
                actions.append(a)
            if not target.get("violationIds") and not target.get("securityProfileName"):
                raise RequestError(ctx.error_code, "target needs violationIds or securityProfileName.")
            violations = self._mitigation_targets(rd, ctx, params)
            executions = []
            failed = 0
            for v in violations:
                for a in actions:
                    groups = a["actionParams"]["addThingsToThingGroupParams"]["thingGroupNames"]
                    ex = {
                        "taskId": task_id,
                        "violationId": v["violationId"],
                        "actionName": a["name"],
                        "thingName": v["thingName"],
                        "executionStartDate": ctx.now,
                        "executionEndDate": ctx.now,
                        "status": "SUCCESSFUL",
                    }
                    try:
                        if self.add_things_to_thing_group is not None:
                            self.add_things_to_thing_group(ctx.account_id, ctx.region, v["thingName"], list(groups))
                    except Exception as exc:
                        failed += 1
                        ex.update(status="FAILED", errorCode=type(exc).__name__, message=str(exc)[:2048])
                    executions.append(ex)
            rd.detect_executions.extend(executions)
            summary: Dict[str, Any] = {
                "taskId": task_id,
                "taskStatus": "FAILED" if failed and failed == len(executions) else "SUCCESSFUL",
                "taskStartTime": ctx.now,
                "taskEndTime": ctx.now,
                "target": copy.deepcopy(target),
                "onlyActiveViolationsIncluded": bool(params.get("includeOnlyActiveViolations", False)),
                "suppressedAlertsIncluded": bool(params.get("includeSuppressedAlerts", False)),
                "actionsDefinition": [
                    {"name": a["name"], "id": a["id"], "roleArn": a["roleArn"], "actionParams": a["actionParams"]}
                    for a in actions
                ],
                "taskStatistics": {
                    "actionsExecuted": len(executions) - failed,
                    "actionsSkipped": 0,
                    "actionsFailed": failed,
                },
                "_token": params["clientRequestToken"],
            }
            rng = params.get("violationEventOccurrenceRange")
            if rng:
                summary["violationEventOccurrenceRange"] = {
                    "startTime": rng["startTime"].timestamp(),
                    "endTime": rng["endTime"].timestamp(),
                }
            rd.detect_tasks[task_id] = summary
        return {"taskId": task_id}

    def _mitigation_targets(self, rd: RegionData, ctx: RequestContext, params: Dict[str, Any]):
        target = params["target"]
        only_active = params.get("includeOnlyActiveViolations", False)
        with_suppressed = params.get("includeSuppressedAlerts", False)
        rng = params.get("violationEventOccurrenceRange")
        lo = rng["startTime"].timestamp() if rng else -_INF
        hi = rng["endTime"].timestamp() if rng else _INF
        found: Dict[str, Dict[str, Any]] = {}
        ids = set(target.get("violationIds") or [])
        profile, behavior = target.get("securityProfileName"), target.get("behaviorName")

        def wanted(v):
            if ids:
                return v["violationId"] in ids
            if v.get("securityProfileName") != profile:
                return False
            beh = v.get("behavior") or {}
            if behavior is not None and beh.get("name") != behavior:
                return False
            return with_suppressed or not beh.get("suppressAlerts", False)

        for v in rd.active.values():
            if wanted(v) and _visible(v, ctx.now):
                found[v["violationId"]] = v
        if not only_active:
            for e in rd.events.items:
                if e["violationId"] in found or not wanted(e) or not _visible(e, ctx.now):
                    continue
                if lo <= e["violationEventTime"] <= hi and e.get("violationEventType") == "in-alarm":
                    found[e["violationId"]] = e
        return sorted(found.values(), key=lambda v: v["violationId"])

    def op_DescribeDetectMitigationActionsTask(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self.data(ctx.account_id, ctx.region)
        with self.lock:
            t = rd.detect_tasks.get(params["taskId"])
            if t is None:
                raise RequestError("ResourceNotFoundException", f"Task {params['taskId']} not found.", 404)
            return {"taskSummary": copy.deepcopy(_public(t))}

    def op_ListDetectMitigationActionsExecutions(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        rd = self.data(ctx.account_id, ctx.region)
        task_id, vid, thing = params.get("taskId"), params.get("violationId"), params.get("thingName")
        lo_t = params["startTime"].timestamp() if params.get("startTime") else -_INF
        hi_t = params["endTime"].timestamp() if params.get("endTime") else _INF
        with self.lock:
            items = list(rd.detect_executions)
        keys = [(i,) for i in range(len(items))]

        def pred(x):
            return (
                (task_id is None or x["taskId"] == task_id)
                and (vid is None or x["violationId"] == vid)
                and (thing is None or x["thingName"] == thing)
                and lo_t <= x["executionStartDate"] <= hi_t
            )

        lo = 0
        if params.get("nextToken"):
            lo = bisect.bisect_right(keys, tuple(decode_token(ctx, params["nextToken"], params)))
        page, last, more = _scan(keys, items, lo, len(items), pred, limit)
        out: Dict[str, Any] = {"actionsExecutions": [dict(x) for x in page]}
        if more:
            out["nextToken"] = encode_token(ctx.operation, list(last), params)
        return out


def task_statistics(details: Dict[str, Dict[str, Any]]) -> Dict[str, int]:
    counts = {
        "totalChecks": len(details),
        "inProgressChecks": 0,
        "waitingForDataCollectionChecks": 0,
        "compliantChecks": 0,
        "nonCompliantChecks": 0,
        "failedChecks": 0,
        "canceledChecks": 0,
    }
    field = {
        "IN_PROGRESS": "inProgressChecks",
        "WAITING_FOR_DATA_COLLECTION": "waitingForDataCollectionChecks",
        "COMPLETED_COMPLIANT": "compliantChecks",
        "COMPLETED_NON_COMPLIANT": "nonCompliantChecks",
        "FAILED": "failedChecks",
        "CANCELED": "canceledChecks",
    }
    for d in details.values():
        f = field.get(d.get("checkRunStatus", ""))
        if f:
            counts[f] += 1
    return counts
