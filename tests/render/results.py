"""`make dashboards-check`, data part: what each shipped view's data sources return on the demo's events.

Reads build/demo/events.jsonl and the run summaries in the demo's Splunk home (both written by
``python -m tests.harness.demo``), indexes them as Splunk would (props, lookups, eventtypes: ``model.Model``), runs
every data source of every view with ``splrun`` for each scenario (a view URL with its ``form.*`` tokens) and
writes <out>/results.json for render.js:

- ``definitions``: view -> Dashboard Studio definition (from the shipped XML, unchanged);
- ``results``: "<data source id>\\0<query after token substitution>" -> Splunk's JSON column layout;
- ``scenarios``: the pages to draw (one per view: its URL and the panels it must show);
- ``click``: the drilldown to script (a thing row of a table -> the Thing dashboard with form.thing set).

Tokens are substituted as Dashboard Studio does: ``$tok|s$`` puts the value in double quotes with ``\\`` and ``"``
escaped; a query that uses a token with no value in the scenario keeps its ``$tok$`` text, so the browser's
request (with whatever the framework made of it) finds no result and the check reports it.

Usage: python -m tests.render.results <out dir> [--views DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from tests.knowledge import fleet_events, model, splkit, splrun, test_assets

ROOT = model.ROOT
APP = "TA-aws-iot-defender"
TOKEN = re.compile(r"\$([A-Za-z0-9_.:]+)((?:\|[a-z]+)*)\$")
CLICK_FROM = ("iot_defender_ports", "viz_risky", "ds_risky")  # a table of things with a drilldown to the thing page
THING_VIEW = "iot_defender_thing"
# views whose picture goes to the README and the docs (make screenshots copies <view>.small.png to docs/images/)
SCREENSHOTS = ("iot_defender_violations", "iot_defender_ports", "iot_defender_egress", "iot_defender_thing")
# data sources of the clicked thing's page that must answer a real row, not their empty-state row (which has no value
# in this field): the page would draw without complaint either way
REAL_ROWS = {"ds_asset": "nt_host"}


# ------------------------------------------------------------------------------------------ demo events


def _tables(records: List[Dict[str, Any]]) -> Tuple[model.Model, Dict[str, splrun.Table]]:
    """The shipped lookups, and the KV inventory the demo's inventory input wrote (its rows, from its events)."""
    from iot_defender import events, inventory

    rows: Dict[str, Dict[str, Any]] = {}
    for record in records:
        if record["sourcetype"] == events.SOURCETYPE_THING:
            shaped = events.Event(
                time=record["time"], sourcetype=record["sourcetype"], source=record["source"], data=record["event"]
            )
            row = inventory.lookup_row(shaped, when=fleet_events.NOW)
            rows[row["_key"]] = row
    knowledge = model.Model(kv_rows={"iot_thing_inventory": list(rows.values())})
    tables: Dict[str, splrun.Table] = {}
    for name, values in knowledge.transforms.items():
        sensitive = values.get("case_sensitive_match", "true").lower() in ("1", "true")
        if values.get("external_type") == "kvstore":
            fields = [x.strip() for x in values["fields_list"].split(",")]
            tables[name] = splrun.Table(
                fields,
                list(knowledge.tables.get(name, [])),
                kv=True,
                case_sensitive=sensitive,
                max_matches=int(values.get("max_matches", "100")),
                filter=values.get("filter"),
            )
        elif "filename" in values:
            fields, table_rows = model.csv_rows(values["filename"])
            # an empty CSV cell is no field at all in Splunk (inputlookup, lookup outputs)
            table_rows = [{k: v for k, v in row.items() if v != ""} for row in table_rows]
            tables[name] = splrun.Table(fields, table_rows, case_sensitive=sensitive)
    return knowledge, tables


