"""Pull throughput and memory of the violations input, end to end, against the loopback emulator.

- events/s of the BUILT input script (XML configuration on stdin, XML event stream on stdout to a file, as
  splunkd reads it) vs events/s of bare boto3 pagination of the same emulator data in the same run, best of two
  interleaved runs on each side; target ratio >= 0.9;
- peak RSS of the input process at 1k vs 100k events; target growth <= 30 MB.
(The drain at the TPS quota is benchmarks/bench_quota.py.)

Writes build/bench/pull.json. The emulator's own response validation is off here (it is on in the tests): it
would only add the same server time to both sides.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "package" / "bin"), str(ROOT)]

from tests.harness import runner  # noqa: E402
from tests.harness.aws import LoopbackAWS  # noqa: E402
from tests.harness.fleet import Fleet  # noqa: E402
from tests.harness.stack import Stack, start_stack  # noqa: E402

APP_DIR = ROOT / "output" / "TA-aws-iot-defender"
OUT = ROOT / "build" / "bench" / "pull.json"
INPUT = "iot_defender_violations"
BACKFILL_HOURS = 30 * 24 - 1
EVENT_RE = re.compile(rb"<event ")


def bare_pagination(aws: LoopbackAWS) -> Dict[str, float]:
    client = aws.client("iot")
    now = dt.datetime.now(dt.timezone.utc)
    started = time.perf_counter()
    count = 0
    paginator = client.get_paginator("list_violation_events")
    for page in paginator.paginate(
        startTime=now - dt.timedelta(hours=BACKFILL_HOURS), endTime=now, PaginationConfig={"PageSize": 250}
    ):
        count += len(page["violationEvents"])
    seconds = time.perf_counter() - started
    return {"events": count, "seconds": round(seconds, 3), "events_per_second": round(count / seconds, 1)}


def watch_peak_rss(pid: int, peak: Dict[str, int]) -> None:
    """The child's own high-water RSS (VmHWM), read until it exits. (wait4's ru_maxrss would count the
    benchmark process itself, which the child is forked from, before its exec.)"""
    status = Path(f"/proc/{pid}/status")
    while True:
        try:
            text = status.read_text()
        except (FileNotFoundError, ProcessLookupError):
            return
        match = re.search(r"VmHWM:\s+(\d+) kB", text)
        if not match:  # a zombie has no memory lines left
            return
        peak["kb"] = max(peak["kb"], int(match.group(1)))
        time.sleep(0.02)


def run_input(stack: Stack, name: str, profile: str = "") -> Dict[str, float]:
    """Run the built script once, stdout to a file (a reader that costs nothing), and measure it."""
    home, splunkd, aws = stack.home, stack.splunkd, stack.aws
    script = home.app_path / "bin" / f"{INPUT}.py"
    params = {
        "account": "bench",
        "backfill_hours": str(BACKFILL_HOURS),
        "collect_active_violations": "0",
        "index": "main",
    }
    document = runner.input_xml(INPUT, {name: params}, home, splunkd, home.app_name)
    env = runner.script_env(home, {"AWS_ENDPOINT_URL": aws.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true"})
    with tempfile.TemporaryFile() as stdout:
        started = time.perf_counter()
        command = runner.python_command(script)
        if profile:
            command[2:2] = ["-m", "cProfile", "-o", profile]
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=str(home.root)
        )
        peak = {"kb": 0}
        watcher = threading.Thread(target=watch_peak_rss, args=(proc.pid, peak), daemon=True)
        watcher.start()
        proc.stdin.write(document.encode())
        proc.stdin.close()
        proc.wait()
        seconds = time.perf_counter() - started
        watcher.join(timeout=1)
        stderr = proc.stderr.read().decode(errors="replace")
        stdout.seek(0)
        count = len(EVENT_RE.findall(stdout.read()))
    if proc.returncode != 0:
        raise RuntimeError(f"input failed ({proc.returncode}): {stderr[-2000:]}")
    return {
        "events": count,
        "seconds": round(seconds, 3),
        "events_per_second": round(count / seconds, 1),
        "peak_rss_mb": round(peak["kb"] / 1024, 1),
    }


def make_stack(tmp: Path, n_events: int, app_dir: Path) -> Stack:
    fleet = Fleet.violation_volume(n_events, things=max(50, min(2000, n_events // 20)), days=29)
    return start_stack(
        tmp,
        app_dir,
        fleet,
        account="bench",
        install={"registry": False, "incidents": False},
        aws_options={"validate_responses": False},
    )


def run() -> Dict[str, Any]:
    if not (APP_DIR / "bin" / f"{INPUT}.py").exists():
        raise RuntimeError("build the add-on first (make build)")
    result: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # A private copy: a rebuild of output/ during the benchmark must not pull the script from under it.
        app_dir = Path(tmp) / "app" / APP_DIR.name
        shutil.copytree(APP_DIR, app_dir, symlinks=True)
        big = make_stack(Path(tmp) / "big", 100_000, app_dir)
        try:
            # Interleaved, best of two on both sides (each input run has its own stanza, so its own checkpoint,
            # and pulls the same 100k events): one slow moment of a shared 2-core machine decides nothing.
            bares, pulls = [], []
            for attempt in (1, 2):
                bares.append(bare_pagination(big.aws))
                pulls.append(run_input(big, f"throughput_{attempt}"))
        finally:
            big.stop()
        small = make_stack(Path(tmp) / "small", 1_000, app_dir)
        try:
            pulled_small = run_input(small, "small")
        finally:
            small.stop()
    bare_rate = max(b["events_per_second"] for b in bares)
    pulled = max(pulls, key=lambda p: p["events_per_second"])
    result["throughput"] = {
        "input_events": pulled["events"],
        "input_seconds": pulled["seconds"],
        "input_events_per_second": pulled["events_per_second"],
        "input_runs_events_per_second": [p["events_per_second"] for p in pulls],
        "bare_boto3_events": bares[0]["events"],
        "bare_boto3_events_per_second": bare_rate,
        "bare_runs_events_per_second": [b["events_per_second"] for b in bares],
        "ratio_input_to_bare": round(pulled["events_per_second"] / bare_rate, 3),
        "target_ratio": 0.9,
    }
    result["memory"] = {
        "peak_rss_mb_1k_events": pulled_small["peak_rss_mb"],
        "events_small": pulled_small["events"],
        "peak_rss_mb_100k_events": max(p["peak_rss_mb"] for p in pulls),  # the worse run: memory is a ceiling
        "events_large": pulled["events"],
        "growth_mb": round(max(p["peak_rss_mb"] for p in pulls) - pulled_small["peak_rss_mb"], 1),
        "target_growth_mb": 30,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
