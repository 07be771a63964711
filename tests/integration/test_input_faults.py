"""Fault tests of the violations and audit inputs, run as splunkd runs them: every event of the emulator's ground
truth must end up indexed exactly once (or, for a malformed record, be reported and counted while the rest is
delivered).

Figures (kills, throttles, retries) are printed with -s for the issue notes."""

from __future__ import annotations

import collections
import datetime as dt
import random
import threading
import time

import pytest

from iot_defender import events
from tests.harness import runner
from tests.harness.fleet import Fleet
from tests.harness.stack import start_stack
from tests.integration.conftest import ACCOUNT, make_stack

VIOLATIONS = "iot_defender_violations"
AUDIT = "iot_defender_audit"
FINISHED = ("COMPLETED", "FAILED", "CANCELED")
PARAMS = {"account": "prod", "backfill_hours": "96", "overlap_minutes": "15", "collect_active_violations": "0"}


@pytest.fixture
def big_stack(tmp_path, built_app):
    stack = make_stack(
        tmp_path, built_app, Fleet(seed=5, things=120, days=3, compromised=5, violation_events=40000), registry_limit=5
    )
    yield stack
    stack.stop()


@pytest.fixture
def small_stack(tmp_path, built_app):
    stack = make_stack(
        tmp_path, built_app, Fleet(seed=6, things=60, days=3, compromised=3, violation_events=3000), registry_limit=5
    )
    yield stack
    stack.stop()


def truth(stack):
    return {events.violation_key(e) for e in stack.fleet.visible_violation_events(dt.datetime.now(dt.timezone.utc))}


def indexed_keys(results):
    return collections.Counter(
        events.violation_key(e["event"]) for r in results for e in r.by_sourcetype("aws:iot:defender:violation")
    )


def run(stack, **kwargs):
    kwargs.setdefault("timeout", 300)
    return runner.run_input(
        stack.home, VIOLATIONS, {"v": dict(PARAMS)}, standin=stack.splunkd, env=stack.script_env(), **kwargs
    )


def summaries(stack):
    return [line for line in runner.collect_logs(stack.home) if "iot_defender_run_summary" in line]


def delivery_figures(stack, results):
    counts = indexed_keys(results)
    expected = truth(stack)
    lost = expected - set(counts)
    duplicated = {k: n for k, n in counts.items() if n > 1}
    print(f"expected={len(expected)} indexed={sum(counts.values())} lost={len(lost)} duplicated={len(duplicated)}")
    assert set(counts) == expected, f"lost {len(lost)}, unexpected {len(set(counts) - expected)}"
    return duplicated


def assert_exactly_once(stack, results):
    assert delivery_figures(stack, results) == {}


def kill_times(first_event: float, seed: int, after: float, n: int = 20):
    """Kill moments from shortly before the first event (measured on this machine now: start-up time varies with
    load) to ``after`` seconds past it, so kills land in start-up, HTTP waits, event writes and checkpoint writes."""
    rng = random.Random(seed)
    return [rng.uniform(max(0.3, first_event - 0.6), first_event + after) for _ in range(n)]


