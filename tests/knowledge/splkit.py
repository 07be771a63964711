"""A small, honest model of the SPL this add-on ships: enough to know which fields a search reads from events.

Three parts:

- ``parse_expression`` / ``evaluate``: Splunk's eval expression language (the subset props.conf EVAL- and the
  searches use), parsed into an AST. ``evaluate`` runs it with Splunk's null and multivalue rules for the
  functions props.conf uses; an unknown function is an error, never a silent pass.
- ``parse_base_search`` / ``matches``: the first (implicit ``search``) command: terms, OR, NOT, parentheses;
  ``matches`` decides whether an event (its extracted fields and raw text) matches it.
- ``analyze``: walks a whole pipeline command by command and reports the fields it takes from events (before
  the first transforming command), the fields each later command reads and whether they still exist at that
  point, the lookups it uses and the fields of its final table. An unknown command is an error.

The analysis is conservative where SPL is dynamic (after ``timechart``/``chart`` the field names are data), and
strict elsewhere: a field used after ``stats`` that ``stats`` did not produce is reported.
"""

from __future__ import annotations

import fnmatch
import functools
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

# ----------------------------------------------------------------------------------------------- errors


class SplError(ValueError):
    """SPL this model cannot read (or that is wrong)."""


# ------------------------------------------------------------------------------------------- expressions

