"""The SOC flow at the end of ``make demo``: the simulated compromised thing is quarantined (quarantine group and
its certificates), an incident is opened (emulated Systems Manager OpsCenter: the account has no Incident Manager
response plan, so the action's default destination is OpsCenter) - the alert fires twice and still one OpsItem
exists - and the thing is released again, all through the BUILT alert actions run as splunkd runs them. The OpsItem
carries the thing's owner (its inventory row: the demo does not run the asset searches), and the owner -> topic
lookup (``lookups/iot_defender_owner_topics.csv``, written into the demo's app as an admin would edit it) sends the
owning team one SNS message for the incident, not one per alert run. AWS state before / during / after goes to
``<out_dir>/aws-state.json``.

Called by the demo with the harness it already started (a LoopbackAWS with the fleet installed, the splunkd
stand-in and the fake ``$SPLUNK_HOME`` with the built app)::

    result = demo_response_flow(aws, standin, home, app_dir, out_dir)
    result["events"]   # the aws:iot:defender:action events, in the events.jsonl shape
    result["summary"]  # lines for the terminal
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from tests.harness import runner

ACCOUNT_CONF = "ta_aws_iot_defender_account"
SOURCETYPE = "aws:iot:defender:action"
RULE_PROFILE = "DeviceRuleBaseline"
PORT_BEHAVIOR = "AuthorizedTcpPorts"
QUARANTINE_GROUP = "QUARANTINED"
POLICY = "TA-IoTDefender-Quarantine"
PROTECTED_GROUP = "protected-critical"


def _compromised_thing(iot: Any) -> Dict[str, Any]:
    """The thing the fleet's rule profile has in alarm for a listening port outside the allowed set."""
    pages = iot.get_paginator("list_active_violations").paginate(securityProfileName=RULE_PROFILE)
    violations = [v for page in pages for v in page.get("activeViolations", [])]
    ports = [v for v in violations if (v.get("behavior") or {}).get("name") == PORT_BEHAVIOR]
    chosen = sorted(ports or violations, key=lambda v: (v["thingName"], v["violationId"]))
    if not chosen:
        raise RuntimeError(f"no active violation of {RULE_PROFILE}: is the fleet installed?")
    return chosen[0]


def _account(standin: Any, aws: Any) -> str:
    accounts = standin.get_conf(ACCOUNT_CONF) or {}
    if accounts:
        return sorted(accounts)[0]
    standin.create_account(
        "demo",
        {
            "credential_source": "access_key",
            "aws_access_key_id": aws.access_key,
            "partition": "aws",
            "default_region": aws.region,
        },
        {"aws_secret_access_key": aws.secret_key},
    )
    return "demo"


def _record_keys(standin: Any) -> None:
    """The quarantine record key, as an admin enters it on the Response actions tab (the actions never create
    one); a demo key, not a secret of anything."""
    settings = (standin.get_conf("ta_aws_iot_defender_settings") or {}).get("response") or {}
    if not settings.get("record_keys"):  # UCC's settings tab may hold the stanza with its keys still empty
        standin.create_account(
            "response", {}, {"record_keys": "demo-record-key-" + "0" * 32}, conf="ta_aws_iot_defender_settings"
        )


def _notify_topic(aws: Any) -> str:
    """The SOC's topic OpsCenter notifies of new OpsItems (SNS in moto)."""
    return aws.client("sns").create_topic(Name="soc-iot-incidents")["TopicArn"]


OWNER_TOPIC = "ot-owner-team"
OWNER_KEYS = ("iot_owner", "iot_asset_priority", "iot_business_unit")


def _owner_route(aws: Any, home: Any, owner: str) -> str:
    """The owning team's topic, routed in the app's owner -> topic lookup. The demo app's ``lookups`` entry is a
    symlink into the build: it becomes a directory of links with the edited lookup, the build stays untouched."""
    topic = aws.client("sns").create_topic(Name=OWNER_TOPIC)["TopicArn"]
    lookups = Path(home.app_path) / "lookups"
    if lookups.is_symlink():
        source = lookups.resolve()
        lookups.unlink()
        lookups.mkdir()
        for entry in source.iterdir():
            (lookups / entry.name).symlink_to(entry)
    target = lookups / "iot_defender_owner_topics.csv"
    if target.is_symlink():
        target.unlink()
    with target.open("w", newline="") as handle:
        csv.writer(handle).writerows([("owner", "sns_topic_arn"), (owner, topic)])
    return topic


