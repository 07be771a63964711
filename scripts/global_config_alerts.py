"""Alert-action section of globalConfig.json (see make_global_config.py): parameters of the four actions
and their Enterprise Security adaptive-response metadata."""

from __future__ import annotations

from typing import Any, Dict, Optional

ACCOUNT_SEARCH = (
    "| rest /servicesNS/nobody/TA-aws-iot-defender/ta_aws_iot_defender_account splunk_server=local | fields title"
)


# Enterprise Security opens this view (app/view syntax) to show an action's result events.
RESULTS_DRILLDOWN = "../TA-aws-iot-defender/search"


def single_select(
    label: str,
    field: str,
    choices: list,
    *,
    default: str,
    required: Optional[bool] = None,
    help: str = "",
    alert: bool = False,
    **extra: Any,
) -> dict:
    """A UCC singleSelect over fixed ``(value, label)`` choices: inputs/configuration use ``autoCompleteFields``
    (search off), alert actions ``items`` (the only form alert-action forms accept)."""
    entity: Dict[str, Any] = {"type": "singleSelect", "label": label, "field": field}
    if required is not None:
        entity["required"] = required
    entity["defaultValue"] = default
    if help:
        entity["help"] = help
    items = [{"value": value, "label": text} for value, text in choices]
    entity["options"] = {"items": items} if alert else {"disableSearch": True, "autoCompleteFields": items}
    entity.update(extra)
    return entity


def alert_common(thing_field_default: str = "thing_name") -> list:
    return [
        {
            "type": "singleSelectSplunkSearch",
            "label": "AWS account",
            "field": "account",
            "required": True,
            "search": ACCOUNT_SEARCH,
            "valueField": "title",
            "labelField": "title",
            "help": "An account configured in the add-on. No credentials are ever entered here.",
        },
        {
            "type": "text",
            "label": "Region",
            "field": "region",
            "required": False,
            "help": "Empty: the row's region field when it has one, else the account's default region.",
        },
        {
            "type": "text",
            "label": "Thing field",
            "field": "thing_field",
            "required": False,
            "defaultValue": thing_field_default,
            "help": "Result field naming the thing (falls back to thing, then dest).",
        },
        {
            "type": "text",
            "label": "Max things per run",
            "field": "max_things",
            "required": False,
            "defaultValue": "25",
            "help": "Above this many rows the whole run is refused, so a runaway search cannot act on a fleet.",
        },
        {
            "type": "checkbox",
            "label": "Dry run",
            "field": "dry_run",
            "defaultValue": 0,
            "help": "Log and report what would change; change nothing in AWS.",
        },
        {
            "type": "text",
            "label": "Result index",
            "field": "index",
            "required": False,
            "defaultValue": "main",
            "help": "Index for the result events (sourcetype aws:iot:defender:action, one per row); use the index "
            "the iot_defender_index macro searches.",
        },
    ]


def adaptive(task: list, subject: list, drilldown: str = "") -> dict:
    response = {
        "task": task,
        "subject": subject,
        "category": ["Information Conveyance", "Device Isolation"]
        if "block" in task or "allow" in task
        else ["Information Conveyance"],
        "technology": [{"vendor": "AWS", "product": "IoT Device Defender", "version": ["1.0"]}],
        "supportsAdhoc": True,
        "supportsCloud": True,
        "sourcetype": "aws:iot:defender:action",
    }
    response["drilldownUri"] = drilldown or RESULTS_DRILLDOWN
    return response


