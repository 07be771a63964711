"""The add-on's knowledge objects as Splunk applies them at search time, modelled for tests.

Reads package/default/*.conf (with ksconf's parser, as ``ksconf check`` does) and package/lookups/*.csv, and
turns an indexed event (its raw JSON text plus metadata) into the fields a search sees:

1. KV_MODE = json: the body flattened the way Splunk names JSON fields (``a.b``, arrays as ``a{}``, arrays of
   objects as ``a{}.b``; several values make a multivalue field; JSON null extracts nothing);
2. FIELDALIAS-* (AS overwrites, ASNEW does not);
3. EVAL-* all evaluated against the fields after step 2, never against each other's results (as Splunk does);
4. LOOKUP-* (automatic lookups) against the CSV files and, for the KV store lookup, the rows the inventory
   code writes;
5. eventtypes (their searches) and tags.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ksconf.conf.parser import parse_conf

from tests.knowledge import splkit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "package" / "default"
LOOKUPS = ROOT / "package" / "lookups"
VIEWS = DEFAULT / "data" / "ui" / "views"
NAV = DEFAULT / "data" / "ui" / "nav" / "default.xml"

Fields = Dict[str, Any]


def conf(name: str) -> Dict[str, Dict[str, str]]:
    path = DEFAULT / name
    if not path.exists():
        return {}
    parsed = parse_conf(str(path))
    return {
        stanza: dict(values) for stanza, values in parsed.items() if isinstance(stanza, str) and stanza != "default"
    }


def macros() -> Dict[str, Tuple[str, List[str]]]:
    out: Dict[str, Tuple[str, List[str]]] = {}
    for name, values in conf("macros.conf").items():
        args = [a.strip() for a in values.get("args", "").split(",") if a.strip()]
        out[name] = (values["definition"], args)
    return out


def csv_rows(filename: str) -> Tuple[List[str], List[Dict[str, str]]]:
    with (LOOKUPS / filename).open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def lookup_definitions() -> Dict[str, splkit.Lookup]:
    out: Dict[str, splkit.Lookup] = {}
    for name, values in conf("transforms.conf").items():
        if values.get("external_type") == "kvstore":
            fields = [f.strip() for f in values["fields_list"].split(",")]
        elif "filename" in values:
            fields = csv_rows(values["filename"])[0]
        else:
            continue
        out[name] = splkit.Lookup(name=name, fields=fields)
    return out


def analyzer() -> splkit.Analyzer:
    return splkit.Analyzer(macros(), lookup_definitions())


# ------------------------------------------------------------------------------------------ JSON fields


def _scalar(value: Any) -> Optional[str]:
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def flatten_json(text: str) -> Fields:
    """Splunk's KV_MODE=json field names and values for one event body (numbers kept as written)."""
    document = json.loads(text, parse_float=str, parse_int=str)
    collected: Dict[str, List[str]] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for item in value:
                walk(item, f"{path}{{}}")
        else:
            scalar = _scalar(value)
            if scalar is not None and path:
                collected.setdefault(path, []).append(scalar)

    walk(document, "")
    return {k: v[0] if len(v) == 1 else v for k, v in collected.items()}


def kv_auto(text: str) -> Fields:
    """KV_MODE=auto on a log line: key=value and key="value" pairs."""
    out: Fields = {}
    for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s,]+)', text):
        value = m.group(2)
        out.setdefault(m.group(1), value[1:-1] if value.startswith('"') else value)
    return out


# ------------------------------------------------------------------------------------------ props stanza


def _pairs(text: str) -> List[Tuple[str, str, str]]:
    tokens = [t[1:-1] if t.startswith('"') else t for t in re.findall(r'"[^"]*"|\S+', text)]
    if len(tokens) % 3:
        raise splkit.SplError(f"cannot read FIELDALIAS {text!r}")
    out = []
    for i in range(0, len(tokens), 3):
        if tokens[i + 1].upper() not in ("AS", "ASNEW"):
            raise splkit.SplError(f"cannot read FIELDALIAS {text!r}")
        out.append((tokens[i], tokens[i + 1].upper(), tokens[i + 2]))
    return out


