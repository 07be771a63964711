"""The ES asset source at fleet scale: "IoT Defender Assets - Lookup Gen" and "- Lookup Cleanup" on the SPL model.

A 100,000-thing fleet's aws:iot:thing events (one per thing per hourly inventory run) go through the Gen search: the
first load, a run where nothing changed, a run where 1 % of the things changed owner, and an hourly run on day 5,
when unchanged rows come due for renewal (each thing at its own point between half the refresh period and the
period). Then, forty days on, 5 % of the things are no longer inventoried and the Cleanup search prunes them, one
bounded batch a run. Reported per run: events read, KV rows read (asset rows the lookup returned, or rows the bounded
inputlookup returned), KV rows written and batch saves (max_documents_per_batch_save = 1,000), truncations (any cut
the SPL model's limits record: a KV query answering more than max_rows_per_query = 50,000 rows, a subsearch over its
maxout), and the model's run time. The searches run on the SPL model itself (tests/knowledge splrun/kvstore/limits). Every per-run figure of the Gen search scales with the things inventoried in the hour, so
the 1M-thing projection is x10; the Cleanup's read is bounded by iot_defender_asset_prune_batch whatever the fleet.
Writes build/bench/assets.json.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any, Dict, List

from tests.knowledge import limits
from tests.knowledge import test_assets as spec
from tests.knowledge.splrun import EventStore, Runner

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "bench" / "assets.json"
THINGS = 100_000
PROJECTED = 1_000_000
START = 1_795_000_000.0  # any time: gen_time() picks the Gen run whose window holds it
DAY = 24 * 3600.0
# transforms.conf max_ext_batch: the input rows a KV lookup sends in one query (Splunk's default 300)
MAX_EXT_BATCH = int(spec.model.conf("transforms.conf")[spec.LOOKUP].get("max_ext_batch", "300"))


def fleet(n: int) -> List[Dict[str, Any]]:
    sites = ("line-a", "line-b", "line-c")
    return [
        {
            "thingName": f"thing-{i:07d}",
            "thingTypeName": ("PumpStation", "ValveController", "FlowMeter", "RtuGateway")[i % 4],
            "attributes": {"owner": f"ot-team-{i % 7}", "site": sites[i % 3], "model": "M-1"},
            "groups": [sites[i % 3]] + (["protected-critical"] if i % 10 == 0 else []),
        }
        for i in range(n)
    ]


CUTS: List[str] = []  # every truncation the model recorded, over all runs


def counted(runner: Runner, name: str, when: float, store: EventStore) -> Any:
    table = runner.table(spec.LOOKUP)
    table.rows_read = table.rows_written = table.batch_saves = 0
    result = spec.run(runner, name, when, store, strict=False)
    CUTS.extend(str(t) for t in result.truncations)
    return result


def gen_run(runner: Runner, things: List[Dict[str, Any]], when: float) -> Dict[str, Any]:
    events = spec.thing_events(things, when)
    started = time.perf_counter()
    result = counted(runner, spec.GEN, spec.gen_time(when), EventStore(events))
    table = runner.table(spec.LOOKUP)
    return {
        "events_read": result.events_read,
        "kv_rows_read": table.rows_read,
        "kv_rows_written": table.rows_written,
        "kv_batch_saves": table.batch_saves,
        "kv_lookup_queries": math.ceil(result.events_read / MAX_EXT_BATCH),
        "model_seconds": round(time.perf_counter() - started, 1),
    }


def cleanup_runs(runner: Runner, when: float) -> Dict[str, Any]:
    reads: List[int] = []
    table = runner.table(spec.LOOKUP)
    while True:
        counted(runner, spec.CLEANUP, when + len(reads) * 3600.0, EventStore())
        reads.append(table.rows_read)
        if table.rows_written == 0:
            break
    return {"runs_until_done": len(reads) - 1, "kv_rows_read_per_run_max": max(reads), "per_run": reads[:-1]}


def run() -> Dict[str, Any]:
    CUTS.clear()
    runner = spec.runner()
    things = fleet(THINGS)
    runs = {"first_load": gen_run(runner, things, START)}
    runs["unchanged"] = gen_run(runner, things, START + 3600)
    changed = copy.deepcopy(things)
    for thing in changed[:: THINGS // (THINGS // 100)]:
        thing["attributes"]["owner"] = "new-team"
    runs["one_percent_changed"] = gen_run(runner, changed, START + 7200)
    gen_run(runner, changed, START + 5 * DAY)  # catch up (the bench skips the hours in between)
    runs["hourly_renewals_day5"] = gen_run(runner, changed, START + 5 * DAY + 3600)
    kept = changed[: THINGS - THINGS // 20]
    setup = gen_run(runner, kept, START + 40 * DAY)  # the things still inventoried, renewed on catching up
    cleanup = cleanup_runs(runner, START + 40 * DAY + 4 * 3600)
    cleanup["things_gone"] = THINGS - len(kept)
    cleanup["setup_gen_run"] = setup
    factor = PROJECTED // THINGS
    batch = int(spec.model.macros()["iot_defender_asset_prune_batch"][0])
    result = {
        "things": THINGS,
        "gen_runs": runs,
        "cleanup": cleanup,
        "truncations": len(CUTS),
        "truncations_seen": CUTS[:5],
        "kv_max_rows_per_query": limits.KV_MAX_ROWS_PER_QUERY,
        "projected_1M": {
            name: {k: v * factor for k, v in figures.items() if k != "model_seconds"} for name, figures in runs.items()
        },
        "projected_1M_cleanup_rows_read_per_run_max": min(batch, cleanup["things_gone"] * factor),
        "projected_1M_cleanup_runs": math.ceil(cleanup["things_gone"] * factor / batch),
        "published_assets_after": sum(1 for r in runner.table(spec.LOOKUP).rows if r.get("published") == "1"),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, sort_keys=True))
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, sort_keys=True))
