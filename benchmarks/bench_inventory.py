"""Inventory at fleet scale: API calls per thing and projected run time for 1M things, with and without fleet
indexing, against a simulated 100k-thing registry whose every API is held to its TPS quota; peak RSS of the BUILT
input at 1k vs 100k things.

Clock: the runs are timed on a *simulated* clock, real elapsed time plus the time the add-on's pacer would have
slept waiting for its quota; the loopback AWS's token buckets (one per API at the quota of
``tests.harness.aws.REGISTRY_QUOTAS_TPS``) run on the same clock, so a client calling faster than a quota is
throttled exactly as it would be, and a 100k-thing run at 10 TPS takes minutes, not hours. The throttles are
counted (0 expected: the pacer keeps every API under its quota).

Steady state: day 0 (every thing new) is the bootstrap; its link reads are taken from the emulator's store
in-process (100k HTTP calls would take the benchmark an hour) and not counted. Then hourly runs are measured with
churn between them (0.1 % of things changed, 0.05 % new things with new certificates each hour).

Projection to 1M things: each API's calls x10 at 90 % of its quota, run one after the other as the input does;
link reads stop at the run budget (3,000 s by default) and wait for the next run, so at 1M the full link sweep
takes longer than a day (reported). Writes build/bench/inventory.json.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "package" / "bin"), str(ROOT)]

from benchmarks.bench_pull import watch_peak_rss  # noqa: E402
from iot_defender import inventory  # noqa: E402
from iot_defender.aws import Account, AwsSession, ClientSettings  # noqa: E402
from iot_defender.checkpoint import InputState, MemoryJournal  # noqa: E402
from iot_defender.pipeline import RunStats, deliver  # noqa: E402
from tests.harness import runner  # noqa: E402
from tests.harness.aws import LoopbackAWS  # noqa: E402
from tests.harness.fleet import Fleet  # noqa: E402
from tests.harness.stack import start_stack  # noqa: E402

APP_DIR = ROOT / "output" / "TA-aws-iot-defender"
OUT = ROOT / "build" / "bench" / "inventory.json"
THINGS = 100_000
PROJECTED = 1_000_000
REGION = "us-east-1"
HOUR = 3600.0
T0 = 1_764_000_000.0
BUDGET = inventory.InventoryOptions().run_budget_seconds
TARGETS = {"calls_per_thing_fleet_indexing": 0.05, "projected_seconds_1m_fleet_indexing": 3600, "rss_growth_mb": 30}
LINK_OPS = ("ListThingPrincipals", "ListThingGroupsForThing")


class SimClock:
    """Real elapsed time plus simulated waits (a pacer's sleep adds to the clock instead of blocking)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self.waited = 0.0

    def __call__(self) -> float:
        return time.perf_counter() - self._start + self.waited

    def sleep(self, seconds: float) -> None:
        self.waited += max(0.0, seconds)


class Rows:
    """The lookup as the bench keeps it between runs: only what the library reads back from a prior row."""

    KEEP = (
        "links_checked_at",
        "links_due_at",
        "registry_digest",
        "certificate_ids",
        "certificate_statuses",
        "thing_groups",
        "digest",
        "account_id",
        "region",
        "thing_name",
    )

    def __init__(self) -> None:
        self.docs: Dict[str, Dict[str, Any]] = {}
        self.link_rows = 0  # certificate index rows the input would save (certificate_index), and keys it would delete
        self.link_deletes = 0

    def known(self, keys: List[str]) -> Dict[str, Dict[str, Any]]:
        return {k: self.docs[k] for k in keys if k in self.docs}

    def save(self, rows: List[Dict[str, Any]]) -> None:
        for row in rows:
            self.docs[row["_key"]] = {k: row[k] for k in self.KEEP}


class Discard:
    def write(self, event: Any) -> None:
        pass


def _session(aws: LoopbackAWS) -> AwsSession:
    account = Account(name="bench", access_key_id=aws.access_key, secret_access_key=aws.secret_key)
    return AwsSession(account, ClientSettings(max_attempts=3, retry_mode="standard"), raw_timestamps=True)


def _run(aws: LoopbackAWS, rows: Rows, now: float, pacer: inventory.Pacer, options: Any) -> inventory.InventoryResult:
    result = inventory.InventoryResult()
    pages = inventory.inventory_pages(
        _session(aws), REGION, options, result, account_id=aws.account_id, now=now, state=rows, pacer=pacer
    )

    def saving():
        for page in pages:
            rows.save(result.rows)
            rows.link_rows += len(result.link_rows)
            rows.link_deletes += len(result.link_removed)
            result.rows, result.link_rows, result.link_removed = [], [], []
            yield page

    stats = RunStats(input="inventory", stanza="bench", account="bench", region=REGION)
    deliver(
        saving(),
        state=InputState(),
        sink=Discard(),
        journal=MemoryJournal(),
        save=lambda s: None,
        stats=stats,
        keep_after=lambda s: float("-inf"),
    )
    return result


def _bootstrap(aws: LoopbackAWS, rows: Rows, options: Any) -> None:
    """Day 0: every thing new; links and groups read from the emulator's store in-process (not measured)."""
    region = aws.registry.region(aws.account_id, REGION)
    saved = inventory._thing_principals, inventory._thing_groups
    inventory._thing_principals = lambda run, name: [p.rsplit("/", 1)[-1] for p in region.thing_principals[name]]
    inventory._thing_groups = lambda run, name: list(region.things[name]["groups"])
    try:
        _run(aws, rows, T0, inventory.Pacer(quotas={}), options)
    finally:
        inventory._thing_principals, inventory._thing_groups = saved


def _churn(aws: LoopbackAWS, hour: int) -> None:
    store, account = aws.registry, aws.account_id
    for i in range(hour, THINGS, 1000):  # 0.1 % of things changed
        name = f"thing-{i:07d}"
        thing = store.region(account, REGION).things[name]
        store.put_thing(
            account, REGION, name, thing_type=thing.get("thingTypeName"),
            attributes={**thing["attributes"], "firmware": f"v{hour}"}, groups=thing["groups"],
        )  # fmt: skip
    store.seed(account, REGION, THINGS // 2000, start=THINGS + hour * 1000, created=T0 + hour * HOUR)  # 0.05 % new


def _measured(aws: LoopbackAWS, rows: Rows, hour: int, clock: SimClock, options: Any) -> Dict[str, Any]:
    _churn(aws, hour)
    aws.requests.clear()
    pacer = inventory.Pacer(clock=clock, sleep=clock.sleep)
    started = clock()
    links_before, deletes_before = rows.link_rows, rows.link_deletes
    result = _run(aws, rows, T0 + hour * HOUR, pacer, options)
    seconds = clock() - started
    records = aws.requests.snapshot()
    calls = collections.Counter(r.operation for r in records if r.status < 400 or r.status == 404)
    throttles = sum(1 for r in records if r.error_code == "ThrottlingException")
    return {
        "hour": hour,
        "things": result.things,
        "calls": dict(sorted(calls.items())),
        "calls_total": sum(calls.values()),
        "calls_per_thing": round(sum(calls.values()) / result.things, 4),
        "links_refreshed": result.links_refreshed,
        "links_deferred": result.links_deferred,
        "certificate_index_rows_saved": rows.link_rows - links_before,
        "certificate_index_keys_deleted": rows.link_deletes - deletes_before,
        "throttles": throttles,
        "simulated_seconds": round(seconds, 1),
    }


def _projection(runs: List[Dict[str, Any]], things: int) -> Dict[str, Any]:
    """1M things: calls x10 at 90 % of each quota, links cut at the run budget (see the module docstring)."""
    factor = PROJECTED / things
    calls: Dict[str, float] = collections.Counter()
    for r in runs:
        calls.update(r["calls"])
    calls = {op: n / len(runs) * factor for op, n in calls.items()}
    rate = {op: inventory.QUOTAS_TPS.get(op, 10.0) * inventory.QUOTA_SHARE for op in calls}
    other = sum(n / rate[op] for op, n in calls.items() if op not in LINK_OPS)
    refreshes = calls.get("ListThingPrincipals", 0.0)
    per_refresh = sum(1.0 / rate[op] for op in LINK_OPS if op in calls)
    listing = next((op for op in ("SearchIndex", "ListThings") if op in calls), None)
    listing_s = calls[listing] / rate[listing] if listing else 0.0
    link_room = max(0.0, BUDGET - (other - listing_s))  # links start after the bulk certificate read
    capped = min(refreshes, link_room / per_refresh) if per_refresh else 0.0
    seconds = min(other + refreshes * per_refresh, BUDGET + listing_s)
    total_calls = sum(n for op, n in calls.items() if op not in LINK_OPS) + capped * sum(
        1 for op in LINK_OPS if op in calls
    )
    return {
        "things": PROJECTED,
        "calls_per_run": round(total_calls),
        "calls_per_thing": round(total_calls / PROJECTED, 4),
        "projected_seconds": round(seconds),
        "link_refreshes_per_run": round(capped),
        "link_refreshes_wanted_per_run": round(refreshes),
        "full_link_sweep_hours": round(PROJECTED / capped, 1) if capped else None,
    }


@contextlib.contextmanager
def _environment(values: Dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _path(indexed: bool, hours: int) -> Dict[str, Any]:
    options = inventory.InventoryOptions()
    with LoopbackAWS(validate_responses=False) as aws, _environment(aws.env()):
        aws.registry.seed(aws.account_id, REGION, THINGS, created=T0 - 86400)
        if indexed:
            aws.registry.set_indexing(aws.account_id, REGION, "REGISTRY", "VIOLATIONS", "STATUS")
        rows = Rows()
        _bootstrap(aws, rows, options)
        clock = SimClock()
        aws.faults.clock = clock
        aws.faults.enable_registry_quotas()
        runs = [_measured(aws, rows, hour, clock, options) for hour in range(1, hours + 1)]
    per_thing = sum(r["calls_total"] for r in runs) / sum(r["things"] for r in runs)
    return {
        "runs": runs,
        "calls_per_thing": round(per_thing, 4),
        "throttles": sum(r["throttles"] for r in runs),
        "simulated_seconds_per_run": round(sum(r["simulated_seconds"] for r in runs) / len(runs), 1),
        "projection_1m": _projection(runs, THINGS),
    }


def _rss_run(n: int, app_dir: Path, tmp: Path) -> Dict[str, Any]:
    """The built input script, 1st run over ``n`` things with fleet indexing (KV stand-in, real pacing, a 60 s
    link budget so the run ends); peak RSS of the script process."""
    stack = start_stack(
        tmp / f"rss{n}",
        app_dir,
        Fleet(seed=5, things=5, days=1, compromised=0),
        account="bench",
        install={"registry": False, "incidents": False, "defender": False},
        aws_options={"validate_responses": False},
    )
    try:
        stack.aws.registry.seed(stack.aws.account_id, REGION, n)
        stack.aws.registry.set_indexing(stack.aws.account_id, REGION, "REGISTRY", "VIOLATIONS", "STATUS")
        home = stack.home
        script = home.app_path / "bin" / "iot_defender_inventory.py"
        params = {"account": "bench", "regions": REGION, "index": "main", "run_budget_seconds": "60"}
        document = runner.input_xml("iot_defender_inventory", {"rss": params}, home, stack.splunkd, home.app_name)
        env = runner.script_env(home, {"AWS_ENDPOINT_URL": stack.aws.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true"})
        with tempfile.TemporaryFile() as stdout:
            started = time.perf_counter()
            proc = subprocess.Popen(
                runner.python_command(script),
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=env,
                cwd=str(home.root),
            )
            peak = {"kb": 0}
            watcher = threading.Thread(target=watch_peak_rss, args=(proc.pid, peak), daemon=True)
            watcher.start()
            proc.stdin.write(document.encode())
            proc.stdin.close()
            proc.wait()
            seconds = time.perf_counter() - started
            watcher.join(timeout=1)
            stdout.seek(0)
            events = stdout.read().count(b"<event ")
        if proc.returncode != 0:
            raise RuntimeError(f"input failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        rows = len(stack.splunkd.kv_collection("iot_thing_inventory"))
    finally:
        stack.stop()
    return {
        "things": n,
        "events": events,
        "kv_rows": rows,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak["kb"] / 1024, 1),
    }


def run() -> Dict[str, Any]:
    if not (APP_DIR / "bin" / "iot_defender_inventory.py").exists():
        raise RuntimeError("build the add-on first (make build)")
    result: Dict[str, Any] = {
        "clock": "simulated: real elapsed + the pacer's quota waits; loopback token buckets on the same clock",
        "things": THINGS,
        "run_budget_seconds": BUDGET,
        "interval_seconds": HOUR,
    }
    result["fleet_indexing"] = _path(True, 2)
    result["per_thing"] = _path(False, 1)
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp) / "app" / APP_DIR.name
        shutil.copytree(APP_DIR, app_dir, symlinks=True)
        small = _rss_run(1_000, app_dir, Path(tmp))
        large = _rss_run(THINGS, app_dir, Path(tmp))
    result["memory"] = {
        "small": small,
        "large": large,
        "growth_mb": round(large["peak_rss_mb"] - small["peak_rss_mb"], 1),
    }
    fi = result["fleet_indexing"]
    result["targets"] = {
        "calls_per_thing_fleet_indexing": {
            "measured": fi["calls_per_thing"],
            "limit": TARGETS["calls_per_thing_fleet_indexing"],
        },
        "projected_seconds_1m_fleet_indexing": {
            "measured": fi["projection_1m"]["projected_seconds"],
            "limit": TARGETS["projected_seconds_1m_fleet_indexing"],
        },
        "rss_growth_mb": {"measured": result["memory"]["growth_mb"], "limit": TARGETS["rss_growth_mb"]},
    }
    for target in result["targets"].values():
        target["met"] = target["measured"] <= target["limit"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