@dataclass
class AutoLookup:
    name: str
    inputs: List[Tuple[str, str]]  # (lookup field, event field)
    outputs: List[Tuple[str, str]]  # (lookup field, event field)
    outputnew: bool


def parse_lookup_setting(text: str) -> AutoLookup:
    tokens = text.split()
    name = tokens[0]
    inputs: List[Tuple[str, str]] = []
    outputs: List[Tuple[str, str]] = []
    target = inputs
    outputnew = False
    i = 1
    while i < len(tokens):
        if tokens[i].upper() in ("OUTPUT", "OUTPUTNEW"):
            outputnew = tokens[i].upper() == "OUTPUTNEW"
            target = outputs
            i += 1
            continue
        if i + 2 < len(tokens) + 1 and i + 1 < len(tokens) and tokens[i + 1].upper() == "AS":
            target.append((tokens[i], tokens[i + 2]))
            i += 3
        else:
            target.append((tokens[i], tokens[i]))
            i += 1
    return AutoLookup(name=name, inputs=inputs, outputs=outputs, outputnew=outputnew)


@dataclass
class Stanza:
    name: str
    settings: Dict[str, str]
    aliases: List[Tuple[str, str, str]] = field(default_factory=list)
    evals: List[Tuple[str, Any, str]] = field(default_factory=list)  # (field, ast, text)
    lookups: List[AutoLookup] = field(default_factory=list)

    @classmethod
    def from_settings(cls, name: str, settings: Dict[str, str]) -> Stanza:
        stanza = cls(name=name, settings=settings)
        for key in sorted(settings):  # Splunk applies each kind in ASCII order of its class name
            value = settings[key]
            if key.startswith("FIELDALIAS-"):
                stanza.aliases.extend(_pairs(value))
            elif key.startswith("EVAL-"):
                stanza.evals.append((key[5:], splkit.parse_expression(value), value))
            elif key.startswith("LOOKUP-"):
                stanza.lookups.append(parse_lookup_setting(value))
        return stanza


class Model:
    """Props, lookups, eventtypes and tags of the add-on, ready to apply to events."""

    def __init__(self, kv_rows: Optional[Mapping[str, List[Dict[str, Any]]]] = None, *, distributed: bool = False):
        """``distributed``: events are searched on indexers, where automatic lookups on a KV collection that is not
        replicated (collections.conf ``replicate``, default false) are not available (``unserved`` counts them)."""
        self.props = {name: Stanza.from_settings(name, values) for name, values in conf("props.conf").items()}
        self.transforms = conf("transforms.conf")
        self.distributed = distributed
        self.unserved: Dict[str, int] = {}
        replicated = {
            n for n, v in conf("collections.conf").items() if v.get("replicate", "false").lower() in ("1", "true")
        }
        self.indexer_blind = {
            name
            for name, values in self.transforms.items()
            if values.get("external_type") == "kvstore" and values.get("collection") not in replicated
        }
        self.tables: Dict[str, List[Dict[str, Any]]] = {}
        for name, values in self.transforms.items():
            if "filename" in values:
                self.tables[name] = csv_rows(values["filename"])[1]
        for name, rows in (kv_rows or {}).items():
            self.tables[name] = [{k: ("" if v is None else str(v)) for k, v in row.items()} for row in rows]
        self.eventtypes = {
            name: splkit.parse_base_search(values["search"]) for name, values in conf("eventtypes.conf").items()
        }
        self.tags: Dict[str, List[str]] = {}
        for stanza, values in conf("tags.conf").items():
            m = re.match(r"^eventtype=(.+)$", stanza)
            if m:
                self.tags[m.group(1)] = sorted(t for t, state in values.items() if state == "enabled")

    def apply(self, sourcetype: str, fields: Fields, raw: str) -> Fields:
        stanza = self.props.get(sourcetype)
        if stanza is not None:
            for source, mode, target in stanza.aliases:
                if source in fields and (mode == "AS" or target not in fields):
                    fields[target] = fields[source]
            snapshot = dict(fields)
            results = {name: splkit.Evaluator(snapshot).eval(ast) for name, ast, _text in stanza.evals}
            for name, value in results.items():
                if value is None:
                    fields.pop(name, None)
                else:
                    fields[name] = _stringify(value)
            for auto in stanza.lookups:
                self._lookup(auto, fields)
        types = [name for name, ast in self.eventtypes.items() if splkit.matches(ast, fields, raw)]
        if types:
            fields["eventtype"] = types
            tags = sorted({t for name in types for t in self.tags.get(name, [])})
            if tags:
                fields["tag"] = tags
        return fields

    def _lookup(self, auto: AutoLookup, fields: Fields) -> None:
        if self.distributed and auto.name in self.indexer_blind:
            self.unserved[auto.name] = self.unserved.get(auto.name, 0) + 1
            return
        rows = self.tables.get(auto.name)
        if rows is None:
            raise splkit.SplError(f"automatic lookup {auto.name} has no table")
        sensitive = self.transforms.get(auto.name, {}).get("case_sensitive_match", "true").lower() in ("1", "true")
        norm = (lambda v: v) if sensitive else (lambda v: v.lower())

        def values(name: str) -> List[str]:
            value = fields.get(name)
            if value is None:
                return []
            return [norm(str(v)) for v in (value if isinstance(value, list) else [value])]

        wanted = [(column, values(event_field)) for column, event_field in auto.inputs]
        if any(not v for _c, v in wanted):
            return
        hits = [row for row in rows if all(norm(str(row.get(column, ""))) in vals for column, vals in wanted)]
        if not hits:
            return
        for column, event_field in auto.outputs:
            found = [str(row[column]) for row in hits if row.get(column) not in (None, "")]
            if not found or (auto.outputnew and event_field in fields):
                continue
            fields[event_field] = found[0] if len(found) == 1 else found


