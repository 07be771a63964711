"""Writes globalConfig.json: the UCC definition of accounts, settings, inputs and alert actions.

Kept as code so the shared entities (account picker, region, dry run, row limits) are defined once and every
input/alert action gets the same fields with the same validation. Run: python scripts/make_global_config.py
(``--check``: exit 1 when the committed file differs from what this script writes).

globalConfig.json carries no banner naming this script: UCC's schema forbids unknown keys at every level
(``additionalProperties: false``) and JSON has no comments. This docstring, the README's development section and
tests/unit/test_generated_files.py (which fails when the committed file differs from ``render()``) say instead
where it comes from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from global_config_alerts import alerts, single_select
from global_config_response import response_tab

ROOT = Path(__file__).resolve().parent.parent
VERSION = (ROOT / "VERSION").read_text().strip()

REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$"
REGIONS_PATTERN = r"^\s*([a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d)(\s*,\s*[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d)*\s*$"
NAME_VALIDATORS = [
    {
        "type": "regex",
        "errorMsg": "Name must begin with a letter and contain only letters, digits and underscores.",
        "pattern": r"^[a-zA-Z]\w*$",
    },
    {
        "type": "string",
        "errorMsg": "Name must be 1 to 100 characters long.",
        "minLength": 1,
        "maxLength": 100,
    },
]


def account_tab() -> dict:
    keys_only = [{"fieldId": f, "display": True} for f in ("aws_access_key_id", "aws_secret_access_key")]
    hide_keys = [{"fieldId": f, "display": False} for f in ("aws_access_key_id", "aws_secret_access_key")]
    return {
        "name": "account",
        "title": "AWS accounts",
        "restHandlerModule": "ta_aws_iot_defender_account_handler",
        "restHandlerClass": "AccountHandler",
        "table": {
            "actions": ["edit", "delete", "clone"],
            "header": [
                {"label": "Name", "field": "name"},
                {"label": "Credentials", "field": "credential_source"},
                {"label": "Role", "field": "role_arn"},
                {"label": "Partition", "field": "partition"},
                {"label": "Default region", "field": "default_region"},
            ],
        },
        "entity": [
            {
                "type": "text",
                "label": "Name",
                "field": "name",
                "required": True,
                "help": "A unique name for this AWS account configuration.",
                "validators": NAME_VALIDATORS,
            },
            single_select(
                "Credentials",
                "credential_source",
                [
                    ("access_key", "Access key ID and secret access key"),
                    ("default_chain", "Default credential chain (instance profile)"),
                ],
                default="access_key",
                required=True,
                help="Access keys stored encrypted in Splunk, or the default credential chain of the Splunk "
                "host (EC2 instance profile, environment) for a heavy forwarder running in AWS.",
                modifyFieldsOnValue=[
                    {"fieldValue": "access_key", "fieldsToModify": keys_only},
                    {"fieldValue": "default_chain", "fieldsToModify": hide_keys},
                ],
            ),
            {
                "type": "text",
                "label": "Access key ID",
                "field": "aws_access_key_id",
                "required": False,
                "help": "Required with access keys. Prefer a dedicated IAM user whose only right is to assume "
                "the add-on's role (see README).",
                "validators": [
                    {
                        "type": "regex",
                        "errorMsg": "An access key ID is 16 to 128 letters and digits.",
                        "pattern": r"^[A-Z0-9]{16,128}$",
                    }
                ],
            },
            {
                "type": "text",
                "label": "Secret access key",
                "field": "aws_secret_access_key",
                "required": False,
                "encrypted": True,
                "help": "Stored in Splunk's encrypted credential store; never written to a .conf file or a log.",
                "validators": [
                    {
                        "type": "string",
                        "errorMsg": "The secret key is 1 to 256 characters.",
                        "minLength": 1,
                        "maxLength": 256,
                    }
                ],
            },
            {
                "type": "text",
                "label": "IAM role ARN to assume",
                "field": "role_arn",
                "required": False,
                "help": "Optional. The add-on assumes this role (on top of the credentials above) and refreshes "
                "the temporary credentials before they expire.",
                "validators": [
                    {
                        "type": "regex",
                        "errorMsg": "Enter a role ARN such as arn:aws:iam::123456789012:role/SplunkIoTDefender.",
                        "pattern": r"^arn:aws(-us-gov|-cn)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$",
                    }
                ],
            },
            {
                "type": "text",
                "label": "External ID",
                "field": "external_id",
                "required": False,
                "encrypted": True,
                "help": "Optional. The external ID the role's trust policy requires.",
                "validators": [
                    {
                        "type": "regex",
                        "errorMsg": "An external ID is 2 to 1224 characters of [\\w+=,.@:/-].",
                        "pattern": r"^[\w+=,.@:/-]{2,1224}$",
                    }
                ],
            },
            {
                "type": "text",
                "label": "Role session name",
                "field": "role_session_name",
                "required": False,
                "defaultValue": "splunk-ta-aws-iot-defender",
                "help": "Appears in CloudTrail for every call the add-on makes.",
                "validators": [
                    {
                        "type": "regex",
                        "errorMsg": "A session name is 2 to 64 characters of [\\w+=,.@-].",
                        "pattern": r"^[\w+=,.@-]{2,64}$",
                    }
                ],
            },
            single_select(
                "Partition",
                "partition",
                [("aws", "AWS (commercial)"), ("aws-us-gov", "AWS GovCloud (US)"), ("aws-cn", "AWS China")],
                default="aws",
                required=True,
            ),
            {
                "type": "text",
                "label": "Default region",
                "field": "default_region",
                "required": True,
                "defaultValue": "us-east-1",
                "help": "Region used to validate the credentials and by inputs/actions that name no region.",
                "validators": [
                    {
                        "type": "regex",
                        "errorMsg": "Enter a region such as us-east-1.",
                        "pattern": REGION_PATTERN,
                    }
                ],
            },
            {
                "type": "text",
                "label": "Incident Manager response plan ARN",
                "field": "response_plan_arn",
                "required": False,
                "help": "Optional. With a response plan, iot_start_incident starts Incident Manager incidents by "
                "default; without one it opens Systems Manager OpsCenter OpsItems (AWS closed Incident Manager to "
                "new customers on 2025-11-07).",
                "validators": [
                    {
                        "type": "regex",
                        "errorMsg": "Enter a response plan ARN such as "
                        "arn:aws:ssm-incidents::123456789012:response-plan/iot-device-compromise.",
                        "pattern": r"^arn:aws(-us-gov|-cn)?:ssm-incidents::\d{12}:response-plan/[a-zA-Z0-9_-]{1,200}$",
                    }
                ],
            },
        ],
    }


def advanced_tab() -> dict:
    return {
        "name": "advanced",
        "title": "AWS API",
        "entity": [
            single_select(
                "Retry mode",
                "retry_mode",
                [("adaptive", "adaptive"), ("standard", "standard")],
                default="adaptive",
                help="botocore retry mode. Adaptive adds client-side rate limiting on throttling, which suits "
                "Device Defender's 10 TPS list APIs.",
            ),
            {
                "type": "text",
                "label": "Maximum attempts per call",
                "field": "max_attempts",
                "defaultValue": "8",
                "help": "Total attempts per AWS call, first try included (1-20).",
                "validators": [{"type": "number", "range": [1, 20], "isInteger": True}],
            },
            {
                "type": "text",
                "label": "Connect/read timeout (seconds)",
                "field": "timeout_seconds",
                "defaultValue": "30",
                "validators": [{"type": "number", "range": [1, 300], "isInteger": True}],
            },
        ],
    }


def account_select() -> dict:
    return {
        "type": "singleSelect",
        "label": "AWS account",
        "field": "account",
        "required": True,
        "options": {"referenceName": "account"},
        "help": "An account configured on the Configuration page.",
    }


def regions_field(help_text: str) -> dict:
    return {
        "type": "text",
        "label": "Regions",
        "field": "regions",
        "required": False,
        "help": help_text,
        "validators": [
            {
                "type": "regex",
                "errorMsg": "Comma-separated regions, e.g. us-east-1,eu-west-1.",
                "pattern": REGIONS_PATTERN,
            }
        ],
    }


def input_service(name: str, title: str, description: str, interval: int, extra: list) -> dict:
    return {
        "name": name,
        "title": title,
        "description": description,
        "inputHelperModule": f"{name}_helper",
        "restHandlerModule": "ta_aws_iot_defender_input_handler",
        "restHandlerClass": "InputHandler",
        "entity": [
            {
                "type": "text",
                "label": "Name",
                "field": "name",
                "required": True,
                "help": "A unique name for this input.",
                "validators": NAME_VALIDATORS,
            },
            {
                "type": "interval",
                "label": "Interval",
                "field": "interval",
                "required": True,
                "defaultValue": interval,
                "options": {"range": [60, 86400]},
                "help": "Seconds between runs.",
            },
            {
                "type": "index",
                "label": "Index",
                "field": "index",
                "required": True,
                "defaultValue": "default",
            },
            account_select(),
            regions_field("Regions to collect from; empty means the account's default region."),
            *extra,
        ],
    }


def inputs_page() -> dict:
    audit = input_service(
        "iot_defender_audit",
        "Device Defender audit findings",
        "Audit tasks (scheduled and on-demand), per-check results and one event per non-compliant resource.",
        3600,
        [
            {
                "type": "text",
                "label": "First-run backfill (days)",
                "field": "backfill_days",
                "defaultValue": "7",
                "help": "How far back the first run reads audit tasks (0-90; AWS keeps findings 90 days).",
                "validators": [{"type": "number", "range": [0, 90], "isInteger": True}],
            },
            {
                "type": "checkbox",
                "label": "Include suppressed findings",
                "field": "include_suppressed",
                "defaultValue": True,
                "help": "Suppressed findings are indexed with isSuppressed=true.",
            },
        ],
    )
    violations = input_service(
        "iot_defender_violations",
        "Device Defender violations",
        "Detect violation events (in-alarm, alarm-cleared, alarm-invalidated) and active violation snapshots. "
        "AWS closed Detect to new customers on 2026-08-31: on an account without Detect this input makes one "
        "check, logs one warning, records status=unavailable in the add-on health dashboard and asks AWS again "
        "once a day; disable it if the account only uses Audit.",
        300,
        [
            {
                "type": "text",
                "label": "First-run backfill (hours)",
                "field": "backfill_hours",
                "defaultValue": "24",
                "help": "How far back the first run reads violation events (0-720; AWS keeps them 30 days).",
                "validators": [{"type": "number", "range": [0, 720], "isInteger": True}],
            },
            {
                "type": "text",
                "label": "Late-event overlap (minutes)",
                "field": "overlap_minutes",
                "defaultValue": "15",
                "help": "Each run re-reads this much of the previous window so late events are not lost; "
                "repeats are recognised and not indexed twice.",
                "validators": [{"type": "number", "range": [0, 1440], "isInteger": True}],
            },
            {
                "type": "text",
                "label": "Security profile",
                "field": "security_profile_name",
                "required": False,
                "help": "Optional: only violations of this security profile.",
                "validators": [
                    {
                        "type": "regex",
                        "errorMsg": "Security profile names are 1-128 of [a-zA-Z0-9:_-].",
                        "pattern": r"^[a-zA-Z0-9:_-]{1,128}$",
                    }
                ],
            },
            single_select(
                "Behavior criteria type",
                "behavior_criteria_type",
                [
                    ("ANY", "Any"),
                    ("STATIC", "Static (rules)"),
                    ("STATISTICAL", "Statistical"),
                    ("MACHINE_LEARNING", "Machine learning (ML Detect)"),
                ],
                default="ANY",
                required=False,
            ),
            {
                "type": "checkbox",
                "label": "Active violations snapshot",
                "field": "collect_active_violations",
                "defaultValue": True,
                "help": "Also index the list of violations in alarm at each run.",
            },
            {
                "type": "checkbox",
                "label": "Include suppressed alerts",
                "field": "include_suppressed",
                "defaultValue": True,
            },
        ],
    )
    inventory = input_service(
        "iot_defender_inventory",
        "IoT thing inventory",
        "Things with attributes, thing type, groups and certificate status, plus the iot_thing_inventory lookup.",
        3600,
        [
            {
                "type": "checkbox",
                "label": "Certificates",
                "field": "include_certificates",
                "defaultValue": True,
                "help": "Certificate ids and statuses of each thing (statuses in bulk; links read per thing when "
                "the thing is new, changed or due in the daily sweep).",
            },
            single_select(
                "Fleet indexing",
                "fleet_indexing",
                [("auto", "Use it where the account has it"), ("off", "Never (per-thing reads)")],
                default="auto",
                help="With fleet indexing on, SearchIndex brings 500 things a call with groups, connectivity and "
                "violation state.",
            ),
            {
                "type": "text",
                "label": "Link sweep (hours)",
                "field": "link_sweep_hours",
                "defaultValue": "24",
                "help": "Every thing's certificate links are re-read once in this period, spread evenly (1-720).",
                "validators": [{"type": "number", "range": [1, 720], "isInteger": True}],
            },
            {
                "type": "text",
                "label": "Run budget (seconds)",
                "field": "run_budget_seconds",
                "defaultValue": "3000",
                "help": "After this long a run stops reading links (the rest wait for the next run); keep it "
                "below the interval (60-604800).",
                "validators": [{"type": "number", "range": [60, 604800], "isInteger": True}],
            },
        ],
    )
    return {
        "title": "Inputs",
        "description": "Pull data from AWS IoT Device Defender",
        "table": {
            "actions": ["edit", "delete", "clone", "search"],
            "header": [
                {"label": "Name", "field": "name"},
                {"label": "Account", "field": "account"},
                {"label": "Regions", "field": "regions"},
                {"label": "Interval", "field": "interval"},
                {"label": "Index", "field": "index"},
                {"label": "Status", "field": "disabled"},
            ],
            "moreInfo": [
                {"label": "Name", "field": "name"},
                {"label": "Interval", "field": "interval"},
                {"label": "Index", "field": "index"},
                {"label": "Status", "field": "disabled", "mapping": {"true": "Disabled", "false": "Enabled"}},
            ],
        },
        "services": [audit, violations, inventory],
    }


def dashboard_page() -> dict:
    """UCC's monitoring dashboard (the "dashboard" view UCC generates): overview, data ingestion, errors and
    resource use of the inputs. Its data-ingestion panels read the events_ingested records the inputs log through
    solnlib; license usage is counted by the add-on's sourcetypes."""
    return {
        "panels": [{"name": "default"}],
        "settings": {
            "error_panel_log_lvl": ["ERROR", "CRITICAL"],
            "custom_license_usage": {
                "determine_by": "sourcetype",
                "search_condition": ["aws:iot:defender*", "aws:iot:thing"],
            },
        },
    }


def global_config() -> dict:
    return {
        "meta": {
            "name": "TA-aws-iot-defender",
            "restRoot": "ta_aws_iot_defender",
            "displayName": "AWS IoT Device Defender Add-on for Splunk",
            "version": VERSION,
            "apiVersion": "3.2.0",
            "schemaVersion": "0.0.10",
            "supportedPythonVersion": ["3.9", "3.13"],
            "checkForUpdates": False,
        },
        "pages": {
            "configuration": {
                "title": "Configuration",
                "description": "AWS accounts, API behaviour, proxy and logging",
                "tabs": [account_tab(), advanced_tab(), response_tab(), {"type": "proxyTab"}, {"type": "loggingTab"}],
            },
            "inputs": inputs_page(),
            "dashboard": dashboard_page(),
        },
        "alerts": alerts(),
    }


def render() -> str:
    """The text of globalConfig.json."""
    return json.dumps(global_config(), indent=4) + "\n"


def main(argv: list) -> int:
    path = ROOT / "globalConfig.json"
    if "--check" in argv:
        if not path.exists() or path.read_text() != render():
            print(f"{path.name} differs from scripts/make_global_config.py: run python scripts/make_global_config.py")
            return 1
        return 0
    path.write_text(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
