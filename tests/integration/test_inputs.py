"""The built modular inputs, run as splunkd runs them, against the emulator's ground truth."""

from __future__ import annotations

import collections
import datetime as dt
import fnmatch
import json
import re
import time

import pytest
from splunk_add_on_ucc_framework import dashboard as ucc_dashboard

from iot_defender import APP_ID, events
from tests.harness import runner

VIOLATIONS = "iot_defender_violations"
AUDIT = "iot_defender_audit"
INVENTORY = "iot_defender_inventory"


def violation_params(**extra):
    params = {
        "account": "prod",
        "regions": "us-east-1",
        "backfill_hours": "96",
        "overlap_minutes": "15",
        "collect_active_violations": "1",
        "index": "iot",
    }
    params.update(extra)
    return params


def keys_of(indexed):
    return [events.violation_key(e["event"]) for e in indexed]


def truth_keys(fleet, at=None):
    at = at or dt.datetime.now(dt.timezone.utc)
    return {events.violation_key(e) for e in fleet.visible_violation_events(at)}


def test_scheme_declares_every_parameter(built_app):
    scheme = runner.run_scheme(built_app, VIOLATIONS)
    args = runner.scheme_arguments(scheme)
    assert {
        "account",
        "regions",
        "backfill_hours",
        "overlap_minutes",
        "security_profile_name",
        "behavior_criteria_type",
        "collect_active_violations",
        "include_suppressed",
    } <= set(args)
    assert set(runner.scheme_arguments(runner.run_scheme(built_app, AUDIT))) >= {"account", "backfill_days"}


def test_validate_arguments_refuses_bad_values_with_a_clear_message(stack):
    ok = runner.run_validate(stack.home, VIOLATIONS, violation_params(), home=stack.home, standin=stack.splunkd)
    assert ok.ok, ok.message
    bad = runner.run_validate(
        stack.home, VIOLATIONS, violation_params(backfill_hours="5000"), home=stack.home, standin=stack.splunkd
    )
    assert not bad.ok and "backfill_hours" in bad.message
    bad_region = runner.run_validate(
        stack.home, AUDIT, {"account": "prod", "regions": "mars-1"}, home=stack.home, standin=stack.splunkd
    )
    assert not bad_region.ok and "mars-1" in bad_region.message


def test_violations_input_indexes_every_event_exactly_once_then_nothing_new(stack):
    first = runner.run_input(
        stack.home, VIOLATIONS, {"v": violation_params()}, standin=stack.splunkd, env=stack.script_env()
    )
    assert first.exit_code == 0, first.stderr
    indexed = first.by_sourcetype("aws:iot:defender:violation")
    counts = collections.Counter(keys_of(indexed))
    assert counts and max(counts.values()) == 1
    assert set(counts) == truth_keys(stack.fleet)
    sample = indexed[0]
    assert sample["index"] == "iot" and sample["source"].startswith("aws:iot:123456789012:us-east-1:")
    assert sample["event"]["account_id"] == "123456789012" and sample["event"]["region"] == "us-east-1"
    assert sample["time"] == pytest.approx(events.to_epoch(sample["event"]["violationEventTime"]), abs=0.001)
    active = first.by_sourcetype("aws:iot:defender:active_violation")
    assert {a["event"]["violationId"] for a in active} == {v["violationId"] for v in stack.fleet.active_violations}

    second = runner.run_input(
        stack.home,
        VIOLATIONS,
        {"v": violation_params(collect_active_violations="0")},
        standin=stack.splunkd,
        env=stack.script_env(),
    )
    assert second.exit_code == 0
    assert second.by_sourcetype("aws:iot:defender:violation") == []
    summary = [line for line in runner.collect_logs(stack.home) if "iot_defender_run_summary" in line]
    assert len(summary) == 2 and "status=ok" in summary[-1] and "duplicates_skipped=" in summary[-1]


