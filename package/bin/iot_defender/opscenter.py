"""OpsItem shaping for the ``iot_start_incident`` OpsCenter destination (pure, no AWS calls).

AWS closed Incident Manager to new customers on 2025-11-07 and points them at Systems Manager OpsCenter. This
module turns an untrusted result row into one ``ssm:CreateOpsItem`` request that fits the API (botocore ``ssm``
model and its documentation):

- ``Title`` (<= 1024) from the action's title template, ``Description`` (<= 2048, Markdown) from the row's key
  facts, ``Source`` (may not contain ``aws``, ``amazon`` or ``amzn``), ``Category`` ``Security``;
- ``Priority`` 1-5 and ``Severity`` "1"-"4" (the console's Critical/High/Medium/Low) from the action's impact
  (1 critical .. 5 no impact), the same scale Incident Manager uses;
- ``OperationalData``: the thing, account, region, violation id, search name, sid, a link to the thing's
  dashboard in Splunk and to the AWS IoT console (searchable), the row itself (not searchable), the thing ARN
  under ``/aws/resources`` and ``/aws/dedup``. Keys never begin with the reserved ``aws``, ``amazon``, ``amzn``
  or ``ssm``; each value stays under the 20 KB limit.
- Deduplication: OpsCenter creates no second OpsItem while one with the same ``/aws/dedup`` string is open or in
  progress. The string is a hash of (account, region, thing, violation id) - or of the search name when the row
  has no violation id - so the same alert firing twice, or again on its next schedule, lands on the open OpsItem
  instead of opening another; once that OpsItem is resolved, a new alert opens a new one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import quote, urlparse

from . import APP_ID
from . import incident as inc
from .events import markdown_text, plain_text

SOURCE = "Splunk IoT Device Defender add-on"
SOURCE_MAX = 128
SOURCE_FORBIDDEN = ("aws", "amazon", "amzn")
CATEGORY = "Security"
TITLE_MAX = 1024
DESCRIPTION_MAX = 2048
VALUE_MAX_BYTES = 20 * 1024
DEDUP_KEY = "/aws/dedup"
RESOURCES_KEY = "/aws/resources"
# A random marker per CreateOpsItem call: OpsCenter answers a duplicate with the open OpsItem's id, and only this
# marker (read back with GetOpsItem) tells whether the call created the OpsItem or found it.
REQUEST_KEY = "iot_defender_request"


def check_source(source: str) -> Optional[str]:
    """Why ``source`` cannot be an OpsItem source, or None."""
    if not source or len(source) > SOURCE_MAX:
        return f"the OpsItem source must be 1-{SOURCE_MAX} characters"
    lowered = source.lower()
    bad = [word for word in SOURCE_FORBIDDEN if word in lowered]
    if bad:
        return f"the OpsItem source may not contain {', '.join(bad)} (an AWS restriction)"
    return None


def severity_priority(impact: Optional[int]) -> Tuple[str, int]:
    """(Severity, Priority) for an impact 1 (critical) .. 5 (no impact); Medium/3 when the impact is unknown."""
    level = impact if isinstance(impact, int) and 1 <= impact <= 5 else 3
    return str(min(level, 4)), level


def dedup_string(account_id: str, region: str, thing_name: str, violation_id: str, search_name: str) -> str:
    """The ``/aws/dedup`` string: one open OpsItem per (account, region, thing, violation) - or per search when the
    row names no violation."""
    scope = ("violation", violation_id) if violation_id else ("search", search_name or "")
    material = "\x1f".join(("ta-aws-iot-defender/opsitem/v1", account_id, region, thing_name, *scope))
    return "iot-defender-" + hashlib.sha256(material.encode("utf-8")).hexdigest()


def thing_dashboard_url(results_link: Optional[str], thing_name: str) -> Optional[str]:
    """The add-on's Thing detail dashboard for ``thing_name`` on the Splunk Web that ran the alert (taken from the
    alert's results link), or None when that link is missing or not a plain http(s) URL."""
    link = inc.safe_link(results_link)
    if not link:
        return None
    parsed = urlparse(link)
    url = f"{parsed.scheme}://{parsed.netloc}/app/{APP_ID}/iot_defender_thing?form.thing={quote(thing_name, safe='')}"
    return inc.safe_link(url)


def _searchable(value: str) -> Dict[str, str]:
    return {"Value": value, "Type": "SearchableString"}


def _fit(value: str) -> str:
    """Cut a value to the 20 KB limit of one OperationalData value (UTF-8 bytes, whole characters)."""
    raw = value.encode("utf-8")
    if len(raw) <= VALUE_MAX_BYTES:
        return value
    return raw[: VALUE_MAX_BYTES - 16].decode("utf-8", "ignore") + "...[truncated]"