def _attribute(params: Dict[str, Any], name: str) -> Optional[str]:
    """A message attribute of a Publish request as the query protocol sends it (``MessageAttributes.entry.N.*``)."""
    for key, value in params.items():
        if key.startswith("MessageAttributes.entry.") and key.endswith(".Name") and value == name:
            return params.get(key[: -len("Name")] + "Value.StringValue")
    return None


def _owner_messages(aws: Any, topic: str) -> List[Dict[str, Any]]:
    """The messages published to the owning team's topic (what its subscribers received)."""
    published = [r.params for r in aws.requests.filter(operation="Publish") if r.params.get("TopicArn") == topic]
    return [
        {"message": json.loads(p.get("Message") or "{}"), "owner_attribute": _attribute(p, "owner")} for p in published
    ]


def _certificate_policies(iot: Any, thing: str) -> Dict[str, List[str]]:
    out = {}
    for arn in iot.list_thing_principals(thingName=thing)["principals"]:
        out[arn.rsplit("/", 1)[-1]] = sorted(
            p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]
        )
    return out


def aws_state(aws: Any, thing: str) -> Dict[str, Any]:
    """What the response actions may change: the thing's groups, attributes and certificate statuses, the
    quarantine group and its policies, and the incidents started so far."""
    iot = aws.client("iot")
    groups = sorted(g["groupName"] for g in iot.list_thing_groups_for_thing(thingName=thing)["thingGroups"])
    certificates = {}
    for arn in iot.list_thing_principals(thingName=thing)["principals"]:
        cert_id = arn.rsplit("/", 1)[-1]
        certificates[cert_id] = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]
    try:
        group_arn = iot.describe_thing_group(thingGroupName=QUARANTINE_GROUP)["thingGroupArn"]
        policies = sorted(p["policyName"] for p in iot.list_attached_policies(target=group_arn)["policies"])
        members = sorted(iot.list_things_in_thing_group(thingGroupName=QUARANTINE_GROUP)["things"])
        quarantine: Optional[Dict[str, Any]] = {"policies": policies, "members": members}
    except iot.exceptions.ResourceNotFoundException:
        quarantine = None
    incidents = [{k: r.get(k) for k in ("arn", "title", "impact", "status")} for r in aws.incidents.incident_records()]
    fields = ("OpsItemId", "Title", "Status", "Severity", "Priority", "Category", "Source", "Notifications")
    ops_items = [
        dict(
            {k: item.get(k) for k in fields},
            owner={k: v["Value"] for k, v in (item.get("OperationalData") or {}).items() if k in OWNER_KEYS},
        )
        for item in aws.opsitems.ops_items()
    ]
    return {
        "thing": {
            "name": thing,
            "groups": groups,
            "attributes": iot.describe_thing(thingName=thing).get("attributes", {}),
            "certificates": certificates,
            "certificate_policies": _certificate_policies(iot, thing),
        },
        "quarantine_group": quarantine,
        "incidents": incidents,
        "ops_items": ops_items,
    }


def _events(result: Any) -> List[Dict[str, Any]]:
    from iot_defender.events import to_epoch

    shaped = []
    for event in result.events:
        if event["sourcetype"] != SOURCETYPE:
            continue
        body = event["event"]
        shaped.append(
            {
                "time": to_epoch(body.get("action_time")) if body.get("action_time") else time.time(),
                "sourcetype": SOURCETYPE,
                "source": event["source"],
                "host": body.get("thing_name"),
                "index": event["index"],
                "event": body,
            }
        )
    return shaped


