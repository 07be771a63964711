"""Runs the add-on's SPL over indexed events: the executing half of the SPL model (``splkit`` reads, this runs).

``Runner(lookups, macros).run(search, now=..., earliest=..., latest=..., events=...)`` executes a saved search the way
a scheduled run would: macros expanded, the base search matched (``splkit.matches``) against the events of the
dispatch window, then every command of the pipeline over result rows. Lookups are tables the runner owns:
``outputlookup`` replaces one (a KV store collection keeps only its declared fields, as its lookup returns them),
``inputlookup``/``lookup`` read it, so baseline searches and detections share state across scheduled runs exactly as
they do in Splunk.

Modelled: the commands and eval functions the add-on's searches use (an unknown one is an error, never a guess),
with Splunk's rules where they matter here: ``stats ... by`` a multivalue field counts each value, rows with a null
by-field are dropped, ``eval`` assignments see the earlier ones of the same command, ``lookup`` matches every value
of a multivalue input and returns multivalue outputs, ``join`` overwrites with the subsearch's fields.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from tests.knowledge import kvstore, limits, splkit, store

Row = Dict[str, Any]
UTC = dt.timezone.utc


# ------------------------------------------------------------------------------------------------ time


_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_REL = re.compile(r"([+-])(\d*)(s|sec|min|m|h|d|w)")


def _snap(epoch: float, unit: str) -> float:
    moment = dt.datetime.fromtimestamp(epoch, UTC)
    if unit in ("s", "sec"):
        moment = moment.replace(microsecond=0)
    elif unit in ("m", "min"):
        moment = moment.replace(second=0, microsecond=0)
    elif unit == "h":
        moment = moment.replace(minute=0, second=0, microsecond=0)
    elif unit == "d":
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit in ("w", "w0"):
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        moment -= dt.timedelta(days=(moment.weekday() + 1) % 7)
    else:
        raise splkit.SplError(f"snap @{unit} is not modelled")
    return moment.timestamp()


@functools.lru_cache(maxsize=4096)
def relative_time(now: float, spec: str) -> float:
    """Splunk's relative time modifiers (``-1h@h``, ``@d``, ``-30m@m``, ``now``) against ``now`` (UTC)."""
    text = spec.strip()
    if text in ("now", ""):
        return now
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    offset, _, snap = text.partition("@")
    value = now
    pos = 0
    while pos < len(offset):
        m = _REL.match(offset, pos)
        if not m:
            raise splkit.SplError(f"cannot read relative time {spec!r}")
        amount = int(m.group(2) or 1)
        value += (1 if m.group(1) == "+" else -1) * amount * _UNIT[m.group(3)]
        pos = m.end()
    return _snap(value, snap) if snap else value


# ------------------------------------------------------------------------------------------- evaluation


def _num(value: Any) -> Optional[float]:
    return splkit._number(value)


def _txt(value: Any) -> Optional[str]:
    return splkit._text(value)


