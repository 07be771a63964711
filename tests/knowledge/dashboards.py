"""Source of the add-on's Dashboard Studio dashboards (package/default/data/ui/views/iot_defender_*.xml).

The views are generated from the definitions below so that every dashboard shares the same inputs, filters and
drilldowns; the generated files are committed (Splunk reads them, users may copy and edit them) and a test
checks they are up to date:

    .venv/bin/python -m tests.knowledge.dashboards          # rewrite the views
    .venv/bin/python -m tests.knowledge.dashboards --check  # exit 1 if a view differs from its source

Every data source's SPL is checked by tests/knowledge/test_fields.py against the events the real code produces,
and every definition by validate_dashboards.js against @splunk/dashboard-definition's schema.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from xml.sax.saxutils import escape

APP = "TA-aws-iot-defender"
VIEWS = Path(__file__).resolve().parents[2] / "package" / "default" / "data" / "ui" / "views"
WIDTH = 1440
TIME_FMT = '"%Y-%m-%d %H:%M:%S"'

IDX = "`iot_defender_index`"
SCOPE = 'account_id="$account$" region="$region$"'
THING = 'thing_name="$thing$"'


def metrics(extra: str = "") -> str:
    return f'{IDX} sourcetype="aws:iot:defender:metric" {SCOPE} {THING} {extra}'.strip()


def violations(extra: str = "") -> str:
    return f'{IDX} sourcetype="aws:iot:defender:violation" {SCOPE} {THING} {extra}'.strip()


def active_violations(extra: str = "") -> str:
    return f'{IDX} sourcetype="aws:iot:defender:active_violation" {SCOPE} {THING} {extra}'.strip()


def findings(extra: str = "") -> str:
    return f'{IDX} sourcetype="aws:iot:defender:audit:finding" {SCOPE} {extra}'.strip()


def checks(extra: str = "") -> str:
    return f'{IDX} sourcetype="aws:iot:defender:audit:task" record_type="check" {SCOPE} {extra}'.strip()


def actions(extra: str = "") -> str:
    return f'{IDX} sourcetype="aws:iot:defender:action" {SCOPE} {THING} {extra}'.strip()


def thing_link(field_name: str = "thing_name") -> Dict[str, Any]:
    """Drilldown from a table row to the thing's detail dashboard (same time range)."""
    url = (
        f"/app/{APP}/iot_defender_thing?form.thing=$row.{field_name}.value|u$"
        "&form.global_time.earliest=$global_time.earliest|u$&form.global_time.latest=$global_time.latest|u$"
    )
    return {"type": "drilldown.customUrl", "options": {"url": url, "newTab": False}}


@dataclass
class Block:
    item: str
    width: float  # fraction of the row
    height: int


