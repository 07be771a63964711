"""The violations input at Device Defender's TPS quota, end to end against the loopback emulator.

Drains a 30-day violation backlog of a 100k-thing fleet with the emulator enforcing the documented TPS quotas
(ListViolationEvents: 10 TPS per account and region, 250 events a page), running the BUILT input script as splunkd
runs it. Reports events/s against the quota-limited maximum (10 x 250 = 2,500 events/s); target >= 90 %, with no
throttling error surfaced (run status ok, errors 0; throttled answers botocore retried are counted).

Real clock, not scaled: the backlog is thinned to QUOTA_EVENTS events (a real 100k-thing fleet has millions in 30
days) so the drain takes about 100 s; the fraction of the maximum does not depend on the backlog's size beyond the
one short page that ends each slice. Writes build/bench/quota.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict

from benchmarks.bench_pull import APP_DIR, INPUT, ROOT, run_input
from tests.harness import runner
from tests.harness.aws import DEFENDER_QUOTAS_TPS
from tests.harness.fleet import Fleet
from tests.harness.stack import start_stack

OUT = ROOT / "build" / "bench" / "quota.json"
QUOTA_THINGS = 100_000
QUOTA_EVENTS = 250_000
PAGE_SIZE = 250
SUMMARY_RE = re.compile(r"iot_defender_run_summary .*")


def quota_drain(tmp: Path, app_dir: Path) -> Dict[str, Any]:
    """The violations input draining a 30-day backlog against the enforced TPS quotas."""
    fleet = Fleet.violation_volume(QUOTA_EVENTS, things=QUOTA_THINGS, days=30)
    stack = start_stack(
        tmp,
        app_dir,
        fleet,
        account="bench",
        install={"registry": False, "incidents": False},
        aws_options={"validate_responses": False},
    )
    try:
        stack.aws.faults.enable_defender_quotas()
        pulled = run_input(stack, "quota_drain")
        summary = [m.group(0) for line in runner.collect_logs(stack.home) for m in [SUMMARY_RE.search(line)] if m][-1]
        times = sorted(r.time for r in stack.aws.requests.filter(operation="ListViolationEvents"))
    finally:
        stack.stop()
    fields = dict(part.split("=", 1) for part in summary.split()[1:])
    tps = DEFENDER_QUOTAS_TPS["ListViolationEvents"]
    maximum = tps * PAGE_SIZE
    # From the first ListViolationEvents call to the answer of the last (one request interval after it, at most):
    # the drain itself, without the process start-up, the STS call and the summary logging around it.
    drain_seconds = times[-1] - times[0] + 1.0 / tps
    drain_rate = pulled["events"] / drain_seconds
    return {
        "fleet_things": QUOTA_THINGS,
        "backlog_days": 30,
        "events": pulled["events"],
        "seconds": pulled["seconds"],
        "events_per_second": pulled["events_per_second"],
        "quota_tps": tps,
        "page_size": PAGE_SIZE,
        "quota_limited_max_events_per_second": maximum,
        "fraction_of_max_wall": round(pulled["events_per_second"] / maximum, 3),
        "drain_seconds": round(drain_seconds, 3),
        "drain_events_per_second": round(drain_rate, 1),
        "fraction_of_max": round(drain_rate / maximum, 3),
        "target_fraction": 0.9,
        "list_violation_events_requests": len(times),
        "requests_per_second_while_draining": round((len(times) - 1) / (times[-1] - times[0]), 2),
        "full_page_requests_needed": -(-pulled["events"] // PAGE_SIZE),
        "throttled_answers_retried": int(fields.get("throttles", "0")),
        "status": fields.get("status"),
        "errors": int(fields.get("errors", "0")),
        "clock": "real (not scaled); fraction_of_max over the drain, fraction_of_max_wall includes start-up",
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }


def run() -> Dict[str, Any]:
    if not (APP_DIR / "bin" / f"{INPUT}.py").exists():
        raise RuntimeError("build the add-on first (make build)")
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp) / "app" / APP_DIR.name
        shutil.copytree(APP_DIR, app_dir, symlinks=True)
        result = {"quota_drain": quota_drain(Path(tmp) / "quota", app_dir)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