def test_kill_9_at_20_random_points_then_restart_loses_and_repeats_nothing(big_stack):
    # ~0.1 s per AWS call: a full run takes ~25 s, so SIGKILLs at random times land in HTTP waits, event
    # writes and checkpoint writes alike, and every run is killed before it can finish.
    big_stack.aws.faults.latency = 0.1
    # A checkpoint write as slow as an AWS call: the window between a page's events and its checkpoint (the one the
    # journal covers) is then as likely a kill target as an HTTP wait, instead of a few milliseconds that random
    # kills could all miss (seen: 15 kills mid-stream, none between events and checkpoint).
    big_stack.splunkd.faults.set_latency(0.1, r"storage/collections/data/ta_aws_iot_defender_checkpoints")
    probe = run(big_stack, kill_after_events=1)
    results = [probe] + [run(big_stack, kill_after=kill) for kill in kill_times(probe.duration, 20261122, 2.0)]
    final = run(big_stack)
    assert final.exit_code == 0 and not final.killed, final.stderr[-12:]
    results.append(final)
    kills = sum(r.killed for r in results)
    mid_stream = sum(bool(r.killed and r.events) for r in results)
    recovered = sum(int(s.split("recovered_from_journal=")[1].split()[0]) for s in summaries(big_stack))
    print(f"kills={kills} killed_after_streaming_events={mid_stream} keys_recovered_from_journal={recovered}")
    # The kills landed mid-run: during streaming, and between events and their checkpoint (journal recoveries).
    assert kills >= 12 and mid_stream >= 5 and recovered > 0
    duplicated = delivery_figures(big_stack, results)
    # Nothing is lost. splunkd's stdout protocol has no acknowledgement, so the one event whose write and
    # journal line a SIGKILL separates (a few microseconds, unless the OS deschedules the input right there)
    # can be sent again: at most one event per kill, each at most twice.
    assert all(n == 2 for n in duplicated.values())
    assert len(duplicated) <= max(1, kills // 4), f"{len(duplicated)} duplicates after {kills} kills"


@pytest.fixture
def audit_stack(tmp_path, built_app):
    fleet = Fleet(seed=8, things=2000, days=20, compromised=5)
    stack = start_stack(tmp_path, built_app, fleet, account=ACCOUNT, install={"registry": False, "incidents": False})
    yield stack
    stack.stop()


def audit_keys(result):
    """One key per audit event: tasks and per-check results by task id (+ check), findings by finding id."""
    keys = [f"finding/{e['event']['findingId']}" for e in result.by_sourcetype("aws:iot:defender:audit:finding")]
    for e in result.by_sourcetype("aws:iot:defender:audit:task"):
        data = e["event"]
        keys.append(f"{data['taskId']}/{data['record_type']}/{data.get('checkName', '')}")
    return keys


def audit_truth(fleet):
    finished = {t["taskId"] for t in fleet.audit_tasks if t.get("taskStatus") in FINISHED}
    return {f"finding/{f['findingId']}" for f in fleet.findings if f["taskId"] in finished}


def test_audit_input_killed_at_20_random_points_then_restarted_delivers_every_finding_once(audit_stack):
    # ~0.25 s per AWS call: a full run (22 tasks, each a DescribeAuditTask and a ListAuditFindings per
    # non-compliant check) takes ~30 s, so kills land while task events, findings and checkpoints are written.
    audit_stack.aws.faults.latency = 0.25
    params = {"a": {"account": ACCOUNT, "backfill_days": "21", "include_suppressed": "1"}}

    def run_audit(**kwargs):
        return runner.run_input(
            audit_stack.home, AUDIT, params, standin=audit_stack.splunkd, env=audit_stack.script_env(), **kwargs
        )

    journals = audit_stack.home.modinputs_dir / AUDIT
    left_journal = 0  # kills that landed between events and their checkpoint: the journal holds their keys

    def killed_run(**kwargs):
        nonlocal left_journal
        result = run_audit(timeout=300, **kwargs)
        left_journal += any(path.stat().st_size for path in journals.glob("*.journal"))
        return result

    probe = killed_run(kill_after_events=1)
    results = [probe] + [killed_run(kill_after=kill) for kill in kill_times(probe.duration, 20261201, 3.0)]
    final = run_audit(timeout=300)
    assert final.exit_code == 0 and not final.killed, final.stderr[-12:]
    results.append(final)
    kills = sum(r.killed for r in results)
    mid_stream = sum(bool(r.killed and r.events) for r in results)
    counts = collections.Counter(key for r in results for key in audit_keys(r))
    findings = {k for k in counts if k.startswith("finding/")}
    duplicated = {k: n for k, n in counts.items() if n > 1}
    print(
        f"audit: kills={kills} killed_after_streaming_events={mid_stream} kills_leaving_a_journal={left_journal} "
        f"findings expected={len(audit_truth(audit_stack.fleet))} indexed={len(findings)} duplicated={len(duplicated)}"
    )
    # A restarted run first re-reads (and skips) the unfinished task's events: fewer kills land mid-stream.
    assert kills >= 12 and mid_stream >= 3 and left_journal >= 3
    assert findings == audit_truth(audit_stack.fleet)
    finished = {t["taskId"] for t in audit_stack.fleet.audit_tasks if t.get("taskStatus") in FINISHED}
    assert {k.split("/")[0] for k in counts if k.endswith("/task/")} == finished
    # As for violations: at most the one event a SIGKILL separates from its journal line repeats, once.
    assert all(n == 2 for n in duplicated.values())
    assert len(duplicated) <= max(1, kills // 4), f"{len(duplicated)} duplicates after {kills} kills"


def test_half_of_all_calls_throttled(small_stack):
    small_stack.aws.faults.throttle_ratio = 0.5
    small_stack.home.write_conf(
        "ta_aws_iot_defender_settings", "advanced", {"max_attempts": "15", "retry_mode": "adaptive"}
    )
    small_stack.splunkd.reload_from_disk()
    small_stack.configure_account()
    results = [run(small_stack)]
    while "status=ok" not in summaries(small_stack)[-1] and len(results) < 4:
        results.append(run(small_stack))
    line = summaries(small_stack)[-1]
    print(line)
    assert "status=ok" in line
    throttles = sum(int(s.split("throttles=")[1].split()[0]) for s in summaries(small_stack))
    calls = sum(int(s.split("api_calls=")[1].split()[0]) for s in summaries(small_stack))
    assert throttles >= 5 and throttles >= calls // 4, (throttles, calls)  # about every other call throttled
    assert_exactly_once(small_stack, results)


def test_credentials_expiring_mid_run(big_stack):
    role = "arn:aws:iam::123456789012:role/SplunkIoTDefender"
    big_stack.aws.add_role(role, external_id="ext-id-1234")
    big_stack.aws.sts_credential_lifetime_seconds = 4
    big_stack.aws.faults.latency = 0.03
    big_stack.configure_account(role_arn=role, external_id="ext-id-1234")
    stop = threading.Event()

    def expire_now_and_then():
        while not stop.wait(0.7):
            big_stack.aws.expire_all_credentials()

    killer = threading.Thread(target=expire_now_and_then, daemon=True)
    killer.start()
    try:
        result = run(big_stack)
    finally:
        stop.set()
    line = summaries(big_stack)[-1]
    print(line)
    assert result.exit_code == 0 and "status=ok" in line
    assume_calls = big_stack.aws.requests.count("AssumeRole")
    print(f"AssumeRole calls={assume_calls}")
    assert assume_calls >= 3
    assert_exactly_once(big_stack, [result])


def test_kv_store_unavailable_at_start(small_stack):
    small_stack.splunkd.faults.kvstore_unavailable_for(5)
    started = time.time()
    result = run(small_stack)
    print(f"run with KV 503 x5 at start: {time.time() - started:.1f}s; {summaries(small_stack)[-1]}")
    assert result.exit_code == 0 and "status=ok" in summaries(small_stack)[-1]
    assert_exactly_once(small_stack, [result])


def test_a_malformed_record_is_reported_counted_and_the_rest_delivered(small_stack):
    good = dict(small_stack.fleet.violation_events[0])
    broken = {k: v for k, v in good.items() if k != "violationId"}
    broken["violationEventTime"] = good["violationEventTime"].timestamp()
    small_stack.aws.faults.malformed_next_page("ListViolationEvents", broken)
    result = run(small_stack)
    line = summaries(small_stack)[-1]
    print(line)
    assert result.exit_code == 0 and "malformed=1" in line and "status=ok" in line
    warnings = [x for x in runner.collect_logs(small_stack.home) if "malformed records reported" in x]
    assert warnings and "violationId" in warnings[0]
    assert_exactly_once(small_stack, [result])
