"""`make bench`: run every benchmark, write build/bench/<name>.json and print the figures.

Each benchmark module exposes ``run() -> dict`` (and writes its own JSON file); targets are reported, not
asserted: speed and memory live here, not in timed tests.
"""

from __future__ import annotations

import importlib
import json
import sys
import time

BENCHMARKS = (
    "bench_pull",
    "bench_quota",
    "bench_respond",
    "bench_transform",
    "bench_inventory",
    "bench_detections",
    "bench_assets",
)


def main() -> int:
    failures = 0
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc})")
            continue
        print(f"== {name}")
        started = time.time()
        try:
            result = module.run()
        except Exception as exc:  # report and go on with the other benchmarks
            failures += 1
            print(f"   FAILED: {type(exc).__name__}: {exc}")
            continue
        print("   " + json.dumps(result, indent=2, sort_keys=True).replace("\n", "\n   "))
        print(f"   ({time.time() - started:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
