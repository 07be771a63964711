"""Splunk's limits, as the SPL model (``splrun``) applies them: each one cites the .conf.spec setting (or the Search
Reference option) it comes from, with the spec's default. Where Splunk caps, skips or refuses, the model does too,
and every cap that drops rows is recorded as a ``Truncation`` on the run: the detection tests fail on any.

Sources (Splunk Enterprise 8.2 .. 10.0 .conf.spec files; the defaults have not changed across them):

- limits.conf ``[kvstore]`` ``max_rows_per_query = 50000``: "maximum number of rows that will be returned for a single
  query to a collection"; ``max_size_per_result_mb = 50``: "maximum size, in megabytes, of the result that will be
  returned for a single query to a collection"; ``max_documents_per_batch_save = 1000``: "maximum number of documents
  that can be saved in a single batch" (``outputlookup`` writes in batches of that size: more writes, no loss).
- limits.conf ``[join]`` ``subsearch_maxout = 50000`` rows and ``subsearch_maxtime = 60`` seconds for ``join``'s
  subsearch.
- limits.conf ``[subsearch]`` ``maxout = 10000`` rows and ``maxtime = 60`` seconds for a plain subsearch (``[...]``
  as search terms).
- Search Reference, ``append``: ``maxout`` defaults to 50000 rows, ``maxtime`` to 60 seconds (``appendcols`` the
  same).
- collections.conf ``replicate = <boolean>``, default false: "If false, lookups that depend on this collection are
  not available" on search peers (indexers); a ``lookup local=true`` runs on the search head instead. Automatic
  lookups (props.conf ``LOOKUP-``) run where the events are: on the indexers in a distributed deployment.

Time caps (``maxtime``) are not modelled: the model has no clock of Splunk's; the row caps bind first at fleet scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

KV_MAX_ROWS_PER_QUERY = 50_000  # limits.conf [kvstore] max_rows_per_query
KV_MAX_SIZE_PER_RESULT_MB = 50  # limits.conf [kvstore] max_size_per_result_mb
KV_MAX_DOCUMENTS_PER_BATCH_SAVE = 1_000  # limits.conf [kvstore] max_documents_per_batch_save
JOIN_SUBSEARCH_MAXOUT = 50_000  # limits.conf [join] subsearch_maxout
SUBSEARCH_MAXOUT = 10_000  # limits.conf [subsearch] maxout
APPEND_MAXOUT = 50_000  # Search Reference: append / appendcols maxout

# Commands that run on the indexers (distributable streaming, Search Reference "Types of commands") until the first
# command that is not: from then on everything runs on the search head.
DISTRIBUTABLE_STREAMING = {"eval", "where", "search", "fillnull", "rename", "makemv", "mvexpand", "fields", "lookup"}


@dataclass(frozen=True)
class Truncation:
    """Rows Splunk dropped (or a lookup it could not serve): what, which limit, how many kept of how many."""

    command: str
    limit: str
    kept: int
    total: int

    def __str__(self) -> str:
        return f"{self.command}: {self.limit} kept {self.kept:,} of {self.total:,} rows"


def cap_kv_query(rows: List[Dict[str, Any]], what: str) -> Tuple[List[Dict[str, Any]], List[Truncation]]:
    """One query of a KV collection: at most ``max_rows_per_query`` rows and ``max_size_per_result_mb`` MB."""
    out: List[Truncation] = []
    if len(rows) > KV_MAX_ROWS_PER_QUERY:
        out.append(Truncation(what, "[kvstore] max_rows_per_query=50000", KV_MAX_ROWS_PER_QUERY, len(rows)))
        rows = rows[:KV_MAX_ROWS_PER_QUERY]
    budget = KV_MAX_SIZE_PER_RESULT_MB * 1024 * 1024
    size = 0
    for n, row in enumerate(rows):
        size += len(json.dumps(row, separators=(",", ":")))
        if size > budget:
            out.append(Truncation(what, "[kvstore] max_size_per_result_mb=50", n, len(rows)))
            return rows[:n], out
    return rows, out


def cap(
    rows: List[Dict[str, Any]], limit: int, what: str, setting: str
) -> Tuple[List[Dict[str, Any]], List[Truncation]]:
    if len(rows) <= limit:
        return rows, []
    return rows[:limit], [Truncation(what, f"{setting}={limit}", limit, len(rows))]


def batches(count: int) -> int:
    """KV batch saves ``outputlookup`` makes for ``count`` rows (``max_documents_per_batch_save``)."""
    return -(-count // KV_MAX_DOCUMENTS_PER_BATCH_SAVE)