@dataclass
class Board:
    view: str
    title: str
    description: str
    inputs: Tuple[str, ...] = ("time", "account", "region", "thing")
    data_sources: Dict[str, Any] = field(default_factory=dict)
    visualizations: Dict[str, Any] = field(default_factory=dict)
    input_items: Dict[str, Any] = field(default_factory=dict)
    rows: List[List[Block]] = field(default_factory=list)
    default_earliest: str = "-24h@h"

    # -- data
    def search(self, ds_id: str, name: str, query: str) -> str:
        self.data_sources[ds_id] = {"type": "ds.search", "name": name, "options": {"query": query}}
        return ds_id

    def chain(self, ds_id: str, name: str, parent: str, query: str) -> str:
        self.data_sources[ds_id] = {"type": "ds.chain", "name": name, "options": {"extend": parent, "query": query}}
        return ds_id

    # -- visualizations
    def viz(
        self,
        viz_id: str,
        kind: str,
        title: str,
        ds: Optional[str],
        options: Optional[Dict[str, Any]] = None,
        description: Optional[str] = None,
        drilldown: Optional[Dict[str, Any]] = None,
    ) -> str:
        item: Dict[str, Any] = {"type": kind, "title": title}
        if description:
            item["description"] = description
        if ds:
            item["dataSources"] = {"primary": ds}
        if options:
            item["options"] = options
        if drilldown:
            item["eventHandlers"] = [drilldown]
        self.visualizations[viz_id] = item
        return viz_id

    def single(self, viz_id: str, title: str, ds: str, unit: Optional[str] = None) -> str:
        options: Dict[str, Any] = {"numberPrecision": 0, "shouldUseThousandSeparators": True}
        if unit:
            options["unit"] = unit
        return self.viz(viz_id, "splunk.singlevalue", title, ds, options)

    def table(self, viz_id: str, title: str, ds: str, drill: Optional[str] = None, count: int = 10, **kw: Any) -> str:
        return self.viz(
            viz_id,
            "splunk.table",
            title,
            ds,
            {"count": count},
            drilldown=thing_link(drill) if drill else None,
            **kw,
        )

    def row(self, height: int, *items: Tuple[str, float]) -> None:
        self.rows.append([Block(item, width, height) for item, width in items])

    # -- inputs
    def _inputs(self) -> Dict[str, Any]:
        items: Dict[str, Any] = {}
        if "time" in self.inputs:
            items["input_time"] = {
                "type": "input.timerange",
                "title": "Time range",
                "options": {"token": "global_time", "defaultValue": f"{self.default_earliest},now"},
            }
        for key, label, token, source_field in (
            ("account", "AWS account", "account", "account_id"),
            ("region", "AWS Region", "region", "region"),
        ):
            if key not in self.inputs:
                continue
            ds_id = f"ds_input_{key}"
            self.search(
                ds_id,
                f"{label} choices",
                f'{IDX} (sourcetype="aws:iot:thing" OR sourcetype="aws:iot:defender:audit:task" OR '
                f'sourcetype="aws:iot:defender:violation") | stats count by {source_field} | sort {source_field}',
            )
            items[f"input_{key}"] = self._dropdown(label, token, ds_id, source_field)
        if "addon_account" in self.inputs:
            self.search(
                "ds_input_addon_account",
                "Add-on account choices",
                "`iot_defender_run_summaries` | stats count by account | sort account",
            )
            items["input_addon_account"] = self._dropdown(
                "Add-on account", "addon_account", "ds_input_addon_account", "account"
            )
        if "input_name" in self.inputs:
            items["input_input_name"] = {
                "type": "input.dropdown",
                "title": "Input",
                "options": {
                    "token": "input_name",
                    "defaultValue": "*",
                    "items": [
                        {"label": "All", "value": "*"},
                        {"label": "Violations", "value": "iot_defender_violations"},
                        {"label": "Audit", "value": "iot_defender_audit"},
                        {"label": "Thing inventory", "value": "iot_defender_inventory"},
                    ],
                },
            }
        if "thing" in self.inputs:
            items["input_thing"] = {
                "type": "input.text",
                "title": "Thing name (wildcards allowed)",
                "options": {"token": "thing", "defaultValue": "*"},
            }
        return items

    @staticmethod
    def _dropdown(label: str, token: str, ds_id: str, source_field: str) -> Dict[str, Any]:
        return {
            "type": "input.dropdown",
            "title": label,
            "options": {
                "token": token,
                "defaultValue": "*",
                "items": ">frame(label, value) | prepend(formattedStatics) | objects()",
            },
            "dataSources": {"primary": ds_id},
            "context": {
                "formattedConfig": {"number": {"prefix": ""}},
                "formattedStatics": ">statics | formatByType(formattedConfig)",
                "statics": [["All"], ["*"]],
                # no number formatting: 12-digit account ids must stay as they are
                "label": f'>primary | seriesByName("{source_field}") | renameSeries("label")',
                "value": f'>primary | seriesByName("{source_field}") | renameSeries("value")',
            },
        }

    # -- output
    def definition(self) -> Dict[str, Any]:
        inputs = self._inputs()
        structure = []
        y = 0
        for row in self.rows:
            x = 0
            total = sum(b.width for b in row)
            for n, block in enumerate(row):
                w = WIDTH - x if n == len(row) - 1 else round(WIDTH * block.width / total)
                structure.append(
                    {"item": block.item, "type": "block", "position": {"x": x, "y": y, "w": w, "h": block.height}}
                )
                x += w
            y += row[0].height
        return {
            "title": self.title,
            "description": self.description,
            "inputs": inputs,
            "defaults": {
                "dataSources": {
                    "ds.search": {
                        "options": {
                            "queryParameters": {"earliest": "$global_time.earliest$", "latest": "$global_time.latest$"}
                        }
                    }
                }
            },
            "visualizations": self.visualizations,
            "dataSources": self.data_sources,
            "layout": {
                "globalInputs": list(inputs),
                "tabs": {"items": [{"layoutId": "layout_main", "label": self.title}]},
                "layoutDefinitions": {
                    "layout_main": {"type": "grid", "options": {"width": WIDTH, "height": y}, "structure": structure}
                },
            },
        }

    def xml(self) -> str:
        definition = json.dumps(self.definition(), indent=4)
        if "]]>" in definition:
            raise ValueError("a definition cannot contain ]]>")
        return (
            f'<dashboard version="2" theme="light">\n'
            f"    <label>{escape(self.title)}</label>\n"
            f"    <description>{escape(self.description)}</description>\n"
            f"    <definition><![CDATA[\n{definition}\n]]></definition>\n"
            '    <meta type="hiddenElements"><![CDATA[\n'
            '{\n    "hideEdit": false,\n    "hideOpenInSearch": false,\n    "hideExport": false\n}\n'
            "]]></meta>\n"
            "</dashboard>\n"
        )