class Evaluator(splkit.Evaluator):
    """``splkit.Evaluator`` plus the functions searches use that props.conf does not (time, math)."""

    def __init__(self, fields: Mapping[str, Any], now: float):
        super().__init__(fields)
        self.now = now

    def _call(self, name: str, args: List[Any], scope: Optional[Dict[str, Any]]) -> Any:
        ev = lambda n: self.eval(n, scope)  # noqa: E731
        if name == "now":
            return self.now
        if name == "relative_time":
            base, spec = _num(ev(args[0])), _txt(ev(args[1]))
            return None if base is None or spec is None else relative_time(base, spec)
        if name == "strftime":
            when, fmt = _num(ev(args[0])), _txt(ev(args[1]))
            if when is None or fmt is None:
                return None
            return dt.datetime.fromtimestamp(when, UTC).strftime(fmt.replace("%3N", "%f"))
        if name == "strptime":
            text, fmt = _txt(ev(args[0])), _txt(ev(args[1]))
            if text is None or fmt is None:
                return None
            try:
                return dt.datetime.strptime(text, fmt.replace("%3N", "%f")).timestamp()
            except ValueError:
                return None
        if name in ("round", "sqrt", "abs", "floor", "ceil"):
            number = _num(ev(args[0]))
            if number is None:
                return None
            if name == "round":
                digits = int(_num(ev(args[1])) or 0) if len(args) > 1 else 0
                return round(number, digits) if digits else float(math.floor(number + 0.5))
            if name == "sqrt":
                return None if number < 0 else math.sqrt(number)
            return {"abs": abs, "floor": math.floor, "ceil": math.ceil}[name](number)
        if name in ("min", "max"):
            values = [v for v in (ev(a) for a in args) if v is not None]
            numbers = [_num(v) for v in values]
            if values and all(n is not None for n in numbers):
                return (min if name == "min" else max)(numbers)
            texts = [_txt(v) for v in values]
            return (min if name == "min" else max)(texts) if texts else None
        if name == "mvindex":
            value = ev(args[0])
            items = value if isinstance(value, list) else ([] if value is None else [value])
            index = int(_num(ev(args[1])) or 0)
            return items[index] if -len(items) <= index < len(items) else None
        if name == "len":
            text = _txt(ev(args[0]))
            return None if text is None else len(text)
        if name in ("md5", "substr") or (name == "tonumber" and len(args) == 2):
            return self._text_function(name, [ev(a) for a in args])
        return super()._call(name, args, scope)

    @staticmethod
    def _text_function(name: str, values: List[Any]) -> Any:
        """Search Reference, evaluation functions: ``md5(X)`` (hex digest), ``substr(X, Y[, Z])`` (Y 1-based, a
        negative Y counts from the end; Z characters, default the rest), ``tonumber(X, base)`` (base 2 to 36; not a
        number in that base: null)."""
        text = _txt(values[0])
        if text is None:
            return None
        if name == "md5":
            return hashlib.md5(text.encode("utf-8")).hexdigest()
        if name == "substr":
            start = _num(values[1])
            if start is None:
                return None
            begin = int(start) - 1 if start > 0 else max(len(text) + int(start), 0)
            count = int(_num(values[2]) or 0) if len(values) > 2 else len(text)
            return text[begin : begin + count]
        base = int(_num(values[1]) or 0)
        if not 2 <= base <= 36:
            raise splkit.SplError(f"tonumber base {base} is outside 2..36")
        try:
            return float(int(text, base))
        except ValueError:
            return None


def _truth(value: Any) -> bool:
    return value is True


