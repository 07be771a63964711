"""In-memory KV store with the query subset splunkd's KV store (MongoDB underneath) accepts from add-ons.

splunkd's default ``limits.conf [kvstore]`` limits are enforced, so an add-on that ignores them fails here as it
would in Splunk: a query answers at most ``max_rows_per_query`` (50,000) rows, silently cut, whatever ``limit``
asks; a batch save takes at most ``max_documents_per_batch_save`` (1,000) documents.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

MAX_ROWS_PER_QUERY = 50_000
MAX_DOCUMENTS_PER_BATCH_SAVE = 1_000


class KVError(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


_MISSING = object()


def _get_path(doc: Dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def _cmp_key(value: Any) -> Tuple[int, Any]:
    # Mongo orders numbers < strings < objects < arrays < booleans; enough for add-on queries
    if value is None or value is _MISSING:
        return (0, 0)
    if isinstance(value, bool):
        return (5, value)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is _MISSING:
        return False
    lk, rk = _cmp_key(left), _cmp_key(right)
    if lk[0] != rk[0]:
        return False  # Mongo: comparisons only match within a type bracket
    return {
        "$gt": lk > rk,
        "$gte": lk >= rk,
        "$lt": lk < rk,
        "$lte": lk <= rk,
    }[op]


def _field_matches(value: Any, condition: Any) -> bool:
    if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
        for op, operand in condition.items():
            if op in ("$gt", "$gte", "$lt", "$lte"):
                if isinstance(value, list):
                    if not any(_compare(op, item, operand) for item in value):
                        return False
                elif not _compare(op, value, operand):
                    return False
            elif op == "$ne":
                if _equals(value, operand):
                    return False
            elif op == "$in":
                if not any(_equals(value, item) for item in operand):
                    return False
            elif op == "$nin":
                if any(_equals(value, item) for item in operand):
                    return False
            elif op == "$exists":
                if bool(operand) != (value is not _MISSING):
                    return False
            elif op == "$regex":
                if not isinstance(value, str) or not re.search(operand, value):
                    return False
            elif op == "$not":
                if _field_matches(value, operand):
                    return False
            else:
                raise KVError(400, f"Unsupported query operator {op}")
        return True
    return _equals(value, condition)


def _equals(value: Any, condition: Any) -> bool:
    if value is _MISSING:
        return condition is None
    if isinstance(value, list) and not isinstance(condition, list):
        return any(item == condition for item in value)
    return value == condition


def matches(doc: Dict[str, Any], query: Dict[str, Any]) -> bool:
    for key, condition in query.items():
        if key == "$and":
            if not all(matches(doc, sub) for sub in condition):
                return False
        elif key == "$or":
            if not any(matches(doc, sub) for sub in condition):
                return False
        elif key == "$nor":
            if any(matches(doc, sub) for sub in condition):
                return False
        elif key.startswith("$"):
            raise KVError(400, f"Unsupported query operator {key}")
        elif not _field_matches(_get_path(doc, key), condition):
            return False
    return True


def parse_sort(sort: Optional[str]) -> List[Tuple[str, int]]:
    """splunkd's ``sort=field1:1,field2:-1`` (``field`` alone = ascending)."""
    if not sort:
        return []
    keys = []
    for part in sort.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, direction = part.partition(":")
        keys.append((name, -1 if direction.strip() in ("-1", "desc") else 1))
    return keys


def project(doc: Dict[str, Any], fields: Optional[str]) -> Dict[str, Any]:
    if not fields:
        return doc
    include, exclude = [], []
    for part in fields.split(","):
        name, _, flag = part.strip().partition(":")
        if not name:
            continue
        (exclude if flag.strip() == "0" else include).append(name)
    if include:
        out = {k: doc[k] for k in include if k in doc}
        for k in ("_key", "_user"):
            if k in doc and k not in exclude:
                out[k] = doc[k]
        return out
    return {k: v for k, v in doc.items() if k not in exclude}


class Collection:
    def __init__(self, name: str, app: str, owner: str, fields: Dict[str, str]):
        self.name = name
        self.app = app
        self.owner = owner
        self.fields = dict(fields)
        self.accelerated_fields: Dict[str, str] = {}
        self.docs: Dict[str, Dict[str, Any]] = {}