_EXPR_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<field>'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|=|<|>|\+|-|\*|/|%|\.|\(|\)|,)
    """,
    re.VERBOSE,
)

_KEYWORDS = {"AND", "OR", "NOT", "XOR", "LIKE", "IN"}
_COMPARISONS = {"=", "==", "!=", "<", ">", "<=", ">="}


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def tokenize_expression(text: str) -> List[Tuple[str, str]]:
    tokens: List[Tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _EXPR_TOKEN.match(text, pos)
        if not m:
            raise SplError(f"cannot read expression at {text[pos : pos + 30]!r} in {text!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "ws":
            continue
        if kind == "name" and value.upper() in _KEYWORDS:
            tokens.append(("kw", value.upper()))
        elif kind == "str":
            tokens.append(("str", _unquote(value)))
        elif kind == "field":
            tokens.append(("field", _unquote(value)))
        else:
            tokens.append((kind, value))
    return tokens


class _ExprParser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize_expression(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> Tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self) -> Tuple[str, str]:
        token = self.peek()
        self.pos += 1
        return token

    def expect(self, kind: str, value: Optional[str] = None) -> Tuple[str, str]:
        token = self.take()
        if token[0] != kind or (value is not None and token[1] != value):
            raise SplError(f"expected {value or kind} but found {token[1]!r} in {self.text!r}")
        return token

    def parse(self) -> Any:
        node = self.expr(0)
        if self.peek()[0] != "end":
            raise SplError(f"unexpected {self.peek()[1]!r} in {self.text!r}")
        return node

    # precedence climbing: OR/XOR 1, AND 2, NOT 3 (prefix), comparisons/LIKE/IN 4, + - . 5, * / % 6, unary - 7
    def expr(self, min_prec: int) -> Any:
        left = self.unary()
        while True:
            kind, value = self.peek()
            prec, op = self._binary(kind, value)
            if prec is None or prec < min_prec:
                return left
            self.take()
            if op == "IN":
                self.expect("op", "(")
                items = [self.expr(0)]
                while self.peek() == ("op", ","):
                    self.take()
                    items.append(self.expr(0))
                self.expect("op", ")")
                left = ("in", left, items)
                continue
            right = self.expr(prec + 1)
            left = ("bin", op, left, right)

    @staticmethod
    def _binary(kind: str, value: str) -> Tuple[Optional[int], Optional[str]]:
        if kind == "kw" and value in ("OR", "XOR"):
            return 1, value
        if kind == "kw" and value == "AND":
            return 2, value
        if kind == "kw" and value in ("LIKE", "IN"):
            return 4, value
        if kind == "op" and value in _COMPARISONS:
            return 4, "==" if value == "=" else value
        if kind == "op" and value in ("+", "-", "."):
            return 5, value
        if kind == "op" and value in ("*", "/", "%"):
            return 6, value
        return None, None

    def unary(self) -> Any:
        kind, value = self.peek()
        if kind == "kw" and value == "NOT":
            self.take()
            return ("not", self.expr(3))
        if kind == "op" and value == "-":
            self.take()
            return ("neg", self.expr(7))
        return self.primary()

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "num":
            return ("lit", float(value) if any(c in value for c in ".eE") else int(value))
        if kind == "str":
            return ("lit", value)
        if kind == "field":
            return ("field", value)
        if kind == "name":
            if self.peek() == ("op", "("):
                self.take()
                args: List[Any] = []
                if self.peek() != ("op", ")"):
                    args.append(self.expr(0))
                    while self.peek() == ("op", ","):
                        self.take()
                        args.append(self.expr(0))
                self.expect("op", ")")
                return ("call", value.lower(), args)
            return ("field", value)
        if kind == "op" and value == "(":
            node = self.expr(0)
            self.expect("op", ")")
            return node
        raise SplError(f"unexpected {value!r} in {self.text!r}")


def parse_expression(text: str) -> Any:
    return _ExprParser(text).parse()


def expression_fields(node: Any) -> Set[str]:
    """Every field an expression reads."""
    found: Set[str] = set()

    def walk(n: Any) -> None:
        tag = n[0]
        if tag == "field":
            found.add(n[1])
        elif tag == "call":
            for arg in n[2]:
                walk(arg)
        elif tag == "bin":
            walk(n[2])
            walk(n[3])
        elif tag in ("not", "neg"):
            walk(n[1])
        elif tag == "in":
            walk(n[1])
            for item in n[2]:
                walk(item)

    walk(node)
    return found


# ---- evaluation (the subset props.conf uses) ------------------------------------------------------------

Value = Any  # None | str | int | float | bool | list (multivalue)


def _first(value: Value) -> Value:
    if type(value) is list:
        return value[0] if value else None
    return value


def _as_mv(values: List[Value]) -> Value:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _number(value: Value) -> Optional[float]:
    kind = type(value)
    if kind is float:
        return value
    if kind is str:
        try:
            return float(value)
        except ValueError:
            return None
    value = _first(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _text(value: Value) -> Optional[str]:
    if type(value) is str:
        return value
    value = _first(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _compare(op: str, left: Value, right: Value) -> Optional[bool]:
    left, right = _first(left), _first(right)
    if left is None or right is None:
        return None
    ln, rn = _number(left), _number(right)
    if ln is not None and rn is not None:
        a, b = ln, rn
    else:
        a, b = _text(left), _text(right)
    return _OPERATORS[op](a, b)


_OPERATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _like(value: Value, pattern: Value) -> Optional[bool]:
    text, pat = _text(value), _text(pattern)
    if text is None or pat is None:
        return None
    regex = "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pat) + "$"
    return re.match(regex, text, re.S) is not None


class Evaluator:
    """Evaluates parsed expressions over an event's fields (``Mapping[str, Value]``)."""

    def __init__(self, fields: Mapping[str, Value]):
        self.fields = fields

    def eval(self, node: Any, scope: Optional[Dict[str, Value]] = None) -> Value:
        tag = node[0]
        if tag == "field":
            if scope and node[1] in scope:
                return scope[node[1]]
            return self.fields.get(node[1])
        if tag == "lit":
            return node[1]
        if tag == "not":
            value = self.truth(self.eval(node[1], scope))
            return None if value is None else not value
        if tag == "neg":
            number = _number(self.eval(node[1], scope))
            return None if number is None else -number
        if tag == "in":
            left = self.eval(node[1], scope)
            return any(_compare("==", left, self.eval(item, scope)) for item in node[2])
        if tag == "bin":
            return self._binary(node[1], node[2], node[3], scope)
        if tag == "call":
            return self._call(node[1], node[2], scope)
        raise SplError(f"cannot evaluate {node!r}")

    @staticmethod
    def truth(value: Value) -> Optional[bool]:
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        raise SplError(f"not a boolean: {value!r}")

    def _binary(self, op: str, left_node: Any, right_node: Any, scope: Optional[Dict[str, Value]]) -> Value:
        if op in ("AND", "OR", "XOR"):
            left = self.truth(self.eval(left_node, scope))
            right = self.truth(self.eval(right_node, scope))
            if op == "AND":
                return False if (left is False or right is False) else (None if None in (left, right) else True)
            if op == "OR":
                return True if (left or right) else (None if None in (left, right) else False)
            return None if None in (left, right) else left != right
        left, right = self.eval(left_node, scope), self.eval(right_node, scope)
        if op in _COMPARISONS:
            return _compare(op, left, right)
        if op == "LIKE":
            return _like(left, right)
        if op == ".":
            a, b = _text(left), _text(right)
            return None if a is None or b is None else a + b
        a, b = _number(left), _number(right)
        if op == "+" and (a is None or b is None):
            ta, tb = _text(left), _text(right)
            return None if ta is None or tb is None else ta + tb
        if a is None or b is None:
            return None
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return None if b == 0 else a / b
        if op == "%":
            return None if b == 0 else a % b
        raise SplError(f"unknown operator {op}")

    def _call(self, name: str, args: List[Any], scope: Optional[Dict[str, Value]]) -> Value:
        ev = lambda n: self.eval(n, scope)  # noqa: E731
        if name == "if":
            self._arity(name, args, 3)
            return ev(args[1]) if self.truth(ev(args[0])) else ev(args[2])
        if name == "case":
            if len(args) % 2:
                raise SplError("case() takes condition/value pairs")
            for cond, value in zip(args[::2], args[1::2]):
                if self.truth(ev(cond)):
                    return ev(value)
            return None
        if name == "coalesce":
            for arg in args:
                value = ev(arg)
                if value is not None:
                    return value
            return None
        if name in ("null", "true", "false"):
            self._arity(name, args, 0)
            return {"null": None, "true": True, "false": False}[name]
        if name in ("isnull", "isnotnull"):
            self._arity(name, args, 1)
            present = ev(args[0]) is not None
            return present if name == "isnotnull" else not present
        if name in ("lower", "upper"):
            self._arity(name, args, 1)
            text = _text(ev(args[0]))
            return None if text is None else (text.lower() if name == "lower" else text.upper())
        if name == "match":
            self._arity(name, args, 2)
            text, regex = _text(ev(args[0])), _text(ev(args[1]))
            return None if text is None or regex is None else re.search(regex, text) is not None
        if name == "replace":
            self._arity(name, args, 3)
            text, regex, repl = _text(ev(args[0])), _text(ev(args[1])), _text(ev(args[2]))
            if text is None or regex is None or repl is None:
                return None
            return re.sub(regex, re.sub(r"\\(\d)", r"\\g<\1>", repl), text)
        if name == "mvmap":
            self._arity(name, args, 2)
            if args[0][0] != "field":
                raise SplError("mvmap() maps a field")
            field_name = args[0][1]
            values = ev(args[0])
            if values is None:
                return None
            results = []
            for value in values if isinstance(values, list) else [values]:
                inner = dict(scope or {})
                inner[field_name] = value
                results.append(self.eval(args[1], inner))
            return _as_mv(results)
        if name == "mvappend":
            out: List[Value] = []
            for arg in args:
                value = ev(arg)
                out.extend(value if isinstance(value, list) else [value])
            return _as_mv(out)
        if name == "mvcount":
            self._arity(name, args, 1)
            value = ev(args[0])
            return None if value is None else (len(value) if isinstance(value, list) else 1)
        if name == "mvjoin":
            self._arity(name, args, 2)
            value, sep = ev(args[0]), _text(ev(args[1]))
            if value is None:
                return None
            return sep.join(_text(v) or "" for v in (value if isinstance(value, list) else [value]))
        if name == "split":
            self._arity(name, args, 2)
            text, sep = _text(ev(args[0])), _text(ev(args[1]))
            return None if text is None else _as_mv(text.split(sep))
        if name == "tostring":
            return _text(ev(args[0]))
        if name == "tonumber":
            return _number(ev(args[0]))
        raise SplError(f"function {name}() is not modelled: add it to splkit.Evaluator before using it in props.conf")

    @staticmethod
    def _arity(name: str, args: List[Any], count: int) -> None:
        if len(args) != count:
            raise SplError(f"{name}() takes {count} arguments, got {len(args)}")