def demo_events() -> Tuple[List[Dict[str, Any]], Dict[str, splrun.Table]]:
    """The demo's events as search-time field rows (``_time``, ``_raw``, ``sourcetype`` included) and the tables."""
    if not fleet_events.DEMO_EVENTS.exists():
        raise SystemExit(f"{fleet_events.DEMO_EVENTS.relative_to(ROOT)} is missing: run python -m tests.harness.demo")
    records = list(fleet_events._demo_records())
    knowledge, tables = _tables(records)
    raw: List[Tuple[str, str, float, Dict[str, Any]]] = []
    for record in records:
        meta = {k: record.get(k) for k in ("index", "source", "sourcetype", "host")}
        raw.append((record["sourcetype"], fleet_events._compact(record["event"]), float(record["time"]), meta))
    latest = max(t for _s, _r, t, _m in raw)
    for input_name, line in fleet_events.demo_run_summaries():
        sourcetype, text, _when, meta, _t = fleet_events._internal_event(input_name, line, "demo")
        raw.append((sourcetype, text, _log_time(line, latest), meta))
    out = []
    for sourcetype, text, when, meta in raw:
        fields = model.kv_auto(text) if meta["index"] == "_internal" else model.flatten_json(text)
        fields.update({k: v for k, v in meta.items() if v is not None})
        fields = knowledge.apply(sourcetype, fields, text)
        fields.update(_time=when, _raw=text, sourcetype=sourcetype)
        out.append(fields)
    return out, tables


def columns(rows: List[Dict[str, Any]]) -> List[str]:
    """A result's fields in the order the search made them (as they first appear), Splunk's internal ones
    (``_raw``, ``_span``...) left out except ``_time``."""
    seen: Dict[str, None] = {}
    for row in rows:
        for name in row:
            if not name.startswith("_") or name == "_time":
                seen.setdefault(name, None)
    return list(seen)


def text(value: Any) -> Any:
    """A value as splunkd's JSON output gives it: strings, multivalue as a list of strings, null as None."""
    if isinstance(value, list):
        out = [text(v) for v in value]
        return out[0] if len(out) == 1 else out
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(round(value, 6))
    return str(value)


class Search:
    """Runs a dashboard's searches over the demo's events (the whole demo is in the time range; now() is the
    demo's last event, so results do not depend on when the check runs).

    The runner is the SPL model (its KV store: ``inputlookup max=N <lookup> where ...``, the lookup's ``filter``),
    and the asset lookup holds what the shipped search "IoT Defender Assets - Lookup Gen" writes from the demo's inventory events: the dashboard reads the rows Splunk would hold,
    made by the one definition of the mapping that ships (the search, not a second mapping in Python)."""

    def __init__(self) -> None:
        events, self.tables = demo_events()
        self.events = len(events)
        self.store = splrun.EventStore(events)
        self.now = max(e["_time"] for e in events)
        self.runner = splrun.Runner(model.macros(), self.tables)
        inventory_runs = {e["_time"] for e in events if e["sourcetype"] == "aws:iot:thing"}
        for when in sorted({test_assets.gen_time(t) for t in inventory_runs}):
            test_assets.run(self.runner, test_assets.GEN, when, self.store)
        self.assets = len(self.tables[test_assets.LOOKUP].served())

    def rows(self, spl: str) -> List[Dict[str, Any]]:
        return self.runner.run(spl, now=self.now, earliest=0.0, latest=self.now + 1, events=self.store.window).rows

    def results(self, spl: str) -> Dict[str, Any]:
        """Splunk's JSON column layout of a search's results."""
        rows = self.rows(spl)
        names = columns(rows)
        last = splkit.split_pipeline(spl)[-1].strip()
        if last.startswith("table "):  # table makes its columns whether or not any row has a value
            names = [splkit._field_name(a) for a in splkit.split_args(last[len("table ") :]) if a != ","]
        return {"fields": [{"name": n} for n in names], "columns": [[text(r.get(n)) for r in rows] for n in names]}


def _log_time(line: str, default: float) -> float:
    import datetime as dt

    m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})", line)
    if not m:
        return default
    stamp = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp() + int(m.group(2)) / 1000


# ------------------------------------------------------------------------------------------ tokens


