"""Containment Lambda: quarantine the IoT thing(s) of a Device Defender violation.

Invoked either by the containment runbook of the Incident Manager response plan (mode ``incident_manager``:
``aws:invokeLambdaFunction`` with ``involved_resources`` = the incident's thing ARNs, which the start-incident
function attached as INVOLVED_RESOURCE related items, or ``thing_names`` when the runbook is run by hand), or
directly by the Device Defender alert SNS topic (mode ``sns_only``). Only ``in-alarm`` violations are contained;
``alarm-cleared`` / ``alarm-invalidated`` are reported as skipped and cause no AWS call.

The work is done by ``iot_defender.respond`` (the same code as the Splunk ``iot_quarantine_thing`` action,
vendored next to this file by the Makefile, with the event parsing shared by both response functions,
``response_lambda``): the thing joins the quarantine group, the isolating policy is
attached to the group if it is not yet, and what changed is recorded on the thing so the Splunk release action
can undo exactly that. The stack owns the group and the policy document: this function never creates or
rewrites the policy (``manage_policy=False``).

Environment: ``QUARANTINE_GROUP``, ``ISOLATION_POLICY_NAME``, ``NOTIFY_TOPIC_ARN`` (optional: a summary of what
was contained is published there), ``MODE``; optional ``PROTECTED_GROUPS`` (comma-separated, never quarantined;
needs iot:DescribeThingGroup on those groups' children), ``DEACTIVATE_CERTIFICATES`` (default false; needs
iot:DescribeCertificate + iot:UpdateCertificate), ``ALLOW_REMEDIATION`` (informational here: the stack's policy
decides), ``DRY_RUN``. The runbook's ``dry_run`` input overrides ``DRY_RUN``.

Returns ``quarantined`` / ``already_quarantined`` / ``refused`` / ``failed`` thing names (the runbook reads the
first two) plus one ``aws:iot:defender:action`` event body per thing. A target that failed (AWS error after
retries) makes the invocation fail, so the runbook step (or Lambda's own retry) sees it; quarantine is
idempotent, so a retry never does anything twice.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List

from response_lambda import environment_flag, lambda_report, lambda_responder, violation_messages

from iot_defender import respond
from iot_defender.aws import error_code
from iot_defender.params import boolean
from iot_defender.respond import QuarantineOptions, RunContext

LOG = logging.getLogger(__name__)
LOG.setLevel(logging.INFO)


def options_from(env: Dict[str, str]) -> QuarantineOptions:
    options = QuarantineOptions(
        group=env.get("QUARANTINE_GROUP") or respond.DEFAULT_QUARANTINE_GROUP,
        policy_name=env.get("ISOLATION_POLICY_NAME") or respond.DEFAULT_POLICY_NAME,
        allow_remediation=environment_flag(env, "ALLOW_REMEDIATION", True),
        deactivate_certificates=environment_flag(env, "DEACTIVATE_CERTIFICATES", False),
        protected_groups=tuple(g.strip() for g in (env.get("PROTECTED_GROUPS") or "").split(",") if g.strip()),
        manage_policy=False,
    )
    options.check()
    return options


def dry_run_of(event: Any, env: Dict[str, str]) -> bool:
    if isinstance(event, dict) and "dry_run" in event:
        return boolean(event["dry_run"], "dry_run", True)
    return environment_flag(env, "DRY_RUN", False)


def lambda_handler(event: Any, context: Any) -> Dict[str, Any]:
    env = dict(os.environ)
    options = options_from(env)
    targets: List[Dict[str, Any]] = []
    skipped: List[Dict[str, Any]] = []
    seen = set()
    for message in violation_messages(event):
        if "_error" in message:
            skipped.append({"reason": message["_error"]})
            continue
        kind = message.get("violationEventType") or "in-alarm"
        thing = message.get("thingName")
        if kind != "in-alarm":
            skipped.append({"thing_name": thing, "reason": f"{kind}: nothing to contain"})
        elif thing in seen:
            skipped.append({"thing_name": thing, "reason": "same thing twice in one event"})
        else:
            seen.add(thing)
            targets.append(message)
    results = []
    if targets:
        responder = lambda_responder(
            env, context, dry_run=dry_run_of(event, env), keyless_recovery="the response stack's runbook (Recover step)"
        )
        region = responder.session.account.default_region
        run = RunContext(sid=f"lambda-containment-{getattr(context, 'aws_request_id', '') or 'local'}")
        responder.check_protected_groups(region, options)  # a misspelt protected group refuses the invocation
        results = respond.run_all(
            targets,
            lambda m: responder.quarantine(str(m.get("thingName")), region, options, run),
            lambda m, exc: responder.crashed(respond.ACTION_QUARANTINE, m.get("thingName"), region, exc),
        )
        notify(responder, env.get("NOTIFY_TOPIC_ARN"), region, results)
    report = lambda_report(results, skipped, RunContext().now())
    report.update(
        # "warning": contained, but its record is not authenticated (this function holds no record key), so the
        # add-on's release leaves its certificates alone; the runbook's recovery step detaches the policy itself
        quarantined=[r.thing_name for r in results if r.outcome in ("done", "warning")],
        already_quarantined=[r.thing_name for r in results if r.outcome == "already-in-state"],
        refused=[r.thing_name for r in results if r.outcome.startswith("refused")],
        failed=[r.thing_name for r in results if r.outcome == "failed"],
        # another run (e.g. an analyst's release) held the thing: this invocation wrote nothing for it
        conflict=[r.thing_name for r in results if r.outcome == "conflict"],
        dry_run=any(r.outcome == "dry-run" for r in results),
    )
    for body in report["events"]:
        LOG.info(json.dumps(body, sort_keys=True))
    # a conflict is retried like a failure (Lambda's asynchronous retries): once the other run ends, the retry
    # finds the thing quarantined (already-in-state) or quarantines it
    failed = [r for r in results if r.outcome in ("failed", "conflict")]
    if failed:
        names = ", ".join(f"{r.thing_name} ({r.error_code or r.outcome})" for r in failed)
        raise RuntimeError("containment failed for " + names)
    return report


def notify(responder: respond.Responder, topic: Any, region: str, results: List[Any]) -> None:
    """Tell the incident contacts what was contained (best effort: a failed notice never undoes containment)."""
    changed = [r for r in results if r.outcome in ("done", "warning", "already-in-state")]
    if not topic or not changed:
        return
    things = ", ".join(sorted(str(r.thing_name) for r in changed))
    message = {
        "type": "iot-defender-containment",
        "things": [{"thing_name": r.thing_name, "outcome": r.outcome, "message": r.message} for r in changed],
    }
    try:
        responder.call(
            "sns",
            respond.parse_arn(str(topic)).get("region") or region,
            "Publish",
            TopicArn=str(topic),
            Subject=f"IoT containment: {things}"[:100],
            Message=json.dumps(message),
        )
    except Exception as exc:
        LOG.warning("containment notice to %s failed: %s", topic, error_code(exc))
