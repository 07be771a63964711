"""Incident Manager (ssm-incidents) state and emulated operations."""

from __future__ import annotations

import bisect
import copy
import hashlib
import threading
import uuid
from typing import Any, Dict, List, Optional

from .common import RequestContext, decode_token, encode_token, page_size, to_epoch
from .models import RequestError

DEFAULT_PAGE_SIZE = 25
INCIDENT_OPERATIONS = {
    "StartIncident",
    "GetIncidentRecord",
    "ListResponsePlans",
    "ListIncidentRecords",
    "CreateResponsePlan",
    "ListRelatedItems",
}


def _public(item: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in item.items() if k[0] != "_"}


class IncidentStore:
    """Response plans and incident records per account (ARNs carry no region, like the real service)."""

    def __init__(self, clock, default_account: str, default_region: str):
        self.clock = clock
        self.default_account = default_account
        self.default_region = default_region
        self.lock = threading.RLock()
        self.response_plans: Dict[str, Dict[str, Dict[str, Any]]] = {}  # account -> name -> plan
        self.records: Dict[str, Dict[str, Dict[str, Any]]] = {}  # account -> arn -> record
        self.client_tokens: Dict[tuple, str] = {}  # (account, operation, token) -> arn
        self._seq = 0

    def clear(self) -> None:
        with self.lock:
            self.response_plans.clear()
            self.records.clear()
            self.client_tokens.clear()

    # ------------------------------------------------------------------ seeding / reading
    def add_response_plan(
        self,
        name: str,
        title: str = "IoT device security incident",
        impact: int = 3,
        account_id: Optional[str] = None,
        display_name: Optional[str] = None,
        **template: Any,
    ) -> str:
        acct = account_id or self.default_account
        arn = f"arn:aws:ssm-incidents::{acct}:response-plan/{name}"
        plan = {
            "arn": arn,
            "name": name,
            "displayName": display_name or name,
            "incidentTemplate": {"title": title, "impact": impact, **template},
        }
        with self.lock:
            self.response_plans.setdefault(acct, {})[name] = plan
        return arn

    def incident_records(self, account_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """Records (public fields + ``relatedItems``) in creation order."""
        acct = account_id or self.default_account
        with self.lock:
            recs = sorted(self.records.get(acct, {}).values(), key=lambda r: r["_seq"])
            return [dict(_public(r), relatedItems=copy.deepcopy(r["_related"])) for r in recs]

    def get(self, arn: str) -> Optional[Dict[str, Any]]:
        with self.lock:
            for recs in self.records.values():
                if arn in recs:
                    r = recs[arn]
                    return dict(_public(r), relatedItems=copy.deepcopy(r["_related"]))
        return None

    # ------------------------------------------------------------------ operations
    def op_CreateResponsePlan(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        name = params["name"]
        with self.lock:
            plans = self.response_plans.setdefault(ctx.account_id, {})
            tok = params.get("clientToken")
            if tok and (ctx.account_id, ctx.operation, tok) in self.client_tokens:
                return {"arn": self.client_tokens[(ctx.account_id, ctx.operation, tok)]}
            if name in plans:
                raise RequestError("ConflictException", f"Response plan {name} already exists.", 409)
            template = dict(params["incidentTemplate"])
            arn = self.add_response_plan(
                name,
                title=template.pop("title"),
                impact=template.pop("impact"),
                account_id=ctx.account_id,
                display_name=params.get("displayName"),
                **template,
            )
            if tok:
                self.client_tokens[(ctx.account_id, ctx.operation, tok)] = arn
        return {"arn": arn}

    def op_ListResponsePlans(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        with self.lock:
            plans = sorted(self.response_plans.get(ctx.account_id, {}).values(), key=lambda p: p["name"])
        names = [p["name"] for p in plans]
        lo = 0
        if params.get("nextToken"):
            lo = bisect.bisect_right(names, decode_token(ctx, params["nextToken"], params))
        page = plans[lo : lo + limit]
        out: Dict[str, Any] = {
            "responsePlanSummaries": [
                {k: p[k] for k in ("arn", "name", "displayName") if p.get(k) is not None} for p in page
            ]
        }
        if lo + limit < len(plans):
            out["nextToken"] = encode_token(ctx.operation, page[-1]["name"], params)
        return out

    def op_StartIncident(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        trigger = params.get("triggerDetails") or {}
        source = trigger.get("source")
        if source is not None and source.startswith("aws."):
            raise RequestError("ValidationException", "triggerDetails.source must not start with 'aws.'.")
        plan_arn = params["responsePlanArn"]
        tok = params.get("clientToken")
        with self.lock:
            if tok and (ctx.account_id, ctx.operation, tok) in self.client_tokens:
                return {"incidentRecordArn": self.client_tokens[(ctx.account_id, ctx.operation, tok)]}
            plan_name = plan_arn.rsplit("/", 1)[-1]
            plan = self.response_plans.get(ctx.account_id, {}).get(plan_name)
            if plan is None or plan["arn"] != plan_arn:
                raise RequestError("ResourceNotFoundException", f"Response plan {plan_arn} not found.", 404)
            template = plan["incidentTemplate"]
            self._seq += 1
            rid = uuid.UUID(hashlib.md5(f"{ctx.account_id}/{self._seq}/{tok}".encode()).hexdigest())
            arn = f"arn:aws:ssm-incidents::{ctx.account_id}:incident-record/{plan_name}/{rid}"
            src: Dict[str, Any] = {
                "createdBy": ctx.caller_arn,
                "source": source or "aws.ssm-incidents.custom",
            }
            if trigger.get("triggerArn"):
                src["resourceArn"] = trigger["triggerArn"]
            record: Dict[str, Any] = {
                "arn": arn,
                "title": params.get("title") or template["title"],
                "status": "OPEN",
                "impact": params.get("impact") or template["impact"],
                "creationTime": ctx.now,
                "lastModifiedTime": ctx.now,
                "lastModifiedBy": ctx.caller_arn,
                "dedupeString": template.get("dedupeString", ""),
                "incidentRecordSource": src,
                "_seq": self._seq,
                "_related": [],
                "_trigger": {k: (to_epoch(v) if k == "timestamp" else v) for k, v in trigger.items()},
                "_client_token": tok,
            }
            if template.get("summary"):
                record["summary"] = template["summary"]
            if template.get("notificationTargets"):
                record["notificationTargets"] = copy.deepcopy(template["notificationTargets"])
            for item in params.get("relatedItems") or []:
                it = copy.deepcopy(item)
                it.setdefault(
                    "generatedId",
                    "related-item/{}/{}".format(
                        it["identifier"]["type"],
                        hashlib.md5(repr(item).encode()).hexdigest().upper(),
                    ),
                )
                record["_related"].append(it)
            self.records.setdefault(ctx.account_id, {})[arn] = record
            if tok:
                self.client_tokens[(ctx.account_id, ctx.operation, tok)] = arn
        return {"incidentRecordArn": arn}

    def _record(self, ctx: RequestContext, arn: str) -> Dict[str, Any]:
        rec = self.records.get(ctx.account_id, {}).get(arn)
        if rec is None:
            raise RequestError("ResourceNotFoundException", f"Incident record {arn} not found.", 404)
        return rec

    def op_GetIncidentRecord(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        with self.lock:
            rec = self._record(ctx, params["arn"])
            return {"incidentRecord": copy.deepcopy(_public(rec))}

    def op_ListIncidentRecords(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        filters = params.get("filters") or []
        for f in filters:
            if f["key"] not in ("status", "impact", "creationTime", "resolvedTime", "createdBy"):
                raise RequestError("ValidationException", f"Unsupported filter key {f['key']!r}.")

        def pred(r):
            for f in filters:
                key, cond = f["key"], f["condition"]
                value = r.get(key) if key != "createdBy" else r["incidentRecordSource"]["createdBy"]
                if "equals" in cond:
                    eq = cond["equals"]
                    allowed = eq.get("stringValues", eq.get("integerValues", []))
                    if value not in allowed:
                        return False
                if "before" in cond and (value is None or value >= cond["before"].timestamp()):
                    return False
                if "after" in cond and (value is None or value <= cond["after"].timestamp()):
                    return False
            return True

        with self.lock:
            recs = sorted(self.records.get(ctx.account_id, {}).values(), key=lambda r: -r["_seq"])
            recs = [r for r in recs if pred(r)]
        lo = 0
        if params.get("nextToken"):
            seq = decode_token(ctx, params["nextToken"], params)
            lo = next((i for i, r in enumerate(recs) if r["_seq"] < seq), len(recs))
        page = recs[lo : lo + limit]
        fields = ("arn", "title", "status", "impact", "creationTime", "resolvedTime", "incidentRecordSource")
        out: Dict[str, Any] = {
            "incidentRecordSummaries": [{k: copy.deepcopy(r[k]) for k in fields if k in r} for r in page]
        }
        if lo + limit < len(recs):
            out["nextToken"] = encode_token(ctx.operation, page[-1]["_seq"], params)
        return out

    def op_ListRelatedItems(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        limit = page_size(ctx, params, DEFAULT_PAGE_SIZE)
        with self.lock:
            rec = self._record(ctx, params["incidentRecordArn"])
            items = copy.deepcopy(rec["_related"])
        lo = 0
        if params.get("nextToken"):
            lo = int(decode_token(ctx, params["nextToken"], params))
        out: Dict[str, Any] = {"relatedItems": items[lo : lo + limit]}
        if lo + limit < len(items):
            out["nextToken"] = encode_token(ctx.operation, lo + limit, params)
        return out