def evaluate(text: str, fields: Mapping[str, Value]) -> Value:
    return Evaluator(fields).eval(parse_expression(text))


# --------------------------------------------------------------------------------------------- pipelines


def split_pipeline(text: str) -> List[str]:
    """Commands of a pipeline: split on | outside quotes, brackets (subsearches) and parentheses."""
    commands: List[str] = []
    depth = 0
    quote: Optional[str] = None
    current: List[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            current.append(c)
            if c == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
        elif c == '"':
            quote = c
            current.append(c)
        elif c in "[(":
            depth += 1
            current.append(c)
        elif c in "])":
            depth -= 1
            current.append(c)
        elif c == "|" and depth == 0:
            commands.append("".join(current).strip())
            current = []
        else:
            current.append(c)
        i += 1
    if quote or depth:
        raise SplError(f"unbalanced quotes or brackets in {text!r}")
    commands.append("".join(current).strip())
    return commands


def split_args(text: str, commas: bool = True) -> List[str]:
    """Whitespace (and comma) separated arguments; quotes, parentheses and brackets stay in one argument."""
    args: List[str] = []
    depth = 0
    quote: Optional[str] = None
    current: List[str] = []
    for i, c in enumerate(text):
        if quote:
            current.append(c)
            if c == quote and text[i - 1] != "\\":
                quote = None
            continue
        if c in "\"'":
            quote = c
            current.append(c)
        elif c in "([":
            depth += 1
            current.append(c)
        elif c in ")]":
            depth -= 1
            current.append(c)
        elif depth == 0 and (c.isspace() or (commas and c == ",")):
            if current:
                args.append("".join(current))
                current = []
            if commas and c == ",":
                args.append(",")
        else:
            current.append(c)
    if current:
        args.append("".join(current))
    return args


# ------------------------------------------------------------------------------------------- base search


_TERM = re.compile(r"^([A-Za-z_][\w.{}:@-]*)(!=|<=|>=|=|<|>)(.*)$", re.S)


def _base_tokens(text: str) -> List[str]:
    tokens: List[str] = []
    current: List[str] = []
    quote = False
    for i, c in enumerate(text):
        if quote:
            current.append(c)
            if c == '"' and text[i - 1] != "\\":
                quote = False
            continue
        if c == '"':
            quote = True
            current.append(c)
        elif c in "()" and not current:
            tokens.append(c)
        elif c == ")" and current:
            tokens.append("".join(current))
            current = []
            tokens.append(c)
        elif c.isspace():
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(c)
    if quote:
        raise SplError(f"unbalanced quotes in {text!r}")
    if current:
        tokens.append("".join(current))
    return tokens


def _value(text: str) -> str:
    return _unquote(text) if len(text) >= 2 and text[0] == text[-1] == '"' else text


def parse_base_search(text: str) -> Any:
    """AST of a search command's arguments: ('and'|'or', [..]), ('not', x), ('term', f, op, v), ('word', w)."""
    tokens = _base_tokens(text)
    pos = 0

    def parse_or() -> Any:
        nonlocal pos
        items = [parse_and()]
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            items.append(parse_and())
        return items[0] if len(items) == 1 else ("or", items)

    def parse_and() -> Any:
        nonlocal pos
        items = []
        while pos < len(tokens) and tokens[pos] not in ("OR", ")"):
            if tokens[pos] == "AND":
                pos += 1
                continue
            items.append(parse_not())
        return items[0] if len(items) == 1 else ("and", items)

    def parse_not() -> Any:
        nonlocal pos
        if tokens[pos] == "NOT":
            pos += 1
            return ("not", parse_not())
        return parse_atom()

    def parse_atom() -> Any:
        nonlocal pos
        token = tokens[pos]
        pos += 1
        if token == "(":
            node = parse_or()
            if pos >= len(tokens) or tokens[pos] != ")":
                raise SplError(f"missing ) in {text!r}")
            pos += 1
            return node
        m = _TERM.match(token)
        if m:
            name, op, value = m.groups()
            if op == "=" and value == "" and pos < len(tokens) and tokens[pos] != ")":
                raise SplError(f"empty value for {name} in {text!r}")
            return ("term", name, op, _value(value))
        if pos < len(tokens) and tokens[pos] == "IN" and re.match(r"^[A-Za-z_][\w.{}:@-]*$", token):
            pos += 1
            if tokens[pos] != "(":
                raise SplError(f"IN needs a list in {text!r}")
            pos += 1
            values = []
            while tokens[pos] != ")":
                for part in tokens[pos].split(","):
                    if part:
                        values.append(_value(part))
                pos += 1
            pos += 1
            return ("or", [("term", token, "=", v) for v in values])
        return ("word", _value(token))

    node = parse_or() if tokens else ("and", [])
    if pos != len(tokens):
        raise SplError(f"cannot read search {text!r} at {tokens[pos]!r}")
    return node


def base_terms(node: Any, negated: bool = False) -> Iterable[Tuple[str, str, str, bool]]:
    """(field, op, value, negated) of every term."""
    tag = node[0]
    if tag == "term":
        yield node[1], node[2], node[3], negated
    elif tag == "not":
        yield from base_terms(node[1], not negated)
    elif tag in ("and", "or"):
        for item in node[1]:
            yield from base_terms(item, negated)


# Fields a base-search term may name without the events carrying them (Splunk metadata / time bounds).
META_TERMS = {"index", "earliest", "latest", "splunk_server", "_index_earliest", "_index_latest"}


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern.replace("[", "[[]")), re.I | re.S)


