"""What the two response Lambdas share (``containment/app.py``, ``start_incident/app.py``; each function's Makefile
copies this file next to its ``app.py``): the Lambda event read as violations, a violation as a result row,
boolean environment settings, the responder for the function's own role, and the report a function returns.
The response work itself is the add-on's library ``iot_defender.respond``, vendored beside it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Sequence

from iot_defender.aws import Account, AwsSession, ClientSettings, caller_identity
from iot_defender.events import ActionResult, action_event
from iot_defender.params import boolean
from iot_defender.respond import Responder, parse_arn, partition_of_region

_THING_ARN_RE = re.compile(r"^arn:(aws|aws-us-gov|aws-cn):iot:([a-z0-9-]+):(\d{12}):thing/([a-zA-Z0-9:_-]{1,128})$")


def _as_json(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _string_list(value: Any) -> List[str]:
    """A list of strings from a list, a JSON array string or a comma-separated string (SSM StringList values
    arrive in any of these shapes depending on how the runbook interpolates them)."""
    value = _as_json(value) if isinstance(value, str) and value.strip().startswith(("[", "{")) else value
    if isinstance(value, Mapping):
        value = [v for values in value.values() for v in (values if isinstance(values, list) else [values])]
    if isinstance(value, str):
        value = [part for part in re.split(r"[\s,]+", value) if part]
    if not isinstance(value, list):
        return []
    return [str(v.get("arn") if isinstance(v, Mapping) else v) for v in value if v not in (None, "")]


def violation_messages(event: Any) -> List[Dict[str, Any]]:
    """The violations a Lambda was invoked for, whatever invoked it.

    - SNS (Device Defender alert target): ``Records[].Sns.Message`` is the violation JSON;
    - the containment runbook (``aws:invokeLambdaFunction``): ``involved_resources`` / ``InvolvedResources``
      (IoT thing ARNs, as the start-incident function lists the thing as an INVOLVED_RESOURCE related item) and
      ``thing_names`` / ``ThingNames`` (names, when run by hand), with ``violation_id`` and
      ``incident_record_arn``;
    - a direct invocation: one violation object (``thingName``, ``violationId``, ``violationEventType``...) or
      ``{"violations": [...]}``.

    A record that cannot be read comes back as ``{"_error": reason}`` so the caller can report it.
    """
    event = _as_json(event)
    if not isinstance(event, Mapping):
        return [{"_error": "event is not a JSON object"}]
    found: List[Dict[str, Any]] = []
    if isinstance(event.get("Records"), list):
        for record in event["Records"]:
            sns = record.get("Sns") if isinstance(record, Mapping) else None
            message = _as_json((sns or {}).get("Message"))
            if not isinstance(message, Mapping):
                found.append({"_error": "SNS record without a JSON violation message"})
                continue
            found.append(dict(message, _sns_message_id=(sns or {}).get("MessageId")))
        return found
    if isinstance(event.get("violations"), list):
        return [
            dict(v) if isinstance(v, Mapping) else {"_error": "violation is not an object"} for v in event["violations"]
        ]
    common = {
        "violationEventType": "in-alarm",
        "violationId": event.get("violation_id") or event.get("ViolationId") or event.get("violationId") or None,
        "incidentRecordArn": event.get("incident_record_arn") or event.get("IncidentRecordArn") or None,
    }
    common = {k: v for k, v in common.items() if v}
    involved = _string_list(event.get("involved_resources") or event.get("InvolvedResources"))
    names = _string_list(event.get("thing_names") or event.get("ThingNames"))
    if involved or names:
        for arn in involved:
            match = _THING_ARN_RE.match(arn)
            if match:
                found.append(dict(common, thingName=match.group(4)))
        found.extend(dict(common, thingName=name) for name in names)
        return found or [{"_error": "the involved resources hold no IoT thing ARN"}]
    if event.get("thingName") or event.get("ThingName"):
        return [dict(event, thingName=event.get("thingName") or event.get("ThingName"))]
    if "source" in event or "incident_record_arn" in event or "InvolvedResources" in event:
        return []  # a runbook run with nothing to contain (e.g. no involved thing): nothing to do
    return [{"_error": "no violation, SNS record or involved IoT thing in the event"}]


def violation_row(message: Mapping[str, Any]) -> Dict[str, str]:
    """A violation message flattened into a result-row-like mapping for templates and rawData."""
    row: Dict[str, str] = {}
    for key, value in message.items():
        if str(key).startswith("_") or value is None:
            continue
        row[str(key)] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    behavior = message.get("behavior")
    if not isinstance(behavior, Mapping):
        behavior = {}
    row["thing_name"] = str(message.get("thingName") or "")
    row["behavior_name"] = str(behavior.get("name") or "")
    row["metric"] = str(behavior.get("metric") or "")
    row["security_profile"] = str(message.get("securityProfileName") or "")
    return row


def environment_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A Lambda's boolean environment variable (the add-on's spellings; an unknown one is a ParameterError)."""
    return boolean(env.get(name), name, default)


def lambda_responder(env: Mapping[str, str], context: Any = None, **kw: Any) -> Responder:
    """A Responder for a Lambda: the function's own role (default credential chain) in its own region."""
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    account = Account(
        name="lambda",
        credential_source="default_chain",
        partition=partition_of_region(region),
        default_region=region,
    )
    account.check()
    session = AwsSession(account, ClientSettings(retry_mode="standard", max_attempts=8, timeout_seconds=10))
    arn = parse_arn(str(getattr(context, "invoked_function_arn", "") or ""))
    account_id = arn.get("account") or caller_identity(session)["account"]
    return Responder(session, account_id=account_id, partition=account.partition, **kw)


def lambda_report(results: Sequence[ActionResult], skipped: Sequence[Dict[str, Any]], when: Any) -> Dict[str, Any]:
    """What a response Lambda returns (and logs): one ``aws:iot:defender:action`` event body per result."""
    events = [action_event(r, when=when).data for r in results]
    counts: Dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return {
        "ok": all(r.ok for r in results),
        "counts": counts,
        "skipped": list(skipped),
        "events": events,
    }
