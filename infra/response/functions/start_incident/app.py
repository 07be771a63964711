"""Start-incident Lambda: one incident per Device Defender violation that goes into alarm.

Subscribed to the Device Defender alert SNS topic. For each ``in-alarm`` violation:

- mode ``opscenter`` (the default; AWS's recommended path since Incident Manager closed to new customers):
  ``ssm:CreateOpsItem`` with the thing ARN under ``/aws/resources``, category Security, severity/priority from
  ``IMPACT`` and ``/aws/dedup`` per (account, region, thing, violation): a replayed message lands on the open
  OpsItem; ``NOTIFY_TOPIC_ARN`` is notified of it;
- mode ``incident_manager``: ``ssm-incidents:StartIncident`` on ``RESPONSE_PLAN_ARN`` with the thing's console URL
  and the thing ARN as related items (the runbook's containment step reads the latter from
  ``InvolvedResources``), the violation message as ``rawData`` (truncated to the API limit), and a client token
  derived from (thing, violation id): a replayed or retried SNS message never opens a second incident;
- mode ``sns_only`` (Incident Manager is closed to new AWS customers since 2025-11-07): the same incident is
  published to ``NOTIFY_TOPIC_ARN`` (FIFO topics de-duplicate replays with the same token).

``alarm-cleared`` / ``alarm-invalidated`` messages start nothing and make no AWS call. The work is done by
``iot_defender.respond`` (the same code as the Splunk ``iot_start_incident`` action, vendored by the Makefile, with
the event parsing shared by both response functions, ``response_lambda``).

Environment: ``MODE``, ``RESPONSE_PLAN_ARN`` (empty unless incident_manager), ``NOTIFY_TOPIC_ARN``; optional
``INCIDENT_TITLE`` (``{field}`` template over the violation: thing_name, behavior_name, metric,
security_profile, violationId...), ``IMPACT`` (1-5; empty = the response plan's impact).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List

from response_lambda import lambda_report, lambda_responder, violation_messages, violation_row

from iot_defender import respond
from iot_defender.respond import IncidentOptions, RunContext

LOG = logging.getLogger(__name__)
LOG.setLevel(logging.INFO)

MODES = {"opscenter": "opscenter", "incident_manager": "incident_manager", "sns_only": "sns"}
# The token's "search id" for SNS-triggered incidents: constant, so the same violation always maps to the same
# incident whichever delivery or retry of the message arrives.
TOKEN_SCOPE = "device-defender-sns"


def options_from(env: Dict[str, str], partition: str) -> IncidentOptions:
    mode = (env.get("MODE") or "opscenter").strip()
    if mode not in MODES:
        raise ValueError(f"MODE must be one of {', '.join(MODES)}, got {mode!r}")
    options = IncidentOptions(
        destination=MODES[mode],
        response_plan_arn=(env.get("RESPONSE_PLAN_ARN") or "").strip() or None,
        sns_topic_arn=(env.get("NOTIFY_TOPIC_ARN") or "").strip() or None,
        title=env.get("INCIDENT_TITLE") or respond.DEFAULT_TITLE,
        impact=(env.get("IMPACT") or "").strip(),
    )
    options.check(partition)
    return options


def lambda_handler(event: Any, context: Any) -> Dict[str, Any]:
    env = dict(os.environ)
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    options = options_from(env, respond.partition_of_region(region))
    targets: List[Dict[str, Any]] = []
    skipped: List[Dict[str, Any]] = []
    for message in violation_messages(event):
        if "_error" in message:
            skipped.append({"reason": message["_error"]})
        elif (message.get("violationEventType") or "in-alarm") != "in-alarm":
            skipped.append(
                {"thing_name": message.get("thingName"), "reason": f"{message['violationEventType']}: no incident"}
            )
        else:
            targets.append(message)
    results = []
    if targets:
        responder = lambda_responder(env, context)
        run = RunContext(sid=TOKEN_SCOPE)
        results = respond.run_all(
            targets,
            lambda m: responder.start_incident(
                str(m.get("thingName") or ""),
                region,
                violation_row(m),
                options,
                run,
                violation_id=str(m.get("violationId") or ""),
                trigger_time=m.get("violationEventTime"),
                verify_thing=False,  # Device Defender named the thing; its ARN is built, not looked up
            ),
            lambda m, exc: responder.crashed(respond.ACTION_INCIDENT, m.get("thingName"), region, exc),
        )
    report = lambda_report(results, skipped, RunContext().now())
    for body in report["events"]:
        LOG.info(json.dumps(body, sort_keys=True))
    failed = [r for r in results if r.outcome == "failed"]
    if failed:  # Lambda retries the invocation; the client token makes the retry safe
        raise RuntimeError("start incident failed for " + ", ".join(f"{r.thing_name} ({r.error_code})" for r in failed))
    return report