def matches(node: Any, fields: Mapping[str, Value], raw: str) -> bool:
    """Whether an event matches a base search (Splunk's case-insensitive, wildcard term matching)."""
    tag = node[0]
    if tag == "and":
        return all(matches(item, fields, raw) for item in node[1])
    if tag == "or":
        return any(matches(item, fields, raw) for item in node[1])
    if tag == "not":
        return not matches(node[1], fields, raw)
    if tag == "word":
        return _wildcard(f"*{node[1]}*").match(raw) is not None
    name, op, value = node[1], node[2], node[3]
    if name in META_TERMS:
        return True
    present = fields.get(name)
    values = [] if present is None else (present if isinstance(present, list) else [present])
    texts = [_text(v) or "" for v in values]
    if op in ("=", "!="):
        pattern = _wildcard(value)
        hit = any(pattern.match(t) for t in texts)
        return hit if op == "=" else (bool(texts) and not hit)
    number = _number(value)
    return any(_compare(op, t, number if number is not None else value) for t in texts)


# -------------------------------------------------------------------------------------------- analysis

# Fields every event has in Splunk whatever its body.
INTERNAL_FIELDS = {
    "_time",
    "_raw",
    "_indextime",
    "_cd",
    "_si",
    "_serial",
    "_bkt",
    "host",
    "source",
    "sourcetype",
    "index",
    "splunk_server",
    "linecount",
    "punct",
    "eventtype",
    "tag",
    "timestartpos",
    "timeendpos",
}

