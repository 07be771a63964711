"""Runs the add-on's dashboard searches over indexed events: the results Splunk would return, modelled.

``splkit`` reads SPL (which fields a search needs); this module executes it, reusing splkit's parsers (pipeline
splitting, base-search matching, eval expressions) and model's knowledge objects (lookups, KV rows), for the
commands the shipped dashboards use: search, where, eval, stats, eventstats, timechart, sort, head, table,
fields, rename, lookup, inputlookup, join (left), dedup, fillnull. An unknown command or function is an error
(``splkit.SplError``), never a silent pass.

Results come back in Splunk's JSON "columns" layout (``{"fields": [{"name": ...}], "columns": [[...], ...]}``)
with every value a string (or a list of strings for a multivalue field), as splunkd's search API returns them.
``make dashboards-check`` feeds them to Dashboard Studio in place of real searches.

Simplifications (documented, deliberate): the time range is not applied (every event of the demo is in range);
``now()`` is a fixed instant given by the caller so results are reproducible; timechart buckets span the events
that matched, not the whole time range.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from tests.knowledge import model, splkit

Row = Dict[str, Any]
Value = Any


class Evaluator(splkit.Evaluator):
    """splkit's evaluator plus the search-time functions the dashboards use (time formatting, rounding, now)."""

    def __init__(self, fields: Mapping[str, Value], now: float):
        super().__init__(fields)
        self.now = now

    def _call(self, name: str, args: List[Any], scope: Optional[Dict[str, Value]]) -> Value:
        ev = lambda n: self.eval(n, scope)  # noqa: E731
        if name == "now":
            self._arity(name, args, 0)
            return self.now
        if name == "strftime":
            self._arity(name, args, 2)
            when, fmt = splkit._number(ev(args[0])), splkit._text(ev(args[1]))
            if when is None or fmt is None:
                return None
            stamp = dt.datetime.fromtimestamp(when, tz=dt.timezone.utc)
            return stamp.strftime(fmt.replace("%3N", f"{stamp.microsecond // 1000:03d}"))
        if name == "strptime":
            self._arity(name, args, 2)
            text, fmt = splkit._text(ev(args[0])), splkit._text(ev(args[1]))
            if text is None or fmt is None:
                return None
            try:
                parsed = dt.datetime.strptime(text, fmt.replace("%3N", "%f"))
            except ValueError:
                return None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.timezone.utc)
            return parsed.timestamp()
        if name == "round":
            number = splkit._number(ev(args[0]))
            digits = int(splkit._number(ev(args[1])) or 0) if len(args) > 1 else 0
            return None if number is None else round(number, digits)
        if name == "abs":
            self._arity(name, args, 1)
            number = splkit._number(ev(args[0]))
            return None if number is None else abs(number)
        return super()._call(name, args, scope)


# ------------------------------------------------------------------------------------------ values


def _values(value: Value) -> List[Value]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def text(value: Value) -> Any:
    """A value as splunkd's JSON output gives it: strings, multivalue as a list of strings, null as None."""
    if isinstance(value, list):
        out = [text(v) for v in value]
        return out[0] if len(out) == 1 else out
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(round(value, 6))
    return str(value)


def _sort_key(value: Value) -> Tuple[int, Any]:
    first = splkit._first(value)
    number = splkit._number(first)
    if number is not None:
        return (0, number)
    if first is None:
        return (2, "")
    return (1, str(first).lower())


# ------------------------------------------------------------------------------------------ aggregations


