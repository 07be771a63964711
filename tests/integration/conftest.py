"""Integration fixtures: the built add-on, run as splunkd runs it, against the loopback splunkd stand-in and
loopback AWS (moto + the project's Device Defender / Incident Manager emulator)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.fleet import Fleet
from tests.harness.stack import Stack, start_stack

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "output" / "TA-aws-iot-defender"
ACCOUNT = "prod"


def _newest_source_mtime() -> float:
    sources = [ROOT / "VERSION", *(ROOT / "package").rglob("*"), *(ROOT / "scripts").glob("*.py")]
    return max(path.stat().st_mtime for path in sources if path.is_file() and "__pycache__" not in path.parts)


@pytest.fixture(scope="session")
def built_app() -> Path:
    """The add-on as `make build` leaves it; rebuilt here when package/ is newer, so a bare `pytest` never
    tests a stale build."""
    stamp = APP_DIR / "default" / "app.conf"
    if not stamp.exists() or stamp.stat().st_mtime < _newest_source_mtime():
        version = (ROOT / "VERSION").read_text().strip()
        subprocess.run([sys.executable, str(ROOT / "scripts" / "build.py"), "--version", version], check=True, cwd=ROOT)
    return APP_DIR


def make_stack(tmp_path: Path, built_app: Path, fleet: Fleet, registry_limit: int = 60) -> Stack:
    return start_stack(tmp_path, built_app, fleet, account=ACCOUNT, install={"registry_limit": registry_limit})


@pytest.fixture
def stack(tmp_path, built_app):
    stack = make_stack(tmp_path, built_app, Fleet(seed=11, things=40, days=3, compromised=3))
    yield stack
    stack.stop()
