"""Detections at fleet scale: per detection and baseline, events scanned, KV rows read and written, truncations,
planted/found/false positives, for today's fleet and the 100,000-thing fleet (tests/knowledge/scale.py), with a
linear projection to 1M things (per-run work of these searches grows with things). Writes
build/bench/detections.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict

from tests.knowledge import behaviour, scale

OUT = Path(__file__).resolve().parents[1] / "build" / "bench" / "detections.json"


def _figures(outcome: Any, rows: Any, things: int) -> Dict[str, Any]:
    scores = {f"IoT Defender - {r[0]} - Rule": r for r in rows}
    out: Dict[str, Any] = {}
    for name, runs in sorted(outcome.runs.items()):
        score = scores.get(name)
        out[name] = {
            "things": things,
            "runs": runs,
            "events_scanned_per_run": outcome.events_read.get(name, 0) // max(runs, 1),
            "kv_rows_read_per_run": outcome.kv_read.get(name, 0) // max(runs, 1),
            "kv_rows_written_per_run": outcome.kv_written.get(name, 0) // max(runs, 1),
            "truncations": sum(1 for n, _t in outcome.truncations if n == name),
            "planted": score[1] if score else None,
            "found": score[2] if score else None,
            "false_positives": score[3] if score else None,
        }
    return out


def run() -> Dict[str, Any]:
    started = time.time()
    small = _figures(behaviour.simulate("ordered"), behaviour.table("ordered"), behaviour.THINGS)
    big_outcome = scale.simulate()
    big = _figures(big_outcome, scale.table(), scale.THINGS)
    factor = 1_000_000 / scale.THINGS
    # per-run work of these searches is per thing (events of a window, rows of those things): linear in things;
    # Splunk's caps (50,000 rows per KV query or join) are never met because no run reads a collection whole
    projection = {
        name: {
            "events_scanned_per_run": int(v["events_scanned_per_run"] * factor),
            "kv_rows_read_per_run": int(v["kv_rows_read_per_run"] * factor),
            "kv_rows_written_per_run": int(v["kv_rows_written_per_run"] * factor),
            "kv_batch_saves_per_run": -(-int(v["kv_rows_written_per_run"] * factor) // 1000),
        }
        for name, v in big.items()
    }
    kv = {n: {"rows_100k": rows, "rows_1M": int(rows * factor)} for n, rows in big_outcome.kv_rows.items()}
    result = {
        "today": small,
        "scale_100k": big,
        "kv_collections_100k": kv,
        "projection_1M": projection,
        "truncations_100k": len(big_outcome.truncations),
        "seconds": round(time.time() - started, 1),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT} ({result['seconds']} s; truncations at 100k: {result['truncations_100k']})")
    return result


if __name__ == "__main__":
    run()