def test_audit_input_indexes_tasks_checks_and_every_finding_once(stack):
    params = {"account": "prod", "backfill_days": "5", "include_suppressed": "1"}
    result = runner.run_input(stack.home, AUDIT, {"a": params}, standin=stack.splunkd, env=stack.script_env())
    assert result.exit_code == 0, result.stderr
    findings = result.by_sourcetype("aws:iot:defender:audit:finding")
    got = collections.Counter(f["event"]["findingId"] for f in findings)
    finished = {
        t["taskId"] for t in stack.fleet.audit_tasks if t.get("taskStatus") in ("COMPLETED", "FAILED", "CANCELED")
    }
    expected = {f["findingId"] for f in stack.fleet.findings if f["taskId"] in finished}
    assert max(got.values()) == 1 and set(got) == expected
    assert any(f["event"]["isSuppressed"] for f in findings)
    tasks = [e for e in result.by_sourcetype("aws:iot:defender:audit:task") if e["event"]["record_type"] == "task"]
    assert {t["event"]["taskId"] for t in tasks} == finished
    again = runner.run_input(stack.home, AUDIT, {"a": params}, standin=stack.splunkd, env=stack.script_env())
    assert again.events == []


def test_inventory_input_emits_things_and_fills_the_lookup_incrementally(stack):
    result = runner.run_input(
        stack.home, INVENTORY, {"i": {"account": "prod"}}, standin=stack.splunkd, env=stack.script_env()
    )
    assert result.exit_code == 0, result.stderr
    things = result.by_sourcetype("aws:iot:thing")
    assert things and all(t["event"]["certificates"] for t in things)
    rows = stack.splunkd.kv_collection("iot_thing_inventory")
    assert {r["thing_name"] for r in rows} == {t["event"]["thingName"] for t in things}
    assert all(r["_key"] == f"123456789012:us-east-1:{r['thing_name']}" for r in rows)
    writes_before = len(stack.splunkd.requests_to(r"storage/collections/data/iot_thing_inventory/batch_save"))
    runner.run_input(stack.home, INVENTORY, {"i": {"account": "prod"}}, standin=stack.splunkd, env=stack.script_env())
    writes_after = len(stack.splunkd.requests_to(r"storage/collections/data/iot_thing_inventory/batch_save"))
    assert writes_after == writes_before  # nothing changed, nothing rewritten


def _checkpoint(stack, stanza):
    docs = stack.splunkd.kv_collection("ta_aws_iot_defender_checkpoints")
    found = [d for d in docs if d["_key"].startswith(f"{VIOLATIONS}:{stanza}:")]
    return found[0] if found else None


def test_account_without_detect_is_recognised_once_then_rechecked_daily(stack):
    stack.aws.set_account_features("123456789012", detect=False)

    def run():
        result = runner.run_input(
            stack.home, VIOLATIONS, {"v": violation_params()}, standin=stack.splunkd, env=stack.script_env()
        )
        assert result.exit_code == 0 and result.events == [], result.stderr
        return runner.collect_logs(stack.home)

    lines = run()
    assert not [line for line in lines if "log_level=ERROR" in line], lines
    notices = [line for line in lines if "log_level=WARNING" in line and "Detect is not available" in line]
    assert len(notices) == 1, lines
    summaries = [line for line in lines if "iot_defender_run_summary" in line]
    assert "status=unavailable" in summaries[-1] and "next_check=" in summaries[-1]
    calls = stack.aws.requests.count("ListViolationEvents")
    assert calls == 1

    # Every later interval before the daily re-check: no AWS call, no new warning, still a health record.
    lines = run()
    assert stack.aws.requests.count("ListViolationEvents") == calls
    assert len([line for line in lines if "Detect is not available" in line]) == 1
    assert not [line for line in lines if "log_level=ERROR" in line]
    summaries = [line for line in lines if "iot_defender_run_summary" in line]
    assert len(summaries) == 2 and "status=unavailable" in summaries[-1]

    # A day later (the re-check time moved into the past), with Detect enabled again: collection resumes.
    document = _checkpoint(stack, "v")
    state = json.loads(document["state"])
    assert state["unavailable_until"] > time.time() + 23 * 3600
    state["unavailable_until"] = time.time() - 1
    stack.splunkd.kv.update("-", "ta_aws_iot_defender_checkpoints", document["_key"], {"state": json.dumps(state)})
    stack.aws.set_account_features("123456789012", detect=True)
    result = runner.run_input(
        stack.home, VIOLATIONS, {"v": violation_params()}, standin=stack.splunkd, env=stack.script_env()
    )
    assert result.exit_code == 0
    assert set(keys_of(result.by_sourcetype("aws:iot:defender:violation"))) == truth_keys(stack.fleet)
    summaries = [line for line in runner.collect_logs(stack.home) if "iot_defender_run_summary" in line]
    assert "status=ok" in summaries[-1]
    assert json.loads(_checkpoint(stack, "v")["state"]).get("unavailable_until") is None