def _values(value: Any) -> List[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _key(value: Any) -> str:
    """A value as a lookup/group key: numbers without a trailing .0, text as written."""
    return _txt(value) or ""


# --------------------------------------------------------------------------------------------- lookups


Table = kvstore.Table


# ---------------------------------------------------------------------------------------------- stats


_STATS = re.compile(r"^([A-Za-z_]+)(?:\((.*)\))?$", re.S)


def _aggregate(func: str, values: List[Any], times: List[float]) -> Any:
    present = [(v, t) for v, t in zip(values, times) if v is not None]
    flat = [x for v, _t in present for x in _values(v)]
    numbers = [n for n in (_num(x) for x in flat) if n is not None]
    if func == "count":
        return len(flat)
    if func == "dc":
        return len({_key(x) for x in flat})
    if func in ("values", "list"):
        items = sorted({_key(x) for x in flat}) if func == "values" else [_key(x) for x in flat]
        return None if not items else items[0] if len(items) == 1 else items
    if func in ("latest", "earliest", "first", "last"):
        if not present:
            return None
        if func in ("first", "last"):
            return present[0][0] if func == "first" else present[-1][0]
        pick = max if func == "latest" else min
        return pick(present, key=lambda p: p[1])[0]
    if not numbers:
        if func in ("min", "max") and flat:
            return (min if func == "min" else max)(_key(x) for x in flat)
        return None
    if func == "sum":
        return sum(numbers)
    if func == "sumsq":
        return sum(n * n for n in numbers)
    if func == "min":
        return min(numbers)
    if func == "max":
        return max(numbers)
    if func in ("avg", "mean"):
        return sum(numbers) / len(numbers)
    if func in ("stdev", "var", "stdevp", "varp"):
        mean = sum(numbers) / len(numbers)
        squares = sum((n - mean) ** 2 for n in numbers)
        sample = func in ("stdev", "var")
        if sample and len(numbers) < 2:
            return None
        variance = squares / (len(numbers) - 1 if sample else len(numbers))
        return math.sqrt(variance) if func.startswith("stdev") else variance
    raise splkit.SplError(f"stats function {func}() is not modelled")


@dataclass
class _Agg:
    func: str
    arg: Optional[Any]  # field name, ('eval', ast) or None (count)
    label: str


def _parse_stats(rest: str) -> Tuple[List[_Agg], List[str]]:
    args = [a for a in splkit.split_args(rest) if a != ","]
    aggs: List[_Agg] = []
    by: List[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.lower() == "by":
            by = [splkit._field_name(a) for a in args[i + 1 :]]
            break
        m = _STATS.match(arg)
        if not m:
            raise splkit.SplError(f"stats: cannot read {arg!r}")
        func, inner = m.group(1).lower(), (m.group(2) or "").strip()
        func = "count" if func == "c" else func
        target: Optional[Any] = None
        if inner.startswith("eval(") and inner.endswith(")"):
            target = ("eval", splkit.parse_expression(inner[5:-1]))
        elif inner:
            target = splkit._field_name(inner)
        label = arg
        if i + 2 < len(args) + 1 and i + 1 < len(args) and args[i + 1].lower() == "as":
            label = splkit._field_name(args[i + 2])
            i += 3
        else:
            i += 1
        aggs.append(_Agg(func, target, label))
    return aggs, by


def _span_seconds(span: str) -> int:
    m = re.fullmatch(r"(\d+)(s|m|h|d)", span)
    if not m:
        raise splkit.SplError(f"timechart span {span!r} is not modelled")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _empty(agg: Any) -> Any:
    """An empty timechart bucket: 0 for counts, nothing for other aggregates."""
    return 0 if agg.func in ("count", "dc") else None


# -------------------------------------------------------------------------------------------- the runner


@dataclass
class Run:
    rows: List[Row]
    events_read: int
    truncations: List[limits.Truncation] = field(default_factory=list)


class Runner:
    """Executes searches. ``tables``: lookup name -> Table (the runner's lookups, shared by every run)."""

    def __init__(
        self, macros: Mapping[str, Tuple[str, List[str]]], tables: Dict[str, Table], *, distributed: bool = False
    ):
        self.analyzer = splkit.Analyzer(macros, {})
        self.tables = tables
        self.distributed = distributed  # indexers run the streaming head of a search (limits.DISTRIBUTABLE_STREAMING)
        self._indexes: Dict[Tuple[str, Tuple[str, ...], int], Dict[Tuple[str, ...], List[Row]]] = {}

    # -- entry point
    def run(
        self,
        search: str,
        *,
        now: float,
        earliest: float = 0.0,
        latest: Optional[float] = None,
        events: Callable[[float, float, Any], Iterable[Row]] = lambda first, last, ast: (),
    ) -> Run:
        text = self.analyzer.expand(search).strip()
        commands = splkit.split_pipeline(text)
        ctx = _Context(now=now, earliest=earliest, latest=now if latest is None else latest, events=events)
        if commands[0] == "":
            rows: List[Row] = []
            commands = commands[1:]
        else:
            first = commands[0]
            if re.match(r"^search\s", first, re.I):
                first = first.split(None, 1)[1]
            ast = splkit.parse_base_search(first)
            rows = [dict(e) for e in ctx.events(ctx.earliest, ctx.latest, ast) if splkit.matches(ast, e, e["_raw"])]
            ctx.read = len(rows)
            ctx.on_indexers = True
            commands = commands[1:]
        for command in commands:
            name = command.strip().split(None, 1)[0].lower() if command.strip() else ""
            if name not in limits.DISTRIBUTABLE_STREAMING:
                ctx.on_indexers = False
            rows = self._command(ctx, rows, command)
        return Run(rows=rows, events_read=ctx.read, truncations=ctx.truncations)

    def _pipeline(self, ctx: _Context, rows: List[Row], text: str) -> List[Row]:
        for command in splkit.split_pipeline(text):
            if command:
                rows = self._command(ctx, rows, command)
        return rows

    def _command(self, ctx: _Context, rows: List[Row], command: str) -> List[Row]:
        name, _, rest = command.strip().partition(" ")
        handler = getattr(self, f"_cmd_{name.lower()}", None)
        if handler is None:
            raise splkit.SplError(f"command {name!r} is not modelled by splrun")
        return handler(ctx, rows, rest.strip())

    # -- streaming commands
    def _cmd_eval(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        parts = [(target, splkit.parse_expression(expr)) for target, expr in splkit.Analyzer._eval_parts(rest)]
        for row in rows:
            for target, ast in parts:
                value = Evaluator(row, ctx.now).eval(ast)
                if value is None:
                    row.pop(target, None)
                else:
                    row[target] = value
        return rows

    def _cmd_where(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        ast = splkit.parse_expression(rest)
        return [row for row in rows if _truth(Evaluator(row, ctx.now).eval(ast))]

    def _cmd_search(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        ast = splkit.parse_base_search(rest)
        return [row for row in rows if splkit.matches(ast, row, row.get("_raw", ""))]

    def _cmd_fillnull(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        args = splkit.split_args(rest)
        value = "0"
        names = []
        for arg in args:
            if arg.startswith("value="):
                value = splkit._field_name(arg[6:])
            elif arg != ",":
                names.append(arg)
        for row in rows:
            for name in names:
                if row.get(name) is None:
                    row[name] = value
        return rows

    def _cmd_rename(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        args = [a for a in splkit.split_args(rest) if a != ","]
        pairs = [(splkit._field_name(args[i]), splkit._field_name(args[i + 2])) for i in range(0, len(args), 3)]
        for row in rows:
            for old, new in pairs:
                if old in row:
                    row[new] = row.pop(old)
                else:
                    row.pop(new, None)
        return rows

    def _cmd_makemv(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        args = splkit.split_args(rest, commas=False)
        delim = next((splkit._field_name(a[6:]) for a in args if a.startswith("delim=")), " ")
        name = next(a for a in args if "=" not in a)
        for row in rows:
            text = _txt(row.get(name))
            if text is not None:
                parts = [p for p in text.split(delim) if p != ""]
                row[name] = parts[0] if len(parts) == 1 else (parts or None)
                if row[name] is None:
                    row.pop(name)
        return rows

    def _cmd_mvexpand(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        name = next(a for a in splkit.split_args(rest) if "=" not in a)
        out = []
        for row in rows:
            values = _values(row.get(name))
            if not values:
                continue
            for value in values:
                copy = dict(row)
                copy[name] = value
                out.append(copy)
        return out

    def _cmd_table(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        names = [splkit._field_name(a) for a in splkit.split_args(rest) if a != ","]
        return [{n: row[n] for n in names if n in row} for row in rows]

    def _cmd_fields(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        args = [a for a in splkit.split_args(rest) if a != ","]
        if args and args[0] == "-":
            return [{k: v for k, v in row.items() if k not in args[1:]} for row in rows]
        names = [a for a in args if a != "+"]
        return [{k: v for k, v in row.items() if k in names} for row in rows]

    def _cmd_sort(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        keys = [a for a in splkit.split_args(rest) if a != "," and not a.isdigit()]
        for key in reversed(keys):
            desc = key.startswith("-")
            name = key.lstrip("+-")
            rows = sorted(rows, key=lambda r, n=name: (_num(r.get(n)) is None, _num(r.get(n)) or 0, _key(r.get(n))))
            if desc:
                rows.reverse()
        return rows

    def _cmd_dedup(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        names = [a for a in splkit.split_args(rest) if a != "," and "=" not in a and not a.isdigit()]
        seen, out = set(), []
        for row in rows:
            key = tuple(_key(row.get(n)) for n in names)
            if key not in seen:
                seen.add(key)
                out.append(row)
        return out

    def _cmd_addinfo(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        """``addinfo``: the search's time range (info_min_time, info_max_time) and dispatch time on every row."""
        for row in rows:
            row.update(info_min_time=ctx.earliest, info_max_time=ctx.latest, info_search_time=ctx.now)
        return rows

    def _cmd_head(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        return rows[: int(rest or 10)]

    # -- aggregation
    def _groups(self, rows: List[Row], by: List[str]) -> Dict[Tuple[str, ...], List[Row]]:
        groups: Dict[Tuple[str, ...], List[Row]] = {}
        for row in rows:
            value_lists = [[_key(v) for v in _values(row.get(name))] for name in by]
            if any(not v for v in value_lists):
                continue
            for combo in itertools.product(*value_lists):
                groups.setdefault(combo, []).append(row)
        return groups

    def _compute(self, ctx: _Context, agg: _Agg, rows: List[Row]) -> Any:
        times = [_num(r.get("_time")) or 0.0 for r in rows]
        if agg.arg is None:
            return len(rows) if agg.func == "count" else _aggregate(agg.func, [], [])
        if isinstance(agg.arg, tuple):
            values = [Evaluator(r, ctx.now).eval(agg.arg[1]) for r in rows]
        else:
            values = [r.get(agg.arg) for r in rows]
        return _aggregate(agg.func, values, times)

    def _cmd_timechart(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        """``timechart [span=..] [limit=..] agg [as name] ... [by field]``: one row per span bucket from the first
        to the last bucket with events (``_time`` as Splunk's ISO text), one column per aggregation, or with ``by``
        one column per value of the field (the ``limit`` largest by total, the rest summed as ``OTHER``); an empty
        bucket counts 0 and has no other aggregate. Added for the dashboards' render (make dashboards-check)."""
        options = {}
        words = []
        for arg in splkit.split_args(rest):
            m = re.fullmatch(r"(span|limit|useother|usenull)=(\S+)", arg, re.I)
            if m:
                options[m.group(1).lower()] = m.group(2)
            else:
                words.append(arg)
        aggs, by = _parse_stats(" ".join(words))
        span = _span_seconds(options.get("span", "30m"))
        limit = int(options.get("limit", "10"))
        if not rows:
            return []
        bucket = lambda row: math.floor((_num(row.get("_time")) or 0.0) / span) * span  # noqa: E731
        first, last = min(bucket(r) for r in rows), max(bucket(r) for r in rows)
        members: Dict[float, List[Row]] = {}
        for row in rows:
            members.setdefault(bucket(row), []).append(row)
        if by:
            agg = aggs[0]
            totals = {k[0]: _num(self._compute(ctx, agg, rs)) or 0.0 for k, rs in self._groups(rows, by[:1]).items()}
            ranked = sorted(totals, key=lambda s: (-totals[s], s))
            kept = ranked[:limit] if limit > 0 else ranked
            other = set(ranked) - set(kept)
        out = []
        for step in range(int((last - first) // span) + 1):
            when = first + step * span
            inside = members.get(when, [])
            row: Row = {"_time": dt.datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")}
            if by:
                groups = self._groups(inside, by[:1])
                for name in sorted(kept, key=lambda s: (_num(s) is None, _num(s) or 0.0, s)):
                    row[name] = self._compute(ctx, agg, groups.get((name,), [])) if (name,) in groups else _empty(agg)
                if other:
                    picked = [r for k, rs in groups.items() if k[0] in other for r in rs]
                    row["OTHER"] = self._compute(ctx, agg, picked) if picked else _empty(agg)
            else:
                for agg in aggs:
                    row[agg.label] = self._compute(ctx, agg, inside) if inside else _empty(agg)
            row["_span"] = span
            out.append(row)
        return out

    def _cmd_stats(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        aggs, by = _parse_stats(rest)
        groups = self._groups(rows, by) if by else {(): rows}
        out = []
        for key, members in groups.items():
            result: Row = dict(zip(by, key))
            for agg in aggs:
                value = self._compute(ctx, agg, members)
                if value is not None:
                    result[agg.label] = value
            out.append(result)
        return out

    def _cmd_eventstats(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        aggs, by = _parse_stats(rest)
        for _key, members in (self._groups(rows, by) if by else {(): rows}).items():
            results = {agg.label: self._compute(ctx, agg, members) for agg in aggs}
            for row in members:
                for label, value in results.items():
                    if value is not None:
                        row[label] = value
        return rows

    # -- lookups
    def table(self, name: str) -> Table:
        if name not in self.tables:
            raise splkit.SplError(f"lookup {name!r} has no table in this run")
        return self.tables[name]

    def _cmd_inputlookup(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        """Search Reference, inputlookup: ``[append=<bool>] [max=<int>] <lookup> [where <search-query>]``; on a KV
        collection one query, capped by the KV store (see ``kvstore``)."""
        m = re.search(r"\s+where\s+", rest, re.I)
        head, where = (rest[: m.start()], rest[m.end() :]) if m else (rest, "")
        args = splkit.split_args(head)
        options = {k.lower(): v for k, v in (a.split("=", 1) for a in args if "=" in a)}
        if set(options) - {"append", "max"}:
            raise splkit.SplError(f"inputlookup options {sorted(options)} are not modelled")
        append = options.get("append", "false").lower() in ("true", "t", "1")
        limit = int(options["max"]) if "max" in options else None
        name = next(a for a in args if "=" not in a and a != ",")
        table = self.table(name)
        ast = splkit.parse_base_search(self._expand_subsearches(ctx, where)) if where else None
        fresh = [dict(r) for r in table.query(ast, limit)]
        if table.kv:
            fresh, cut = limits.cap_kv_query(fresh, f"inputlookup {name}")
            ctx.truncations.extend(cut)
            table.rows_read += len(fresh)
        return rows + fresh if append else fresh

    def _expand_subsearches(self, ctx: _Context, text: str) -> str:
        """``[...]`` in a search query: a plain subsearch ([subsearch] maxout), its ``search`` field spliced in."""
        while "[" in text:
            start = text.index("[")
            depth, end = 0, start
            for end in range(start, len(text)):
                depth += {"[": 1, "]": -1}.get(text[end], 0)
                if depth == 0:
                    break
            found = self._sub(ctx, text[start : end + 1], limits.SUBSEARCH_MAXOUT, "subsearch", "[subsearch] maxout")
            terms = [_key(r.get("search")) for r in found if r.get("search") is not None]
            if not terms:
                raise splkit.SplError(f"subsearch {text[start : end + 1]!r} returned nothing: not modelled")
            text = text[:start] + " OR ".join(terms) + text[end + 1 :]
        return text

    def _cmd_makeresults(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        """Search Reference, makeresults: ``count`` results (default 1), each with ``_time`` = now."""
        options = dict(a.split("=", 1) for a in splkit.split_args(rest) if "=" in a)
        if set(options) - {"count"}:
            raise splkit.SplError(f"makeresults {sorted(options)} is not modelled")
        return [{"_time": ctx.now} for _ in range(int(options.get("count", "1")))]

    def _cmd_return(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        """Search Reference, return: ``return [<count>] $<field>`` gives the field's value itself (count default 1)."""
        args = splkit.split_args(rest)
        count = int(args.pop(0)) if args and args[0].isdigit() else 1
        if len(args) != 1 or not args[0].startswith("$"):
            raise splkit.SplError(f"return {rest!r} is not modelled")
        return [{"search": _key(r.get(args[0][1:]))} for r in rows[:count] if r.get(args[0][1:]) is not None]

    def _cmd_outputlookup(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        args = splkit.split_args(rest)
        options = dict(a.split("=", 1) for a in args if "=" in a)
        unknown = set(options) - {"append", "key_field"}
        if unknown:
            raise splkit.SplError(f"outputlookup {sorted(unknown)} is not modelled")
        name = next(a for a in args if "=" not in a and a != ",")
        table = self.table(name)
        append = options.get("append", "false").lower() in ("true", "t", "1")
        if "key_field" in options and not (append and table.kv):
            raise splkit.SplError("outputlookup key_field needs append=true and a KV store collection")
        if append:
            table.upsert(rows, options.get("key_field"))
        else:
            table.store(rows)
        return rows

    def _index(self, name: str, columns: Tuple[str, ...]) -> Dict[Tuple[str, ...], List[Row]]:
        table = self.table(name)
        cache_key = (name, columns, table.version)
        index = self._indexes.get(cache_key)
        if index is None:
            index = {}
            norm = (lambda v: v) if table.case_sensitive else (lambda v: v.lower())
            for row in table.served():
                values = [[norm(_key(v)) for v in _values(row.get(c))] for c in columns]
                for combo in itertools.product(*values):
                    index.setdefault(combo, []).append(row)
            self._indexes[cache_key] = index
        return index

    def _cmd_lookup(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        every = [a for a in splkit.split_args(rest) if a != ","]
        local = any(a.lower() in ("local=true", "local=t", "local=1") for a in every)
        args = [a for a in every if not re.match(r"^(local|update)=", a)]
        name, inputs, outputs, mode = args[0], [], [], "input"
        i = 1
        while i < len(args):
            if args[i].upper() in ("OUTPUT", "OUTPUTNEW"):
                mode = args[i].upper()
                i += 1
                continue
            column = alias = args[i]
            if i + 1 < len(args) and args[i + 1].lower() == "as":
                alias = args[i + 2]
                i += 3
            else:
                i += 1
            (inputs if mode == "input" else outputs).append((column, alias))
        table = self.table(name)
        if not outputs:
            outputs = [(f, f) for f in table.fields if f not in {c for c, _ in inputs}]
        if self.distributed and ctx.on_indexers and not local and table.kv and not table.replicate:
            # collections.conf replicate=false: the indexers cannot serve this lookup; its outputs stay empty
            ctx.truncations.append(limits.Truncation(f"lookup {name}", "replicate=false on indexers", 0, len(rows)))
            return rows
        index = self._index(name, tuple(c for c, _ in inputs))
        norm = (lambda v: v) if table.case_sensitive else (lambda v: v.lower())
        for row in rows:
            values = [[norm(_key(v)) for v in _values(row.get(alias))] for _c, alias in inputs]
            hits: List[Row] = []
            for combo in itertools.product(*values):
                hits.extend(index.get(combo, []))
            hits = hits[: table.max_matches]
            table.rows_read += len(hits) if table.kv else 0
            for column, alias in outputs:
                found = [v for hit in hits for v in _values(hit.get(column)) if v not in (None, "")]
                if mode == "OUTPUTNEW" and row.get(alias) is not None:
                    continue
                if found:
                    row[alias] = found[0] if len(found) == 1 else found
                else:
                    row.pop(alias, None)
        return rows

    # -- subsearches
    def _sub(self, ctx: _Context, text: str, limit: int, what: str, setting: str) -> List[Row]:
        inner = text.strip()[1:-1].strip()
        sub = self.run(inner, now=ctx.now, earliest=ctx.earliest, latest=ctx.latest, events=ctx.events)
        ctx.truncations.extend(sub.truncations)
        rows, cut = limits.cap(sub.rows, limit, what, setting)
        ctx.truncations.extend(cut)
        return rows

    def _cmd_appendpipe(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        inner = rest.strip()[1:-1].strip()
        return rows + self._pipeline(ctx, [dict(r) for r in rows], inner)

    def _cmd_append(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        return rows + self._sub(ctx, rest, limits.APPEND_MAXOUT, "append", "maxout")

    def _cmd_join(self, ctx: _Context, rows: List[Row], rest: str) -> List[Row]:
        args = splkit.split_args(rest)
        sub_text = next(a for a in args if a.startswith("["))
        options = dict(a.split("=", 1) for a in args if "=" in a and not a.startswith("["))
        keys = [a for a in args if a not in (",", sub_text) and "=" not in a]
        sub = self._sub(ctx, sub_text, limits.JOIN_SUBSEARCH_MAXOUT, "join", "[join] subsearch_maxout")
        index: Dict[Tuple[str, ...], List[Row]] = {}
        for r in sub:
            if all(r.get(k) is not None for k in keys):
                index.setdefault(tuple(_key(r.get(k)) for k in keys), []).append(r)
        limit = int(options.get("max", "1")) or None
        left = options.get("type", "inner").lower() in ("left", "outer")
        out = []
        for row in rows:
            matches = index.get(tuple(_key(row.get(k)) for k in keys), [])[:limit]
            if not matches and left:
                out.append(row)
            for match in matches:
                merged = dict(row)
                merged.update(match)
                out.append(merged)
        return out


@dataclass
class _Context:
    now: float
    earliest: float
    latest: float
    events: Callable[[float, float, Any], Iterable[Row]]
    read: int = 0
    on_indexers: bool = False
    truncations: List[limits.Truncation] = field(default_factory=list)


# Indexed events by sourcetype and time (tests/knowledge/store.py).
EventStore = store.EventStore
