"""`make demo`: the whole flow against a local emulated fleet, exactly as Splunk and AWS would run it.

1. Starts the loopback splunkd stand-in and loopback AWS (moto + the Device Defender / Incident Manager
   emulator), seeds a deterministic fleet with compromised things, and configures an AWS account in the add-on
   the way the Configuration page stores it (secret in storage/passwords).
2. Pull: runs the BUILT inputs (audit, violations, inventory) as splunkd does.
3. Push: feeds the fleet's metrics-export messages and the audit SNS notification through the Firehose
   transform Lambda, as Firehose would, and keeps the HEC events it returns.
4. Respond: the SOC flow on the compromised thing: quarantine, incident, release (the built alert actions).

Every event Splunk would index goes to build/demo/events.jsonl (time, sourcetype, source, host, index, event);
AWS state before/after the response goes to build/demo/aws-state.json, the IAM actions of the add-on's calls to
build/demo/aws-operations.json; a summary is printed.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT / "package" / "bin", ROOT / "infra" / "ingestion" / "functions" / "transform", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.fixtures import sample  # noqa: E402
from tests.harness import runner  # noqa: E402
from tests.harness.addon_calls import AddonCalls  # noqa: E402
from tests.harness.demo_respond import demo_response_flow  # noqa: E402
from tests.harness.fleet import Fleet  # noqa: E402
from tests.harness.stack import Stack, start_stack  # noqa: E402

APP_DIR = ROOT / "output" / "TA-aws-iot-defender"
OUT = ROOT / "build" / "demo"
ACCOUNT = "demo"
INDEX = "iot"


def record(event: Dict[str, Any]) -> Dict[str, Any]:
    return {k: event.get(k) for k in ("time", "sourcetype", "source", "host", "index", "event")}


def run_inputs(stack: Stack) -> List[Dict[str, Any]]:
    home, splunkd, env = stack.home, stack.splunkd, stack.script_env()
    stanzas = {
        "iot_defender_audit": {"audit": {"account": ACCOUNT, "backfill_days": "7", "index": INDEX}},
        "iot_defender_violations": {
            "violations": {"account": ACCOUNT, "backfill_hours": "96", "collect_active_violations": "1", "index": INDEX}
        },
        "iot_defender_inventory": {"inventory": {"account": ACCOUNT, "index": INDEX}},
    }
    indexed: List[Dict[str, Any]] = []
    for input_name, stanza in stanzas.items():
        result = runner.run_input(home, input_name, stanza, standin=splunkd, env=env, timeout=300)
        if result.exit_code != 0:
            raise SystemExit(f"{input_name} failed: {result.stderr[-5:]}")
        indexed.extend(record(e) for e in result.events)
    return indexed


def firehose_invocation(payloads: List[Dict[str, Any]], account_id: str, region: str) -> Dict[str, Any]:
    return {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": f"arn:aws:firehose:{region}:{account_id}:deliverystream/iot-defender-to-splunk",
        "region": region,
        "records": [
            {
                "recordId": f"{n:056d}",
                "approximateArrivalTimestamp": int(time.time() * 1000),
                "data": base64.b64encode(json.dumps(p).encode()).decode(),
            }
            for n, p in enumerate(payloads)
        ],
    }


def decode_hec(data: str) -> List[Dict[str, Any]]:
    text = base64.b64decode(data).decode("utf-8")
    decoder, position, out = json.JSONDecoder(), 0, []
    while position < len(text):
        event, position = decoder.raw_decode(text, position)
        out.append(event)
    return out


def run_push(fleet: Fleet) -> Dict[str, Any]:
    """Metrics exports of the last hour (every thing) and around each compromise, and the sample audit
    notification, through Firehose."""
    import app as transform  # the Lambda's own module: infra/ingestion/functions/transform/app.py

    payloads: List[Dict[str, Any]] = list(fleet.metrics_export_messages())
    # and each compromised thing from two hours before its compromise to 50 minutes after: the moment a SOC looks
    # for (a port and a destination that were not there before), which the dashboards' "appeared" panels show
    for compromise in fleet.compromises:
        payloads.extend(
            fleet.metrics_export_messages(
                start=compromise.start - 7200, end=compromise.start + 3000, things=[compromise.thing_name]
            )
        )
    payloads.append(sample("sns-audit-notification"))
    payloads.append({"unrelated": "record from another producer"})
    results: collections.Counter = collections.Counter()
    indexed: List[Dict[str, Any]] = []
    log = (OUT / "transform-lambda.log").open("a")
    for start in range(0, len(payloads), 200):
        with contextlib.redirect_stdout(log):  # the Lambda's own JSON summary lines, as CloudWatch would keep them
            response = transform.lambda_handler(
                firehose_invocation(payloads[start : start + 200], fleet.account_id, fleet.region), None
            )
        for item in response["records"]:
            results[item["result"]] += 1
            if item["result"] == "Ok":
                for hec in decode_hec(item["data"]):
                    indexed.append(
                        {
                            "time": hec["time"],
                            "sourcetype": hec["sourcetype"],
                            "source": hec["source"],
                            "host": hec.get("host"),
                            "index": hec.get("index", INDEX),
                            "event": hec["event"],
                        }
                    )
    log.close()
    return {"events": indexed, "results": dict(results), "records": len(payloads)}


def owner_shown(response: Dict[str, Any]) -> bool:
    """One OpsItem and one SNS message to the owning team, each naming the owner of the thing they are about."""
    owner, items, messages = response["thing_owner"], response["ops_items"], response["owner_messages"]
    return (
        bool(owner)
        and len(items) == 1
        and items[0]["owner"].get("iot_owner") == owner
        and len(messages) == 1
        and messages[0]["message"].get("owner") == owner
        and messages[0]["message"].get("thing_name") == response["thing"]
        and messages[0]["owner_attribute"] == owner
    )


def summarize(pulled, pushed, response, fleet: Fleet) -> List[str]:
    lines = ["", "== TA-aws-iot-defender demo =="]
    by_type = collections.Counter(e["sourcetype"] for e in pulled)
    lines.append("Pull (built modular inputs, run as splunkd runs them):")
    lines += [f"  {n:6d}  {st}" for st, n in sorted(by_type.items())]
    push_types = collections.Counter(e["sourcetype"] for e in pushed["events"])
    lines.append(f"Push (Firehose transform Lambda, {pushed['records']} records: {pushed['results']}):")
    lines += [f"  {n:6d}  {st}" for st, n in sorted(push_types.items())]

    violations = [e["event"] for e in pulled if e["sourcetype"] == "aws:iot:defender:violation"]
    in_alarm = collections.Counter(v["thingName"] for v in violations if v["violationEventType"] == "in-alarm")
    lines.append(
        f"Violations: {len(violations)} events; things most often in alarm: "
        + ", ".join(f"{t} ({n})" for t, n in in_alarm.most_common(3))
    )
    risky = sorted(
        {
            (e["event"]["thing"], port)
            for e in pushed["events"]
            if e["sourcetype"] == "aws:iot:defender:metric" and e["event"]["name"] == "aws:listening-tcp-ports"
            for port in e["event"]["value"].get("ports", [])
            if port in (21, 23)
        }
    )
    lines.append(
        "Risky listening ports seen in the metrics export: " + (", ".join(f"{t}:{p}" for t, p in risky) or "none")
    )
    lines.append(f"Simulated compromised things (ground truth): {', '.join(fleet.compromised_things)}")
    checks = [
        e["event"]
        for e in pulled
        if e["sourcetype"] == "aws:iot:defender:audit:task" and e["event"].get("record_type") == "check"
    ]
    failing = collections.Counter(c["checkName"] for c in checks if c.get("checkRunStatus") != "COMPLETED_COMPLIANT")
    lines.append("Audit checks not compliant (runs): " + ", ".join(f"{c} ({n})" for c, n in failing.most_common(4)))
    findings = collections.Counter(
        e["event"]["severity"] for e in pulled if e["sourcetype"] == "aws:iot:defender:audit:finding"
    )
    lines.append(f"Audit findings by severity: {dict(findings)}")
    lines += response["summary"]
    return lines


def main() -> int:
    if not (APP_DIR / "bin" / "iot_defender_violations.py").exists():
        print("build the add-on first: make build", file=sys.stderr)
        return 2
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    started = time.time()
    stack = start_stack(OUT / "splunk-home", APP_DIR, Fleet(seed=7, things=50, days=3, compromised=3), account=ACCOUNT)
    aws, splunkd, home, fleet = stack.aws, stack.splunkd, stack.home, stack.fleet
    try:
        pulled = run_inputs(stack)
        pushed = run_push(fleet)
        response = demo_response_flow(aws, splunkd, home, APP_DIR, OUT, account=ACCOUNT)
        all_events = pulled + pushed["events"] + [record(e) for e in response["events"]]
        with (OUT / "events.jsonl").open("w") as handle:
            for event in all_events:
                handle.write(json.dumps(event, sort_keys=True, default=str) + "\n")
        calls = AddonCalls()  # the IAM test checks the add-on role grants each of them
        calls.add_all(aws.requests, "make demo")
        calls.write(OUT / "aws-operations.json")
        leaks = runner.find_secrets(runner.collect_logs(home) + [json.dumps(e) for e in all_events], splunkd.secrets())
        for line in summarize(pulled, pushed, response, fleet):
            print(line)
        print(f"\n{len(all_events)} events -> {OUT / 'events.jsonl'}   (secrets found in logs/events: {len(leaks)})")
        print(f"demo finished in {time.time() - started:.1f} s")
        return 0 if not leaks and response["restored"] and owner_shown(response) else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
