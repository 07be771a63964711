"""Splunk runs add-on scripts on its own Python 3.9 or 3.13: run the built scripts on both when this machine
has them (pyenv builds), with the same isolation as every other integration test."""

from __future__ import annotations

import glob
import os

import pytest

from tests.harness import runner
from tests.integration.test_inputs import violation_params

INTERPRETERS = {
    version: sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    for version in ("3.9", "3.13")
}


@pytest.fixture(params=sorted(INTERPRETERS))
def splunk_python(request, monkeypatch):
    found = INTERPRETERS[request.param]
    if not found:
        pytest.skip(f"no Python {request.param} on this machine")
    monkeypatch.setattr(runner.sys, "executable", found[-1])
    return request.param


def test_every_script_loads_and_the_violations_input_runs(stack, splunk_python):
    for name in ("iot_defender_audit", "iot_defender_violations", "iot_defender_inventory"):
        assert runner.scheme_arguments(runner.run_scheme(stack.home, name))["account"]
    result = runner.run_input(
        stack.home, "iot_defender_violations", {"v": violation_params()}, standin=stack.splunkd, env=stack.script_env()
    )
    assert result.exit_code == 0, result.stderr[-10:]
    assert result.by_sourcetype("aws:iot:defender:violation")
    alert = runner.run_alert(
        stack.home,
        "iot_set_verification_state",
        {"account": "prod", "verification_state": "BENIGN_POSITIVE", "dry_run": "1"},
        [{"violationId": stack.fleet.violation_events[0]["violationId"], "thing_name": "x"}],
        standin=stack.splunkd,
        env=stack.script_env(),
    )
    assert alert.exit_code == 0, alert.stderr[-10:]
    actions = [e for e in alert.events if e["sourcetype"] == "aws:iot:defender:action"]
    assert actions and actions[0]["event"]["outcome"] == "dry-run"
