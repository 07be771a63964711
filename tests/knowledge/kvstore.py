"""Lookup tables of the SPL model: CSV files and KV store collections, with the KV store's write modes and counters.

``outputlookup name`` replaces a table; on a KV collection ``outputlookup append=true`` inserts and ``outputlookup
append=true key_field=_key`` upserts by key (Search Reference, outputlookup: "key_field ... to replace a specific
record in a KV store collection"). A KV collection keeps only its declared fields (``fields_list``) plus ``_key``, as
its lookup returns them. transforms.conf ``filter`` ("Filter results from the lookup table before returning data ... For
KV Store lookups, filtering is done when data is initially retrieved", transforms.conf.spec; default none) applies to
every read, ``lookup`` and ``inputlookup`` alike. ``inputlookup [max=N] <lookup> where <query>`` is one KV query: the
filter and the where clause select the rows, ``max`` (Search Reference, inputlookup: default 1,000,000,000) keeps the
first N, and the KV store answers at most ``max_rows_per_query`` of them (``limits.cap_kv_query``). Counters (rows
read by queries and lookups, rows written, batch saves) feed the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

from tests.knowledge import limits, splkit

Row = Dict[str, Any]


def key_text(value: Any) -> str:
    """A value as a lookup/group key: numbers without a trailing .0, text as written."""
    return splkit._text(value) or ""


def stored(value: Any) -> Any:
    if type(value) is str:
        return value
    if isinstance(value, list):
        return [key_text(v) for v in value]
    return key_text(value)


@dataclass
class Table:
    """A lookup's rows. ``kv`` tables keep only ``fields`` (and ``_key``) on write; ``replicate`` is the collection's
    collections.conf setting (default false: indexers cannot serve its lookups)."""

    fields: List[str]
    rows: List[Row] = field(default_factory=list)
    kv: bool = False
    case_sensitive: bool = True
    max_matches: int = 100
    replicate: bool = False
    filter: Optional[str] = None
    writes: int = 0
    version: int = 0
    rows_read: int = 0
    rows_written: int = 0
    batch_saves: int = 0
    _positions: Optional[Dict[str, int]] = field(default=None, repr=False, compare=False)
    _filter_ast: Any = field(default=None, repr=False, compare=False)

    def served(self) -> List[Row]:
        """The rows a read returns: those the lookup's ``filter`` keeps (all of them without one)."""
        if not self.filter:
            return self.rows
        if self._filter_ast is None:
            self._filter_ast = splkit.parse_base_search(self.filter)
        return [r for r in self.rows if splkit.matches(self._filter_ast, r, "")]

    def query(self, where: Any, limit: Optional[int]) -> List[Row]:
        """``inputlookup max=limit <lookup> where <where>``: the served rows matching ``where`` (a parsed base
        search, or None), the first ``limit`` of them. The KV cap is applied by the caller (``limits.cap_kv_query``)."""
        rows = self.served()
        if where is not None:
            rows = [r for r in rows if splkit.matches(where, r, "")]
        return rows if limit is None else rows[:limit]

    def _shape(self, rows: Iterable[Row]) -> List[Row]:
        keep = [f for f in self.fields] if self.kv else None
        out = []
        for row in rows:
            items = row.items() if keep is None else ((k, row.get(k)) for k in keep)
            out.append({k: stored(v) for k, v in items if v is not None and not k.startswith("__")})
        return out

    def _written(self, rows: List[Row]) -> None:
        self.writes += 1
        self.version += 1
        self.rows_written += len(rows)
        self.batch_saves += limits.batches(len(rows)) if self.kv else 0

    def store(self, rows: Iterable[Row]) -> None:
        """``outputlookup name``: the table becomes these rows."""
        self.rows = self._shape(rows)
        self._positions = None
        self._written(self.rows)

    def upsert(self, rows: Iterable[Row], key_field: Optional[str]) -> None:
        """``outputlookup append=true [key_field=...]``: insert, or replace the row with the same key."""
        fresh = self._shape(rows)
        if key_field is None:
            self.rows = self.rows + fresh
            self._positions = None
        else:
            if self._positions is None:
                self._positions = {r["_key"]: n for n, r in enumerate(self.rows) if r.get("_key") is not None}
            by_key, merged = self._positions, self.rows
            for row in fresh:
                key = row.get(key_field)
                if key is None:
                    raise splkit.SplError(f"outputlookup key_field={key_field}: a row has no {key_field}")
                row["_key"] = key
                if key in by_key:
                    merged[by_key[key]] = row
                else:
                    by_key[key] = len(merged)
                    merged.append(row)
            self.rows = merged
        self._written(fresh)