class KVStore:
    """Collections keyed by (app, name); documents are JSON objects with ``_key`` and ``_user``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.collections: Dict[Tuple[str, str], Collection] = {}
        self.max_rows_per_query = MAX_ROWS_PER_QUERY
        self.max_documents_per_batch_save = MAX_DOCUMENTS_PER_BATCH_SAVE

    # collections -------------------------------------------------------------------------------------------
    def create_collection(self, app: str, name: str, owner: str = "nobody", **params: str) -> Collection:
        with self._lock:
            if (app, name) in self.collections:
                raise KVError(409, f"An object with name={name} already exists")
            fields = {k[len("field.") :]: v for k, v in params.items() if k.startswith("field.")}
            coll = Collection(name, app, owner, fields)
            coll.accelerated_fields = {
                k[len("accelerated_fields.") :]: v for k, v in params.items() if k.startswith("accelerated_fields.")
            }
            self.collections[(app, name)] = coll
            return coll

    def get_collection(self, app: str, name: str) -> Collection:
        with self._lock:
            if app == "-":
                for (_app, coll_name), coll in self.collections.items():
                    if coll_name == name:
                        return coll
            coll = self.collections.get((app, name))
            if coll is None:
                raise KVError(404, f"Could not find object id={name}")
            return coll

    def list_collections(self, app: str) -> List[Collection]:
        with self._lock:
            return [c for (a, _n), c in sorted(self.collections.items()) if app in ("-", a)]

    def delete_collection(self, app: str, name: str) -> None:
        with self._lock:
            self.get_collection(app, name)
            del self.collections[(app, name)]

    # documents ---------------------------------------------------------------------------------------------
    @staticmethod
    def _prepare(doc: Any, user: str) -> Dict[str, Any]:
        if not isinstance(doc, dict):
            raise KVError(400, "Document must be a JSON object")
        doc = copy.deepcopy(doc)
        key = doc.get("_key")
        doc["_key"] = str(key) if key not in (None, "") else uuid.uuid4().hex[:24]
        doc["_user"] = user
        return doc

    def insert(self, app: str, name: str, doc: Any, user: str = "nobody") -> str:
        with self._lock:
            coll = self.get_collection(app, name)
            doc = self._prepare(doc, user)
            if doc["_key"] in coll.docs:
                raise KVError(409, f"A document with the same key and user already exists: {doc['_key']}")
            coll.docs[doc["_key"]] = doc
            return doc["_key"]

    def get(self, app: str, name: str, key: str) -> Dict[str, Any]:
        with self._lock:
            coll = self.get_collection(app, name)
            if key not in coll.docs:
                raise KVError(404, f"Could not find object id={key}")
            return copy.deepcopy(coll.docs[key])

    def update(self, app: str, name: str, key: str, doc: Any, user: str = "nobody") -> str:
        with self._lock:
            coll = self.get_collection(app, name)
            if not isinstance(doc, dict):
                raise KVError(400, "Document must be a JSON object")
            doc = dict(doc)
            doc["_key"] = key
            coll.docs[key] = self._prepare(doc, user)
            return key

    def delete(self, app: str, name: str, key: str) -> None:
        with self._lock:
            coll = self.get_collection(app, name)
            if key not in coll.docs:
                raise KVError(404, f"Could not find object id={key}")
            del coll.docs[key]

    def query(
        self,
        app: str,
        name: str,
        query: Optional[Dict[str, Any]] = None,
        sort: Optional[str] = None,
        limit: int = 0,
        skip: int = 0,
        fields: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        with self._lock:
            coll = self.get_collection(app, name)
            keys = _keys_only(query or {})
            if keys is not None:  # {"_key": k} or {"$or": [{"_key": k}, ...]}: look the keys up, as Mongo's index does
                found = [coll.docs[k] for k in dict.fromkeys(keys) if k in coll.docs]
            else:
                found = [d for d in coll.docs.values() if matches(d, query or {})]
            for field, direction in reversed(parse_sort(sort)):
                found.sort(key=lambda d, f=field: _cmp_key(_get_path(d, f)), reverse=direction < 0)
            found = found[skip:]
            cap = self.max_rows_per_query
            found = found[: min(limit, cap) if limit else cap]
            return [project(copy.deepcopy(d), fields) for d in found]

    def delete_where(self, app: str, name: str, query: Optional[Dict[str, Any]]) -> int:
        with self._lock:
            coll = self.get_collection(app, name)
            keys = _keys_only(query or {})
            if keys is not None:
                doomed = [k for k in dict.fromkeys(keys) if k in coll.docs]
            else:
                doomed = [k for k, d in coll.docs.items() if matches(d, query or {})]
            for key in doomed:
                del coll.docs[key]
            return len(doomed)

    def batch_save(self, app: str, name: str, docs: Any, user: str = "nobody") -> List[str]:
        if not isinstance(docs, list):
            raise KVError(400, "batch_save expects a JSON array of documents")
        if len(docs) > self.max_documents_per_batch_save:
            raise KVError(
                400,
                "Request exceeds API limits - see limits.conf for details. (Too many documents for a single batch "
                f"save, max_documents_per_batch_save={self.max_documents_per_batch_save})",
            )
        with self._lock:
            coll = self.get_collection(app, name)
            keys = []
            for doc in docs:
                prepared = self._prepare(doc, user)
                coll.docs[prepared["_key"]] = prepared
                keys.append(prepared["_key"])
            return keys

    def snapshot(self, name: str, app: str = "-") -> List[Dict[str, Any]]:
        with self._lock:
            try:
                coll = self.get_collection(app, name)
            except KVError:
                return []
            return [copy.deepcopy(d) for d in coll.docs.values()]


def _keys_only(query: Dict[str, Any]) -> Optional[List[str]]:
    """The keys of a query that only names keys, else None."""
    if set(query) == {"_key"} and isinstance(query["_key"], str):
        return [query["_key"]]
    if set(query) == {"$or"} and isinstance(query["$or"], list) and query["$or"]:
        subs = query["$or"]
        if all(isinstance(q, dict) and set(q) == {"_key"} and isinstance(q["_key"], str) for q in subs):
            return [q["_key"] for q in subs]
    return None


QueryParser = Callable[[str], Dict[str, Any]]
