"""Things as Enterprise Security assets: the "IoT Defender Assets - Lookup Gen" / "- Lookup Cleanup" searches run on
the SPL model over the demo fleet's inventory events, checked field by field against ES's asset lookup format, joined
to the demo's findings by nt_host (what ES's asset_lookup_by_str does with a finding's dest), and held to Splunk's KV
store limits (no whole-collection read; bounded prune).

ES's asset lookup format (Splunk ES, "Format an asset or identity list as a lookup" and "Asset and identity fields
after processing"): the header ip,mac,nt_host,dns,owner,priority,lat,long,city,country,bunit,category,pci_domain,
is_expected,should_timesync,should_update,requires_av,cim_entity_zone; ip, mac, nt_host, dns, category and pci_domain
are pipe-delimited lists, the others single values; priority is unknown|low|medium|high|critical; the four flags are
true/false; lat/long are decimal degrees. The constants below are that spec, not the add-on's code.

The searches run on the SPL model as it is (splrun, kvstore, limits): ``outputlookup append=true key_field=_key``
upserts, ``inputlookup max=N <lookup> where ...`` is one KV query capped at ``max_rows_per_query``, the lookup's
transforms.conf ``filter`` applies to every read, and the KV collection counts the rows each run reads and writes.
"""

from __future__ import annotations

import copy
import csv
import json
import re
from typing import Any, Dict, List, Optional

import pytest

from tests.knowledge import behaviour, limits, model, splkit, splrun

GEN = "IoT Defender Assets - Lookup Gen"
CLEANUP = "IoT Defender Assets - Lookup Cleanup"
LOOKUP = "iot_defender_assets"

ES_FIELDS = [
    "ip", "mac", "nt_host", "dns", "owner", "priority", "lat", "long", "city", "country", "bunit", "category",
    "pci_domain", "is_expected", "should_timesync", "should_update", "requires_av", "cim_entity_zone",
]  # fmt: skip
ES_MULTIVALUE = {"ip", "mac", "nt_host", "dns", "category", "pci_domain"}
ES_PRIORITIES = {"unknown", "low", "medium", "high", "critical"}
ES_FLAGS = {"is_expected", "should_timesync", "should_update", "requires_av"}
ES_MAX_VALUE = 975  # characters per value (per value of a multi-value field)
H = 3600.0


# ------------------------------------------------------------------------------------------------ the world


def saved(name: str) -> Dict[str, str]:
    return model.saved_searches()[name]


def lookup_tables() -> Dict[str, splrun.Table]:
    tables: Dict[str, splrun.Table] = {}
    for name, values in model.conf("transforms.conf").items():
        if name == LOOKUP or name == "iot_defender_asset_priority":
            kv = values.get("external_type") == "kvstore"
            fields = (
                [f.strip() for f in values["fields_list"].split(",")] if kv else model.csv_rows(values["filename"])[0]
            )
            rows = [] if kv else model.csv_rows(values["filename"])[1]
            max_matches = int(values.get("max_matches", "100"))
            tables[name] = splrun.Table(fields, rows, kv=kv, max_matches=max_matches, filter=values.get("filter"))
    return tables


def runner(macros: Optional[Dict[str, str]] = None) -> splrun.Runner:
    definitions = model.macros()
    for name, text in (macros or {}).items():
        definitions[name] = (text, [])
    return splrun.Runner(definitions, lookup_tables())


def kv(r: splrun.Runner) -> Any:
    """The asset collection: its rows and its read/write counters (``rows_read``, ``rows_written``)."""
    return r.table(LOOKUP)


def reset(r: splrun.Runner) -> None:
    kv(r).rows_read = kv(r).rows_written = 0


def thing_events(things: List[Dict[str, Any]], when: float) -> List[Dict[str, Any]]:
    """aws:iot:thing events (with their search-time fields) as the inventory input builds them."""
    from iot_defender import events

    knowledge = model.Model(kv_rows={"iot_thing_inventory": []})
    out = []
    for thing in things:
        event = events.thing_event(
            {k: v for k, v in thing.items() if k != "groups"},
            account_id=thing.get("account_id", "123456789012"),
            region=thing.get("region", "us-east-1"),
            snapshot_time=when,
            groups=thing.get("groups", []),
        )
        raw = event.body()
        fields = model.flatten_json(raw)
        fields.update(index="iot", source=event.source, sourcetype=event.sourcetype)
        fields = knowledge.apply(event.sourcetype, fields, raw)
        fields.update(_time=event.time, _raw=raw)
        out.append(fields)
    return out