TRANSFORMING = {"stats", "chart", "timechart", "top", "rare", "table", "inputlookup", "tstats"}

STATS_OUTPUT_ONLY = {"count"}  # stats functions that take no field


@dataclass
class Lookup:
    name: str
    fields: List[str]


@dataclass
class Analysis:
    """What a search needs from events and what it produces."""

    search: str
    base: Any = None
    event_fields: Set[str] = field(default_factory=set)  # read from events before any transforming command
    value_terms: List[Tuple[str, str, str, bool]] = field(default_factory=list)
    lookups: Set[str] = field(default_factory=set)
    errors: List[str] = field(default_factory=list)
    output_fields: Optional[List[str]] = None  # None: dynamic (e.g. after timechart) or unknown
    commands: List[str] = field(default_factory=list)
    subsearches: List[Analysis] = field(default_factory=list)
    generating: Optional[str] = None  # e.g. inputlookup name


class _State:
    """Fields available at a point of the pipeline: either the events' (open) or a known set (closed)."""

    def __init__(self) -> None:
        self.events = True
        self.known: Set[str] = set()  # created or known to exist
        self.dynamic = False

    def need(self, analysis: Analysis, name: str, where: str) -> None:
        if name in INTERNAL_FIELDS and self.events:
            return
        if name in self.known or self.dynamic:
            return
        if "*" in name:
            return
        if self.events:
            analysis.event_fields.add(name)
        else:
            analysis.errors.append(f"{where}: field {name!r} does not exist at this point")

    def close(self, fields: Iterable[str]) -> None:
        self.events = False
        self.dynamic = False
        self.known = set(fields)


_AGG = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?$", re.S)


