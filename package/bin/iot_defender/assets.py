"""A thing as an Enterprise Security asset: owner, priority, business unit, category and location of one thing.

The same mapping the "IoT Defender Assets - Lookup Gen" search applies in SPL (macros ``iot_defender_asset_*`` and
the priority lookup ``iot_defender_asset_priority.csv``), for code that needs the owner of one thing without a
search: e.g. a response action putting the owner on an OpsItem or an SNS message. :func:`asset_of` applies the shipped
macro defaults (:data:`DEFAULT_MAPPING`) to an inventory row; a deployment's own macros are seen only in the rows the
search wrote, which :func:`from_kv_row` reads back (the key is :func:`asset_key`): prefer that row when there is one.

ES asset lookup format (Splunk ES "Format an asset or identity list as a lookup"): the fields of
:data:`ES_ASSET_FIELDS`; ``ip``, ``mac``, ``nt_host``, ``dns``, ``category`` and ``pci_domain`` may hold several
values joined by ``|``; ``priority`` is one of ``unknown|low|medium|high|critical``; ``is_expected`` is ``true`` or
``false``. A thing is an asset keyed by ``nt_host`` = thing name (what ES's ``asset_lookup_by_str`` matches a
finding's ``dest`` against).

Every value comes from attributes a device owner can set: ``|`` (ES's value separator) and control characters are
removed, a latitude or longitude that is not a number in range is dropped, a priority rule that is not one of the
four levels is refused with the row it came from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

COLLECTION = "iot_defender_assets"
# ES's asset lookup header, in ES's order.
ES_ASSET_FIELDS = (
    "ip",
    "mac",
    "nt_host",
    "dns",
    "owner",
    "priority",
    "lat",
    "long",
    "city",
    "country",
    "bunit",
    "category",
    "pci_domain",
    "is_expected",
    "should_timesync",
    "should_update",
    "requires_av",
    "cim_entity_zone",
)
ES_MULTIVALUE = frozenset({"ip", "mac", "nt_host", "dns", "category", "pci_domain"})
ES_BOOLEAN = frozenset({"is_expected", "should_timesync", "should_update", "requires_av"})
PRIORITIES = ("unknown", "low", "medium", "high", "critical")  # lowest first
RULE_PRIORITIES = PRIORITIES[1:]  # what a rule may assign ("unknown" is what no rule gives)
SCOPE_KINDS = ("thing_group", "thing_type", "attribute")
_UNSAFE = re.compile(r"[|\x00-\x1f\x7f]")


class AssetConfigError(ValueError):
    """A priority rule that cannot be used (the message names the row)."""


class MalformedInventoryRow(ValueError):
    """An inventory row without a thing name, or with attributes that are not a JSON object."""


@dataclass(frozen=True)
class AttributeMap:
    """Which thing attributes give each asset field: the first attribute present wins (the macros' coalesce)."""

    owner: Tuple[str, ...] = ("owner",)
    bunit: Tuple[str, ...] = ("site",)
    city: Tuple[str, ...] = ()
    country: Tuple[str, ...] = ()
    lat: Tuple[str, ...] = ()
    long: Tuple[str, ...] = ()
    priority_attributes: Tuple[str, ...] = ()


DEFAULT_MAPPING = AttributeMap()


@dataclass(frozen=True)
class PriorityRules:
    """Priority rules: scope (``default``, ``thing_group:<g>``, ``thing_type:<t>``, ``attribute:<name>=<value>``)
    -> priority. A thing gets the highest priority of the rules matching it, ``unknown`` when none does."""

    rules: Tuple[Tuple[str, str], ...] = ()

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> PriorityRules:
        out: List[Tuple[str, str]] = []
        for number, row in enumerate(rows, start=2):  # row 1 is the CSV header
            scope = str(row.get("scope") or "").strip()
            priority = str(row.get("priority") or "").strip()
            if priority not in RULE_PRIORITIES:
                raise AssetConfigError(f"priority rule row {number}: priority must be one of {RULE_PRIORITIES}")
            kind, sep, value = scope.partition(":")
            if scope != "default" and (kind not in SCOPE_KINDS or not sep or not value):
                raise AssetConfigError(
                    f"priority rule row {number}: scope must be default, thing_group:<name>, thing_type:<name> or "
                    "attribute:<name>=<value>"
                )
            out.append((scope, priority))
        return cls(tuple(out))

    def priority(self, selectors: Iterable[str]) -> str:
        wanted = set(selectors)
        found = [PRIORITIES.index(p) for scope, p in self.rules if scope in wanted]
        return PRIORITIES[max(found)] if found else "unknown"


@dataclass(frozen=True)
class Asset:
    """One thing's asset row (ES fields; multi-value fields as tuples)."""

    nt_host: str
    owner: str
    priority: str
    bunit: str
    category: Tuple[str, ...]
    city: str = ""
    country: str = ""
    lat: str = ""
    long: str = ""
    is_expected: str = "false"
    cim_entity_zone: str = ""

    def es_row(self) -> Dict[str, str]:
        """The row in ES's asset lookup format: every ES field, multi-value fields joined by ``|``."""
        values: Dict[str, Any] = {name: "" for name in ES_ASSET_FIELDS}
        values.update(
            nt_host=self.nt_host,
            owner=self.owner,
            priority=self.priority,
            bunit=self.bunit,
            category="|".join(self.category),
            city=self.city,
            country=self.country,
            lat=self.lat,
            long=self.long,
            is_expected=self.is_expected,
            cim_entity_zone=self.cim_entity_zone,
        )
        return values


def clean(value: Any) -> str:
    """A value as ES may hold it: text without ``|`` (ES's separator) or control characters."""
    return _UNSAFE.sub("", "" if value is None else str(value))


def _first(attributes: Mapping[str, Any], names: Tuple[str, ...]) -> str:
    for name in names:
        value = attributes.get(name)
        if value is not None:
            return clean(value)
    return ""


def _coordinate(text: str, limit: float) -> str:
    try:
        number = float(text)
    except ValueError:
        return ""
    if number != number or not -limit <= number <= limit:  # NaN or out of range
        return ""
    return text


def attributes_of(row: Mapping[str, Any]) -> Dict[str, Any]:
    """The thing attributes of an ``iot_thing_inventory`` row (a JSON object, or a dict already parsed)."""
    raw = row.get("attributes")
    if raw in (None, ""):
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        parsed = json.loads(str(raw))
    except ValueError:
        raise MalformedInventoryRow("inventory row: attributes are not JSON") from None
    if not isinstance(parsed, dict):
        raise MalformedInventoryRow("inventory row: attributes are not a JSON object")
    return parsed


def selectors(
    thing_type: str, groups: Iterable[str], attributes: Mapping[str, Any], mapping: AttributeMap
) -> List[str]:
    """The scopes a thing matches in the priority rules (what the search looks up)."""
    out = ["default"]
    if thing_type:
        out.append(f"thing_type:{thing_type}")
    out += [f"thing_group:{g}" for g in groups if g]
    out += [f"attribute:{n}={attributes[n]}" for n in mapping.priority_attributes if attributes.get(n) is not None]
    return out


def asset_of(
    row: Mapping[str, Any], rules: PriorityRules, mapping: Optional[AttributeMap] = None, zone: str = ""
) -> Asset:
    """The asset of one ``iot_thing_inventory`` row (see :func:`iot_defender.inventory.lookup_row`)."""
    mapping = mapping or DEFAULT_MAPPING
    name = clean(row.get("thing_name"))
    if not name:
        raise MalformedInventoryRow("inventory row: thing_name is missing")
    attributes = attributes_of(row)
    thing_type = clean(row.get("thing_type"))
    groups = [g for g in str(row.get("thing_groups") or "").split(",") if g]
    priority = rules.priority(selectors(thing_type, groups, attributes, mapping))
    return Asset(
        nt_host=name,
        owner=_first(attributes, mapping.owner),
        priority=priority,
        bunit=_first(attributes, mapping.bunit),
        category=("iot", thing_type) if thing_type else ("iot",),
        city=_first(attributes, mapping.city),
        country=_first(attributes, mapping.country),
        lat=_coordinate(_first(attributes, mapping.lat), 90.0),
        long=_coordinate(_first(attributes, mapping.long), 180.0),
        is_expected="true" if priority in ("high", "critical") else "false",
        cim_entity_zone=clean(zone),
    )


def asset_key(account_id: str, region: str, thing_name: str) -> str:
    """The ``_key`` of a thing's row in the ``iot_defender_assets`` collection (the inventory's key)."""
    return f"{account_id}:{region}:{thing_name}"


def from_kv_row(row: Optional[Mapping[str, Any]]) -> Optional[Asset]:
    """The asset a ``iot_defender_assets`` row holds (what the Lookup Gen search computed with the deployment's
    macros and rules); None for a missing or pruned row (``published`` is not 1) or an unrecognised priority."""
    if not row or str(row.get("published", "")) not in ("1", "1.0") or not row.get("nt_host"):
        return None
    priority = str(row.get("priority") or "")
    if priority not in PRIORITIES:
        return None
    return Asset(
        nt_host=clean(row.get("nt_host")),
        owner=clean(row.get("owner")),
        priority=priority,
        bunit=clean(row.get("bunit")),
        category=tuple(v for v in str(row.get("category") or "").split("|") if v),
        city=clean(row.get("city")),
        country=clean(row.get("country")),
        lat=clean(row.get("lat")),
        long=clean(row.get("long")),
        is_expected=clean(row.get("is_expected")),
        cim_entity_zone=clean(row.get("cim_entity_zone")),
    )


def response_fields(asset: Optional[Asset]) -> Dict[str, str]:
    """What a response (OpsItem, incident, SNS message) carries about the thing's owner; empty when unknown."""
    if asset is None:
        return {"owner": "", "priority": "unknown", "bunit": ""}
    return {"owner": asset.owner, "priority": asset.priority, "bunit": asset.bunit}