def _stringify(value: Any) -> Any:
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ------------------------------------------------------------------------------------------- dashboards


def dashboard_definitions() -> Dict[str, Dict[str, Any]]:
    """view name -> Dashboard Studio definition (JSON in the view's CDATA)."""
    out: Dict[str, Dict[str, Any]] = {}
    for path in sorted(VIEWS.glob("*.xml")):
        text = path.read_text()
        if not re.search(r'<dashboard\b[^>]*\bversion="2"', text):
            continue
        m = re.search(r"<definition>\s*<!\[CDATA\[(.*?)\]\]>\s*</definition>", text, re.S)
        if not m:
            raise AssertionError(f"{path.name}: no definition")
        out[path.stem] = json.loads(m.group(1))
    return out


def dashboard_queries(definition: Mapping[str, Any]) -> Dict[str, str]:
    """data source id -> full query (a chain's parent query followed by the chain's)."""
    sources = definition.get("dataSources", {})

    def full(ds_id: str, depth: int = 0) -> str:
        ds = sources[ds_id]
        options = ds.get("options", {})
        if ds["type"] == "ds.chain":
            if depth > 10:
                raise AssertionError("chain loop")
            return full(options["extend"], depth + 1) + " " + options["query"]
        return options["query"]

    return {ds_id: full(ds_id) for ds_id in sources}


def substitute_tokens(query: str, value: str = "*") -> str:
    """Dashboard tokens replaced by a value (a wildcard by default) so the search can be analysed."""
    return re.sub(r"\$[A-Za-z0-9_.:]+(?:\|[a-z]+)?\$", value, query)


def saved_searches() -> Dict[str, Dict[str, str]]:
    return conf("savedsearches.conf")


def iter_searches() -> Iterable[Tuple[str, str]]:
    """(label, SPL) of every saved search and dashboard data source."""
    for name, values in saved_searches().items():
        yield f"savedsearch:{name}", substitute_tokens(values["search"])
    for view, definition in dashboard_definitions().items():
        for ds_id, query in dashboard_queries(definition).items():
            yield f"dashboard:{view}:{ds_id}", substitute_tokens(query)