@dataclass(frozen=True)
class Subject:
    """What an OpsItem is about: the thing, where it lives, and the Splunk alert that raised it."""

    partition: str
    account_id: str
    region: str
    thing_name: str
    thing_arn: str
    violation_id: str
    search_name: str
    sid: str
    results_link: Optional[str]
    row: Mapping[str, Any]
    # the thing's owner, asset priority and business unit (see iot_defender.assets.response_fields), already plain
    owner: Mapping[str, str] = field(default_factory=dict)


def operational_data(subject: Subject, dedup: str) -> Dict[str, Dict[str, str]]:
    s = subject
    data: Dict[str, Dict[str, str]] = {
        DEDUP_KEY: _searchable(json.dumps({"dedupString": dedup}, separators=(",", ":"))),
        RESOURCES_KEY: _searchable(json.dumps([{"arn": s.thing_arn}], separators=(",", ":"))),
        "iot_thing_name": _searchable(s.thing_name),
        "iot_account_id": _searchable(s.account_id),
        "iot_region": _searchable(s.region),
        "iot_console_url": _searchable(inc.console_url(s.partition, s.region, s.thing_name)),
        REQUEST_KEY: {"Value": secrets.token_hex(16), "Type": "String"},
    }
    optional = {
        "iot_violation_id": s.violation_id,
        "splunk_search_name": inc.clean_text(s.search_name, 1000),
        "splunk_sid": inc.clean_text(s.sid, 1000),
        "splunk_thing_dashboard": thing_dashboard_url(s.results_link, s.thing_name) or "",
        "splunk_results_link": inc.safe_link(s.results_link) or "",
    }
    data.update({k: _searchable(v) for k, v in optional.items() if v})
    data.update({k: _searchable(v) for k, v in owner_data(s.owner).items()})
    data["splunk_result"] = {"Value": _fit(inc.raw_data(s.row)), "Type": "String"}
    return data


OWNER_KEYS = (("owner", "iot_owner"), ("priority", "iot_asset_priority"), ("bunit", "iot_business_unit"))


def owner_data(owner: Mapping[str, str]) -> Dict[str, str]:
    """The owner's OperationalData keys (only those known: an ``unknown`` priority says nothing)."""
    values = {key: plain_text(owner.get(name) or "", 200) for name, key in OWNER_KEYS}
    return {k: v for k, v in values.items() if v and v != "unknown"}


def owner_line(owner: Mapping[str, str]) -> Optional[str]:
    """The description's owner line (markdown-escaped: owner text comes from device-settable attributes)."""
    known = owner_data(owner)
    if not known:
        return None
    parts = [
        f"{label} {markdown_text(known[key], 200)}"
        for label, key in (
            ("owner", "iot_owner"),
            ("asset priority", "iot_asset_priority"),
            ("business unit", "iot_business_unit"),
        )
        if key in known
    ]
    return "- Owner: " + ", ".join(parts)


def description(subject: Subject, title: str) -> str:
    """Markdown for the OpsItem's description (<= 2048 characters): what fired, on which thing, where to look."""
    s = subject
    lines = [
        markdown_text(title, 500),
        "",
        f"- IoT thing: `{s.thing_name}` (account {s.account_id}, region {s.region})",
    ]
    line = owner_line(s.owner)
    if line:
        lines.append(line)
    if s.violation_id:
        lines.append(f"- Device Defender violation: `{s.violation_id}`")
    if s.search_name:
        lines.append(f"- Splunk search: {markdown_text(s.search_name, 300)}")
    if s.sid:
        lines.append(f"- Splunk search id: {markdown_text(s.sid, 200)}")
    lines.append("")
    lines.append(
        "Operational data holds the thing's console and Splunk dashboard links and the triggering result. Run the "
        "containment runbook from the Runbooks tab, or the add-on's iot_quarantine_thing action, to isolate it."
    )
    text = "\n".join(lines)
    return text if len(text) <= DESCRIPTION_MAX else text[: DESCRIPTION_MAX - 3] + "..."


def create_request(
    subject: Subject,
    *,
    title: str,
    impact: Optional[int],
    source: str,
    notification_topic: Optional[str] = None,
) -> Dict[str, Any]:
    """The CreateOpsItem parameters for one thing (the dedup string is under ``OperationalData['/aws/dedup']``)."""
    s = subject
    severity, priority = severity_priority(impact)
    dedup = dedup_string(s.account_id, s.region, s.thing_name, s.violation_id, s.search_name)
    request: Dict[str, Any] = {
        "Title": plain_text(title, TITLE_MAX) or f"IoT incident: thing {s.thing_name}",
        "Description": description(s, title),
        "Source": source,
        "Category": CATEGORY,
        "Severity": severity,
        "Priority": priority,
        "OperationalData": operational_data(s, dedup),
    }
    if notification_topic:
        request["Notifications"] = [{"Arn": notification_topic}]
    return request


def dedup_of(request: Mapping[str, Any]) -> str:
    return str(json.loads(request["OperationalData"][DEDUP_KEY]["Value"])["dedupString"])
