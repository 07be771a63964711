"""Certificate → thing index: the rows of the ``iot_defender_certificate_things`` KV lookup.

Detections that start from a certificate (audit findings name certificates, not things) find the things holding it
with a ``lookup`` on this collection instead of a ``join`` against the whole inventory: Splunk caps a join's
subsearch at ``subsearch_maxout`` (50,000 rows) and a KV query at ``max_rows_per_query`` (50,000), a lookup reads
only the keys of the rows in hand.

One row per (certificate, thing) link, so a thing's change rewrites only its own rows and a certificate shared by
several things (cloned devices) gives one row per thing: ``lookup ... certificate_id OUTPUT thing_name`` returns them
all as a multi-value field (transforms.conf ``max_matches``, 1,000 by default for a lookup without ``time_field``).

``_key = <account_id>:<region>:<certificate_id>:<thing_name>``. The inventory input writes the rows of every thing it
writes, and deletes the rows of links that went away (:func:`removed_keys`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

COLLECTION = "iot_defender_certificate_things"
FIELDS = ("account_id", "region", "certificate_id", "certificate_status", "thing_name", "updated_at")
# The row format's version: part of every inventory row's digest, so changing it rewrites every thing's rows once.
FORMAT = "1"


def link_key(account_id: str, region: str, certificate_id: str, thing_name: str) -> str:
    return f"{account_id}:{region}:{certificate_id}:{thing_name}"


def _split(value: Any) -> List[str]:
    return [part for part in str(value or "").split(",") if part]


def rows(inventory_row: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The index rows of one ``iot_thing_inventory`` row (see :func:`iot_defender.inventory.lookup_row`)."""
    account_id, region = inventory_row["account_id"], inventory_row["region"]
    thing_name = inventory_row["thing_name"]
    certificates = _split(inventory_row.get("certificate_ids"))
    statuses = _split(inventory_row.get("certificate_statuses"))
    out = []
    for position, certificate_id in enumerate(certificates):
        out.append(
            {
                "_key": link_key(account_id, region, certificate_id, thing_name),
                "account_id": account_id,
                "region": region,
                "certificate_id": certificate_id,
                "certificate_status": statuses[position] if position < len(statuses) else "",
                "thing_name": thing_name,
                "updated_at": inventory_row.get("updated_at", ""),
            }
        )
    return out


def removed_keys(before: Mapping[str, Any], after: Mapping[str, Any] | None) -> List[str]:
    """Keys of the index rows ``before`` had and ``after`` no longer has (``after`` None: the thing is gone).
    A ``before`` row without its identifying fields (written by hand, or by a much older version) had no links."""
    kept = {row["_key"] for row in rows(after)} if after else set()
    try:
        previous = rows(before)
    except KeyError:
        return []
    return [row["_key"] for row in previous if row["_key"] not in kept]


def thing_query(account_id: str, region: str, thing_names: List[str]) -> Dict[str, Any]:
    """The KV query selecting every link row of these things (their inventory rows are being deleted)."""
    return {"account_id": account_id, "region": region, "$or": [{"thing_name": name} for name in thing_names]}