# =================================================================================================== boards


def ports_board() -> Board:
    b = Board(
        "iot_defender_ports",
        "IoT Defender - Port analysis",
        "Listening TCP/UDP ports reported by AWS IoT Device Defender (device-side metrics): risky ports, ports that "
        "appeared, and the port history of one thing.",
    )
    listening = '(name="aws:listening-tcp-ports" OR name="aws:listening-udp-ports")'
    b.search(
        "ds_risky",
        "Risky ports open",
        metrics(listening) + " | stats max(_time) as last_seen by account_id region thing_name transport port"
        " | lookup iot_defender_risky_ports port protocol AS transport OUTPUT service risk why"
        " | where isnotnull(risk)"
        f" | sort 0 - last_seen | eval last_seen=strftime(last_seen, {TIME_FMT})"
        " | table thing_name port transport service risk last_seen why account_id region",
    )
    b.chain("ds_risky_things", "Things with a risky port", "ds_risky", "| stats dc(thing_name) as things")
    b.search(
        "ds_ports_seen",
        "Ports seen",
        metrics(listening) + " | stats dc(thing_name) as things values(thing_name) as thing_names"
        " max(_time) as last_seen by transport port"
        " | lookup iot_defender_risky_ports port protocol AS transport OUTPUT service risk"
        f" | sort 0 - things | eval last_seen=strftime(last_seen, {TIME_FMT})"
        " | table port transport service risk things thing_names last_seen",
    )
    b.chain("ds_ports_distinct", "Distinct listening ports", "ds_ports_seen", "| stats count as ports")
    b.search(
        "ds_new_ports",
        "Ports that appeared",
        metrics(listening) + " | stats min(_time) as first_seen by account_id region thing_name transport port"
        " | eventstats min(first_seen) as thing_first_seen by account_id region thing_name"
        " | where first_seen > thing_first_seen + 3600"
        f" | sort 0 - first_seen | eval first_seen=strftime(first_seen, {TIME_FMT})"
        " | table thing_name port transport first_seen account_id region",
    )
    b.chain("ds_new_ports_things", "Things with a new port", "ds_new_ports", "| stats dc(thing_name) as things")
    # The two queries of the source blog post, on the add-on's field names.
    b.search(
        "ds_tcp_count",
        "Listening TCP port count over time by thing",
        metrics('name="aws:num-listening-tcp-ports"') + " | timechart span=5m limit=20 max(port_count) by thing_name",
    )
    b.search(
        "ds_tcp_open",
        "Open TCP ports over time",
        metrics('name="aws:listening-tcp-ports"') + " | timechart span=5m count by port",
    )
    b.single("viz_risky_things", "Things with a risky port open", "ds_risky_things")
    b.single("viz_new_ports_things", "Things with a port that appeared", "ds_new_ports_things")
    b.single("viz_ports_distinct", "Distinct listening ports", "ds_ports_distinct")
    b.table(
        "viz_risky",
        "Risky ports open (lookups/iot_defender_risky_ports.csv)",
        "ds_risky",
        drill="thing_name",
        description="Click a row for the thing's detail.",
    )
    b.viz(
        "viz_tcp_count",
        "splunk.line",
        "Listening TCP port count over time by thing",
        "ds_tcp_count",
        {"legendDisplay": "right", "yAxisTitleText": "TCP ports"},
    )
    b.viz(
        "viz_tcp_open",
        "splunk.column",
        "Open TCP ports over time (thing: $thing$)",
        "ds_tcp_open",
        {"stackMode": "stacked", "legendDisplay": "right", "yAxisTitleText": "reports"},
        description="Set the thing input to one thing to see its ports; a new port shows as a new series.",
    )
    b.table("viz_new_ports", "Ports that appeared after a thing's first report", "ds_new_ports", drill="thing_name")
    b.table("viz_ports_seen", "Listening ports across the fleet", "ds_ports_seen")
    b.row(120, ("viz_risky_things", 1), ("viz_new_ports_things", 1), ("viz_ports_distinct", 1))
    b.row(320, ("viz_risky", 1))
    b.row(320, ("viz_tcp_count", 1), ("viz_tcp_open", 1))
    b.row(320, ("viz_new_ports", 1), ("viz_ports_seen", 1))
    return b


