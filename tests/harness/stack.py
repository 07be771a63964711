"""The whole loopback world in one call: AWS (moto + emulator), the splunkd stand-in, a fake SPLUNK_HOME with the
built add-on installed, a seeded fleet, and an AWS account configured in the add-on the way its Configuration page
stores it. Used by the integration tests, `make demo` and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from tests.harness.aws import LoopbackAWS
from tests.harness.fleet import Fleet
from tests.harness.splunkd import SplunkdStandIn, SplunkHome


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

    def configure_account(self, name: str = "prod", **fields: Any) -> None:
        """Save an account as UCC's REST handler does (secrets in storage/passwords)."""
        secret = fields.pop("aws_secret_access_key", self.aws.secret_key)
        external_id = fields.pop("external_id", "")
        base = {
            "credential_source": "access_key",
            "aws_access_key_id": self.aws.access_key,
            "partition": "aws",
            "default_region": self.aws.region,
            "role_session_name": "splunk-ta-aws-iot-defender",
        }
        base.update(fields)
        self.splunkd.create_account(name, base, {"aws_secret_access_key": secret, "external_id": external_id})

    def stop(self) -> None:
        self.splunkd.stop()
        self.aws.stop()


def start_stack(
    root: Path,
    app_dir: Path,
    fleet: Fleet,
    *,
    account: str = "prod",
    install: Optional[Dict[str, Any]] = None,
    aws_options: Optional[Dict[str, Any]] = None,
) -> Stack:
    aws = LoopbackAWS(**(aws_options or {})).start()
    splunkd = SplunkdStandIn().start()
    home = SplunkHome.create(Path(root), app_dir=app_dir, splunkd=splunkd)
    fleet.install(aws, **(install or {}))
    stack = Stack(aws=aws, splunkd=splunkd, home=home, fleet=fleet)
    stack.configure_account(account)
    return stack