def demo_response_flow(aws: Any, standin: Any, home: Any, app_dir: Any, out_dir: Any, **kw: Any) -> Dict[str, Any]:
    """Quarantine -> incident -> release on the fleet's compromised thing; returns events, exit codes, summary.

    Optional ``thing`` overrides the compromised thing, ``account`` the configured account to use.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    iot = aws.client("iot")
    violation = _compromised_thing(iot)
    thing = kw.get("thing") or violation["thingName"]
    account = kw.get("account") or _account(standin, aws)
    _record_keys(standin)
    owner = str((iot.describe_thing(thingName=thing).get("attributes") or {}).get("owner") or "")
    team_topic = _owner_route(aws, home, owner)
    env = {"AWS_ENDPOINT_URL": aws.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true"}
    row = {
        "thing_name": thing,
        "violationId": violation["violationId"],
        "behavior_name": (violation.get("behavior") or {}).get("name", ""),
        "securityProfileName": violation.get("securityProfileName", ""),
        "lastViolationValue": json.dumps(violation.get("lastViolationValue") or {}, default=str),
        "region": aws.region,
    }
    sid = f"scheduler__admin__TA-aws-iot-defender__RMD5demo_at_{int(time.time())}_1"
    search = "IoT Device Defender - Compromised device"

    def run(action: str, params: Dict[str, Any], run_sid: str = sid) -> Any:
        return runner.run_alert(
            home,
            action,
            {"account": account, **params},
            [row],
            standin=standin,
            env=env,
            sid=run_sid,
            search_name=search,
        )

    before = aws_state(aws, thing)
    quarantine = run(
        "iot_quarantine_thing",
        {"deactivate_certificates": "1", "allow_remediation": "1", "protected_groups": PROTECTED_GROUP},
    )
    quarantined = aws_state(aws, thing)
    incident_params = {"sns_topic_arn": _notify_topic(aws), "impact": "2"}  # destination: the default (auto)
    incident = run("iot_start_incident", incident_params)
    again = run("iot_start_incident", incident_params, sid.replace("RMD5demo", "RMD5again"))  # the alert fires again
    release = run("iot_release_thing", {})
    after = aws_state(aws, thing)
    owner_messages = _owner_messages(aws, team_topic)
    restored = before["thing"] == after["thing"]
    runs = {
        "iot_quarantine_thing": quarantine,
        "iot_start_incident": incident,
        "iot_start_incident (again)": again,
        "iot_release_thing": release,
    }
    events = [e for result in runs.values() for e in _events(result)]
    state = {
        "thing": thing,
        "violation": {k: violation.get(k) for k in ("violationId", "securityProfileName", "behavior")},
        "before": before,
        "quarantined": quarantined,
        "after": after,
        "thing_restored_exactly": restored,
        "ops_items": after["ops_items"],
        "exit_codes": {name: result.exit_code for name, result in runs.items()},
        "thing_owner": owner,
        "owner_messages": owner_messages,
    }
    state_file = out / "aws-state.json"
    state_file.write_text(json.dumps(state, indent=2, sort_keys=True, default=str) + "\n")

    summary = [f"Response flow on compromised thing {thing} (violation {violation['violationId']}):"]
    for name, result in runs.items():
        for event in _events(result):
            body = event["event"]
            summary.append(f"  {name:<27} exit {result.exit_code}  {body['outcome']:<16} {body['message'][:110]}")
    summary.append(
        f"  before:      groups={before['thing']['groups']} certificates={sorted(before['thing']['certificates'].values())}"
    )
    summary.append(
        f"  quarantined: groups={quarantined['thing']['groups']} "
        f"certificates={sorted(quarantined['thing']['certificates'].values())} "
        f"policy on group={(quarantined['quarantine_group'] or {}).get('policies')} "
        f"on certificates={sorted({p for ps in quarantined['thing']['certificate_policies'].values() for p in ps})}"
    )
    items = after["ops_items"]
    summary.append(
        f"  OpsCenter:   {len(items)} OpsItem after the alert fired twice: "
        + ", ".join(f"{i['OpsItemId']} {i['Status']} severity {i['Severity']} priority {i['Priority']}" for i in items)
    )
    summary.append(
        f"  owner:       {owner!r} on the OpsItem ({', '.join(str(i['owner']) for i in items)}); "
        f"{len(owner_messages)} SNS message to the owning team's topic {OWNER_TOPIC}: "
        + ", ".join(f"owner={m['message'].get('owner')!r} attribute={m['owner_attribute']!r}" for m in owner_messages)
    )
    summary.append(
        f"  after:       groups={after['thing']['groups']} certificates={sorted(after['thing']['certificates'].values())}"
        f"  restored exactly: {restored}"
    )
    summary.append(f"  AWS state before/after: {state_file}")
    return {
        "thing": thing,
        "events": events,
        "exit_codes": state["exit_codes"],
        "restored": restored,
        "ops_items": after["ops_items"],
        "thing_owner": owner,
        "owner_messages": owner_messages,
        "state_file": str(state_file),
        "summary": summary,
    }