def egress_board() -> Board:
    b = Board(
        "iot_defender_egress",
        "IoT Defender - Egress analysis",
        "Bytes and packets sent by things, their destinations and cloud-side signals (authorization failures, "
        "source IPs) from AWS IoT Device Defender metrics.",
    )
    b.search(
        "ds_bytes",
        "Bytes out over time",
        metrics('name="aws:all-bytes-out"') + " | timechart span=5m limit=10 sum(bytes_out) by thing_name",
    )
    b.search(
        "ds_packets",
        "Packets out over time",
        metrics('name="aws:all-packets-out"') + " | timechart span=5m limit=10 sum(packets_out) by thing_name",
    )
    b.search(
        "ds_talkers",
        "Top talkers",
        metrics('(name="aws:all-bytes-out" OR name="aws:all-packets-out")')
        + " | stats sum(bytes_out) as bytes_out sum(packets_out) as packets_out avg(bytes_out) as mean_bytes"
        " max(bytes_out) as peak_bytes by account_id region thing_name"
        " | eval peak_to_mean=round(peak_bytes / mean_bytes, 1), mean_bytes=round(mean_bytes, 0)"
        " | lookup iot_thing_inventory account_id region thing_name OUTPUT thing_type site"
        " | sort 0 - bytes_out | head 25"
        " | table thing_name thing_type site bytes_out packets_out mean_bytes peak_bytes peak_to_mean account_id region",
    )
    b.chain("ds_total_bytes", "Total bytes out", "ds_talkers", "| stats sum(bytes_out) as bytes_out")
    b.search(
        "ds_destinations",
        "Destinations",
        metrics('name="aws:destination-ip-addresses"')
        + " | stats dc(thing_name) as things values(thing_name) as thing_names min(_time) as first_seen"
        " max(_time) as last_seen by dest_cidr"
        f" | sort 0 things | eval first_seen=strftime(first_seen, {TIME_FMT}), last_seen=strftime(last_seen, {TIME_FMT})"
        " | table dest_cidr things thing_names first_seen last_seen",
    )
    b.search(
        "ds_new_destinations",
        "Destinations that appeared",
        metrics('name="aws:destination-ip-addresses"')
        + " | stats min(_time) as first_seen by account_id region thing_name dest_cidr"
        " | eventstats min(first_seen) as thing_first_seen by account_id region thing_name"
        " | where first_seen > thing_first_seen + 3600"
        f" | sort 0 - first_seen | eval first_seen=strftime(first_seen, {TIME_FMT})"
        " | table thing_name dest_cidr first_seen account_id region",
    )
    b.chain(
        "ds_new_destination_things",
        "Things with a new destination",
        "ds_new_destinations",
        "| stats dc(thing_name) as things",
    )
    b.search(
        "ds_auth_failures",
        "Authorization failures over time",
        metrics('name="aws:num-authorization-failures"')
        + " | timechart span=5m limit=10 sum(authorization_failures) by thing_name",
    )
    b.search(
        "ds_source_ips",
        "Things connecting from several source IPs",
        metrics('name="aws:source-ip-address"')
        + " | stats dc(src_ip) as source_ips values(src_ip) as src_ips by account_id region thing_name"
        " | where source_ips > 1 | sort 0 - source_ips | table thing_name source_ips src_ips account_id region",
    )
    b.single("viz_total_bytes", "Bytes out (top 25 things)", "ds_total_bytes", unit="B")
    b.single("viz_new_destination_things", "Things with a new destination", "ds_new_destination_things")
    b.viz("viz_bytes", "splunk.line", "Bytes out by thing", "ds_bytes", {"legendDisplay": "right"})
    b.viz("viz_packets", "splunk.line", "Packets out by thing", "ds_packets", {"legendDisplay": "right"})
    b.table(
        "viz_talkers",
        "Top talkers (peak_to_mean: burstiness)",
        "ds_talkers",
        drill="thing_name",
        description="Click a row for the thing's detail.",
    )
    b.table(
        "viz_new_destinations",
        "Destinations that appeared after a thing's first hour",
        "ds_new_destinations",
        drill="thing_name",
    )
    b.table("viz_destinations", "Destinations (rarest first)", "ds_destinations")
    b.viz(
        "viz_auth_failures",
        "splunk.column",
        "Authorization failures (cloud-side)",
        "ds_auth_failures",
        {"stackMode": "stacked"},
    )
    b.table("viz_source_ips", "Things connecting from several source IPs", "ds_source_ips", drill="thing_name")
    b.row(120, ("viz_total_bytes", 1), ("viz_new_destination_things", 1))
    b.row(300, ("viz_bytes", 1), ("viz_packets", 1))
    b.row(340, ("viz_talkers", 1))
    b.row(320, ("viz_new_destinations", 1), ("viz_destinations", 1))
    b.row(300, ("viz_auth_failures", 1), ("viz_source_ips", 1))
    return b


