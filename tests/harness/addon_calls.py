"""Which AWS operations the add-on's own code calls, as IAM actions, recorded by the loopback AWS.

The add-on's clients send ``TA-aws-iot-defender/<version>`` in their user agent (``iot_defender.aws``); the
harness's own clients (fleet seeding, test assertions) send plain boto3 user agents. The response Lambdas run the
same library (and so the same user agent): their calls belong to the ``infra/response`` roles, so a recorder is
told which tests to listen to (``only_tests``: the integration tests, never ``tests/infra``).

Used by the IAM test (``tests/integration/test_iam_grants.py``: the add-on role grants exactly what is called)
and by ``make demo`` (``build/demo/aws-operations.json``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Dict, Iterable, Optional

from iot_defender import USER_AGENT_EXTRA
from tests.harness.aws import RequestRecord

ADDON_USER_AGENT = USER_AGENT_EXTRA.split("/", 1)[0] + "/"

# IAM service prefix of a request's signing name, where they differ (none of the services the add-on calls today).
_IAM_PREFIX: Dict[str, str] = {}


def iam_action(record: RequestRecord) -> str:
    """``iot:ListThings`` for a ListThings request: the action IAM evaluates for that call."""
    return f"{_IAM_PREFIX.get(record.service, record.service)}:{record.operation}"


def from_addon(record: RequestRecord) -> bool:
    return ADDON_USER_AGENT in record.user_agent and record.operation != "?"


class AddonCalls:
    """Collects the IAM actions of the add-on's calls (with the first test that made each), thread-safe.

    Give it to ``tests.harness.aws.observe_requests`` to hear every LoopbackAWS of the process.
    """

    def __init__(self, only_tests: Optional[str] = None):
        self.only_tests = only_tests  # a node-id prefix such as "tests/integration/", or None for every caller
        self._lock = threading.Lock()
        self.first_caller: Dict[str, str] = {}

    def __call__(self, record: RequestRecord) -> None:
        if not from_addon(record):
            return
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
        if self.only_tests is not None and not test.startswith(self.only_tests):
            return
        with self._lock:
            self.first_caller.setdefault(iam_action(record), test or "(no test)")

    def add_all(self, records: Iterable[RequestRecord], caller: str) -> None:
        for record in records:
            if from_addon(record):
                with self._lock:
                    self.first_caller.setdefault(iam_action(record), caller)

    def actions(self) -> Dict[str, str]:
        with self._lock:
            return dict(sorted(self.first_caller.items()))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.actions(), indent=1) + "\n", encoding="utf-8")

    @staticmethod
    def read(path: Path) -> Dict[str, str]:
        return dict(json.loads(path.read_text(encoding="utf-8")))
