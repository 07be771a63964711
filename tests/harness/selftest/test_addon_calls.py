"""The loopback AWS tells whose call each request was (the IAM test relies on it): the user agent is recorded,
process-wide observers hear every instance, and AddonCalls keeps only the add-on's own calls."""

from __future__ import annotations

import os

from iot_defender import USER_AGENT_EXTRA
from tests.harness.addon_calls import AddonCalls
from tests.harness.aws import LoopbackAWS, observe_requests


def test_observers_hear_each_request_with_its_user_agent_until_undone() -> None:
    heard = []
    undo = observe_requests(heard.append)
    with LoopbackAWS() as aws:
        aws.client("iot", user_agent_extra=USER_AGENT_EXTRA).list_active_violations()
        aws.client("iot").list_security_profiles()
        undo()
        aws.client("iot").list_things()
    assert [(r.operation, USER_AGENT_EXTRA in r.user_agent) for r in heard] == [
        ("ListActiveViolations", True),
        ("ListSecurityProfiles", False),
    ]
    assert [r.user_agent for r in aws.requests][:2] == [r.user_agent for r in heard]


def test_addon_calls_keep_the_add_on_s_calls_made_by_the_tests_they_listen_to(monkeypatch) -> None:
    integration = AddonCalls(only_tests="tests/integration/")
    anyone = AddonCalls()
    with LoopbackAWS() as aws:
        undo = [observe_requests(integration), observe_requests(anyone)]
        addon_iot = aws.client("iot", user_agent_extra=USER_AGENT_EXTRA)
        monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/integration/test_x.py::test_a (call)")
        addon_iot.list_active_violations()
        aws.client("iot").list_security_profiles()  # the harness's own call: not the add-on's
        monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/infra/test_response_lambdas.py::test_b (call)")
        addon_iot.list_things()  # a response Lambda's call: another role's
        aws.client("sts", user_agent_extra=USER_AGENT_EXTRA).get_caller_identity()
        for u in undo:
            u()
    assert integration.actions() == {"iot:ListActiveViolations": "tests/integration/test_x.py::test_a"}
    assert anyone.actions() == {
        "iot:ListActiveViolations": "tests/integration/test_x.py::test_a",
        "iot:ListThings": "tests/infra/test_response_lambdas.py::test_b",
        "sts:GetCallerIdentity": "tests/infra/test_response_lambdas.py::test_b",
    }
    replay = AddonCalls()
    replay.add_all(aws.requests, "make demo")
    assert set(replay.actions()) == set(anyone.actions()) and set(replay.actions().values()) == {"make demo"}
    assert os.environ["PYTEST_CURRENT_TEST"].startswith("tests/infra/")  # monkeypatch restores it afterwards
