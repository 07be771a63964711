"""Dashboard Studio dashboards: generated from dashboards.py, valid against @splunk/dashboard-definition's schema
(node validate_dashboards.js), and wired as a SOC expects (inputs, drilldowns to the thing detail)."""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest

from tests.knowledge import dashboards, model

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules" / "@splunk" / "dashboard-definition"


def _node(views: Path) -> Dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is needed to validate dashboards against @splunk/dashboard-definition"
    assert NODE_MODULES.exists(), "run `make knowledge-tools` (npm ci in tests/knowledge) first"
    result = subprocess.run(
        [node, str(HERE / "validate_dashboards.js"), str(views), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=HERE,
    )
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    report["returncode"] = result.returncode
    return report


@functools.lru_cache(maxsize=1)
def shipped_report() -> Dict[str, Any]:
    return _node(model.VIEWS)


def test_views_are_generated_from_dashboards_py():
    rendered = dashboards.render()
    on_disk = {p.name for p in model.VIEWS.glob("iot_defender_*.xml")}
    assert set(rendered) == on_disk
    for name, text in rendered.items():
        assert (model.VIEWS / name).read_text() == text, f"{name}: run python -m tests.knowledge.dashboards"


def test_every_dashboard_validates_against_the_pinned_schema():
    report = shipped_report()
    pinned = json.loads((HERE / "package.json").read_text())["dependencies"]["@splunk/dashboard-definition"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "pin an exact version"
    lock = json.loads((HERE / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@splunk/dashboard-definition"]["version"] == pinned
    assert report["schemaPackage"] == f"@splunk/dashboard-definition@{pinned}"
    studio = [d for d in report["dashboards"] if d["studio"]]
    assert len(studio) == 7
    invalid = {d["file"]: d["errors"] for d in studio if d["errors"]}
    assert not invalid, json.dumps(invalid, indent=1)
    assert report["returncode"] == 0


def _write(directory: Path, name: str, definition: Dict[str, Any]) -> None:
    text = (
        f'<dashboard version="2" theme="light"><label>{name}</label>'
        f"<definition><![CDATA[{json.dumps(definition)}]]></definition></dashboard>"
    )
    (directory / f"{name}.xml").write_text(text)


def test_the_validator_rejects_what_splunk_would_reject(tmp_path):
    """Known-bad variants of a shipped dashboard must fail, each for its own reason (the validator is no no-op)."""
    base = model.dashboard_definitions()["iot_defender_ports"]
    first_table = next(k for k, v in base["visualizations"].items() if v["type"] == "splunk.table")
    mutations = {
        "bad_viz_type": lambda d: d["visualizations"][first_table].update(type="splunk.nonesuch"),
        "bad_option_type": lambda d: d["visualizations"][first_table]["options"].update(count={"rows": 3}),
        "unknown_viz_option": lambda d: d["visualizations"][first_table]["options"].update(rowCount=3),
        "bad_layout": lambda d: d["layout"].pop("tabs"),
        "unknown_datasource_option": lambda d: d["dataSources"]["ds_risky"]["options"].update(qeury="x"),
        "missing_chain_parent": lambda d: d["dataSources"]["ds_risky_things"]["options"].update(extend="ds_gone"),
        "unset_token": lambda d: d["dataSources"]["ds_risky"]["options"].update(query="search x=$nobody_sets_me$"),
        "unplaced_viz": lambda d: d["visualizations"].update(viz_extra=copy.deepcopy(d["visualizations"][first_table])),
        "drilldown_nowhere": lambda d: d["visualizations"][first_table]["eventHandlers"][0]["options"].update(
            url="/app/TA-aws-iot-defender/no_such_view?form.thing=$row.thing_name.value$"
        ),
    }
    expected = {
        "bad_viz_type": "schema:",
        "bad_option_type": "schema:",
        "unknown_viz_option": "unknown option",
        "bad_layout": "schema:",
        "unknown_datasource_option": "schema:",
        "missing_chain_parent": "does not exist",
        "unset_token": "nothing sets",
        "unplaced_viz": "not placed",
        "drilldown_nowhere": "missing view",
    }
    _write(tmp_path, "iot_defender_thing", model.dashboard_definitions()["iot_defender_thing"])
    for name, mutate in mutations.items():
        definition = copy.deepcopy(base)
        mutate(definition)
        _write(tmp_path, name, definition)
    report = _node(tmp_path)
    results = {d["file"][:-4]: d["errors"] for d in report["dashboards"]}
    assert results.pop("iot_defender_thing") == []
    for name, errors in results.items():
        assert any(expected[name] in e for e in errors), (name, errors)
    assert report["returncode"] == 1


# ------------------------------------------------------------------------------------------------ wiring

SOC_BOARDS = ["iot_defender_violations", "iot_defender_ports", "iot_defender_egress", "iot_defender_response"]


@pytest.mark.parametrize("view", [*SOC_BOARDS, "iot_defender_thing"])
def test_soc_dashboards_filter_by_time_account_region_and_thing(view):
    definition = model.dashboard_definitions()[view]
    tokens = {i["options"]["token"] for i in definition["inputs"].values()}
    assert {"global_time", "account", "region", "thing"} <= tokens
    assert set(definition["layout"]["globalInputs"]) == set(definition["inputs"])


@pytest.mark.parametrize("view", [*SOC_BOARDS, "iot_defender_audit"])
def test_things_drill_down_to_their_detail(view):
    definition = model.dashboard_definitions()[view]
    urls = [
        h["options"]["url"]
        for v in definition["visualizations"].values()
        for h in v.get("eventHandlers", [])
        if h["type"] == "drilldown.customUrl"
    ]
    assert any("/iot_defender_thing?form.thing=$row.thing_name.value|u$" in u for u in urls), view


def test_health_dashboard_reads_the_run_summaries():
    queries = model.dashboard_queries(model.dashboard_definitions()["iot_defender_health"])
    joined = " ".join(queries.values())
    for name in ("events", "throttles", "errors", "lag_seconds", "status", "api_calls"):
        assert name in joined
    assert all("`iot_defender_run_summaries`" in q for q in queries.values())


def test_blog_queries_are_on_the_port_dashboard_and_reports():
    queries = model.dashboard_queries(model.dashboard_definitions()["iot_defender_ports"])
    assert (
        'name="aws:num-listening-tcp-ports"' in queries["ds_tcp_count"] and "by thing_name" in queries["ds_tcp_count"]
    )
    assert 'name="aws:listening-tcp-ports"' in queries["ds_tcp_open"] and "by port" in queries["ds_tcp_open"]
    reports = [v["search"] for v in model.saved_searches().values() if v.get("is_scheduled") == "0"]
    assert any("aws:num-listening-tcp-ports" in r for r in reports)
    assert any('thing_name="$thing_name$"' in r and "by port" in r for r in reports)