def audit_board() -> Board:
    b = Board(
        "iot_defender_audit",
        "IoT Defender - Audit posture",
        "AWS IoT Device Defender audits: the latest result of every check, open findings with their remediation, "
        "and coverage of the documented audit checks.",
        inputs=("time", "account", "region"),
        default_earliest="-7d@d",
    )
    b.search(
        "ds_latest_checks",
        "Latest result per check",
        checks('NOT checkRunStatus="IN_PROGRESS" NOT checkRunStatus="WAITING_FOR_DATA_COLLECTION"')
        + " | stats latest(_time) as last_run latest(checkRunStatus) as checkRunStatus"
        " latest(nonCompliantResourcesCount) as non_compliant latest(totalResourcesCount) as resources"
        " latest(errorCode) as errorCode latest(taskId) as taskId by account_id region checkName"
        " | lookup iot_defender_audit_checks checkName OUTPUT check_title severity"
        f" | eval last_run=strftime(last_run, {TIME_FMT})"
        " | table checkName check_title severity checkRunStatus non_compliant resources errorCode last_run taskId"
        " account_id region",
    )
    b.chain(
        "ds_noncompliant_checks",
        "Non-compliant checks",
        "ds_latest_checks",
        '| where checkRunStatus="COMPLETED_NON_COMPLIANT" | stats count as checks',
    )
    b.chain(
        "ds_failed_checks",
        "Checks that failed to run",
        "ds_latest_checks",
        '| where checkRunStatus="FAILED" OR checkRunStatus="CANCELED" | stats count as checks',
    )
    b.search(
        "ds_findings",
        "Open findings",
        findings("isSuppressed=false")
        + " | stats latest(_time) as last_seen latest(description) as reason latest(reason_code) as reason_code"
        " values(thing_name) as thing_name by account_id region checkName severity resource_type dest"
        " | lookup iot_defender_audit_checks checkName OUTPUT check_title remediation"
        f" | sort 0 severity checkName | eval last_seen=strftime(last_seen, {TIME_FMT})"
        " | table severity checkName check_title resource_type dest thing_name reason reason_code last_seen"
        " remediation account_id region",
    )
    b.chain("ds_critical", "Critical findings", "ds_findings", '| where severity="critical" | stats count as findings')
    b.chain("ds_high", "High findings", "ds_findings", '| where severity="high" | stats count as findings')
    b.search(
        "ds_findings_over_time",
        "Findings over time by severity",
        findings() + " | timechart span=1d count by severity",
    )
    b.search(
        "ds_coverage",
        "Audit check coverage",
        "| inputlookup iot_defender_audit_checks | search NOT api_name_note=*"
        " | join type=left checkName [search "
        + checks()
        + " | stats latest(_time) as last_run latest(checkRunStatus) as last_status by checkName]"
        ' | eval last_run=if(isnull(last_run), "not run in this time range", strftime(last_run, ' + TIME_FMT + "))"
        " | table checkName check_title severity category last_status last_run doc_url",
    )
    b.single("viz_critical", "Open critical findings", "ds_critical")
    b.single("viz_high", "Open high findings", "ds_high")
    b.single("viz_noncompliant_checks", "Non-compliant checks", "ds_noncompliant_checks")
    b.single("viz_failed_checks", "Checks that failed to run", "ds_failed_checks")
    b.table("viz_latest_checks", "Latest result per check", "ds_latest_checks", count=20)
    b.table(
        "viz_findings",
        "Open (unsuppressed) findings with remediation",
        "ds_findings",
        drill="thing_name",
        description="thing_name is the MQTT client id of client-id findings; click a row for that thing.",
    )
    b.viz(
        "viz_findings_over_time",
        "splunk.column",
        "Findings per day by severity",
        "ds_findings_over_time",
        {"stackMode": "stacked"},
    )
    b.table(
        "viz_coverage",
        "Documented audit checks and their last run (lookups/iot_defender_audit_checks.csv)",
        "ds_coverage",
        count=20,
    )
    b.row(120, ("viz_critical", 1), ("viz_high", 1), ("viz_noncompliant_checks", 1), ("viz_failed_checks", 1))
    b.row(360, ("viz_latest_checks", 1))
    b.row(360, ("viz_findings", 1))
    b.row(300, ("viz_findings_over_time", 1), ("viz_coverage", 1))
    return b