def _aggregate(function: str, rows: Sequence[Row], argument: Optional[str]) -> Value:
    if function == "count" and argument is None:
        return len(rows)
    values = [v for row in rows for v in _values(row.get(argument or ""))]
    if function == "count":
        return len(values)
    if function == "dc":
        return len({text(v) for v in values})
    if function == "values":
        distinct = sorted({text(v) for v in values})
        return distinct if distinct else None
    if function == "list":
        return [text(v) for v in values] or None
    if function in ("latest", "earliest"):
        timed = [
            (row.get("_time") or 0, row.get(argument or "")) for row in rows if row.get(argument or "") is not None
        ]
        if not timed:
            return None
        pick = max if function == "latest" else min
        return pick(timed, key=lambda pair: pair[0])[1]
    if function in ("first", "last"):
        present = [row.get(argument or "") for row in rows if row.get(argument or "") is not None]
        return (present[0] if function == "first" else present[-1]) if present else None
    numbers = [n for n in (splkit._number(v) for v in values) if n is not None]
    if function in ("max", "min"):
        if numbers and len(numbers) == len(values):
            return max(numbers) if function == "max" else min(numbers)
        texts = [text(v) for v in values]
        return (max(texts) if function == "max" else min(texts)) if texts else None
    if function == "sum":
        return sum(numbers) if numbers else None
    if function in ("avg", "mean"):
        return sum(numbers) / len(numbers) if numbers else None
    raise splkit.SplError(f"stats function {function}() is not modelled")


_AGG = re.compile(r"^([a-z_]+)(?:\(([^)]*)\))?$")


def parse_aggregations(args: List[str]) -> Tuple[List[Tuple[str, Optional[str], str]], List[str], Dict[str, str]]:
    """(function, argument, output name) list, the by-fields, and key=value options (span=, limit=)."""
    options: Dict[str, str] = {}
    aggs: List[Tuple[str, Optional[str], str]] = []
    by: List[str] = []
    i = 0
    args = [a for a in args if a != ","]
    while i < len(args):
        arg = args[i]
        if arg.lower() == "by":
            by = args[i + 1 :]
            break
        if "=" in arg and "(" not in arg:
            key, value = arg.split("=", 1)
            options[key] = value
            i += 1
            continue
        m = _AGG.match(arg)
        if not m:
            raise splkit.SplError(f"cannot read aggregation {arg!r}")
        function, argument = m.group(1), (m.group(2) or None)
        name = arg
        if i + 2 < len(args) + 1 and i + 1 < len(args) and args[i + 1].lower() == "as":
            name = args[i + 2]
            i += 3
        else:
            i += 1
        aggs.append((function, argument, name))
    return aggs, by, options


def _group(rows: Iterable[Row], by: List[str]) -> Dict[Tuple[Any, ...], List[Row]]:
    """Rows by the values of the by-fields; a multivalue by-field puts the row in each of its values' groups and a
    row missing a by-field is in no group (as stats does)."""
    groups: Dict[Tuple[Any, ...], List[Row]] = {}
    for row in rows:
        keys: List[Tuple[Any, ...]] = [()]
        for name in by:
            values = [text(v) for v in _values(row.get(name))]
            keys = [(*k, v) for k in keys for v in dict.fromkeys(values)]
        for key in keys:
            groups.setdefault(key, []).append(row)
    return groups


# ------------------------------------------------------------------------------------------ runner