def quote(value: str) -> str:
    """Dashboard Studio's ``s`` token filter."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def substitute(query: str, tokens: Dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        name, filters = m.group(1), m.group(2)
        if name not in tokens:
            return m.group(0)
        value = tokens[name]
        for filt in filters.split("|")[1:]:
            if filt == "s":
                value = quote(value)
            else:
                raise ValueError(f"token filter {filt} is not modelled")
        return value

    return TOKEN.sub(one, query)


def default_tokens(definition: Dict[str, Any]) -> Dict[str, str]:
    out = {}
    for item in definition.get("inputs", {}).values():
        options = item.get("options", {})
        if item["type"] != "input.timerange" and "defaultValue" in options:
            out[options["token"]] = str(options["defaultValue"])
    return out


# ------------------------------------------------------------------------------------------ results


class Results:
    def __init__(self, search: Search, definitions: Dict[str, Dict[str, Any]]):
        self.search = search
        self.definitions = definitions
        self.results: Dict[str, Any] = {}
        self.errors: List[str] = []

    def scenario(self, view: str, form: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        """Results of every data source of ``view`` with its default tokens overridden by ``form``."""
        definition = self.definitions[view]
        tokens = {**default_tokens(definition), **(form or {})}
        full = model.dashboard_queries(definition)
        for ds_id, ds in definition["dataSources"].items():
            own = substitute(ds["options"]["query"], tokens)
            try:
                self.results[f"{ds_id}\0{own}"] = self.search.results(substitute(full[ds_id], tokens))
            except Exception as error:  # reported by name; the browser then finds no result and fails too
                self.errors.append(f"{view}/{ds_id}: {type(error).__name__}: {error}")
        query = "&".join(f"form.{k}={_url(v)}" for k, v in (form or {}).items())
        panels = [
            b["item"] for layout in definition["layout"]["layoutDefinitions"].values() for b in layout["structure"]
        ]
        return {
            "name": view,
            "url": f"/en-US/app/{APP}/{view}" + (f"?{query}" if query else ""),
            "panels": panels,
            "tokens": tokens,
            "dropdowns": self.dropdowns(view, tokens),
        }

    def dropdowns(self, view: str, tokens: Dict[str, str]) -> Dict[str, List[str]]:
        """input id -> the options a dynamic dropdown must list: its statics' labels, then every value of its field
        in its data source's results (whatever their shape: 12-digit account ids included)."""
        out: Dict[str, List[str]] = {}
        definition = self.definitions[view]
        for input_id, item in definition.get("inputs", {}).items():
            ds_id = item.get("dataSources", {}).get("primary")
            if item["type"] != "input.dropdown" or not ds_id:
                continue
            context = item.get("context", {})
            m = re.search(r'seriesByName\("([^"]+)"\)', context.get("label", ""))
            if not m:
                continue
            result = self.results.get(
                f"{ds_id}\0{substitute(definition['dataSources'][ds_id]['options']['query'], tokens)}"
            )
            if result is None:
                continue
            names = [f["name"] for f in result["fields"]]
            values = result["columns"][names.index(m.group(1))] if m.group(1) in names else []
            out[input_id] = [row[0] for row in context.get("statics", [])[:1]] + [str(v) for v in values]
        return out

    def rows(self, view: str, ds_id: str) -> List[Dict[str, Any]]:
        definition = self.definitions[view]
        query = substitute(model.dashboard_queries(definition)[ds_id], default_tokens(definition))
        return self.search.rows(query)


def _url(value: str) -> str:
    from urllib.parse import quote as url_quote

    return url_quote(value, safe="")


def build(out: Path, views: Path) -> Dict[str, Any]:
    search = Search()
    definitions = _definitions(views)
    results = Results(search, definitions)
    view, panel, ds_id = CLICK_FROM
    thing = _click_target(search, definitions, [str(text(r["thing_name"])) for r in results.rows(view, ds_id)])
    scenarios = []
    for name in sorted(definitions):
        form = {"thing": thing} if name == THING_VIEW else None
        scenarios.append(results.scenario(name, form))
    click = {
        "from": next(s for s in scenarios if s["name"] == view),
        "panel": panel,
        "thing": thing,
        "to": THING_VIEW,
        "panels": next(s for s in scenarios if s["name"] == THING_VIEW)["panels"],
    }
    results.errors.extend(_empty_states(results, next(s for s in scenarios if s["name"] == THING_VIEW), thing))
    canaries = _canaries(definitions, scenarios)
    for canary in canaries:
        definitions[canary["name"]] = canary.pop("definition")
    plan = {
        "definitions": definitions,
        "canaries": canaries,
        "results": results.results,
        "scenarios": scenarios,
        "click": click,
        "screenshots": list(SCREENSHOTS),
        "model_errors": results.errors,
        "events": search.events,
        "assets": search.assets,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(plan, separators=(",", ":")))
    return plan


