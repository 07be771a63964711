"""Integration fixtures: the built add-on, run as splunkd runs it, against the loopback splunkd stand-in and
loopback AWS (moto + the project's Device Defender / Incident Manager emulator)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

import pytest

from tests.harness.aws import LoopbackAWS
from tests.harness.fleet import Fleet
from tests.harness.splunkd import SplunkdStandIn, SplunkHome

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


@dataclass
class Stack:
    aws: LoopbackAWS
    splunkd: SplunkdStandIn
    home: SplunkHome
    fleet: Fleet

    def script_env(self) -> Dict[str, str]:
        """What a script gets from its host: only the endpoint redirect. Credentials come from the add-on's
        configured account (never from the environment), IMDS is off."""
        return {"AWS_ENDPOINT_URL": self.aws.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true"}

    def configure_account(self, name: str = ACCOUNT, **fields: Any) -> None:
        secret = fields.pop("aws_secret_access_key", self.aws.secret_key)
        external_id = fields.pop("external_id", "")
        base = {
            "credential_source": "access_key",
            "aws_access_key_id": self.aws.access_key,
            "partition": "aws",
            "default_region": "us-east-1",
            "role_session_name": "splunk-ta-aws-iot-defender",
        }
        base.update(fields)
        self.splunkd.create_account(name, base, {"aws_secret_access_key": secret, "external_id": external_id})


def make_stack(tmp_path: Path, built_app: Path, fleet: Fleet, registry_limit: int = 60) -> Any:
    aws = LoopbackAWS().start()
    splunkd = SplunkdStandIn().start()
    home = SplunkHome.create(tmp_path, app_dir=built_app, splunkd=splunkd)
    fleet.install(aws, registry_limit=registry_limit)
    stack = Stack(aws=aws, splunkd=splunkd, home=home, fleet=fleet)
    stack.configure_account()
    return stack


@pytest.fixture
def stack(tmp_path, built_app):
    stack = make_stack(tmp_path, built_app, Fleet(seed=11, things=40, days=3, compromised=3))
    yield stack
    stack.splunkd.stop()
    stack.aws.stop()
