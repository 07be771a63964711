""".conf files: ksconf check clean, and consistent with each other, with UCC's generated files and with the code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.knowledge import model

CONF_FILES = sorted(model.DEFAULT.glob("*.conf"))
KSCONF = Path(sys.executable).parent / "ksconf"


def test_ksconf_check_is_clean_on_every_conf():
    assert len(CONF_FILES) >= 7, [p.name for p in CONF_FILES]
    result = subprocess.run(
        [str(KSCONF), "check", *map(str, CONF_FILES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CONF_FILES)} files were parsed successfully" in result.stdout + result.stderr


# ----------------------------------------------------------------------------------------------- props


def test_every_sourcetype_has_search_time_settings():
    from iot_defender import events

    props = model.conf("props.conf")
    for sourcetype in events.ALL_SOURCETYPES:
        stanza = props[sourcetype]
        assert stanza["KV_MODE"] == "json"
        assert stanza["SHOULD_LINEMERGE"] == "false"
        assert stanza["pulldown_type"] == "1" and stanza["category"] and stanza["description"]
        assert int(stanza["TRUNCATE"]) >= 100000
    assert int(props["aws:iot:defender:audit:task"]["TRUNCATE"]) >= 20000 * 5


def test_automatic_lookups_use_defined_lookups_and_fields():
    knowledge = model.Model()
    definitions = model.lookup_definitions()
    for stanza in knowledge.props.values():
        for auto in stanza.lookups:
            assert auto.name in definitions, auto.name
            columns = set(definitions[auto.name].fields)
            assert {c for c, _ in auto.inputs} <= columns, auto
            assert {c for c, _ in auto.outputs} <= columns, auto


def test_no_automatic_lookup_reads_a_kv_collection_that_is_not_replicated():
    """Automatic lookups (props.conf LOOKUP-) run on the indexers in a distributed deployment; collections.conf.spec,
    replicate (default false): "If false, lookups that depend on this collection are not available" there. Such a
    lookup returns nothing on every indexer cluster (issue 16 item 3): searches add it with lookup local=true."""
    knowledge = model.Model()
    assert not [
        (sourcetype, auto.name)
        for sourcetype, stanza in knowledge.props.items()
        for auto in stanza.lookups
        if auto.name in knowledge.indexer_blind
    ]


def test_eval_expressions_parse_and_use_only_modelled_functions():
    knowledge = model.Model(kv_rows={"iot_thing_inventory": []})
    for stanza in knowledge.props.values():
        for name, _ast, text in stanza.evals:
            assert text.strip(), name
        # evaluating on an empty event exercises every function the expressions call
        knowledge.apply(stanza.name, {}, "")


# ------------------------------------------------------------------------------------------- transforms


def test_csv_lookups_exist_and_kv_lookup_matches_the_collection_and_the_code():
    from iot_defender import inventory

    transforms = model.conf("transforms.conf")
    collections = model.conf("collections.conf")
    for name, values in transforms.items():
        if "filename" in values:
            assert (model.LOOKUPS / values["filename"]).exists(), name
        if values.get("external_type") == "kvstore":
            collection = collections[values["collection"]]
            fields = [f.strip() for f in values["fields_list"].split(",")]
            declared = {k[len("field.") :] for k in collection if k.startswith("field.")}
            assert set(fields) - {"_key"} == declared
            assert any(k.startswith("accelerated_fields.") for k in collection), name
            if name == "iot_thing_inventory":  # what the inventory input writes is exactly what the lookup returns
                assert set(inventory.LOOKUP_FIELDS) == declared


# --------------------------------------------------------------------------------------- eventtypes/tags


def test_eventtypes_and_tags_keep_what_ucc_generates(tmp_path):
    """package/default/eventtypes.conf and tags.conf replace UCC's generated files at build: they must carry
    every stanza UCC renders from globalConfig's alert actions (the adaptive-response result event types)."""
    from ksconf.conf.parser import parse_conf
    from splunk_add_on_ucc_framework.generators.conf_files.create_eventtypes_conf import EventtypesConf
    from splunk_add_on_ucc_framework.generators.conf_files.create_tags_conf import TagsConf
    from splunk_add_on_ucc_framework.global_config import GlobalConfig

    global_config = GlobalConfig.from_file(str(model.ROOT / "globalConfig.json"))
    for generator in (EventtypesConf, TagsConf):
        generated = generator(global_config, str(model.ROOT / "package"), str(tmp_path)).generate()
        assert generated, "globalConfig has alert actions: UCC generates their adaptive-response event types"
        for item in generated:
            path = tmp_path / item["file_name"]
            path.write_text(item["content"])
            theirs = {k: dict(v) for k, v in parse_conf(str(path)).items() if isinstance(k, str)}
            ours = model.conf(item["file_name"])
            assert theirs
            for stanza, values in theirs.items():
                assert values.items() <= ours.get(stanza, {}).items(), (item["file_name"], stanza, values)


def test_tags_reference_eventtypes_and_alerts_are_tagged():
    eventtypes = model.conf("eventtypes.conf")
    tags = model.conf("tags.conf")
    for stanza in tags:
        assert stanza.startswith("eventtype="), stanza
        assert stanza.split("=", 1)[1] in eventtypes, stanza
    alert_types = {s.split("=", 1)[1] for s, v in tags.items() if v.get("alert") == "enabled"}
    assert alert_types == {
        "iot_defender_violation_alarm",
        "iot_defender_active_violation",
        "iot_defender_audit_finding_open",
    }
    assert tags["eventtype=iot_defender_modaction_result"]["modaction_result"] == "enabled"


