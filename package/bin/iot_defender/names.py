"""Device-influenced names in the event model: the one neutraliser every event builder applies.

A thing name (violations, metrics, inventory), the MQTT client id of an audit finding (props.conf makes it
``thing_name``/``dest``), a thing group or attribute a device can influence, or a row's thing name in an action event
becomes a field that searches, drilldowns and dashboards read. A value that does not match the pattern AWS enforces
for its kind is replaced by a stand-in of that pattern (``invalid-<kind>-<16 hex>``, a digest of the raw value, so
one device keeps one stand-in) and the raw text, clipped, kept in a ``rejected_*`` field that no search reads as a
name. :mod:`iot_defender.events` applies these and re-exports the public names; text shown elsewhere goes through
:mod:`iot_defender.text`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Dict, List

# Thing names as AWS IoT allows them. A name outside this set did not come from the registry (a forged metrics
# message, a hostile MQTT client id): it never reaches ``thingName``/``thing``/``host``, see neutral_thing_name().
THING_NAME_PATTERN = r"[a-zA-Z0-9:_-]{1,128}"
_THING_NAME = re.compile(THING_NAME_PATTERN)
NEUTRAL_THING_NAME_PREFIX = "invalid-thing-name-"
NEUTRAL_CLIENT_ID_PREFIX = "invalid-client-id-"
NEUTRAL_ATTRIBUTE_PREFIX = "invalid-attribute-"
NEUTRAL_GROUP_PREFIX = "invalid-group-name-"
REJECTED_THING_NAME_FIELD = "rejected_thing_name"
REJECTED_CLIENT_IDS_FIELD = "rejected_client_ids"
REJECTED_ATTRIBUTES_FIELD = "rejected_attributes"
_REJECTED_NAME_MAX = 256
# Thing attribute names and values as the IoT API allows them (CreateThing's AttributePayload).
ATTRIBUTE_NAME = re.compile(r"[a-zA-Z0-9_.,@/:#-]{1,128}")
ATTRIBUTE_VALUE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}")


def valid_thing_name(value: Any) -> bool:
    """True for a string AWS IoT accepts as a thing name (``[a-zA-Z0-9:_-]{1,128}``)."""
    return type(value) is str and _THING_NAME.fullmatch(value) is not None


def neutral_thing_name(value: Any) -> str:
    """The stand-in indexed for an invalid thing name: ``invalid-thing-name-<16 hex>`` (a digest of the raw
    value, so one device keeps one stand-in), itself a valid thing name that carries nothing of the raw text."""
    return neutral_value(value, NEUTRAL_THING_NAME_PREFIX)


def neutral_value(value: Any, prefix: str) -> str:
    """``prefix`` + 16 hex digits of the raw value's digest: the stand-in of one invalid value."""
    text = value if isinstance(value, str) else repr(value)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return prefix + digest


def _rejected_text(value: Any) -> str:
    raw = value if isinstance(value, str) else repr(value)
    return raw[:_REJECTED_NAME_MAX]


def checked_thing_name(data: Dict[str, Any], field_name: str) -> str:
    """The thing name in ``data[field_name]``; an invalid one is replaced in place by :func:`neutral_thing_name`
    and its raw text (cut to 256 characters) kept in ``rejected_thing_name``, which no search reads as a name."""
    value = data[field_name]
    if valid_thing_name(value):
        return value
    neutral = neutral_thing_name(value)
    data[field_name] = neutral
    data[REJECTED_THING_NAME_FIELD] = _rejected_text(value)
    return neutral


def checked_client_ids(data: Dict[str, Any]) -> None:
    """Neutralise the MQTT client ids of an audit finding (``nonCompliantResource`` and ``relatedResources``):
    a client id is any text a device chose, and it becomes the finding's ``thing_name``/``dest``. One that is not a
    valid thing name becomes ``invalid-client-id-<digest>``; the raw ids go to ``rejected_client_ids``."""
    holders: List[Any] = [data.get("nonCompliantResource")]
    related = data.get("relatedResources")
    if isinstance(related, list):
        holders.extend(related)
    rejected: List[str] = []
    for holder in holders:
        identifier = holder.get("resourceIdentifier") if isinstance(holder, dict) else None
        if not isinstance(identifier, dict) or "clientId" not in identifier:
            continue
        value = identifier["clientId"]
        if not valid_thing_name(value):
            identifier["clientId"] = neutral_value(value, NEUTRAL_CLIENT_ID_PREFIX)
            rejected.append(_rejected_text(value))
    if rejected:
        data[REJECTED_CLIENT_IDS_FIELD] = rejected


def checked_attributes(data: Dict[str, Any]) -> None:
    """Thing attributes and group names as AWS allows them; others replaced by stand-ins, the raw text counted
    (``rejected_attributes``: how many names/values were replaced), never indexed where a lookup reads it."""
    attributes = data.get("attributes")
    replaced = 0
    if isinstance(attributes, dict):
        clean: Dict[str, Any] = {}
        for name, value in attributes.items():
            if type(name) is not str or ATTRIBUTE_NAME.fullmatch(name) is None:
                name = neutral_value(name, NEUTRAL_ATTRIBUTE_PREFIX)
                replaced += 1
            if type(value) is not str or ATTRIBUTE_VALUE.fullmatch(value) is None:
                value = neutral_value(value, NEUTRAL_ATTRIBUTE_PREFIX)
                replaced += 1
            clean[name] = value
        data["attributes"] = clean
    groups = data.get("thingGroups")
    if isinstance(groups, list):
        for position, group in enumerate(groups):
            if not valid_thing_name(group):
                groups[position] = neutral_value(group, NEUTRAL_GROUP_PREFIX)
                replaced += 1
    if replaced:
        data[REJECTED_ATTRIBUTES_FIELD] = replaced
