"""Incident shaping for the ``iot_start_incident`` alert action and the response Lambdas (pure, no AWS calls).

Everything here takes an untrusted result row (a Splunk result or a violation message) and produces values that
fit the API limits of ssm-incidents StartIncident / SNS Publish, so a hostile or oversized row can never make a
request that AWS rejects halfway or that carries more than the row itself:

- ``render_template``: ``{field}`` placeholders filled from the row; control characters removed, whitespace
  collapsed, the result cut to the API limit. ``{field}`` rather than Splunk's ``$field$`` on purpose: splunkd
  expands ``$...$`` tokens in alert parameters itself (``$result.x$`` from the *first* result only), which would
  give every row the first row's values.
- ``raw_data``: the row as compact JSON, truncated value by value so the result is still valid JSON and at most
  10000 UTF-8 bytes (stricter than the API's 10000 characters).
- ``client_token``: idempotency token from (search sid, thing, violation id): a retried or replayed alert reuses
  the token, and Incident Manager answers with the incident it already started.
- ``console_url`` / ``related_items``: the thing's console page in the partition's console domain and a link back
  to the triggering search results.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import quote, urlparse

TITLE_MAX = 200
RAW_DATA_MAX = 10000
SOURCE_MAX = 50
RELATED_TITLE_MAX = 200
URL_MAX = 1000
DESCRIPTION_MAX = 1000
SNS_SUBJECT_MAX = 100

TRIGGER_SOURCE = "splunk.ta-aws-iot-defender"

# {field} or {field|other.field|...}: the first non-empty of the fields (rows from different searches name the
# same thing differently, e.g. behavior_name from a table vs behavior.name from the JSON event).
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.:-]{1,100}(?:\|[A-Za-z0-9_.:-]{1,100}){0,4})\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_SPACES = re.compile(r"\s+")

CONSOLE_DOMAINS = {
    "aws": "https://{region}.console.aws.amazon.com",
    "aws-us-gov": "https://console.amazonaws-us-gov.com",
    "aws-cn": "https://console.amazonaws.cn",
}

# Splunk-internal fields that say nothing about the incident and only cost rawData space.
_INTERNAL_FIELDS = re.compile(r"^(__mv_.*|_bkt|_cd|_si|_serial|_kv|_sourcetype|_indextime|_subsecond|rid)$")


class TemplateError(ValueError):
    """A template renders to something the API refuses (e.g. impact outside 1-5). Message is user-facing."""


def clean_text(value: Any, limit: Optional[int] = None) -> str:
    """One line of printable text: control characters dropped, whitespace collapsed, cut to ``limit``."""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", str(value if value is not None else ""))).strip()
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 3)].rstrip() + "..."
    return text


def row_value(row: Mapping[str, Any], name: str) -> str:
    """A row field as text; multivalue fields (newline-joined in Splunk results) are joined with ', '."""
    value = row.get(name)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return ", ".join(part for part in str(value).splitlines() if part)


def template_fields(template: str) -> List[str]:
    return [name for group in _PLACEHOLDER.findall(template or "") for name in group.split("|")]


def _fill(row: Mapping[str, Any], names: str) -> str:
    for name in names.split("|"):
        value = clean_text(row_value(row, name))
        if value:
            return value
    return ""


def render_template(template: str, row: Mapping[str, Any], limit: int) -> str:
    """Fill ``{field}`` / ``{field|fallback}`` placeholders from the row (missing fields render empty) and clean
    the result."""
    rendered = _PLACEHOLDER.sub(lambda m: _fill(row, m.group(1)), template or "")
    return clean_text(rendered, limit)


def render_impact(template: str, row: Mapping[str, Any]) -> int:
    """Impact 1 (critical) .. 5 (no impact) from a fixed value or a ``{field}`` template."""
    text = render_template(str(template or ""), row, 20)
    try:
        impact = int(text)
    except ValueError:
        raise TemplateError(f"impact {text!r} is not a whole number between 1 and 5") from None
    if not 1 <= impact <= 5:
        raise TemplateError(f"impact {impact} is out of range: Incident Manager accepts 1 (critical) to 5")
    return impact


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


def _size(value: Any) -> int:
    return len(_json(value).encode("utf-8"))


def raw_data(row: Mapping[str, Any], limit: int = RAW_DATA_MAX) -> str:
    """The row as compact JSON of at most ``limit`` UTF-8 bytes, still valid JSON.

    Splunk-internal fields are dropped; then the longest values are cut (marked with ``...[truncated]``) until
    the document fits; if it still does not (thousands of fields), fields are dropped from the end and
    ``_truncated_fields`` says how many.
    """
    data: Dict[str, str] = {
        str(k): str(v) for k, v in row.items() if v not in (None, "") and not _INTERNAL_FIELDS.match(str(k))
    }
    if _size(data) <= limit:
        return _json(data)
    marker = "...[truncated]"
    while _size(data) > limit:
        key = max(data, key=lambda k: len(data[k]))
        value = data[key]
        if len(value) <= 64:
            break
        excess = _size(data) - limit
        keep = max(32, min(len(value) // 2, len(value) - excess - len(marker)))
        data[key] = value[:keep] + marker
    if _size(data) <= limit:
        return _json(data)
    # Too many fields: keep the leading fields that fit (sizes summed once, not re-serialised per field).
    budget = limit - len(_json({"_truncated_fields": str(len(data))}).encode("utf-8"))
    kept: Dict[str, str] = {}
    used = 2
    for key, value in data.items():
        cost = len(_json({key: value}).encode("utf-8")) - 2 + 1
        if used + cost > budget:
            break
        kept[key] = value
        used += cost
    kept["_truncated_fields"] = str(len(data) - len(kept))
    while _size(kept) > limit and len(kept) > 1:  # safety net; the budget above already fits
        del kept[next(k for k in kept if k != "_truncated_fields")]
        kept["_truncated_fields"] = str(int(kept["_truncated_fields"]) + 1)
    return _json(kept)


def client_token(sid: str, thing_name: str, violation_id: str, origin: str = "") -> str:
    """Idempotency token: the same (search, thing, violation) always maps to the same 64-hex token. ``origin``
    (a row's orig_sid) narrows the scope; it never replaces the run's own ``sid``."""
    parts = ["ta-aws-iot-defender/v1", sid or "", thing_name or "", violation_id or ""]
    if origin:
        parts.append(origin)
    material = "\x1f".join(parts)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def console_url(partition: str, region: str, thing_name: str) -> str:
    """The AWS IoT console page of a thing, in the console domain of the account's partition."""
    base = CONSOLE_DOMAINS.get(partition, CONSOLE_DOMAINS["aws"]).format(region=region)
    return f"{base}/iot/home?region={region}#/thing/{quote(thing_name, safe='')}"


def safe_link(url: Optional[str]) -> Optional[str]:
    """An http(s) URL that fits a related item, or None (rows and payloads are untrusted)."""
    if not url:
        return None
    url = str(url).strip()
    if len(url) > URL_MAX or _CONTROL.search(url) or " " in url:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return None
    return url


def related_items(
    *,
    partition: str,
    region: str,
    thing_name: str,
    thing_arn: Optional[str] = None,
    results_link: Optional[str] = None,
) -> List[Dict[str, Any]]:
    items: List[Dict[str, Any]] = [
        {
            "identifier": {"type": "OTHER", "value": {"url": console_url(partition, region, thing_name)}},
            "title": clean_text(f"AWS IoT console: thing {thing_name}", RELATED_TITLE_MAX),
        }
    ]
    if thing_arn:
        items.append(
            {
                "identifier": {"type": "INVOLVED_RESOURCE", "value": {"arn": thing_arn}},
                "title": clean_text(f"IoT thing {thing_name}", RELATED_TITLE_MAX),
            }
        )
    link = safe_link(results_link)
    if link:
        items.append(
            {
                "identifier": {"type": "OTHER", "value": {"url": link}},
                "title": "Splunk search results that triggered this incident",
            }
        )
    return items