def _click_target(search: Search, definitions: Dict[str, Dict[str, Any]], things: List[str]) -> str:
    """The first thing of the clicked table whose Thing page has something in every panel on the demo (the check
    then proves the whole page, not just that it opened); the first row if none has."""
    for thing in dict.fromkeys(things):
        probe = Results(search, definitions)
        probe.scenario(THING_VIEW, {"thing": thing})
        if not probe.errors and all(r["columns"] and r["columns"][0] for r in probe.results.values()):
            return thing
    return things[0] if things else "*"


def _empty_states(results: Results, scenario: Dict[str, Any], thing: str) -> List[str]:
    """An error for each REAL_ROWS data source of the clicked thing's page that answered only its empty-state row
    (an empty asset lookup would otherwise draw as a panel that says so, and pass)."""
    definition = results.definitions[THING_VIEW]
    errors = []
    for ds_id, name in REAL_ROWS.items():
        query = substitute(definition["dataSources"][ds_id]["options"]["query"], scenario["tokens"])
        answer = results.results.get(f"{ds_id}\0{query}", {"fields": [], "columns": []})
        names = [f["name"] for f in answer["fields"]]
        values = answer["columns"][names.index(name)] if name in names else []
        if not any(values):
            errors.append(f"{THING_VIEW}/{ds_id}: no {name} for {thing} (the panel shows its empty state)")
    return errors


def _canaries(definitions: Dict[str, Dict[str, Any]], scenarios: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Copies of the port view with one deliberate defect each: the check must fail on every one of them."""
    base_view = "iot_defender_ports"
    base = next(s for s in scenarios if s["name"] == base_view)
    defects = {
        "canary_bad_option": (
            "viz_tcp_open",
            "a visualization option outside its schema (stackMode: sideways)",
            lambda d: d["visualizations"]["viz_tcp_open"]["options"].update(stackMode="sideways"),
        ),
        "canary_bad_viz_type": (
            "viz_risky_things",
            "a visualization type that does not exist",
            lambda d: d["visualizations"]["viz_risky_things"].update(type="splunk.singlevalues"),
        ),
        "canary_account_dropdown": (
            "dropdown input_account",
            "the account dropdown as it was before the fix (12-digit ids listed only as the default)",
            _unformatted_account_dropdown,
        ),
    }
    out = []
    for name, (panel, defect, mutate) in defects.items():
        definition = json.loads(json.dumps(definitions[base_view]))
        mutate(definition)
        out.append(
            {
                "name": name,
                "url": base["url"].replace(base_view, name),
                "panels": base["panels"],
                "dropdowns": base["dropdowns"],
                "definition": definition,
                "defect": defect,
                "expect": panel,
            }
        )
    return out


def _unformatted_account_dropdown(definition: Dict[str, Any]) -> None:
    context = definition["inputs"]["input_account"]["context"]
    for key in ("label", "value"):
        context[key] = context[key].replace(" | formatByType(formattedConfig)", "")


def _definitions(views: Path) -> Dict[str, Dict[str, Any]]:
    saved = model.VIEWS
    try:
        model.VIEWS = views
        return model.dashboard_definitions()
    finally:
        model.VIEWS = saved


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--views", type=Path, default=model.VIEWS)
    args = parser.parse_args(argv)
    plan = build(args.out, args.views)
    print(
        f"model results: {len(plan['results'])} data source results for {len(plan['scenarios'])} views "
        f"from {plan['events']} demo events and {plan['assets']} assets; click {plan['click']['thing']}"
    )
    for error in plan["model_errors"]:
        print(f"  - model error: {error}")
    return 1 if plan["model_errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
