"""Property tests: alert actions fed arbitrary result rows (what a correlation search or a notable can hand them).

Whatever the rows hold (missing fields, names AWS would refuse, unknown things, control characters, megabyte
values, repeated things, stray region/violation fields), every action answers each row with exactly one result
event in row order, with a known outcome and a message; the exit code follows the outcomes; a refused row causes
no AWS write; and nothing raises. IoT is moto in-process, fresh per example.
"""

from __future__ import annotations

from typing import Any, Dict, List

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from moto import mock_aws

import iot_defender_alert as alert
from iot_defender.events import ACTION_OUTCOMES
from iot_defender.respond import valid_thing_name
from tests.unit.test_alert_adapter import Deps, Helper
from tests.unit.test_respond_support import GROUPS, REGION, seed_registry

KNOWN_THINGS = sorted(GROUPS)  # sensor-001, sensor-002, crowded, pump-station-017 (protected through "pumps")

known = st.sampled_from(KNOWN_THINGS)
thing_names = st.one_of(
    known,
    known,
    known,  # weighted: most rows should reach AWS, not stop at validation
    st.just("no-such-thing"),
    st.from_regex(r"[a-zA-Z0-9:_-]{1,128}", fullmatch=True),
    st.text(max_size=40),
    st.text(min_size=129, max_size=300, alphabet="ab:_-"),
    st.just("x" * 1_000_000),
)
noise = st.one_of(st.text(max_size=60), st.just(""), st.just("\x00\r\n\t"), st.just("é" * 5000))
other_fields = {
    "thing": thing_names,
    "dest": thing_names,
    "violationId": st.one_of(st.from_regex(r"[a-zA-Z0-9-]{1,64}", fullmatch=True), noise),
    "region": st.sampled_from([REGION, REGION, "us-west-2", "cn-north-1", "mars-1", ""]),
    "sev": st.one_of(st.sampled_from(["1", "3", "5"]), noise),
    "orig_sid": noise,
    "note": noise,
}
plausible = {  # a row as a correlation search would make it
    "thing_name": thing_names,
    "violationId": st.uuids().map(str),
    "sev": st.sampled_from(["1", "3", "5"]),
    "note": st.text(max_size=60),
}
row = st.one_of(
    st.fixed_dictionaries(plausible, optional={k: v for k, v in other_fields.items() if k not in plausible}),
    st.fixed_dictionaries({}, optional=dict(other_fields, thing_name=thing_names)),
)
rows_strategy = st.lists(row, min_size=1, max_size=8)

ACTIONS = {
    "quarantine": (alert.QUARANTINE, {"protected_groups": "critical-infra"}),
    "release": (alert.RELEASE, {}),
    "incident": (
        alert.START_INCIDENT,
        {
            "response_plan_arn": "arn:aws:ssm-incidents::123456789012:response-plan/iot",
            "impact": "{sev}",
            "title": "IoT {thing_name}: {note}",
        },
    ),
    "verification": (alert.SET_VERIFICATION_STATE, {"verification_state": "TRUE_POSITIVE", "description": "{note}"}),
}
WRITE_PREFIXES = ("Add", "Remove", "Update", "Create", "Attach", "Detach", "Delete", "Put", "Start", "Publish")


class RecordingDeps(Deps):
    """Deps whose AWS clients record every call's operation and parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[tuple] = []

    def session(self, account_, settings):
        session = super().session(account_, settings)
        make_client, hooked = session.client, set()

        def client(service: str, region: Any = None) -> Any:
            made = make_client(service, region)
            if id(made) not in hooked:
                hooked.add(id(made))
                made.meta.events.register("provide-client-params", self._record)
            return made

        session.client = client
        return session

    def _record(self, params: Dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def writes(self) -> List[tuple]:
        return [(op, params) for op, params in self.calls if op.startswith(WRITE_PREFIXES)]


def quarantined(client: Any) -> List[str]:
    try:
        return sorted(t for t in client.list_things_in_thing_group(thingGroupName="QUARANTINED")["things"])
    except client.exceptions.ResourceNotFoundException:
        return []


@pytest.mark.parametrize("action", sorted(ACTIONS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows=rows_strategy, dry_run=st.booleans())
def test_any_rows_get_one_result_each_and_a_matching_exit_code(action: str, rows: List[Dict[str, str]], dry_run):
    chosen, params = ACTIONS[action]
    if action in ("incident", "verification"):
        dry_run = True  # their AWS side is the emulator's (tests/integration), not moto's
    with mock_aws():
        client = boto3.client("iot", region_name=REGION)
        seed_registry(client)
        if action == "release":  # something to release
            assert alert.run(Helper({"account": "prod"}, [{"thing_name": "sensor-002"}]), alert.QUARANTINE, Deps()) == 0
        helper = Helper(dict(params, account="prod", dry_run="1" if dry_run else "0"), rows)
        deps = RecordingDeps()
        code = alert.run(helper, chosen, deps)
        after = quarantined(client)

    results = helper.results()
    assert [r["orig_rid"] for r in results] == [str(n) for n in range(len(rows))]
    for result in results:
        event(f"{action}: {result['outcome']}")  # coverage, shown by --hypothesis-show-statistics
        assert result["outcome"] in ACTION_OUTCOMES
        assert result["message"].strip()
        assert len(result["message"]) < 5_000  # a megabyte row value is shown clipped, never echoed whole
    outcomes = {r["outcome"] for r in results}
    run_refused = [r for r in results if r["message"].startswith("protected thing group(s)")]
    if run_refused:  # a row's region lacks the protected group: the whole run is refused before any write
        assert len(run_refused) == len(results) and code == alert.EXIT_CONFIG
    elif "failed" in outcomes:
        assert code == alert.EXIT_FAILED
    elif outcomes & {"refused-invalid", "refused-protected", "refused-not-owned"}:
        assert code == alert.EXIT_REFUSED
    elif "conflict" in outcomes:
        assert code == alert.EXIT_CONFLICT
    elif "warning" in outcomes:  # e.g. "crowded": quarantined, but its record cannot be stored
        assert code == alert.EXIT_WARNING
    else:
        assert code == alert.EXIT_OK
    assert "failed" not in outcomes, [r["message"] for r in results if r["outcome"] == "failed"]

    # Only existing, valid, unprotected things in this region can have been quarantined, and only for real.
    if action == "quarantine" and not dry_run:
        done = {r["thing_name"] for r in results if r["outcome"] in ("done", "warning")}
        assert set(after) == done
        assert done <= {"sensor-001", "sensor-002", "crowded"}
    elif action == "release":
        released = any(r["outcome"] == "done" and r["thing_name"] == "sensor-002" for r in results)
        assert after == ([] if released else ["sensor-002"])
        assert not released or not dry_run
    else:
        assert after == []
    if dry_run:
        assert deps.writes() == []
    # A thing whose every row was refused is named by no write.
    acted_on = {r.get("thing_name") for r in results if not r["outcome"].startswith("refused")}
    refused_only = {r.get("thing_name") for r in results if r["outcome"].startswith("refused")} - acted_on
    written_things = {params.get("thingName") for _, params in deps.writes()}
    assert not (refused_only - {None}) & written_things
    # A name AWS would reject is refused before any call, reads included.
    assert all(valid_thing_name(params["thingName"]) for _, params in deps.calls if "thingName" in params)
    for result in results:
        name = result.get("thing_name")
        if name is not None and not valid_thing_name(name):
            assert result["outcome"] == "refused-invalid", result