def test_missing_iam_grant_is_still_an_error_every_run(stack):
    stack.aws.faults.fail_next(
        "ListViolationEvents",
        "AccessDeniedException",
        403,
        "User: arn:aws:iam::123456789012:user/splunk is not authorized to perform: iot:ListViolationEvents",
    )
    result = runner.run_input(
        stack.home, VIOLATIONS, {"v": violation_params()}, standin=stack.splunkd, env=stack.script_env()
    )
    assert result.exit_code == 0
    lines = [line for file_lines in ucc_monitoring_files(stack).values() for line in file_lines]
    errors = [line for line in lines if "log_level=ERROR" in line and "iot:ListViolationEvents" in line]
    assert errors and all('exc_l="Permission Error"' in line for line in errors)  # UCC's errors panel groups by it
    assert any("status=error" in line and "error_code=AccessDeniedException" in line for line in lines)
    assert _checkpoint(stack, "v") is None or "unavailable_until" not in _checkpoint(stack, "v")["state"]


def ucc_monitoring_files(stack):
    """The log files UCC's generated monitoring dashboard searches (its own query's ``source=`` pattern)."""
    pattern = re.search(r"source=(\S+)", ucc_dashboard.events_count.format(addon_name=APP_ID.lower())).group(1)
    files = runner.collect_log_files(stack.home)
    return {
        name: lines
        for name, lines in files.items()
        if fnmatch.fnmatch(str(stack.home.log_dir / name).lower(), pattern.lower())
    }


def test_inputs_report_events_ingested_for_ucc_monitoring(stack):
    result = runner.run_input(
        stack.home, VIOLATIONS, {"v": violation_params()}, standin=stack.splunkd, env=stack.script_env()
    )
    assert result.exit_code == 0, result.stderr
    written = collections.Counter(e["sourcetype"] for e in result.events)
    reported = collections.Counter()
    for lines in ucc_monitoring_files(stack).values():
        for line in lines:
            if "action=events_ingested" in line:
                fields = dict(re.findall(r"(\w+)=(\S+)", line.split(" | ", 1)[1]))
                assert fields["modular_input_name"] == f"{VIOLATIONS}://v" and fields["event_input"] == "v"
                assert fields["event_index"] == "iot" and fields["event_account"] == "prod"
                reported[fields["sourcetype_ingested"]] += int(fields["n_events"])
    assert written and reported == written
    # The run summaries are in the same files, where the add-on's health dashboard macro finds them too.
    assert any("iot_defender_run_summary" in line for lines in ucc_monitoring_files(stack).values() for line in lines)


def test_no_secret_appears_in_any_log_or_event(stack):
    runner.run_input(stack.home, VIOLATIONS, {"v": violation_params()}, standin=stack.splunkd, env=stack.script_env())
    texts = runner.collect_logs(stack.home)
    assert runner.find_secrets(texts, stack.splunkd.secrets()) == []
