"""The harness's self-tests live in this folder, apart from the product's tests (make selftest / make unit)."""

from __future__ import annotations

from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1]


def test_no_test_module_outside_selftest():
    stray = sorted(str(p.relative_to(HARNESS)) for p in HARNESS.rglob("test_*.py") if p.parent.name != "selftest")
    assert stray == [], "move harness self-tests to tests/harness/selftest/"
