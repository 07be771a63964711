"""Thing inventory source: things with type, attributes, groups and certificate status.

Produces ``aws:iot:thing`` snapshot events and the rows of the ``iot_thing_inventory`` KV lookup. The lookup is
updated incrementally: :func:`plan_lookup_changes` compares row digests with what the collection holds and
returns only the rows to write and the keys to delete.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import events
from .aws import AwsSession
from .events import MalformedRecord
from .params import boolean
from .pipeline import Page

PAGE_SIZE = 250
ENRICH_WORKERS = 4
LOOKUP_FIELDS = (
    "thing_name",
    "thing_arn",
    "thing_type",
    "account_id",
    "region",
    "thing_groups",
    "certificate_ids",
    "certificate_statuses",
    "active_certificates",
    "owner",
    "site",
    "attributes",
    "updated_at",
    "digest",
)


@dataclass(frozen=True)
class InventoryOptions:
    include_certificates: bool = True

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> InventoryOptions:
        return cls(include_certificates=boolean(params.get("include_certificates"), "include_certificates", True))


@dataclass
class InventoryResult:
    """Lookup rows gathered while the events were delivered."""

    rows: List[Dict[str, Any]] = field(default_factory=list)


def lookup_key(account_id: str, region: str, thing_name: str) -> str:
    return f"{account_id}:{region}:{thing_name}"


def lookup_row(event: events.Event, *, when: Any) -> Dict[str, Any]:
    """The KV lookup row of one thing event (flat strings, as lookups want)."""
    data = event.data
    certificates = data.get("certificates") or []
    attributes = data.get("attributes") or {}
    row: Dict[str, Any] = {
        "_key": lookup_key(data["account_id"], data["region"], data["thingName"]),
        "thing_name": data["thingName"],
        "thing_arn": data.get("thingArn") or "",
        "thing_type": data.get("thingTypeName") or "",
        "account_id": data["account_id"],
        "region": data["region"],
        "thing_groups": ",".join(data.get("thingGroups") or []),
        "certificate_ids": ",".join(str(c.get("certificateId", "")) for c in certificates),
        "certificate_statuses": ",".join(str(c.get("status", "")) for c in certificates),
        "active_certificates": sum(1 for c in certificates if c.get("status") == "ACTIVE"),
        "owner": str(attributes.get("owner", "")),
        "site": str(attributes.get("site", "")),
        "attributes": json.dumps(attributes, sort_keys=True, separators=(",", ":")),
    }
    digest_source = json.dumps(row, sort_keys=True)
    row["digest"] = hashlib.sha256(digest_source.encode("utf-8")).hexdigest()[:32]
    row["updated_at"] = events.to_iso(when)
    return row


def plan_lookup_changes(
    existing: List[Dict[str, Any]], rows: List[Dict[str, Any]], *, account_id: str, region: str
) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Rows whose content changed (or are new) and keys of this account/region's things that are gone."""
    current = {
        doc.get("_key"): doc.get("digest")
        for doc in existing
        if doc.get("account_id") == account_id and doc.get("region") == region
    }
    upserts = [row for row in rows if current.get(row["_key"]) != row["digest"]]
    fresh = {row["_key"] for row in rows}
    deletes = sorted(key for key in current if key and key not in fresh)
    return upserts, deletes


class _CertificateStatuses:
    """Certificate status look-ups, once per certificate per run (certificates can be shared)."""

    def __init__(self, session: AwsSession, client: Any):
        self._session = session
        self._client = client
        self._cache: Dict[str, str] = {}

    def status(self, certificate_id: str) -> str:
        if certificate_id not in self._cache:
            answer = self._session.call(self._client, "describe_certificate", certificateId=certificate_id)
            self._cache[certificate_id] = str(answer.get("certificateDescription", {}).get("status", "UNKNOWN"))
        return self._cache[certificate_id]


def _certificate_id(principal: str) -> Optional[str]:
    # Certificate principals are ARNs ending in ":cert/<64 hex>"; other principals (Cognito ids) are skipped.
    if ":cert/" in principal:
        return principal.rsplit("/", 1)[-1]
    return None


def _enrich(
    session: AwsSession, client: Any, thing: Dict[str, Any], options: InventoryOptions, certs: _CertificateStatuses
) -> Tuple[List[str], List[Dict[str, Any]]]:
    name = thing["thingName"]
    groups: List[str] = []
    for page, _token in session.paginate(
        client, "list_thing_groups_for_thing", result_key="thingGroups", thingName=name
    ):
        groups.extend(str(group.get("groupName")) for group in page if group.get("groupName"))
    certificates: List[Dict[str, Any]] = []
    if options.include_certificates:
        for page, _token in session.paginate(client, "list_thing_principals", result_key="principals", thingName=name):
            for principal in page:
                certificate_id = _certificate_id(str(principal))
                if certificate_id:
                    certificates.append({"certificateId": certificate_id, "status": certs.status(certificate_id)})
    return groups, certificates


def inventory_pages(
    session: AwsSession,
    region: str,
    options: InventoryOptions,
    result: InventoryResult,
    *,
    account_id: str,
    now: float,
) -> Iterator[Page]:
    client = session.client("iot", region)
    certs = _CertificateStatuses(session, client)
    with ThreadPoolExecutor(max_workers=ENRICH_WORKERS) as pool:
        for things, _token in session.paginate(client, "list_things", result_key="things", page_size=PAGE_SIZE):
            malformed: List[str] = []
            valid = []
            for thing in things:
                if isinstance(thing, dict) and thing.get("thingName"):
                    valid.append(thing)
                else:
                    malformed.append("thing: required field 'thingName' is missing")
            enriched = list(pool.map(lambda t: _enrich(session, client, t, options, certs), valid))
            items: List[Tuple[Optional[str], events.Event]] = []
            for thing, (groups, certificates) in zip(valid, enriched):
                try:
                    event = events.thing_event(
                        thing,
                        account_id=account_id,
                        region=region,
                        snapshot_time=now,
                        groups=groups,
                        certificates=certificates,
                    )
                except MalformedRecord as exc:
                    malformed.append(str(exc))
                    continue
                items.append((None, event))
                result.rows.append(lookup_row(event, when=now))
            yield Page(items=items, malformed=malformed)