def run(r: splrun.Runner, name: str, now: float, store: splrun.EventStore, *, strict: bool = True) -> splrun.Run:
    """One scheduled run of a shipped asset search; ``strict``: Splunk's limits never cut it (the model records any
    cut in ``Run.truncations``; the benchmark counts them instead)."""
    values = saved(name)
    earliest = splrun.relative_time(now, values["dispatch.earliest_time"])
    latest = splrun.relative_time(now, values["dispatch.latest_time"])
    done = r.run(values["search"], now=now, earliest=earliest, latest=latest, events=store.window)
    assert not (strict and done.truncations), [str(t) for t in done.truncations]
    return done


def gen_time(inventory_time: float) -> float:
    """The first Lookup Gen run whose window holds an inventory run started at ``inventory_time``."""
    return (inventory_time // H) * H + 3 * H + 35 * 60


def demo_things() -> List[Dict[str, Any]]:
    f = behaviour.fleet()
    return [
        {
            "thingName": th.name,
            "thingTypeName": th.thing_type,
            "attributes": dict(th.attributes),
            "groups": list(th.groups),
            "account_id": f.account_id,
            "region": f.region,
        }
        for th in f.things
    ]


def build_demo(r: splrun.Runner) -> splrun.Run:
    now = behaviour.NOW.timestamp()
    store = splrun.EventStore(thing_events(demo_things(), now))
    return run(r, GEN, gen_time(now), store)


# ------------------------------------------------------------------------------------------------ the format


def es_view(r: splrun.Runner) -> List[Dict[str, Any]]:
    """What ES's identity manager reads: ``| inputlookup iot_defender_assets`` (the lookup's filter applied)."""
    return r.run(f"| inputlookup {LOOKUP}", now=0).rows


def test_demo_fleet_assets_are_in_es_asset_format():
    r = runner()
    build_demo(r)
    rows = es_view(r)
    fleet = behaviour.fleet()
    assert len(rows) == len(fleet.things) == behaviour.THINGS
    for row in rows:
        assert set(ES_FIELDS) <= set(row), sorted(set(ES_FIELDS) - set(row))
        for name in ES_FIELDS:
            value = row[name]
            assert isinstance(value, str), (name, value)  # one stored value; lists are pipe-delimited text
            assert all(len(v) <= ES_MAX_VALUE for v in value.split("|")), name
            if name not in ES_MULTIVALUE:
                assert "|" not in value, (name, value)
        assert row["priority"] in ES_PRIORITIES
        assert all(row[flag] in ("true", "false", "") for flag in ES_FLAGS)
        assert row["lat"] == "" or -90 <= float(row["lat"]) <= 90
        assert row["long"] == "" or -180 <= float(row["long"]) <= 180
        # the rest of ES's fields are empty: a thing has no ip/mac/dns of its own in the inventory
        assert [row[f] for f in ("ip", "mac", "dns", "pci_domain", "should_timesync", "should_update")] == [""] * 6
    by_name = {row["nt_host"]: row for row in rows}
    for th in fleet.things:
        row = by_name[th.name]
        assert row["owner"] == th.attributes["owner"] and row["bunit"] == th.attributes["site"]
        assert row["category"].split("|") == ["iot", th.thing_type]
        want = "critical" if "protected-critical" in th.groups else "low"
        assert row["priority"] == want and row["is_expected"] == ("true" if want == "critical" else "false")
    assert {r_["priority"] for r_ in rows} == {"low", "critical"}  # the demo has both kinds


def test_spl_and_the_library_helper_agree_on_every_demo_thing():
    """iot_defender.assets (what response actions will call) maps a thing exactly as the search does."""
    from iot_defender import assets, events, inventory

    r = runner()
    build_demo(r)
    by_name = {row["nt_host"]: row for row in es_view(r)}
    with (model.LOOKUPS / "iot_defender_asset_priority.csv").open(newline="") as handle:
        rules = assets.PriorityRules.from_rows(csv.DictReader(handle))
    for thing in demo_things():
        event = events.thing_event(
            {k: v for k, v in thing.items() if k != "groups"},
            account_id=thing["account_id"],
            region=thing["region"],
            snapshot_time=behaviour.NOW,
            groups=thing["groups"],
        )
        row = inventory.lookup_row(event, when=behaviour.NOW)
        expected = assets.asset_of(row, rules)
        got = {k: by_name[thing["thingName"]][k] for k in ES_FIELDS}
        assert got == expected.es_row(), thing["thingName"]
        key = assets.asset_key(thing["account_id"], thing["region"], thing["thingName"])
        stored = next(s for s in r.table(LOOKUP).rows if s["_key"] == key)
        assert assets.from_kv_row(stored) == expected  # what a response action reads back by key


def test_mapping_is_configured_by_macros_and_hostile_values_are_neutralised():
    macros = {
        "iot_defender_asset_owner": "coalesce('attributes.team', 'attributes.owner')",
        "iot_defender_asset_city": "'attributes.city'",
        "iot_defender_asset_country": "'attributes.country'",
        "iot_defender_asset_lat": "'attributes.lat'",
        "iot_defender_asset_long": "'attributes.lon'",
        "iot_defender_asset_priority_attributes": "mvappend(\"criticality=\".'attributes.criticality')",
        "iot_defender_asset_zone": "account_id",
    }
    r = runner(macros)
    r.table("iot_defender_asset_priority").rows.append({"scope": "attribute:criticality=high", "priority": "high"})
    now = behaviour.NOW.timestamp()
    things = [
        {"thingName": "kiosk-1", "thingTypeName": "Kiosk", "attributes": {"team": "retail", "owner": "x",
         "city": "Lyon", "country": "FR", "lat": "45.76", "lon": "4.83", "criticality": "high"}},
        {"thingName": "kiosk-2", "attributes": {"owner": "ops|admin", "city": "Paris|London", "lat": "123",
         "lon": "east", "site": "a|b"}},
    ]  # fmt: skip
    events = thing_events(things, now)
    # the event model already replaces attribute values the IoT API refuses (iot_defender.names): the SPL's own
    # guard is for an aws:iot:thing event that did not come from the add-on's input (a forged HEC event)
    events += [{**events[1], "thingName": "kiosk-3", "thing_name": "kiosk-3", "attributes.owner": "ops|admin",
                "attributes.city": "Paris|London", "attributes.site": "a|b", "attributes.lat": "123"}]  # fmt: skip
    run(r, GEN, gen_time(now), splrun.EventStore(events))
    rows = {row["nt_host"]: row for row in es_view(r)}
    one, two, forged = rows["kiosk-1"], rows["kiosk-2"], rows["kiosk-3"]
    assert (one["owner"], one["city"], one["country"], one["lat"], one["long"]) == (
        "retail",
        "Lyon",
        "FR",
        "45.76",
        "4.83",
    )
    assert one["priority"] == "high" and one["is_expected"] == "true" and one["cim_entity_zone"] == "123456789012"
    assert one["category"] == "iot|Kiosk" and two["category"] == "iot"  # no thing type: iot alone
    assert all(two[f].startswith("invalid-attribute-") for f in ("owner", "city", "bunit"))  # the event's stand-ins
    assert (two["lat"], two["long"], two["priority"]) == ("", "", "low")
    assert (forged["owner"], forged["city"], forged["bunit"], forged["lat"]) == ("opsadmin", "ParisLondon", "ab", "")


def test_scope_macro_publishes_only_the_chosen_things():
    r = runner({"iot_defender_asset_scope": 'thing_group IN ("protected-critical")'})
    build_demo(r)
    protected = {th.name for th in behaviour.fleet().things if "protected-critical" in th.groups}
    assert protected and {row["nt_host"] for row in es_view(r)} == protected
    assert {row["priority"] for row in es_view(r)} == {"critical"}


def test_a_finding_on_a_thing_joins_its_asset_by_nt_host():
    """ES's asset_lookup_by_str matches a finding's dest, src and dvc against the assets' nt_host, without regard to
    case (ES, "Asset and identity correlation"): every finding of every detection that names a thing carries the
    thing in dest (or dvc, where dest is the AWS resource a finding is about), and so finds that thing's asset, with
    its owner and priority: the finding's urgency comes from the asset's priority."""
    r = runner()
    build_demo(r)
    assets_by_host = {row["nt_host"].lower(): row for row in es_view(r)}
    things = {th.name for th in behaviour.fleet().things}
    joined, detections = 0, set()
    for name, rows in behaviour.simulate().rows.items():
        for finding in rows:
            names = [v for v in splrun._values(finding.get("thing_name")) if v in things]
            if not names:
                continue  # a finding on an AWS resource (policy, CA certificate, account), not a thing
            correlated = {
                str(v).lower() for f in ("dest", "src", "dvc") for v in splrun._values(finding.get(f))
            }  # fmt: skip
            for thing in names:
                assert str(thing).lower() in correlated, (name, thing, {f: finding.get(f) for f in ("dest", "dvc")})
                asset = assets_by_host.get(str(thing).lower())
                assert asset is not None, (name, thing)
                assert asset["owner"] and asset["priority"] in ES_PRIORITIES - {"unknown"}
                joined += 1
                detections.add(name)
    assert joined >= 10 and len(detections) >= 10, (joined, sorted(detections))
    for name, values in model.saved_searches().items():  # and the detections the demo has no thing finding of
        if name.endswith(" - Rule") and "thing_name" in values["search"]:
            assert "dvc=thing_name" in values["search"], name


# ------------------------------------------------------------------------------------------------ fleet scale


def test_gen_writes_only_what_changed_and_refreshes_old_rows():
    r = runner()
    now = behaviour.NOW.timestamp()
    things = demo_things()
    first = build_demo(r)
    assert kv(r).rows_written == len(things) and kv(r).rows_read == 0 and len(first.rows) == len(things)
    # the next inventory run: nothing changed -> nothing written; each thing's own row read once
    reset(r)
    run(r, GEN, gen_time(now + H), splrun.EventStore(thing_events(things, now + H)))
    assert (kv(r).rows_written, kv(r).rows_read) == (0, len(things))
    # one owner changes -> one row written
    changed = copy.deepcopy(things)
    changed[0]["attributes"]["owner"] = "new-team"
    reset(r)
    run(r, GEN, gen_time(now + 2 * H), splrun.EventStore(thing_events(changed, now + 2 * H)))
    assert kv(r).rows_written == 1
    assert {row["nt_host"]: row["owner"] for row in es_view(r)}[changed[0]["thingName"]] == "new-team"
    # eight days on, unchanged rows are rewritten once (last_seen renewed, so the cleanup keeps them)
    later = now + 8 * 24 * H
    reset(r)
    run(r, GEN, gen_time(later), splrun.EventStore(thing_events(changed, later)))
    assert kv(r).rows_written == len(things)


def test_renewals_of_unchanged_rows_spread_over_the_refresh_period():
    """Rows the first load wrote in one hour are renewed each at its own time between half the refresh period and
    the period (md5 of the key), not all in one run: no run rewrites the fleet, no row gets older than the period."""
    r = runner()
    now = behaviour.NOW.timestamp()
    things = [
        {"thingName": f"meter-{i:04d}", "thingTypeName": "Meter", "attributes": {"owner": "o"}} for i in range(600)
    ]
    events = thing_events(things, now)
    run(r, GEN, gen_time(now), splrun.EventStore(events))
    period = float(model.macros()["iot_defender_asset_refresh_seconds"][0])
    step = 6 * H
    writes, oldest = [], 0.0
    for k in range(1, int(period // step) + 3):
        when = now + k * step
        reset(r)
        restamped = [{**e, "_time": when} for e in events]
        run(r, GEN, gen_time(when), splrun.EventStore(restamped))
        writes.append(kv(r).rows_written)
        ages = [gen_time(when) - float(row["last_seen"]) for row in r.table(LOOKUP).rows]
        oldest = max(oldest, max(ages))
    expected = len(things) * step / (period / 2)  # due times spread evenly over half the period
    assert sum(writes[: int(period / 2 // step) - 1]) == 0  # nothing is due before half the period
    assert 0 < max(writes) <= 2 * expected, (max(writes), expected)
    assert sum(writes) >= len(things) and oldest <= period + step


def test_cleanup_prunes_things_no_longer_inventoried_in_bounded_batches():
    r = runner({"iot_defender_asset_prune_batch": "3"})
    now = behaviour.NOW.timestamp()
    things = demo_things()
    build_demo(r)
    kept = things[:2]
    month = now + 31 * 24 * H
    run(r, GEN, gen_time(month), splrun.EventStore(thing_events(kept, month)))  # only two things still exist
    reset(r)
    pruned = run(r, CLEANUP, month + 4 * H, splrun.EventStore())
    assert len(pruned.rows) == 3 and kv(r).rows_read == 3 and kv(r).rows_written == 3  # one bounded batch
    for _ in range(3):
        run(r, CLEANUP, month + 5 * H, splrun.EventStore())
    names = sorted(row["nt_host"] for row in es_view(r))
    assert names == sorted(t["thingName"] for t in kept)
    assert len(r.table(LOOKUP).rows) == len(things)  # pruned rows stay as emptied rows ES does not see
    # a pruned thing that comes back is an asset again at the next run
    run(r, GEN, gen_time(month + 24 * H), splrun.EventStore(thing_events(things, month + 24 * H)))
    assert len(es_view(r)) == len(things)


def test_a_prune_batch_past_the_kv_query_cap_is_a_truncation_on_the_model():
    """iot_defender_asset_prune_batch set above max_rows_per_query: the KV store answers 50,000 rows of the Cleanup's
    query, and the model records the cut (the shipped 10,000 stays under it)."""
    r = runner({"iot_defender_asset_prune_batch": "60000"})
    stale = {"published": "1", "last_seen": "0", "nt_host": "x", "account_id": "1", "region": "r"}
    kv(r).rows.extend({**stale, "_key": f"k{n}", "thing_name": f"t{n}"} for n in range(50_001))
    cut = run(r, CLEANUP, behaviour.NOW.timestamp(), splrun.EventStore(), strict=False)
    assert [str(t) for t in cut.truncations] == [
        "inputlookup iot_defender_assets: [kvstore] max_rows_per_query=50000 kept 50,000 of 50,001 rows"
    ]
    assert kv(r).rows_written == 50_000


def test_no_search_reads_the_whole_asset_collection():
    """Every read of iot_defender_assets is a lookup on the by_thing accelerated fields or a bounded inputlookup."""
    collection = model.conf("collections.conf")[LOOKUP]
    accelerated = {k: json.loads(v) for k, v in collection.items() if k.startswith("accelerated_fields.")}
    for name in (GEN, CLEANUP):
        text = model.analyzer().expand(saved(name)["search"])
        for command in splkit.split_pipeline(text):
            words = command.split()
            if not words or LOOKUP not in command:
                continue
            if words[0] == "lookup":
                inputs = [w for w in command.split(" OUTPUT ")[0].split()[1:] if "=" not in w][1:]
                assert {f: 1 for f in inputs} in accelerated.values(), command
            elif words[0] == "inputlookup":
                limit = re.search(r"\bmax=(\d+)", command)
                assert limit and int(limit.group(1)) < limits.KV_MAX_ROWS_PER_QUERY, command
                assert "published" in accelerated["accelerated_fields.by_age"] and "last_seen<" in command
        assert saved(name)["realtime_schedule"] == "0" and saved(name)["disabled"] == "1"


# ------------------------------------------------------------------------------------------------ ES wiring


def test_package_inputs_conf_keeps_ucc_stanzas_and_adds_the_asset_source(tmp_path):
    """package/default/inputs.conf replaces the one UCC generates at build: it must carry every stanza and key UCC
    renders from globalConfig, plus the identity_manager stanza the way Splunk's SA add-ons ship it."""
    from splunk_add_on_ucc_framework.generators.conf_files.create_inputs_conf import InputsConf
    from splunk_add_on_ucc_framework.global_config import GlobalConfig

    global_config = GlobalConfig.from_file(str(model.ROOT / "globalConfig.json"))
    global_config.expand()
    generated = InputsConf(global_config, str(model.ROOT / "package"), str(tmp_path)).generate() or []
    ours = model.conf("inputs.conf")
    rendered = [item for item in generated if item["file_name"] == "inputs.conf"]
    assert rendered, "UCC renders inputs.conf from globalConfig's inputs"
    path = tmp_path / "inputs.conf"
    path.write_text(rendered[0]["content"])
    from ksconf.conf.parser import parse_conf

    for stanza, values in parse_conf(str(path)).items():
        if stanza == "default":
            continue
        assert stanza in ours, stanza
        assert dict(values) == {k: v for k, v in ours[stanza].items() if not k.startswith("#")}, stanza
    source = ours["identity_manager://iot_defender_assets"]
    assert source["target"] == "asset" and source["url"] == f"lookup://{LOOKUP}"
    assert source["category"] and source["description"] and source["disabled"] == "1"
    assert LOOKUP in model.conf("transforms.conf")
    extra = set(ours) - {s for s in parse_conf(str(path)) if s != "default"}
    assert extra == {"identity_manager://iot_defender_assets"}


def test_priority_rules_ship_valid_and_protected_group_is_critical():
    from iot_defender import assets

    fields, rows = model.csv_rows("iot_defender_asset_priority.csv")
    assert fields[:2] == ["scope", "priority"]
    rules = assets.PriorityRules.from_rows(rows)
    assert rules.priority(["default"]) == "low"
    assert rules.priority(["default", "thing_group:protected-critical"]) == "critical"


@pytest.mark.parametrize("name", [GEN, CLEANUP])
def test_asset_searches_use_only_modelled_spl(name):
    analysis = model.analyzer().analyze(saved(name)["search"])
    assert not analysis.errors, analysis.errors


# ------------------------------------------------------------------------------------------------ outside ES


def thing_page_asset(r: splrun.Runner, thing: str, account: str = "*", region: str = "*") -> List[Dict[str, Any]]:
    """The Thing dashboard's asset panel (its data source as shipped), tokens quoted as Dashboard Studio's ``|s``
    filter quotes them (double quotes, ``\\`` and ``"`` escaped)."""
    query = model.dashboard_definitions()["iot_defender_thing"]["dataSources"]["ds_asset"]["options"]["query"]

    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    for token, value in (("thing", thing), ("account", account), ("region", region)):
        query = query.replace(f"${token}|s$", quote(value))
    assert "$" not in query, query
    return r.run(query, now=0).rows


def test_thing_page_shows_the_asset_row_or_says_there_is_none():
    """The Thing dashboard reads the thing's own asset row (inputlookup where: the KV store's query, one row a thing)
    through the lookup's filter; without a row (Lookup Gen not enabled yet, a pruned thing) it says so in one row with
    ES's priority for an unknown asset instead of an empty panel."""
    r = runner()
    fleet = behaviour.fleet()
    protected = next(th for th in fleet.things if "protected-critical" in th.groups)
    before = thing_page_asset(r, protected.name)
    assert len(before) == 1 and not before[0].get("nt_host") and before[0]["priority"] == "unknown"
    assert "IoT Defender Assets - Lookup Gen" in before[0]["owner"]
    build_demo(r)
    reset(r)
    (row,) = thing_page_asset(r, protected.name, fleet.account_id, fleet.region)
    assert kv(r).rows_read == 1  # the thing's row, not the collection
    assert (row["nt_host"], row["owner"], row["bunit"], row["priority"], row["is_expected"]) == (
        protected.name,
        protected.attributes["owner"],
        protected.attributes["site"],
        "critical",
        "true",
    )
    assert row["category"] == f"iot|{protected.thing_type}"
    # another account's thing of the same name, a crafted name: the thing's row only, or the empty state
    assert not thing_page_asset(r, protected.name, "999999999999")[0].get("nt_host")
    crafted = thing_page_asset(r, f'{protected.name}" OR thing_name="*')
    assert len(crafted) == 1 and not crafted[0].get("nt_host")
    assert len(thing_page_asset(r, "*")) == len(fleet.things)  # a wildcard lists the matching things...
    many = [{**r.table(LOOKUP).rows[0], "_key": f"k{n}", "thing_name": f"t{n}"} for n in range(150)]
    r.table(LOOKUP).rows.extend(many)
    assert len(thing_page_asset(r, "*")) == 100  # ...and reads at most max=100 of them
    # a pruned row (published=0, what the Lookup Cleanup leaves) is not shown: the lookup's filter applies
    for stored in r.table(LOOKUP).rows:
        if stored.get("thing_name") == protected.name:
            stored["published"] = "0"
    assert not thing_page_asset(r, protected.name)[0].get("nt_host")