def violations_board() -> Board:
    b = Board(
        "iot_defender_violations",
        "IoT Defender - Violations",
        "AWS IoT Device Defender Detect: violations in alarm now (active-violation snapshots), alarms over time, "
        "the things and behaviors behind them, and triage state.",
    )
    b.search(
        "ds_active",
        "Active violations (latest snapshot)",
        active_violations()
        + " | eventstats max(_time) as latest_snapshot by account_id region | where _time = latest_snapshot"
        ' | eval alarm_start=strptime(replace(violationStartTime, "Z$", "+0000"), "%Y-%m-%dT%H:%M:%S.%3N%z"),'
        " alarm_age_hours=round((now() - alarm_start) / 3600, 1)"
        " | sort 0 - alarm_age_hours"
        " | table thing_name behavior_name metric_name severity alarm_age_hours verification_state security_profile"
        " thing_type site owner violationId account_id region",
    )
    b.chain("ds_active_count", "Active violations", "ds_active", "| stats count as violations")
    b.chain("ds_active_things", "Things in alarm", "ds_active", "| stats dc(thing_name) as things")
    b.chain(
        "ds_untriaged",
        "Without verification state",
        "ds_active",
        '| where verification_state="UNKNOWN" | stats count as violations',
    )
    b.search(
        "ds_alarms",
        "Alarms over time",
        violations('violationEventType="in-alarm"') + " | timechart count by behavior_name",
    )
    b.search(
        "ds_alarm_count",
        "Alarms raised",
        violations('violationEventType="in-alarm"') + " | stats count as alarms",
    )
    b.search(
        "ds_severity",
        "Alarms by severity",
        violations('violationEventType="in-alarm"') + " | stats count by severity",
    )
    b.search(
        "ds_top_things",
        "Things most often in alarm",
        violations('violationEventType="in-alarm"')
        + " | stats count as alarms dc(behavior_name) as behaviors values(behavior_name) as behavior_names"
        " by account_id region thing_name | sort 0 - alarms | head 15"
        " | table thing_name alarms behaviors behavior_names account_id region",
    )
    b.search(
        "ds_events",
        "Violation events",
        violations() + " | sort 0 - _time | head 500"
        f" | eval time=strftime(_time, {TIME_FMT})"
        " | table time thing_name violationEventType behavior_name metric_name severity metric_value port dest_cidr"
        " security_profile violationId",
    )
    b.single("viz_active_count", "Violations in alarm now", "ds_active_count")
    b.single("viz_active_things", "Things in alarm now", "ds_active_things")
    b.single("viz_untriaged", "In alarm without verification state", "ds_untriaged")
    b.single("viz_alarm_count", "Alarms raised in the time range", "ds_alarm_count")
    b.table(
        "viz_active",
        "Violations in alarm now (latest active-violations snapshot)",
        "ds_active",
        drill="thing_name",
        description="Click a row for the thing's detail; triage with the iot_set_verification_state alert action.",
    )
    b.viz("viz_alarms", "splunk.column", "Alarms over time by behavior", "ds_alarms", {"stackMode": "stacked"})
    b.viz("viz_severity", "splunk.pie", "Alarms by severity", "ds_severity")
    b.table("viz_top_things", "Things most often in alarm", "ds_top_things", drill="thing_name")
    b.table("viz_events", "Violation events (latest 500)", "ds_events", drill="thing_name", count=15)
    b.row(120, ("viz_active_count", 1), ("viz_active_things", 1), ("viz_untriaged", 1), ("viz_alarm_count", 1))
    b.row(340, ("viz_active", 1))
    b.row(300, ("viz_alarms", 2), ("viz_severity", 1))
    b.row(340, ("viz_top_things", 1), ("viz_events", 2))
    return b


def response_board() -> Board:
    b = Board(
        "iot_defender_response",
        "IoT Defender - Response actions",
        "Results of the add-on's alert actions (quarantine, release, incident, verification state): what ran, on "
        "which thing, with which outcome, and which things are in quarantine now.",
        default_earliest="-7d@d",
    )
    b.search(
        "ds_results",
        "Action results",
        actions() + " | sort 0 - _time | head 500"
        f" | eval time=strftime(_time, {TIME_FMT})"
        " | table time action outcome action_status thing_name message error_code search_name dry_run orig_sid"
        " account_id region",
    )
    b.chain("ds_action_count", "Actions run", "ds_results", "| stats count as actions")
    b.chain(
        "ds_failures",
        "Failed actions",
        "ds_results",
        '| where action_status="failure" | stats count as actions',
    )
    b.search("ds_over_time", "Actions over time", actions() + " | timechart count by action")
    b.search("ds_outcomes", "Outcomes", actions() + " | stats count by outcome")
    b.search(
        "ds_quarantined",
        "Things in quarantine",
        actions(
            '(action="iot_quarantine_thing" OR action="iot_release_thing") (outcome="done" OR outcome="already-in-state")'
        )
        + " | stats latest(action) as last_action latest(_time) as since latest(search_name) as search_name"
        " by account_id region thing_name"
        ' | where last_action="iot_quarantine_thing"'
        f" | eval since=strftime(since, {TIME_FMT})"
        " | table thing_name since search_name account_id region",
    )
    b.chain("ds_quarantined_count", "Things in quarantine", "ds_quarantined", "| stats count as things")
    b.search(
        "ds_by_search",
        "Actions by correlation search",
        actions() + " | stats count as actions dc(thing_name) as things by search_name action"
        " | sort 0 - actions | table search_name action actions things",
    )
    b.single("viz_action_count", "Actions run", "ds_action_count")
    b.single("viz_failures", "Failed actions", "ds_failures")
    b.single("viz_quarantined_count", "Things in quarantine", "ds_quarantined_count")
    b.viz("viz_over_time", "splunk.column", "Actions over time", "ds_over_time", {"stackMode": "stacked"})
    b.viz("viz_outcomes", "splunk.pie", "Outcomes", "ds_outcomes")
    b.table(
        "viz_quarantined", "Things in quarantine (last quarantine not released)", "ds_quarantined", drill="thing_name"
    )
    b.table("viz_by_search", "Actions by correlation search", "ds_by_search")
    b.table("viz_results", "Action results (latest 500)", "ds_results", drill="thing_name", count=15)
    b.row(120, ("viz_action_count", 1), ("viz_failures", 1), ("viz_quarantined_count", 1))
    b.row(300, ("viz_over_time", 2), ("viz_outcomes", 1))
    b.row(300, ("viz_quarantined", 1), ("viz_by_search", 1))
    b.row(360, ("viz_results", 1))
    return b


