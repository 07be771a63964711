"""Issue 17: the loser of a quarantine/release race reports ``conflict`` and a group or policy the add-on does not
own is refused (``refused-not-owned``), each an outcome of the event model with its own exit code, instead of
``failed`` with an error code to parse. Seen failing on the code before (``failed``/``Conflict`` and
``failed``/``NotOwnedByAddOn``, exit code 7 for both)."""

from __future__ import annotations

import pytest

import iot_defender_alert as alert
from iot_defender.events import ACTION_OUTCOMES, ActionResult, action_event
from tests.unit.test_alert_adapter import iot, run  # noqa: F401 (fixture)


def result(outcome: str) -> ActionResult:
    return ActionResult(action="iot_quarantine_thing", outcome=outcome, thing_name="t", message="m")


@pytest.mark.parametrize("outcome", ["conflict", "refused-not-owned"])
def test_both_are_outcomes_of_the_event_model_and_not_successes(outcome):
    assert outcome in ACTION_OUTCOMES
    event = action_event(result(outcome), when=0).data
    assert (event["outcome"], event["action_status"]) == (outcome, "failure")


@pytest.mark.parametrize(
    ("outcomes", "code"),
    [
        (["done", "conflict"], alert.EXIT_CONFLICT),
        (["conflict", "warning", "already-in-state"], alert.EXIT_CONFLICT),  # not done: worse than a warning
        (["conflict", "refused-not-owned"], alert.EXIT_REFUSED),  # a human must act whatever the race
        (["refused-not-owned"], alert.EXIT_REFUSED),
        (["refused-not-owned", "done"], alert.EXIT_REFUSED),
        (["conflict", "failed"], alert.EXIT_FAILED),
        (["conflict", "refused-invalid"], alert.EXIT_REFUSED),
    ],
)
def test_exit_codes(outcomes, code):
    assert alert._exit_code([result(o) for o in outcomes]) == code


def test_exit_code_nine_is_its_own():
    codes = [v for k, v in vars(alert).items() if k.startswith("EXIT_")]
    assert alert.EXIT_CONFLICT == 9 and codes.count(9) == 1


@pytest.mark.parametrize("group", ["site-a", "plant:7_b"])
def test_a_customer_group_as_quarantine_group_is_refused_not_owned_with_exit_code_6(iot, group):  # noqa: F811
    iot.create_thing_group(thingGroupName=group)
    rows = [{"thing_name": "sensor-001"}, {"thing_name": "sensor-002"}]
    code, helper, _ = run(alert.QUARANTINE, {"quarantine_group": group}, rows)
    outcomes = [(r["outcome"], r.get("error_code")) for r in helper.results()]
    assert outcomes == [("refused-not-owned", None)] * 2, [r["message"] for r in helper.results()]
    assert code == alert.EXIT_REFUSED
    assert all("refused before any write" in r["message"] for r in helper.results())