class Runner:
    """Executes searches over indexed events (``fleet_events.Indexed``-like objects with ``fields``, ``raw``,
    ``time`` and ``meta``) and lookup tables."""

    def __init__(
        self,
        events: Sequence[Any],
        tables: Mapping[str, List[Dict[str, Any]]],
        transforms: Mapping[str, Mapping[str, str]],
        analyzer: splkit.Analyzer,
        now: float,
    ):
        self.events = events
        self.tables = tables
        self.transforms = transforms
        self.analyzer = analyzer
        self.now = now
        self.commands: Dict[str, Callable[[List[Row], str, List[str]], List[Row]]] = {
            "search": self._search,
            "where": self._where,
            "eval": self._eval,
            "stats": self._stats,
            "eventstats": self._eventstats,
            "timechart": self._timechart,
            "sort": self._sort,
            "head": self._head,
            "table": self._table,
            "fields": self._fields,
            "rename": self._rename,
            "lookup": self._lookup,
            "inputlookup": self._inputlookup,
            "join": self._join,
            "dedup": self._dedup,
            "fillnull": self._fillnull,
        }

    # -- entry point
    def run(self, spl: str) -> Tuple[List[str], List[Row]]:
        """(column order, rows) of a search."""
        commands = splkit.split_pipeline(self.analyzer.expand(spl.strip()))
        self._columns: List[str] = []
        rows = self._base(commands[0]) if commands[0] else []
        for command in commands[1:]:
            name, _, rest = command.partition(" ")
            handler = self.commands.get(name)
            if handler is None:
                raise splkit.SplError(f"command {name} is not modelled")
            rows = handler(rows, rest.strip(), self._columns)
        columns = self._columns
        if not columns:
            seen: Dict[str, None] = {}
            for row in rows:
                for key in row:
                    if not key.startswith("_") or key == "_time":
                        seen.setdefault(key, None)
            columns = list(seen)
        return columns, rows

    def results(self, spl: str) -> Dict[str, Any]:
        """Splunk's JSON column layout of a search's results, values as strings."""
        columns, rows = self.run(spl)
        return {
            "fields": [{"name": name} for name in columns],
            "columns": [[text(row.get(name)) for row in rows] for name in columns],
        }

    # -- events
    def _base(self, text_: str) -> List[Row]:
        node = _indexed_terms(splkit.parse_base_search(text_))
        wanted = _sourcetypes(node)
        rows = []
        for event in self.events:
            if wanted is not None and event.sourcetype.lower() not in wanted:
                continue  # cannot match: a shortcut, not a different result
            fields = dict(event.fields)
            fields["_index"] = event.meta.get("index")
            if splkit.matches(node, fields, event.raw):
                fields["_time"] = event.time
                fields["_raw"] = event.raw
                rows.append(fields)
        rows.sort(key=lambda r: r["_time"], reverse=True)  # Splunk returns events newest first
        return rows

    def _set_columns(self, columns: List[str]) -> None:
        self._columns = columns

    # -- commands
    def _search(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        node = _indexed_terms(splkit.parse_base_search(rest))
        return [row for row in rows if splkit.matches(node, row, str(row.get("_raw", "")))]

    def _where(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        ast = splkit.parse_expression(rest)
        return [row for row in rows if Evaluator(row, self.now).eval(ast) is True]

    def _eval(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        parts = [(name, splkit.parse_expression(expr)) for name, expr in splkit.Analyzer._eval_parts(rest)]
        for row in rows:
            for name, ast in parts:
                value = Evaluator(row, self.now).eval(ast)
                if value is None:
                    row.pop(name, None)
                else:
                    row[name] = value
        if columns:
            self._set_columns(columns + [n for n, _ in parts if n not in columns])
        return rows

    def _stats(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        aggs, by, _options = parse_aggregations(splkit.split_args(rest))
        groups = _group(rows, by) if by else {(): rows}
        out = []
        for key in sorted(groups, key=lambda k: [_sort_key(v) for v in k]):
            row: Row = dict(zip(by, key))
            for function, argument, name in aggs:
                row[name] = _aggregate(function, groups[key], argument)
            out.append(row)
        self._set_columns(by + [name for _f, _a, name in aggs])
        return out

    def _eventstats(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        aggs, by, _options = parse_aggregations(splkit.split_args(rest))
        groups = _group(rows, by) if by else {(): rows}
        for members in groups.values():
            values = {name: _aggregate(function, members, argument) for function, argument, name in aggs}
            for row in members:
                row.update(values)
        if columns:
            self._set_columns(columns + [name for _f, _a, name in aggs if name not in columns])
        return rows

    def _timechart(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        aggs, by, options = parse_aggregations(splkit.split_args(rest))
        span = _span_seconds(options.get("span", "30m"))
        limit = int(options.get("limit", "10"))
        if not rows:
            self._set_columns(["_time"])
            return []
        buckets = sorted({math.floor(r["_time"] / span) * span for r in rows})
        start, end = buckets[0], buckets[-1]
        times = [start + n * span for n in range(int((end - start) / span) + 1)]
        by_bucket: Dict[float, List[Row]] = {}
        for row in rows:
            by_bucket.setdefault(math.floor(row["_time"] / span) * span, []).append(row)
        if by:
            function, argument, _name = aggs[0]
            series_rows = _group(rows, by[:1])
            totals = {key[0]: _series_weight(function, members, argument) for key, members in series_rows.items()}
            ranked = sorted(totals, key=lambda s: (-totals[s], s))
            kept = ranked[:limit] if limit > 0 else ranked
            other = [s for s in ranked if s not in kept]
            series = sorted(kept, key=_sort_key) + (["OTHER"] if other else [])
        else:
            series = [name for _f, _a, name in aggs]
        out = []
        for when in times:
            members = by_bucket.get(when, [])
            row: Row = {"_time": _iso(when), "_span": str(span)}
            if by:
                function, argument, _name = aggs[0]
                grouped = _group(members, by[:1])
                for name in series:
                    if name == "OTHER":
                        picked = [r for key, rs in grouped.items() if key[0] in other for r in rs]
                    else:
                        picked = grouped.get((name,), [])
                    row[name] = _aggregate(function, picked, argument) if picked else _empty(function)
            else:
                for function, argument, name in aggs:
                    row[name] = _aggregate(function, members, argument) if members else _empty(function)
            out.append(row)
        self._set_columns(["_time", *series, "_span"])
        return out

    def _sort(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        args = [a for a in splkit.split_args(rest) if a != ","]
        limit = 10000
        if args and args[0].isdigit():
            limit = int(args.pop(0)) or len(rows)
        keys: List[Tuple[str, bool]] = []
        descending = False
        for arg in args:
            if arg in ("-", "+"):
                descending = arg == "-"
                continue
            if arg[0] in "-+":
                keys.append((arg[1:], arg[0] == "-"))
            else:
                keys.append((arg, descending))
            descending = False
        for name, desc in reversed(keys):
            present = [r for r in rows if r.get(name) is not None]
            missing = [r for r in rows if r.get(name) is None]
            present.sort(key=lambda r, n=name: _sort_key(r.get(n)), reverse=desc)
            rows = present + missing
        return rows[:limit]

    def _head(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        return rows[: int(rest or "10")]

    def _table(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        names = [a for a in splkit.split_args(rest) if a != ","]
        self._set_columns(names)
        return [{n: row.get(n) for n in names if row.get(n) is not None} for row in rows]

    def _fields(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        args = [a for a in splkit.split_args(rest) if a != ","]
        if args and args[0] == "-":
            drop = set(args[1:])
            return [{k: v for k, v in row.items() if k not in drop} for row in rows]
        names = args[1:] if args and args[0] == "+" else args
        self._set_columns(names)
        return [{n: row.get(n) for n in [*names, "_time"] if row.get(n) is not None} for row in rows]

    def _rename(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        args = [a for a in splkit.split_args(rest) if a != ","]
        pairs = [(args[i], args[i + 2]) for i in range(0, len(args), 3)]
        for row in rows:
            for old, new in pairs:
                if old in row:
                    row[new] = row.pop(old)
        if columns:
            mapping = dict(pairs)
            self._set_columns([mapping.get(c, c) for c in columns])
        return rows

    def _lookup(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        auto = model.parse_lookup_setting(rest)
        table = self.tables.get(auto.name)
        if table is None:
            raise splkit.SplError(f"lookup {auto.name} has no table")
        if not auto.outputs:
            header = list(table[0]) if table else []
            inputs = {column for column, _f in auto.inputs}
            auto.outputs = [(c, c) for c in header if c not in inputs and not c.startswith("_")]
        sensitive = self.transforms.get(auto.name, {}).get("case_sensitive_match", "true").lower() in ("1", "true")
        norm = (lambda v: v) if sensitive else (lambda v: v.lower())
        for row in rows:
            wanted = [
                (column, {norm(str(text(v))) for v in _values(row.get(event_field))})
                for column, event_field in auto.inputs
            ]
            hits = []
            if all(values for _c, values in wanted):
                hits = [t for t in table if all(norm(str(t.get(c, ""))) in values for c, values in wanted)]
            for column, event_field in auto.outputs:
                found = [t[column] for t in hits if t.get(column) not in (None, "")]
                if auto.outputnew and row.get(event_field) is not None:
                    continue
                if found:
                    row[event_field] = found[0] if len(found) == 1 else found
                else:
                    row.pop(event_field, None)
        if columns:
            self._set_columns(columns + [f for _c, f in auto.outputs if f not in columns])
        return rows

    def _inputlookup(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        name = next(a for a in splkit.split_args(rest) if "=" not in a)
        table = self.tables.get(name)
        if table is None:
            raise splkit.SplError(f"inputlookup {name} has no table")
        out = [{k: v for k, v in t.items() if v not in (None, "")} for t in table]
        self._set_columns(list(table[0]) if table else [])
        return out

    def _join(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        m = re.match(r"^(.*?)\[(.*)\]\s*$", rest, re.S)
        if not m:
            raise splkit.SplError(f"cannot read join {rest!r}")
        args = [a for a in splkit.split_args(m.group(1)) if a != ","]
        join_type = next((a.split("=", 1)[1] for a in args if a.startswith("type=")), "inner")
        keys = [a for a in args if "=" not in a]
        sub = m.group(2).strip()
        sub = sub[len("search ") :] if sub.startswith("search ") else sub
        saved_columns = columns
        sub_columns, sub_rows = Runner(self.events, self.tables, self.transforms, self.analyzer, self.now).run(sub)
        index: Dict[Tuple[Any, ...], Row] = {}
        for sub_row in sub_rows:
            index.setdefault(tuple(text(sub_row.get(k)) for k in keys), sub_row)
        out = []
        for row in rows:
            match = index.get(tuple(text(row.get(k)) for k in keys))
            if match is None and join_type != "left":
                continue
            merged = dict(row)
            if match:
                merged.update(match)
            out.append(merged)
        if saved_columns:
            self._set_columns(saved_columns + [c for c in sub_columns if c not in saved_columns])
        return out

    def _dedup(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        names = [a for a in splkit.split_args(rest) if a != "," and "=" not in a]
        seen = set()
        out = []
        for row in rows:
            key = tuple(text(row.get(n)) for n in names)
            if key not in seen:
                seen.add(key)
                out.append(row)
        return out

    def _fillnull(self, rows: List[Row], rest: str, columns: List[str]) -> List[Row]:
        args = [a for a in splkit.split_args(rest) if a != ","]
        value = next((a.split("=", 1)[1].strip('"') for a in args if a.startswith("value=")), "0")
        names = [a for a in args if "=" not in a] or columns
        for row in rows:
            for name in names:
                if row.get(name) is None:
                    row[name] = value
        return rows


def _indexed_terms(node: Any) -> Any:
    """index=... terms matched against the event's index (splkit treats them as metadata that always matches)."""
    tag = node[0]
    if tag == "term" and node[1] == "index":
        return ("term", "_index", node[2], node[3])
    if tag == "not":
        return ("not", _indexed_terms(node[1]))
    if tag in ("and", "or"):
        return (tag, [_indexed_terms(n) for n in node[1]])
    return node


def _sourcetypes(node: Any) -> Optional[set]:
    """The sourcetypes an event must have to match (None: any), when the search says so unambiguously."""
    tag = node[0]
    if tag == "term" and node[1] == "sourcetype" and node[2] == "=" and "*" not in node[3]:
        return {node[3].lower()}
    if tag == "or":
        parts = [_sourcetypes(n) for n in node[1]]
        return set().union(*parts) if all(p is not None for p in parts) else None
    if tag == "and":
        for child in node[1]:
            found = _sourcetypes(child)
            if found is not None:
                return found
    return None


def _span_seconds(span: str) -> int:
    m = re.fullmatch(r"(\d+)(s|m|h|d)", span)
    if not m:
        raise splkit.SplError(f"span {span!r} is not modelled")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _iso(when: float) -> str:
    stamp = dt.datetime.fromtimestamp(when, tz=dt.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


def _empty(function: str) -> Value:
    return 0 if function in ("count", "dc") else None


def _series_weight(function: str, rows: Sequence[Row], argument: Optional[str]) -> float:
    value = splkit._number(_aggregate(function, rows, argument))
    return value if value is not None else 0.0