def alerts() -> list:
    return [
        {
            "name": "iot_quarantine_thing",
            "label": "Quarantine IoT thing",
            "description": "Adds the thing to a quarantine thing group whose IoT policy denies its traffic, and "
            "optionally deactivates its certificates.",
            "customScript": "iot_quarantine_thing_action",
            "adaptiveResponse": adaptive(["block"], ["device"]),
            "entity": [
                *alert_common(),
                {
                    "type": "text",
                    "label": "Quarantine group",
                    "field": "quarantine_group",
                    "required": False,
                    "defaultValue": "QUARANTINED",
                    "help": "Static thing group created on first use.",
                },
                {
                    "type": "text",
                    "label": "Isolation policy",
                    "field": "policy_name",
                    "required": False,
                    "defaultValue": "TA-IoTDefender-Quarantine",
                    "help": "IoT policy with an explicit Deny, created and attached to the quarantine group on first "
                    "use. Group policies apply when the MQTT client ID equals the thing name.",
                },
                {
                    "type": "checkbox",
                    "label": "Manage the isolation policy",
                    "field": "manage_policy",
                    "defaultValue": 1,
                    "help": "Create the policy and keep its document as defined by the add-on. Uncheck when the "
                    "policy is managed elsewhere (e.g. the response stack's): it is then only attached to the group.",
                },
                {
                    "type": "checkbox",
                    "label": "Keep remediation topics open",
                    "field": "allow_remediation",
                    "defaultValue": 1,
                    "help": "Leave the thing's own shadow and jobs topics open so it can be fixed remotely.",
                },
                {
                    "type": "checkbox",
                    "label": "Deactivate certificates",
                    "field": "deactivate_certificates",
                    "defaultValue": 0,
                    "help": "Also set the thing's ACTIVE certificates to INACTIVE (disconnects it whatever client ID "
                    "it uses). Release reactivates only these.",
                },
                {
                    "type": "text",
                    "label": "Protected thing groups",
                    "field": "protected_groups",
                    "required": False,
                    "help": "Comma-separated thing groups whose members (also through child groups) are never "
                    "quarantined.",
                },
            ],
        },
        {
            "name": "iot_release_thing",
            "label": "Release IoT thing from quarantine",
            "description": "Undoes exactly what the quarantine action changed on the thing.",
            "customScript": "iot_release_thing_action",
            "adaptiveResponse": adaptive(["allow"], ["device"]),
            "entity": [
                *alert_common(),
                {
                    "type": "text",
                    "label": "Quarantine group",
                    "field": "quarantine_group",
                    "required": False,
                    "defaultValue": "QUARANTINED",
                },
            ],
        },
        {
            "name": "iot_start_incident",
            "label": "Start IoT incident",
            "description": "Opens an AWS Systems Manager OpsCenter OpsItem (one per thing and violation, "
            "deduplicated), starts an Incident Manager incident, or publishes the incident to an SNS topic.",
            "customScript": "iot_start_incident_action",
            "adaptiveResponse": adaptive(["create"], ["device"]),
            "entity": [
                *alert_common(),
                single_select(
                    "Destination",
                    "destination",
                    [
                        ("auto", "Account default (Incident Manager with a response plan, else OpsCenter)"),
                        ("opscenter", "Systems Manager OpsCenter"),
                        ("incident_manager", "Incident Manager"),
                        ("sns", "SNS topic"),
                    ],
                    default="auto",
                    required=True,
                    alert=True,
                ),
                {
                    "type": "text",
                    "label": "Response plan ARN",
                    "field": "response_plan_arn",
                    "required": False,
                    "help": "Incident Manager response plan (destination Incident Manager); empty = the account's.",
                },
                {
                    "type": "text",
                    "label": "SNS topic ARN",
                    "field": "sns_topic_arn",
                    "required": False,
                    "help": "Destination SNS: the topic to publish to. Destination OpsCenter: optional topic "
                    "OpsCenter notifies of the OpsItem (same region as the thing).",
                },
                {
                    "type": "text",
                    "label": "Title",
                    "field": "title",
                    "required": False,
                    "defaultValue": "IoT Device Defender: {thing_name} {behavior_name|behavior.name}",
                    "help": "Per-row template: {field} is replaced by the row's field, {a|b} by the first "
                    "non-empty of a and b (max 200 characters).",
                },
                {
                    "type": "text",
                    "label": "Impact (1-5)",
                    "field": "impact",
                    "required": False,
                    "defaultValue": "3",
                    "help": "1 = critical ... 5 = no impact; or {field} to take it from the row.",
                },
                {
                    "type": "text",
                    "label": "Suppression window (minutes)",
                    "field": "suppression_minutes",
                    "required": False,
                    "defaultValue": "0",
                    "help": "Do not start another incident for the same thing within this window (state in the "
                    "KV store). 0 = off; the same alert retried never opens a second incident anyway.",
                },
                {
                    "type": "text",
                    "label": "Violation ID field",
                    "field": "violation_field",
                    "required": False,
                    "defaultValue": "violationId",
                    "help": "Result field with the Device Defender violation id (part of the idempotency token).",
                },
            ],
        },
        {
            "name": "iot_set_verification_state",
            "label": "Set Device Defender verification state",
            "description": "Sends the analyst's triage verdict on a violation back to Device Defender.",
            "customScript": "iot_set_verification_state_action",
            "adaptiveResponse": adaptive(["update"], ["device"]),
            "entity": [
                *alert_common(),
                {
                    "type": "text",
                    "label": "Violation ID field",
                    "field": "violation_field",
                    "required": False,
                    "defaultValue": "violationId",
                },
                single_select(
                    "Verification state",
                    "verification_state",
                    [
                        ("TRUE_POSITIVE", "True positive"),
                        ("FALSE_POSITIVE", "False positive"),
                        ("BENIGN_POSITIVE", "Benign positive"),
                        ("UNKNOWN", "Unknown"),
                    ],
                    default="UNKNOWN",
                    required=True,
                    alert=True,
                ),
                {
                    "type": "text",
                    "label": "Description",
                    "field": "description",
                    "required": False,
                    "help": "Triage note (max 1000 characters); {field} placeholders allowed.",
                },
            ],
        },
    ]