def _field_name(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return _unquote(text)
    return text


class Analyzer:
    """Analyses pipelines. ``macros``: name (``name(n)`` with arguments) -> (definition, argument names);
    ``lookups``: lookup definitions and their fields."""

    def __init__(self, macros: Mapping[str, Tuple[str, List[str]]], lookups: Mapping[str, Lookup]):
        self.macros = dict(macros)
        self.lookups = dict(lookups)

    # -- macros
    def expand(self, text: str, depth: int = 0) -> str:
        if depth > 10:
            raise SplError("macro recursion")

        def repl(m: re.Match[str]) -> str:
            call = m.group(1).strip()
            cm = re.match(r"^([\w.-]+)\((.*)\)$", call, re.S)
            if cm:
                name, args = cm.group(1), [a.strip() for a in cm.group(2).split(",")]
                key = f"{name}({len(args)})"
                if key not in self.macros:
                    raise SplError(f"unknown macro {key}")
                body, params = self.macros[key]
                for param, arg in zip(params, args):
                    body = body.replace(f"${param}$", arg)
                return self.expand(body, depth + 1)
            if call not in self.macros:
                raise SplError(f"unknown macro `{call}`")
            return self.expand(self.macros[call][0], depth + 1)

        return re.sub(r"`([^`]+)`", repl, text)

    # -- pipelines
    def analyze(self, search: str) -> Analysis:
        text = self.expand(search).strip()
        analysis = Analysis(search=text)
        commands = split_pipeline(text)
        state = _State()
        first = commands[0]
        if first == "":  # the search starts with a generating command: "| inputlookup ..."
            commands = commands[1:]
            head = commands[0]
            name = head.split(None, 1)[0].lower()
            if name != "inputlookup":
                raise SplError(f"generating command {name} is not modelled")
            self._inputlookup(analysis, state, head)
            commands = commands[1:]
        else:
            if re.match(r"^search\s", first, re.I):
                first = first.split(None, 1)[1]
            analysis.base = parse_base_search(first)
            for name, op, value, negated in base_terms(analysis.base):
                analysis.value_terms.append((name, op, value, negated))
                if name not in META_TERMS:
                    state.need(analysis, name, "search")
            commands = commands[1:]
        for command in commands:
            self._command(analysis, state, command)
        if not state.dynamic:
            analysis.output_fields = None if state.events else sorted(state.known)
        return analysis

    def _inputlookup(self, analysis: Analysis, state: _State, command: str) -> None:
        args = split_args(command.split(None, 1)[1] if " " in command else "")
        args = [a for a in args if "=" not in a]
        if not args:
            raise SplError("inputlookup needs a lookup")
        lookup = self._lookup(analysis, args[0])
        analysis.generating = args[0]
        state.close(lookup.fields if lookup else [])
        analysis.commands.append("inputlookup")

    def _lookup(self, analysis: Analysis, name: str) -> Optional[Lookup]:
        analysis.lookups.add(name)
        lookup = self.lookups.get(name)
        if lookup is None:
            analysis.errors.append(f"lookup {name!r} is not defined in transforms.conf")
        return lookup

    def _command(self, analysis: Analysis, state: _State, command: str) -> None:
        parts = command.split(None, 1)
        if not parts:
            raise SplError(f"empty command in {analysis.search!r}")
        name = parts[0].lower()
        rest = parts[1] if len(parts) > 1 else ""
        analysis.commands.append(name)
        handler: Optional[Callable[[Analysis, _State, str], None]] = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            raise SplError(f"command {name!r} is not modelled: teach splkit.Analyzer before using it")
        handler(analysis, state, rest)

    # -- commands
    def _cmd_search(self, analysis: Analysis, state: _State, rest: str) -> None:
        for name, _op, _value, _neg in base_terms(parse_base_search(rest)):
            if name not in META_TERMS:
                state.need(analysis, name, "search")

    def _cmd_where(self, analysis: Analysis, state: _State, rest: str) -> None:
        for name in expression_fields(parse_expression(rest)):
            state.need(analysis, name, "where")

    def _cmd_eval(self, analysis: Analysis, state: _State, rest: str) -> None:
        for target, expr in self._eval_parts(rest):
            for name in expression_fields(parse_expression(expr)):
                state.need(analysis, name, f"eval {target}")
            state.known.add(target)

    _cmd_fieldformat = _cmd_eval

    @staticmethod
    def _eval_parts(rest: str) -> List[Tuple[str, str]]:
        """eval's comma-separated assignments (commas inside calls and strings do not split)."""
        parts: List[str] = []
        depth = 0
        quote: Optional[str] = None
        current: List[str] = []
        for i, c in enumerate(rest):
            if quote:
                current.append(c)
                if c == quote and rest[i - 1] != "\\":
                    quote = None
                continue
            if c in "\"'":
                quote = c
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif c == "," and depth == 0:
                parts.append("".join(current))
                current = []
                continue
            current.append(c)
        parts.append("".join(current))
        out = []
        for part in parts:
            m = re.match(r"^\s*([A-Za-z_][\w.{}]*|'[^']+')\s*=(?!=)(.*)$", part, re.S)
            if not m:
                raise SplError(f"cannot read eval assignment {part!r}")
            out.append((_field_name(m.group(1)), m.group(2).strip()))
        return out

    def _aggregations(
        self, analysis: Analysis, state: _State, args: List[str], where: str
    ) -> Tuple[List[str], List[str], Dict[str, str]]:
        """(output names, by-fields, options) of stats-like arguments."""
        outputs: List[str] = []
        by: List[str] = []
        options: Dict[str, str] = {}
        i = 0
        in_by = False
        while i < len(args):
            arg = args[i]
            if arg == ",":
                i += 1
                continue
            if arg.lower() == "by":
                in_by = True
                i += 1
                continue
            if in_by:
                by.append(_field_name(arg))
                i += 1
                continue
            if "=" in arg and not arg.startswith("eval(") and re.match(r"^\w+=", arg):
                key, value = arg.split("=", 1)
                options[key] = value
                i += 1
                continue
            m = _AGG.match(arg)
            if not m:
                raise SplError(f"{where}: cannot read {arg!r}")
            func, inner = m.group(1), m.group(2)
            label = arg
            if inner is not None and inner.strip():
                inner = inner.strip()
                if inner.startswith("eval(") and inner.endswith(")"):
                    for name in expression_fields(parse_expression(inner[5:-1])):
                        state.need(analysis, name, where)
                else:
                    state.need(analysis, _field_name(inner), where)
            elif func.lower() not in STATS_OUTPUT_ONLY and func.lower() != "c":
                raise SplError(f"{where}: {func} needs a field")
            if i + 2 < len(args) + 1 and i + 1 < len(args) and args[i + 1].lower() == "as":
                label = _field_name(args[i + 2])
                i += 3
            else:
                i += 1
            outputs.append(label)
        for name in by:
            state.need(analysis, name, where)
        return outputs, by, options

    def _cmd_stats(self, analysis: Analysis, state: _State, rest: str) -> None:
        outputs, by, _ = self._aggregations(analysis, state, split_args(rest), "stats")
        state.close(outputs + by)

    def _cmd_eventstats(self, analysis: Analysis, state: _State, rest: str) -> None:
        outputs, _by, _ = self._aggregations(analysis, state, split_args(rest), "eventstats")
        state.known.update(outputs)

    _cmd_streamstats = _cmd_eventstats

    def _cmd_timechart(self, analysis: Analysis, state: _State, rest: str) -> None:
        outputs, by, _ = self._aggregations(analysis, state, split_args(rest), "timechart")
        state.close(["_time", *outputs])
        state.dynamic = bool(by)

    def _cmd_chart(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = split_args(rest)
        over = []
        if "over" in [a.lower() for a in args]:
            idx = [a.lower() for a in args].index("over")
            over = [args[idx + 1]]
            args = args[:idx] + args[idx + 2 :]
        for name in over:
            state.need(analysis, name, "chart")
        outputs, by, _ = self._aggregations(analysis, state, args, "chart")
        state.close(over + outputs)
        state.dynamic = bool(by)

    def _cmd_top(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = [a for a in split_args(rest) if a != "," and "=" not in a]
        fields_, by = args, []
        if "by" in [a.lower() for a in args]:
            idx = [a.lower() for a in args].index("by")
            fields_, by = args[:idx], args[idx + 1 :]
        for name in fields_ + by:
            state.need(analysis, name, "top")
        state.close([*fields_, *by, "count", "percent"])

    _cmd_rare = _cmd_top

    def _cmd_table(self, analysis: Analysis, state: _State, rest: str) -> None:
        names = [_field_name(a) for a in split_args(rest) if a != ","]
        for name in names:
            state.need(analysis, name, "table")
        state.close(names)

    def _cmd_fields(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = [a for a in split_args(rest) if a != ","]
        if args and args[0] == "-":
            for name in args[1:]:
                state.need(analysis, name, "fields -")
                state.known.discard(name)
            return
        if args and args[0] == "+":
            args = args[1:]
        for name in args:
            state.need(analysis, name, "fields")
        if state.events:
            state.close(args)
        else:
            state.known = {n for n in state.known if n in args} | {n for n in args if "*" in n}

    def _cmd_rename(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = [a for a in split_args(rest) if a != ","]
        if len(args) % 3:
            raise SplError(f"rename: cannot read {rest!r}")
        for i in range(0, len(args), 3):
            old, as_, new = args[i], args[i + 1], args[i + 2]
            if as_.lower() != "as":
                raise SplError(f"rename: cannot read {rest!r}")
            state.need(analysis, _field_name(old), "rename")
            state.known.discard(_field_name(old))
            state.known.add(_field_name(new))

    def _cmd_lookup(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = [a for a in split_args(rest) if a != ","]
        args = [a for a in args if not re.match(r"^(local|update|event_time_field)=", a)]
        name = args[0]
        lookup = self._lookup(analysis, name)
        columns = set(lookup.fields) if lookup else set()
        i = 1
        mode = "input"
        outputs: List[str] = []
        inputs: List[str] = []
        while i < len(args):
            arg = args[i]
            if arg.upper() in ("OUTPUT", "OUTPUTNEW"):
                mode = "output"
                i += 1
                continue
            target = arg
            alias = arg
            if i + 2 < len(args) + 1 and i + 1 < len(args) and args[i + 1].lower() == "as":
                alias = args[i + 2]
                i += 3
            else:
                i += 1
            if lookup and target not in columns:
                analysis.errors.append(f"lookup {name}: it has no field {target!r}")
            if mode == "input":
                inputs.append(target)
                state.need(analysis, alias, f"lookup {name}")
            else:
                outputs.append(alias)
        if mode == "input" and lookup:  # no OUTPUT clause: every other lookup field
            outputs = [f for f in lookup.fields if f not in inputs]
        state.known.update(outputs)

    def _cmd_mvexpand(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = [a for a in split_args(rest) if "=" not in a]
        state.need(analysis, args[0], "mvexpand")

    def _cmd_makemv(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = [a for a in split_args(rest) if "=" not in a]
        state.need(analysis, args[0], "makemv")

    def _cmd_fillnull(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = [a for a in split_args(rest) if a != "," and "=" not in a]
        state.known.update(args)  # fillnull creates the fields it names

    def _cmd_dedup(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = [a for a in split_args(rest) if a != "," and "=" not in a and not a.isdigit()]
        if "sortby" in args:
            args = args[: args.index("sortby")] + [a.lstrip("+-") for a in args[args.index("sortby") + 1 :]]
        for name in args:
            state.need(analysis, name, "dedup")

    def _cmd_sort(self, analysis: Analysis, state: _State, rest: str) -> None:
        for arg in split_args(rest):
            if arg in (",", "-", "+") or arg.isdigit() or "=" in arg:
                continue
            name = arg.lstrip("+-")
            m = re.match(r"^(?:num|str|ip|auto)\((.+)\)$", name)
            state.need(analysis, m.group(1) if m else name, "sort")

    def _cmd_head(self, analysis: Analysis, state: _State, rest: str) -> None:
        if rest.strip() and not rest.strip().isdigit():
            raise SplError(f"head {rest!r} is not modelled")

    _cmd_tail = _cmd_head

    def _cmd_reverse(self, analysis: Analysis, state: _State, rest: str) -> None:
        return None

    def _cmd_addinfo(self, analysis: Analysis, state: _State, rest: str) -> None:
        state.known.update({"info_min_time", "info_max_time", "info_search_time", "info_sid"})

    def _cmd_bin(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = [a for a in split_args(rest) if "=" not in a]
        state.need(analysis, args[0], "bin")
        if len(args) == 3 and args[1].lower() == "as":
            state.known.add(args[2])

    _cmd_bucket = _cmd_bin

    def _subsearch(self, analysis: Analysis, text: str) -> Analysis:
        inner = text.strip()[1:-1].strip()
        sub = self.analyze(inner)
        analysis.subsearches.append(sub)
        analysis.errors.extend(f"subsearch: {e}" for e in sub.errors)
        analysis.lookups.update(sub.lookups)
        return sub

    def _cmd_join(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = split_args(rest)
        sub_text = next((a for a in args if a.startswith("[")), None)
        if sub_text is None:
            raise SplError("join needs a subsearch")
        keys = [a for a in args if a not in (",", sub_text) and "=" not in a]
        sub = self._subsearch(analysis, sub_text)
        for key in keys:
            state.need(analysis, key, "join")
            if sub.output_fields is not None and key not in sub.output_fields:
                analysis.errors.append(f"join: subsearch does not return {key!r}")
        if sub.output_fields is not None:
            state.known.update(sub.output_fields)

    def _cmd_inputlookup(self, analysis: Analysis, state: _State, rest: str) -> None:
        """``inputlookup append=true`` in the middle of a pipeline adds the lookup's rows (and fields)."""
        args = [a for a in split_args(rest) if a != ","]
        if not any(a.lower() in ("append=true", "append=t", "append=1") for a in args):
            raise SplError("inputlookup in the middle of a pipeline needs append=true")
        lookup = self._lookup(analysis, next(a for a in args if "=" not in a))
        if state.events:
            state.close(state.known)
        state.known.update(lookup.fields if lookup else [])

    def _cmd_outputlookup(self, analysis: Analysis, state: _State, rest: str) -> None:
        args = [a for a in split_args(rest) if a != "," and "=" not in a]
        lookup = self._lookup(analysis, args[0])
        if lookup:
            declared = set(lookup.fields) - {"_key"}
            missing = sorted(declared - state.known) if not state.events else []
            if missing:
                analysis.errors.append(f"outputlookup {args[0]}: the results lack {missing}")

    def _cmd_appendpipe(self, analysis: Analysis, state: _State, rest: str) -> None:
        """``appendpipe [...]``: the subpipeline runs over the current results; its fields are added."""
        inner = rest.strip()[1:-1].strip()
        sub_state = _State()
        sub_state.events, sub_state.known, sub_state.dynamic = state.events, set(state.known), state.dynamic
        for command in split_pipeline(inner):
            self._command(analysis, sub_state, command)
        state.known.update(sub_state.known)

    def _cmd_append(self, analysis: Analysis, state: _State, rest: str) -> None:
        sub = self._subsearch(analysis, rest.strip())
        if sub.output_fields is not None:
            state.known.update(sub.output_fields)