def health_board() -> Board:
    b = Board(
        "iot_defender_health",
        "IoT Defender - Add-on health",
        "Runs of the add-on's inputs from their run summaries in _internal: events, API calls, throttling, "
        "errors and lag (how far behind AWS the data is).",
        inputs=("time", "addon_account", "input_name"),
    )
    runs = '`iot_defender_run_summaries` account="$addon_account$" input="$input_name$"'
    b.search(
        "ds_totals",
        "Totals",
        runs + " | stats count as runs sum(events) as events sum(throttles) as throttles sum(errors) as errors"
        " max(lag_seconds) as max_lag_seconds",
    )
    b.chain("ds_runs", "Runs", "ds_totals", "| table runs")
    b.chain("ds_events_total", "Events", "ds_totals", "| table events")
    b.chain("ds_throttles", "Throttled calls", "ds_totals", "| table throttles")
    b.chain("ds_max_lag", "Max lag", "ds_totals", "| table max_lag_seconds")
    b.search("ds_failed_count", "Failed runs", runs + ' status!="ok" | stats count as runs')
    b.search("ds_events", "Events per input", runs + " | timechart sum(events) by input")
    b.search("ds_lag", "Lag per input", runs + " | timechart max(lag_seconds) by input")
    b.search(
        "ds_problems",
        "Throttles and errors",
        runs + " | timechart sum(throttles) as throttles sum(errors) as errors sum(malformed) as malformed",
    )
    b.search(
        "ds_latest",
        "Latest run per input",
        runs + " | stats latest(_time) as last_run latest(status) as status latest(events) as events"
        " latest(api_calls) as api_calls latest(throttles) as throttles latest(errors) as errors"
        " latest(lag_seconds) as lag_seconds latest(duration_seconds) as duration_seconds count as runs"
        " sum(events) as total_events by input stanza account region"
        f" | eval last_run=strftime(last_run, {TIME_FMT})"
        " | table input stanza account region last_run status runs total_events events api_calls throttles errors"
        " lag_seconds duration_seconds",
    )
    b.search(
        "ds_failed",
        "Failed runs",
        runs + ' status!="ok" | sort 0 - _time | head 100'
        f" | eval time=strftime(_time, {TIME_FMT})"
        " | table time input stanza account region status error_code errors throttles malformed",
    )
    b.single("viz_runs", "Input runs", "ds_runs")
    b.single("viz_events_total", "Events written", "ds_events_total")
    b.single("viz_failed_count", "Failed runs", "ds_failed_count")
    b.single("viz_throttles", "Throttled AWS calls", "ds_throttles")
    b.single("viz_max_lag", "Max lag", "ds_max_lag", unit="s")
    b.viz("viz_events", "splunk.column", "Events per input", "ds_events", {"stackMode": "stacked"})
    b.viz("viz_lag", "splunk.line", "Lag per input (seconds behind AWS)", "ds_lag")
    b.viz("viz_problems", "splunk.column", "Throttled calls, errors and malformed records", "ds_problems")
    b.table("viz_latest", "Latest run per input, stanza, account and Region", "ds_latest")
    b.table(
        "viz_failed",
        "Failed runs (details: index=_internal source=*ta-aws-iot-defender_*.log log_level=ERROR)",
        "ds_failed",
    )
    b.row(
        120,
        ("viz_runs", 1),
        ("viz_events_total", 1),
        ("viz_failed_count", 1),
        ("viz_throttles", 1),
        ("viz_max_lag", 1),
    )
    b.row(300, ("viz_events", 1), ("viz_lag", 1))
    b.row(300, ("viz_problems", 1), ("viz_latest", 2))
    b.row(300, ("viz_failed", 1))
    return b


