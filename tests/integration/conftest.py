"""Integration fixtures: the built add-on, run as splunkd runs it, against the loopback splunkd stand-in and
loopback AWS (moto + the project's Device Defender / Incident Manager emulator)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from tests.harness.addon_calls import AddonCalls
from tests.harness.aws import observe_requests
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


# ------------------------------------------------------------------------------------- IAM: calls the add-on makes
# Every LoopbackAWS of this process reports each request; the add-on's own calls made while an integration test
# runs are kept (the response Lambdas' calls in tests/infra belong to infra/response). test_iam_grants.py runs after
# every other test of the session and compares them with infra/addon-role.
INTEGRATION_DIR = Path(__file__).resolve().parent
ADDON_CALLS = AddonCalls(only_tests="tests/integration/")
IAM_TEST_MODULE = "test_iam_grants.py"
_failed_integration_tests: List[str] = []
_deselected_integration_tests: List[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.add_cleanup(observe_requests(ADDON_CALLS))


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: List[pytest.Item]) -> None:
    """The IAM test judges what the whole session recorded: it runs last."""
    iam = [item for item in items if item.path.name == IAM_TEST_MODULE]
    items[:] = [item for item in items if item.path.name != IAM_TEST_MODULE] + iam


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed and report.nodeid.startswith("tests/integration/"):
        _failed_integration_tests.append(report.nodeid)


def pytest_deselected(items: List[pytest.Item]) -> None:
    _deselected_integration_tests.extend(i.nodeid for i in items if i.nodeid.startswith("tests/integration/"))


def whole_integration_suite_selected(config: pytest.Config) -> bool:
    """True when this session runs every integration test (a directory holding tests/integration is among the
    arguments, no integration test deselected by -k/-m/--deselect, no --lf): only then does an operation nobody
    called mean a grant nobody needs."""
    if _deselected_integration_tests or getattr(config.option, "lf", False):
        return False
    for arg in config.args:
        path_text, _, node = arg.partition("::")
        path = (config.invocation_params.dir / path_text).resolve()
        if not node and (path == INTEGRATION_DIR or path in INTEGRATION_DIR.parents):
            return True
    return False


@pytest.fixture(scope="session")
def addon_calls() -> AddonCalls:
    return ADDON_CALLS


@pytest.fixture(scope="session")
def whole_integration_suite(request: pytest.FixtureRequest) -> bool:
    return whole_integration_suite_selected(request.config)


@pytest.fixture(scope="session")
def failed_integration_tests() -> List[str]:
    return _failed_integration_tests