# ------------------------------------------------------------------------------------------ saved searches


def test_correlation_searches_ship_disabled_and_scheduled():
    searches = model.saved_searches()
    alerts = {n: v for n, v in searches.items() if v.get("alert.track") == "1"}
    reports = {
        n: v
        for n, v in searches.items()
        if n.startswith("IoT Defender - ") and not n.endswith(("Rule", "Baseline", "Bootstrap"))
    }
    assert set(alerts) == {n for n in searches if n.endswith(" - Rule")} and len(alerts) >= 10
    assert len(reports) == 3
    for name, values in alerts.items():
        assert values["disabled"] == "1", name
        assert values["enableSched"] == "1" and values["cron_schedule"], name
        assert values["dispatch.earliest_time"] and values["dispatch.latest_time"], name
        assert values["alert.digest_mode"] == "0" and values["alert.suppress"] == "1", name
        assert values["search"].lstrip().startswith("`iot_defender_index`"), name
        assert len(values["description"]) > 40, name
    for name, values in reports.items():
        assert values.get("enableSched") == "0" or values.get("disabled") == "1", name
        assert "is_scheduled" not in values, "is_scheduled is a REST field, not a savedsearches.conf key"
        assert "`iot_defender_index`" in values["search"], name


def test_index_macro_is_documented_for_users():
    macros = model.conf("macros.conf")
    assert macros["iot_defender_index"]["definition"].startswith("(index=")
    assert "Edit" in macros["iot_defender_index"]["description"]
    text = (model.DEFAULT / "macros.conf").read_text()
    assert "Splunk Cloud" in text


# --------------------------------------------------------------------------------------------------- nav


def test_nav_reaches_every_dashboard_search_and_the_ucc_pages():
    root = ET.parse(model.NAV).getroot()  # noqa: S314 (our own file)
    views = [v.get("name") for v in root.iter("view")]
    saved = [s.get("name") for s in root.iter("saved")]
    ours = {p.stem for p in model.VIEWS.glob("*.xml")}
    assert ours <= set(views), ours - set(views)
    assert {"inputs", "configuration", "dashboard", "search"} <= set(views)  # dashboard: UCC monitoring
    assert set(views) <= ours | {"inputs", "configuration", "dashboard", "search"}
    assert set(saved) == set(model.saved_searches())
    assert sum(1 for v in root.iter("view") if v.get("default") == "true") == 1
    # every dashboard is a top-level item: one click from the app bar
    top = [child.get("name") for child in root if child.tag == "view"]
    assert ours <= set(top)


@pytest.mark.parametrize("path", sorted(model.VIEWS.glob("*.xml")), ids=lambda p: p.name)
def test_views_are_well_formed_xml(path):
    root = ET.parse(path).getroot()  # noqa: S314 (our own file)
    assert root.tag == "dashboard" and root.get("version") == "2"
    assert root.findtext("label")


# ----------------------------------------------------------------------------------------------- authorize


def test_response_capability_is_defined_and_granted_to_admins():
    authorize = model.conf("authorize.conf")
    assert authorize["capability::iot_defender_respond"] == {}
    for role in ("role_admin", "role_ess_admin"):
        assert authorize[role] == {"iot_defender_respond": "enabled"}, role
    # no other capability or role is touched
    assert set(authorize) == {"capability::iot_defender_respond", "role_admin", "role_ess_admin"}


# -------------------------------------------------------------------------------------------- spec keys

# Setting names of Splunk's own .conf.spec files (9.0.1; tests/knowledge/conf_spec_keys.json holds the names only).
SPEC_KEYS = json.loads((Path(__file__).parent / "conf_spec_keys.json").read_text())["keys"]


def _spec_pattern(names):
    parts = [
        re.sub(r"<[^>]+>", ".+", re.escape(n).replace(r"\<", "<").replace(r"\>", ">")) for n in names if n[0] != "<"
    ]
    return re.compile("^(" + "|".join(parts) + ")$")


@pytest.mark.parametrize("conf_name", sorted(SPEC_KEYS))
def test_every_conf_key_is_a_key_of_splunks_spec(conf_name):
    """Every setting of package/default/<file> is a setting of Splunk's <file>.spec (ES's action.correlationsearch.*,
    action.notable.* and action.risk.* are action.<action_name>.<parameter>); tags.conf keys are tag names."""
    pattern = _spec_pattern(SPEC_KEYS[conf_name])
    for stanza, values in model.conf(conf_name).items():
        for key, value in values.items():
            if key.startswith("#"):  # ksconf keeps comments as "#-NNNNNN" entries
                continue
            if conf_name == "tags.conf":
                assert value in ("enabled", "disabled"), (stanza, key)
                continue
            assert pattern.match(key), f"{conf_name} [{stanza}] {key} is not a key of {conf_name}.spec"


def test_the_spec_check_catches_a_key_splunk_does_not_have():
    assert not _spec_pattern(SPEC_KEYS["savedsearches.conf"]).match("is_scheduled")
    assert _spec_pattern(SPEC_KEYS["savedsearches.conf"]).match("action.notable.param.drilldown_searches")
    assert _spec_pattern(SPEC_KEYS["savedsearches.conf"]).match("realtime_schedule")
