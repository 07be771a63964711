"""The inventory input's KV store side: prior rows read a page at a time, changed rows written in batches, stale
rows deleted, all within splunkd's KV store limits (limits.conf ``[kvstore]``):

- a query returns at most ``max_rows_per_query`` (50,000 by default) rows: keys are read in ``_key`` ranges of
  :data:`KEY_PAGE` until a range comes back empty (so a lower limit set by an admin is still paged through);
- ``max_documents_per_batch_save`` (1,000): rows are saved :data:`SAVE_BATCH` at a time;
- prior rows are fetched per page of things with ``batch_find`` (a POST: 500 keys do not fit in a URL).

Nothing here holds the fleet: one page of rows at a time, and the library's 8-byte fingerprints of the keys seen.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Dict, Iterator, List

from iot_defender import inventory

KEY_PAGE = 10_000
SAVE_BATCH = 1_000
DELETE_BATCH = 100
Retry = Callable[[Callable[[], Any], str], Any]


class KvRows:
    """The ``iot_thing_inventory`` collection as the library's :class:`iot_defender.inventory.RowStore`."""

    def __init__(self, data: Any, retry: Retry):
        self._data = data
        self._retry = retry
        self.reads = 0
        self.writes = 0
        self.deleted = 0

    def known(self, keys: List[str]) -> Dict[str, Dict[str, Any]]:
        query = {"query": {"$or": [{"_key": key} for key in keys]}, "limit": len(keys)}
        answer = self._retry(lambda: self._data.batch_find(query), "an inventory read")
        self.reads += 1
        docs = answer[0] if answer and isinstance(answer[0], list) else []
        return {str(doc.get("_key")): doc for doc in docs if isinstance(doc, dict)}

    def write(self, rows: List[Dict[str, Any]]) -> None:
        for start in range(0, len(rows), SAVE_BATCH):
            chunk = rows[start : start + SAVE_BATCH]
            self._retry(functools.partial(self._data.batch_save, *chunk), "an inventory write")
            self.writes += len(chunk)

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

    def delete(self, keys: List[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            chunk = keys[start : start + DELETE_BATCH]
            query = json.dumps({"$or": [{"_key": key} for key in chunk]})
            self._retry(functools.partial(self._data.delete, query=query), "an inventory delete")
            self.deleted += len(chunk)


def delete_stale(rows: KvRows, result: inventory.InventoryResult, *, account_id: str, region: str) -> int:
    """Delete rows of things a complete run did not see (deleted things). Keys are streamed, not held."""
    seen = result.seen_sorted()
    doomed: List[str] = []
    for key in rows.keys(account_id, region):
        if not inventory.contains(seen, inventory.fingerprint(key)):
            doomed.append(key)
            if len(doomed) >= DELETE_BATCH:
                rows.delete(doomed)
                doomed = []
    rows.delete(doomed)
    return rows.deleted
