"""The inventory input's KV store side: prior rows read a page at a time, changed rows written in batches, stale
rows deleted, all within splunkd's KV store limits (limits.conf ``[kvstore]``):

- a query returns at most ``max_rows_per_query`` (50,000 by default) rows: keys are read in ``_key`` ranges of
  :data:`KEY_PAGE` until a range comes back empty (so a lower limit set by an admin is still paged through);
- ``max_documents_per_batch_save`` (1,000): rows are saved :data:`SAVE_BATCH` at a time;
- prior rows are fetched per page of things with ``batch_find`` (a POST: 500 keys do not fit in a URL).

The certificate -> thing index (``iot_defender_certificate_things``, :mod:`iot_defender.certificate_index`) follows
the inventory rows: each page's link rows are saved and the keys of links that went away deleted before the page's
inventory rows are written, and a stale thing's links are deleted before its row, in the same bounded batches, so
a crash between the two leaves work the next run redoes, never a link without its row.

Nothing here holds the fleet: one page of rows at a time, and the library's 8-byte fingerprints of the keys seen.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Dict, Iterator, List, Optional

from iot_defender import certificate_index, inventory

KEY_PAGE = 10_000
SAVE_BATCH = 1_000
DELETE_BATCH = 100
Retry = Callable[[Callable[[], Any], str], Any]


def _save(data: Any, retry: Retry, docs: List[Dict[str, Any]], what: str) -> int:
    for start in range(0, len(docs), SAVE_BATCH):
        chunk = docs[start : start + SAVE_BATCH]
        retry(functools.partial(data.batch_save, *chunk), what)
    return len(docs)


def _delete_keys(data: Any, retry: Retry, keys: List[str], what: str) -> int:
    for start in range(0, len(keys), DELETE_BATCH):
        query = json.dumps({"$or": [{"_key": key} for key in keys[start : start + DELETE_BATCH]]})
        retry(functools.partial(data.delete, query=query), what)
    return len(keys)


class KvLinks:
    """The ``iot_defender_certificate_things`` collection: link rows saved and deleted in bounded batches."""

    def __init__(self, data: Any, retry: Retry):
        self._data = data
        self._retry = retry
        self.written = 0
        self.deleted_keys = 0
        self.thing_deletes = 0

    def save(self, rows: List[Dict[str, Any]]) -> None:
        self.written += _save(self._data, self._retry, rows, "a certificate index write")

    def delete(self, keys: List[str]) -> None:
        self.deleted_keys += _delete_keys(self._data, self._retry, keys, "a certificate index delete")

    def delete_things(self, account_id: str, region: str, thing_names: List[str]) -> None:
        """Every link row of these things (their inventory rows are being deleted), :data:`DELETE_BATCH` a query."""
        for start in range(0, len(thing_names), DELETE_BATCH):
            chunk = thing_names[start : start + DELETE_BATCH]
            query = json.dumps(certificate_index.thing_query(account_id, region, chunk))
            self._retry(functools.partial(self._data.delete, query=query), "a certificate index delete")
            self.thing_deletes += len(chunk)


class KvRows:
    """The ``iot_thing_inventory`` collection as the library's :class:`iot_defender.inventory.RowStore`, with the
    certificate index it keeps in step (``links``; None: no index kept)."""

    def __init__(self, data: Any, retry: Retry, links: Optional[KvLinks] = None):
        self._data = data
        self._retry = retry
        self.links = links
        self.reads = 0
        self.writes = 0
        self.deleted = 0

    def write_page(self, result: inventory.InventoryResult) -> None:
        """Drain one page's writes: link rows and removed links first, then the inventory rows."""
        if self.links is not None:
            if result.link_removed:
                self.links.delete(result.link_removed)
            if result.link_rows:
                self.links.save(result.link_rows)
        result.link_rows, result.link_removed = [], []
        if result.rows:
            self.write(result.rows)
            result.rows = []

    def known(self, keys: List[str]) -> Dict[str, Dict[str, Any]]:
        query = {"query": {"$or": [{"_key": key} for key in keys]}, "limit": len(keys)}
        answer = self._retry(lambda: self._data.batch_find(query), "an inventory read")
        self.reads += 1
        docs = answer[0] if answer and isinstance(answer[0], list) else []
        return {str(doc.get("_key")): doc for doc in docs if isinstance(doc, dict)}

    def write(self, rows: List[Dict[str, Any]]) -> None:
        self.writes += _save(self._data, self._retry, rows, "an inventory write")

    def keys(self, account_id: str, region: str) -> Iterator[str]:
        """Every key of one account and region, in ``_key`` order, :data:`KEY_PAGE` per query."""
        after = ""
        while True:
            query: Dict[str, Any] = {"account_id": account_id, "region": region}
            if after:
                query["_key"] = {"$gt": after}
            text = json.dumps(query)
            read = functools.partial(self._data.query, query=text, sort="_key", limit=KEY_PAGE, fields="_key")
            page = self._retry(read, "an inventory key read")
            if not page:  # an empty page ends it: a short page may only mean a lower max_rows_per_query
                return
            for doc in page:
                yield str(doc["_key"])
            after = str(page[-1]["_key"])

    def delete(self, keys: List[str], *, account_id: str = "", region: str = "") -> None:
        """Delete inventory rows by key; with ``account_id``/``region``, their things' link rows first."""
        if self.links is not None and account_id and keys:
            prefix = f"{account_id}:{region}:"
            names = [key[len(prefix) :] for key in keys if key.startswith(prefix)]
            self.links.delete_things(account_id, region, names)
        self.deleted += _delete_keys(self._data, self._retry, keys, "an inventory delete")


def delete_stale(rows: KvRows, result: inventory.InventoryResult, *, account_id: str, region: str) -> int:
    """Delete rows of things a complete run did not see (deleted things), and their link rows. Keys are streamed,
    not held."""
    seen = result.seen_sorted()
    doomed: List[str] = []
    for key in rows.keys(account_id, region):
        if not inventory.contains(seen, inventory.fingerprint(key)):
            doomed.append(key)
            if len(doomed) >= DELETE_BATCH:
                rows.delete(doomed, account_id=account_id, region=region)
                doomed = []
    rows.delete(doomed, account_id=account_id, region=region)
    return rows.deleted