def thing_board() -> Board:
    b = Board(
        "iot_defender_thing",
        "IoT Defender - Thing detail",
        "Everything about one thing: inventory, listening ports over time, egress and destinations, violations, "
        "audit findings and response actions. Other dashboards open it from a thing's row.",
        default_earliest="-24h@h",
    )
    b.viz(
        "viz_header",
        "splunk.markdown",
        "Thing",
        None,
        {
            "markdown": "## Thing: $thing$\nSet the thing input (wildcards allowed) or open this page from another "
            "dashboard's row."
        },
    )
    b.search(
        "ds_inventory",
        "Inventory",
        '| inputlookup iot_thing_inventory | search thing_name="$thing$" account_id="$account$" region="$region$"'
        " | table thing_name thing_type thing_groups owner site active_certificates certificate_statuses"
        " certificate_ids account_id region updated_at",
    )
    b.search(
        "ds_tcp_open",
        "Open TCP ports over time",
        metrics('name="aws:listening-tcp-ports"') + " | timechart span=5m count by port",
    )
    b.search(
        "ds_udp_open",
        "Open UDP ports over time",
        metrics('name="aws:listening-udp-ports"') + " | timechart span=5m count by port",
    )
    b.search(
        "ds_egress",
        "Egress",
        metrics('(name="aws:all-bytes-out" OR name="aws:all-packets-out")')
        + " | timechart span=5m sum(bytes_out) as bytes_out sum(packets_out) as packets_out",
    )
    b.search(
        "ds_destinations",
        "Destinations",
        metrics('name="aws:destination-ip-addresses"')
        + " | stats min(_time) as first_seen max(_time) as last_seen count as reports by dest_cidr"
        f" | sort 0 - first_seen | eval first_seen=strftime(first_seen, {TIME_FMT}),"
        f" last_seen=strftime(last_seen, {TIME_FMT}) | table dest_cidr first_seen last_seen reports",
    )
    b.search(
        "ds_violations",
        "Violations",
        violations() + f" | sort 0 - _time | head 200 | eval time=strftime(_time, {TIME_FMT})"
        " | table time violationEventType behavior_name metric_name severity metric_value port dest_cidr violationId",
    )
    b.search(
        "ds_findings",
        "Audit findings",
        findings(THING) + f" | sort 0 - _time | head 200 | eval time=strftime(_time, {TIME_FMT})"
        " | table time checkName severity resource_type dest description isSuppressed",
    )
    b.search(
        "ds_actions",
        "Response actions",
        actions() + f" | sort 0 - _time | head 200 | eval time=strftime(_time, {TIME_FMT})"
        " | table time action outcome message search_name dry_run",
    )
    b.table("viz_inventory", "Inventory (iot_thing_inventory)", "ds_inventory", count=5)
    b.viz("viz_tcp_open", "splunk.column", "Open TCP ports over time", "ds_tcp_open", {"stackMode": "stacked"})
    b.viz("viz_udp_open", "splunk.column", "Open UDP ports over time", "ds_udp_open", {"stackMode": "stacked"})
    b.viz("viz_egress", "splunk.line", "Bytes and packets out", "ds_egress", {"y2Fields": ["packets_out"]})
    b.table("viz_destinations", "Destinations", "ds_destinations")
    b.table("viz_violations", "Violations", "ds_violations")
    b.table("viz_findings", "Audit findings naming this thing (client id)", "ds_findings")
    b.table("viz_actions", "Response actions", "ds_actions")
    b.row(90, ("viz_header", 1))
    b.row(160, ("viz_inventory", 1))
    b.row(280, ("viz_tcp_open", 1), ("viz_udp_open", 1))
    b.row(280, ("viz_egress", 1), ("viz_destinations", 1))
    b.row(300, ("viz_violations", 1))
    b.row(260, ("viz_findings", 1), ("viz_actions", 1))
    return b


BOARDS = (
    violations_board,
    ports_board,
    egress_board,
    audit_board,
    response_board,
    health_board,
    thing_board,
)


def render() -> Dict[str, str]:
    return {f"{board.view}.xml": board.xml() for board in (make() for make in BOARDS)}


def main(argv: List[str]) -> int:
    rendered = render()
    if "--check" in argv:
        stale = [
            name for name, text in rendered.items() if not (VIEWS / name).exists() or (VIEWS / name).read_text() != text
        ]
        for name in stale:
            print(f"{name} differs from tests/knowledge/dashboards.py: run python -m tests.knowledge.dashboards")
        return 1 if stale else 0
    VIEWS.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (VIEWS / name).write_text(text)
        print(f"wrote {VIEWS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
