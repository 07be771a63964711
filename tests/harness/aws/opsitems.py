"""Systems Manager OpsCenter (the OpsItem operations of service ``ssm``): state and emulated operations.

What is modelled (AWS Systems Manager user guide, "Managing duplicate OpsItems" and the CreateOpsItem reference):

- OpsItems are regional: ids ``oi-`` + 12 hex digits, ARN ``arn:<partition>:ssm:<region>:<account>:opsitem/<id>``.
- Deduplication: an ``OperationalData`` key ``/aws/dedup`` (Type ``SearchableString``, Value the JSON text
  ``{"dedupString": "..."}``) makes CreateOpsItem return the existing OpsItem while that one is ``Open`` or
  ``InProgress``; once it is resolved (any other status), a new OpsItem is created. The dedup string cannot be
  changed after creation.
- ``/aws/resources`` (``SearchableString``, a JSON list of ``{"arn": ...}``) links resources.
- Other keys may not begin with the reserved prefixes ``amazon``, ``aws``, ``amzn``, ``ssm`` (with or without a
  leading ``/``); a value holds at most 20 KB; ``Source`` may not contain ``aws``, ``amazon`` or ``amzn``
  (botocore model documentation); notification topics are in the OpsItem's region (user guide).

Not modelled: cross-account OpsItems (``AccountId``), OpsItem types other than the default ``/aws/issue``,
related-item APIs, tag enforcement.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from typing import Any, Dict, List, Optional, Tuple

from .common import RequestContext, decode_token, encode_token, to_epoch
from .models import RequestError

OPSITEM_OPERATIONS = {"CreateOpsItem", "GetOpsItem", "DescribeOpsItems", "UpdateOpsItem"}
DEDUP_KEY = "/aws/dedup"
RESOURCES_KEY = "/aws/resources"
_SYSTEM_KEYS = {DEDUP_KEY, RESOURCES_KEY, "/aws/automations"}
_RESERVED_PREFIXES = ("amazon", "aws", "amzn", "ssm", "/amazon", "/aws", "/amzn", "/ssm")
OPEN_STATUSES = ("Open", "InProgress")
VALUE_MAX_BYTES = 20 * 1024
_SOURCE_FORBIDDEN = ("aws", "amazon", "amzn")
DEFAULT_PAGE_SIZE = 50
_SUMMARY_FIELDS = (
    "CreatedBy",
    "CreatedTime",
    "LastModifiedBy",
    "LastModifiedTime",
    "Priority",
    "Source",
    "Status",
    "OpsItemId",
    "Title",
    "OperationalData",
    "Category",
    "Severity",
    "OpsItemType",
)
_MUTABLE = ("Description", "Notifications", "Priority", "RelatedOpsItems", "Title", "Category", "Severity")


def _invalid(message: str, names: Optional[List[str]] = None) -> RequestError:
    extra = {"ParameterNames": names} if names else None
    return RequestError("OpsItemInvalidParameterException", message, 400, extra)


def _dedup_string(data: Dict[str, Dict[str, str]]) -> Optional[str]:
    entry = data.get(DEDUP_KEY)
    if entry is None:
        return None
    if entry.get("Type") != "SearchableString":
        raise _invalid(f"{DEDUP_KEY} must be of type SearchableString.", ["OperationalData"])
    try:
        doc = json.loads(entry["Value"])
    except ValueError:
        raise _invalid(f"{DEDUP_KEY} value is not valid JSON.", ["OperationalData"]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("dedupString"), str) or not doc["dedupString"]:
        raise _invalid(f'{DEDUP_KEY} value must be {{"dedupString": "<non-empty string>"}}.', ["OperationalData"])
    return doc["dedupString"]


def _check_resources(data: Dict[str, Dict[str, str]]) -> None:
    entry = data.get(RESOURCES_KEY)
    if entry is None:
        return
    try:
        doc = json.loads(entry["Value"])
    except ValueError:
        raise _invalid(f"{RESOURCES_KEY} value is not valid JSON.", ["OperationalData"]) from None
    ok = isinstance(doc, list) and all(
        isinstance(r, dict) and isinstance(r.get("arn"), str) and r["arn"].startswith("arn:") for r in doc
    )
    if not ok:
        raise _invalid(f'{RESOURCES_KEY} value must be a JSON list of {{"arn": "arn:..."}}.', ["OperationalData"])


def check_operational_data(data: Dict[str, Dict[str, str]]) -> Optional[str]:
    """Validate the OpsItem-specific rules the model cannot express; return the dedup string (or None)."""
    for key, entry in data.items():
        if len(entry["Value"].encode("utf-8")) > VALUE_MAX_BYTES:
            raise _invalid(f"Operational data value of {key!r} is larger than 20 KB.", ["OperationalData"])
        if key not in _SYSTEM_KEYS and key.lower().startswith(_RESERVED_PREFIXES):
            raise _invalid(
                f"Operational data key {key!r} uses a reserved prefix (amazon, aws, amzn, ssm).", ["OperationalData"]
            )
    _check_resources(data)
    return _dedup_string(data)


def _public(item: Dict[str, Any]) -> Dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in item.items() if k[0] != "_"}


class OpsItemStore:
    """OpsItems per (account, region).

    ``dedup_answer`` chooses how a create that matches an open OpsItem's dedup string is answered: ``"existing"``
    (the default: 200 with the existing OpsItemId) or ``"error"`` (OpsItemAlreadyExistsException carrying the
    existing OpsItemId). The user guide says only that the OpsItem "is not created"; a client must handle both.
    """

    def __init__(self, clock, default_account: str, default_region: str):
        self.clock = clock
        self.default_account = default_account
        self.default_region = default_region
        self.lock = threading.RLock()
        self.items: Dict[Tuple[str, str], Dict[str, Dict[str, Any]]] = {}
        self.dedup_answer = "existing"
        self._seq = 0

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.dedup_answer = "existing"
            self._seq = 0

    # ------------------------------------------------------------------ reading (tests, demo)
    def ops_items(self, account_id: Optional[str] = None, region: Optional[str] = None) -> List[Dict[str, Any]]:
        """The OpsItems of one account and region in creation order (the GetOpsItem view)."""
        key = (account_id or self.default_account, region or self.default_region)
        with self.lock:
            items = sorted(self.items.get(key, {}).values(), key=lambda i: i["_seq"])
            return [_public(i) for i in items]

    def create_attempts(self, account_id: Optional[str] = None, region: Optional[str] = None) -> Dict[str, int]:
        """OpsItemId -> how many CreateOpsItem calls landed on it (1 = never deduplicated)."""
        key = (account_id or self.default_account, region or self.default_region)
        with self.lock:
            return {i["OpsItemId"]: i["_creates"] for i in self.items.get(key, {}).values()}

    # ------------------------------------------------------------------ operations
    def _find_open_duplicate(self, bucket: Dict[str, Dict[str, Any]], dedup: str) -> Optional[Dict[str, Any]]:
        for item in bucket.values():
            if item["_dedup"] == dedup and item["Status"] in OPEN_STATUSES:
                return item
        return None

    def _new_id(self, ctx: RequestContext) -> str:
        self._seq += 1
        return "oi-" + hashlib.sha256(f"{ctx.account_id}/{ctx.region}/{self._seq}".encode()).hexdigest()[:12]

    def op_CreateOpsItem(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        if params.get("AccountId") not in (None, ctx.account_id):
            raise RequestError(
                "OpsItemAccessDeniedException", "Cross-account OpsItems are not set up for this account.", 403
            )
        if any(word in params["Source"].lower() for word in _SOURCE_FORBIDDEN):
            raise _invalid("The source name can't contain the strings aws, amazon or amzn.", ["Source"])
        for note in params.get("Notifications") or []:
            if note.get("Arn", "").split(":")[3:4] != [ctx.region]:
                raise _invalid("Notification topics must be in the region of the OpsItem.", ["Notifications"])
        data = copy.deepcopy(params.get("OperationalData") or {})
        dedup = check_operational_data(data)
        with self.lock:
            bucket = self.items.setdefault((ctx.account_id, ctx.region), {})
            if dedup is not None:
                existing = self._find_open_duplicate(bucket, dedup)
                if existing is not None:
                    existing["_creates"] += 1
                    if self.dedup_answer == "error":
                        raise RequestError(
                            "OpsItemAlreadyExistsException",
                            "The OpsItem already exists.",
                            400,
                            {"OpsItemId": existing["OpsItemId"]},
                        )
                    return {"OpsItemId": existing["OpsItemId"], "OpsItemArn": existing["OpsItemArn"]}
            oid = self._new_id(ctx)
            partition = (
                "aws-cn"
                if ctx.region.startswith("cn-")
                else "aws-us-gov"
                if ctx.region.startswith("us-gov-")
                else "aws"
            )
            arn = f"arn:{partition}:ssm:{ctx.region}:{ctx.account_id}:opsitem/{oid}"
            item: Dict[str, Any] = {
                "OpsItemId": oid,
                "OpsItemArn": arn,
                "Title": params["Title"],
                "Description": params["Description"],
                "Source": params["Source"],
                "Status": "Open",
                "OpsItemType": params.get("OpsItemType") or "/aws/issue",
                "CreatedBy": ctx.caller_arn,
                "CreatedTime": ctx.now,
                "LastModifiedBy": ctx.caller_arn,
                "LastModifiedTime": ctx.now,
                "Version": "1",
                "OperationalData": data,
                "_seq": self._seq,
                "_dedup": dedup,
                "_creates": 1,
                "_tags": copy.deepcopy(params.get("Tags") or []),
            }
            for k in _MUTABLE:
                if k in params and k not in ("Title", "Description"):
                    item[k] = copy.deepcopy(params[k])
            for k in ("ActualStartTime", "ActualEndTime", "PlannedStartTime", "PlannedEndTime"):
                if k in params:
                    item[k] = to_epoch(params[k])
            bucket[oid] = item
        return {"OpsItemId": oid, "OpsItemArn": arn}

    def _item(self, ctx: RequestContext, oid: str) -> Dict[str, Any]:
        item = self.items.get((ctx.account_id, ctx.region), {}).get(oid)
        if item is None:
            raise RequestError("OpsItemNotFoundException", f"OpsItem {oid} not found.", 400)
        return item

    def op_GetOpsItem(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        with self.lock:
            item = self._item(ctx, params["OpsItemId"])
            if params.get("OpsItemArn") not in (None, item["OpsItemArn"]):
                raise RequestError("OpsItemNotFoundException", "OpsItemArn does not match OpsItemId.", 400)
            return {"OpsItem": _public(item)}

    def op_UpdateOpsItem(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        with self.lock:
            item = self._item(ctx, params["OpsItemId"])
            data = params.get("OperationalData") or {}
            if DEDUP_KEY in data or DEDUP_KEY in (params.get("OperationalDataToDelete") or []):
                raise _invalid("The deduplication string of an OpsItem cannot be changed.", ["OperationalData"])
            check_operational_data(data)
            for k in _MUTABLE:
                if k in params:
                    item[k] = copy.deepcopy(params[k])
            if "Status" in params:
                item["Status"] = params["Status"]
            item["OperationalData"].update(copy.deepcopy(data))
            for k in params.get("OperationalDataToDelete") or []:
                item["OperationalData"].pop(k, None)
            item["LastModifiedBy"] = ctx.caller_arn
            item["LastModifiedTime"] = ctx.now
            item["Version"] = str(int(item["Version"]) + 1)
        return {}

    def op_DescribeOpsItems(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        filters = [_Filter(ctx, f) for f in params.get("OpsItemFilters") or []]
        limit = int(params.get("MaxResults") or DEFAULT_PAGE_SIZE)
        with self.lock:
            items = sorted(self.items.get((ctx.account_id, ctx.region), {}).values(), key=lambda i: -i["_seq"])
            items = [i for i in items if all(f.match(i) for f in filters)]
            lo = 0
            if params.get("NextToken"):
                seq = decode_token(ctx, params["NextToken"], _token_params(params))
                lo = next((n for n, i in enumerate(items) if i["_seq"] < seq), len(items))
            page = items[lo : lo + limit]
            out: Dict[str, Any] = {
                "OpsItemSummaries": [{k: copy.deepcopy(i[k]) for k in _SUMMARY_FIELDS if k in i} for i in page]
            }
            if lo + limit < len(items):
                out["NextToken"] = encode_token(ctx.operation, page[-1]["_seq"], _token_params(params))
        return out


def _token_params(params: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}


class _Filter:
    """One DescribeOpsItems filter (the keys a client of this add-on can use; others are refused, not ignored)."""

    _TEXT = {"Status", "Source", "Title", "OpsItemId", "Category", "Severity", "OpsItemType", "CreatedBy"}

    def __init__(self, ctx: RequestContext, f: Dict[str, Any]):
        self.key, self.values, self.op = f["Key"], f["Values"], f["Operator"]
        if self.key not in self._TEXT | {"Priority", "OperationalData", "OperationalDataKey", "OperationalDataValue"}:
            raise RequestError(ctx.error_code, f"LoopbackAWS does not emulate the OpsItem filter {self.key}.")
        if self.key == "OperationalData":
            try:
                self.values = [json.loads(v) for v in self.values]
            except ValueError:
                raise RequestError(ctx.error_code, "OperationalData filter values must be JSON.") from None

    def _cmp(self, have: Any, want: Any) -> bool:
        if self.op == "Equal":
            return have == want
        if self.op == "Contains":
            return isinstance(have, str) and str(want) in have
        if self.op == "GreaterThan":
            return have is not None and have > want
        return have is not None and have < want

    def match(self, item: Dict[str, Any]) -> bool:
        data = item["OperationalData"]
        if self.key in self._TEXT:
            return any(self._cmp(item.get(self.key), v) for v in self.values)
        if self.key == "Priority":
            return any(self._cmp(item.get("Priority"), int(v)) for v in self.values)
        if self.key == "OperationalDataKey":
            return any(self._cmp(k, v) for k in data for v in self.values)
        if self.key == "OperationalDataValue":
            return any(self._cmp(d["Value"], v) for d in data.values() for v in self.values)
        return any(
            isinstance(v, dict) and v.get("key") in data and self._cmp(data[v["key"]]["Value"], v.get("value"))
            for v in self.values
        )
