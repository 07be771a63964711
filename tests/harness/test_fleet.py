"""The fleet simulator: determinism, realism of the compromise signal, and agreement with what the emulator serves."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest

from tests.fixtures import sample
from tests.harness.aws import LoopbackAWS, check_shape
from tests.harness.fleet import (
    ALLOWED_TCP,
    EGRESS_THRESHOLD,
    ML_PROFILE,
    PROTECTED_GROUP,
    RULE_PROFILE,
    SLOT,
    Fleet,
)

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def fleet():
    return Fleet(seed=7, things=50, days=3, now=NOW)


@pytest.fixture(scope="module")
def installed(fleet):
    with LoopbackAWS(seed=7) as aws:
        aws.clock.freeze(NOW)
        fleet.install(aws, registry=None)
        yield aws
        assert not aws.internal_errors


def _key(e):
    return (e["violationId"], e["violationEventType"], e["violationEventTime"].timestamp())


def test_same_seed_same_fleet(fleet):
    again = Fleet(seed=7, things=50, days=3, now=NOW)
    assert again.digest() == fleet.digest()
    assert [_key(e) for e in again.violation_events] == [_key(e) for e in fleet.violation_events]
    assert Fleet(seed=8, things=50, days=3, now=NOW).digest() != fleet.digest()
    assert Fleet(seed=7, things=51, days=3, now=NOW).digest() != fleet.digest()


def test_inventory_shape(fleet):
    names = [t.name for t in fleet.things]
    assert len(names) == len(set(names)) == 50
    assert "pump-station-017" in names
    assert all(re.fullmatch(r"(pump-station|valve-controller|flow-meter|rtu-gateway)-\d{3}", n) for n in names)
    for th in fleet.things:
        assert set(th.attributes) == {"site", "owner", "model"}
        assert th.attributes["site"] in th.groups
        assert re.fullmatch(r"[0-9a-f]{64}", th.certificate.certificate_id)
        assert th.certificate.pem.startswith("-----BEGIN CERTIFICATE-----")
        assert all(re.fullmatch(r"[a-zA-Z0-9_.,@/:#=\[\]-]*", v) for v in th.attributes.values())
    statuses = {th.certificate.status for th in fleet.things}
    assert statuses == {"ACTIVE", "INACTIVE", "REVOKED"}
    assert any(PROTECTED_GROUP in th.groups for th in fleet.things)
    assert len(fleet.compromised_things) == 3
    profiles = {p["name"]: p for p in fleet.security_profiles()}
    tcp = next(b for b in profiles[RULE_PROFILE]["behaviors"] if b["name"] == "AuthorizedTcpPorts")
    assert tcp["criteria"]["value"]["ports"] == [22, 443, 8883]
    udp = next(b for b in profiles[RULE_PROFILE]["behaviors"] if b["name"] == "AuthorizedUdpPorts")
    assert udp["criteria"]["value"]["ports"] == [53, 123]
    assert ML_PROFILE in profiles


def test_compromised_things_show_the_signal_in_their_metrics(fleet):
    assert fleet.compromises
    for c in fleet.compromises:
        th = fleet.thing_by_name[c.thing_name]
        before = fleet.metrics_at(c.thing_name, c.start - SLOT)
        during = fleet.metrics_at(c.thing_name, c.start)
        assert c.port in (21, 23)
        assert c.port not in before["aws:listening-tcp-ports"]["ports"]
        assert c.port in during["aws:listening-tcp-ports"]["ports"]
        assert during["aws:num-listening-tcp-ports"]["count"] == len(during["aws:listening-tcp-ports"]["ports"])
        assert c.new_cidr not in before["aws:destination-ip-addresses"]["cidrs"]
        assert c.new_cidr in during["aws:destination-ip-addresses"]["cidrs"]
        assert c.new_cidr.startswith("203.0.113.") and c.new_cidr.endswith("/32")
        assert 10 <= c.egress_factor <= 50
        assert during["aws:all-bytes-out"]["count"] >= 10 * 0.7 * th.bytes_mean > EGRESS_THRESHOLD
        assert before["aws:all-bytes-out"]["count"] < EGRESS_THRESHOLD
        if c.end is not None:
            after = fleet.metrics_at(c.thing_name, c.end)
            assert c.port not in after["aws:listening-tcp-ports"]["ports"]
    compromised = set(fleet.compromised_things)
    for th in fleet.things:
        if th.name in compromised:
            continue
        for t in fleet.slots()[::7]:
            m = fleet.metrics_at(th.name, t)
            assert set(m["aws:listening-tcp-ports"]["ports"]) <= set(ALLOWED_TCP)
            assert not any(c.startswith("203.0.113.") for c in m["aws:destination-ip-addresses"]["cidrs"])
            assert m["aws:all-bytes-out"]["count"] < EGRESS_THRESHOLD


def test_violation_ground_truth_is_consistent(fleet):
    events = fleet.violation_events
    assert events == sorted(events, key=lambda e: (e["violationEventTime"], e["violationId"], e["violationEventType"]))
    assert all(e["violationEventTime"] <= NOW for e in events)
    assert all(e["violationEventTime"] >= NOW - dt.timedelta(days=3) for e in events)
    by_id = {}
    for e in events:
        by_id.setdefault(e["violationId"], []).append(e)
    for vid, evs in by_id.items():
        assert evs[0]["violationEventType"] == "in-alarm", vid
        assert len(evs) <= 2
        if len(evs) == 2:
            assert evs[1]["violationEventType"] in ("alarm-cleared", "alarm-invalidated")
    active_ids = {a["violationId"] for a in fleet.active_violations}
    assert active_ids == {vid for vid, evs in by_id.items() if len(evs) == 1}
    types = {e["violationEventType"] for e in events}
    assert types == {"in-alarm", "alarm-cleared", "alarm-invalidated"}
    for c in fleet.compromises:
        vids = [
            v
            for v, evs in by_id.items()
            if evs[0]["thingName"] == c.thing_name and evs[0]["behavior"]["name"] == "AuthorizedTcpPorts"
        ]
        assert len(vids) == 1
        port_alarm = by_id[vids[0]]
        assert c.port in port_alarm[0]["metricValue"]["ports"]
        assert port_alarm[0]["behavior"]["criteria"]["comparisonOperator"] == "in-port-set"
        assert (c.end is None) == (len(port_alarm) == 1)
    ml = [e for e in events if e["securityProfileName"] == ML_PROFILE]
    assert ml and all("confidenceLevel" in e["violationEventAdditionalInfo"] for e in ml)
    assert fleet.late_events and all(vis > e["violationEventTime"] for e, vis in fleet.late_events)


def test_emulator_pages_out_the_ground_truth(fleet, installed):
    iot = installed.client("iot")
    window = {"startTime": NOW - dt.timedelta(days=4), "endTime": NOW}

    def page_all(page_size):
        return [
            e
            for p in iot.get_paginator("list_violation_events").paginate(
                **window, PaginationConfig={"PageSize": page_size}
            )
            for e in p["violationEvents"]
        ]

    visible = fleet.visible_violation_events(NOW)
    assert len(visible) < len(fleet.violation_events)  # some arrive late
    got = page_all(250)
    assert [_key(e) for e in got] == [_key(e) for e in visible]
    assert got == visible  # full equality: behavior, metricValue, additional info
    assert [_key(e) for e in page_all(7)] == [_key(e) for e in visible]
    installed.clock.freeze(NOW + dt.timedelta(hours=1))
    try:
        assert [_key(e) for e in page_all(250)] == [_key(e) for e in fleet.violation_events]
    finally:
        installed.clock.freeze(NOW)
    active = [a for p in iot.get_paginator("list_active_violations").paginate() for a in p["activeViolations"]]
    assert sorted(a["violationId"] for a in active) == sorted(a["violationId"] for a in fleet.active_violations)
    for c in fleet.compromises:
        mine = iot.list_violation_events(thingName=c.thing_name, securityProfileName=RULE_PROFILE, **window)
        names = {e["behavior"]["name"] for e in mine["violationEvents"]}
        assert {"AuthorizedTcpPorts", "EgressBytes", "AuthorizedDestinations"} <= names


def test_emulator_serves_fleet_audits(fleet, installed):
    iot = installed.client("iot")
    window = {"startTime": NOW - dt.timedelta(days=4), "endTime": NOW}
    tasks = [t for p in iot.get_paginator("list_audit_tasks").paginate(**window) for t in p["tasks"]]
    assert [t["taskId"] for t in tasks] == [t["taskId"] for t in fleet.audit_tasks]
    kinds = {(t["taskType"], t["taskStatus"]) for t in tasks}
    assert kinds == {
        ("SCHEDULED_AUDIT_TASK", "COMPLETED"),
        ("ON_DEMAND_AUDIT_TASK", "COMPLETED"),
        ("ON_DEMAND_AUDIT_TASK", "IN_PROGRESS"),
    }
    failed = 0
    all_findings = []
    for t in fleet.audit_tasks:
        d = iot.describe_audit_task(taskId=t["taskId"])
        if d["taskStatus"] != "COMPLETED":
            continue
        for check, det in d["auditDetails"].items():
            if det["checkRunStatus"] == "FAILED":
                failed += 1
                assert check == "LOGGING_DISABLED_CHECK" and det["errorCode"] == "INSUFFICIENT_PERMISSIONS"
        fs = [f for p in iot.get_paginator("list_audit_findings").paginate(taskId=t["taskId"]) for f in p["findings"]]
        assert len(fs) == sum(det.get("nonCompliantResourcesCount", 0) for det in d["auditDetails"].values())
        all_findings.extend(fs)
    assert failed == 1
    assert sorted(f["findingId"] for f in all_findings) == sorted(f["findingId"] for f in fleet.findings)
    assert any(f["isSuppressed"] for f in all_findings)
    checks = {f["checkName"] for f in all_findings}
    assert {
        "DEVICE_CERTIFICATE_EXPIRING_CHECK",
        "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
        "CONFLICTING_CLIENT_IDS_CHECK",
        "DEVICE_CERTIFICATE_SHARED_CHECK",
        "LOGGING_DISABLED_CHECK",
    } <= checks
    model = iot.meta.service_model.operation_model("ListAuditFindings").output_shape
    wire = json.loads(json.dumps({"findings": fleet.findings}, default=lambda o: o.timestamp()))
    assert check_shape(model, wire) == []
    # the in-progress task completes ten minutes after ``now`` with its pending findings
    running = next(t for t in fleet.audit_tasks if t["taskStatus"] == "IN_PROGRESS")
    installed.clock.freeze(NOW + dt.timedelta(minutes=11))
    try:
        assert iot.describe_audit_task(taskId=running["taskId"])["taskStatus"] == "COMPLETED"
        assert iot.list_audit_findings(taskId=running["taskId"])["findings"]
    finally:
        installed.clock.freeze(NOW)


def test_metric_values_and_export_messages(fleet, installed):
    iot = installed.client("iot")
    c = fleet.compromises[0]
    series = [
        d
        for p in iot.get_paginator("list_metric_values").paginate(
            thingName=c.thing_name,
            metricName="aws:listening-tcp-ports",
            startTime=dt.datetime.fromtimestamp(c.start - 3600, dt.timezone.utc),
            endTime=dt.datetime.fromtimestamp(c.start + 3600, dt.timezone.utc),
            PaginationConfig={"PageSize": 100},
        )
        for d in p["metricDatumList"]
    ]
    assert len(series) == 25
    flagged = [d["timestamp"].timestamp() for d in series if c.port in d["value"]["ports"]]
    assert flagged and min(flagged) == c.start
    msgs = fleet.metrics_export_messages(things=[c.thing_name])
    assert len(msgs) == 13  # one per 5-minute slot over the last hour, both ends included
    exported = sample("metrics-export")
    assert set(msgs[0]) == set(exported)
    assert [m["name"] for m in msgs[0]["metrics"]] == [m["name"] for m in exported["metrics"]]
    for m in msgs[0]["metrics"]:
        assert set(m) <= {"name", "thing", "value", "version", "timestamp", "dimension"}
        assert m["timestamp"] % 1000 == 0 and m["timestamp"] > 1e12  # epoch milliseconds
    last = msgs[-1]["metrics"]
    assert last[0]["timestamp"] == int(NOW.timestamp() * 1000)


def test_install_registry_through_boto3():
    small = Fleet(seed=3, things=12, days=1, now=NOW, compromised=1)
    with LoopbackAWS(seed=3) as aws:
        summary = small.install(aws, registry="boto3")
        assert summary["registry_things"] == 12
        iot = aws.client("iot")
        things = [t for p in iot.get_paginator("list_things").paginate() for t in p["things"]]
        assert sorted(t["thingName"] for t in things) == sorted(t.name for t in small.things)
        th = small.things[0]
        desc = iot.describe_thing(thingName=th.name)
        assert desc["attributes"] == th.attributes and desc["thingTypeName"] == th.thing_type
        assert iot.list_thing_principals(thingName=th.name)["principals"] == [th.certificate.arn]
        for t in small.things:
            cd = iot.describe_certificate(certificateId=t.certificate.certificate_id)["certificateDescription"]
            assert cd["status"] == t.certificate.status
        protected = iot.list_things_in_thing_group(thingGroupName=PROTECTED_GROUP)["things"]
        assert sorted(protected) == sorted(t.name for t in small.things if PROTECTED_GROUP in t.groups)
        group_arn = iot.describe_thing_group(thingGroupName=PROTECTED_GROUP)["thingGroupArn"]
        assert iot.list_attached_policies(target=group_arn)["policies"][0]["policyName"] == "DeviceTelemetryPolicy"
        assert iot.describe_thing_group(thingGroupName="line-a")["thingGroupMetadata"]["parentGroupName"] == "sites"
        inc = aws.client("ssm-incidents")
        assert inc.list_response_plans()["responsePlanSummaries"][0]["arn"] == summary["response_plan_arn"]
        assert not aws.internal_errors


def test_benchmark_scale():
    t0 = time.perf_counter()
    big = Fleet.violation_volume(100_000, now=NOW)
    built = time.perf_counter() - t0
    assert len(big.violation_events) >= 100_000
    assert len(big.things) == 2000
    assert built < 20
    with LoopbackAWS(seed=1) as aws:
        aws.clock.freeze(NOW)
        t0 = time.perf_counter()
        big.install(aws, registry=None)
        assert time.perf_counter() - t0 < 10
        iot = aws.client("iot")
        window = {"startTime": NOW - dt.timedelta(days=30), "endTime": NOW, "maxResults": 250}
        first = iot.list_violation_events(**window)
        assert len(first["violationEvents"]) == 250 and first["nextToken"]


def test_plants_change_only_their_thing_and_only_while_active():
    from tests.harness.fleet import Plant

    now = NOW.timestamp()
    plants = [
        Plant("port", "pump-station-001", now - 6 * 3600, now - 3 * 3600, 23),
        Plant("egress", "valve-controller-002", now - 6 * 3600, None, 20),
        Plant("dest", "flow-meter-003", now - 6 * 3600, None, "203.0.113.9/32"),
        Plant("auth_burst", "rtu-gateway-004", now - 6 * 3600, None, 15),
        Plant("permissive_policy", "-", now - 30 * 3600, None, "PlantedWildcardPolicy"),
        Plant("logging_disabled", "-", now - 40 * 3600),
    ]
    planted = Fleet(seed=3, things=8, days=2, now=NOW, compromised=0, plants=plants)
    clean = Fleet(seed=3, things=8, days=2, now=NOW, compromised=0)
    before, during, after = now - 7 * 3600, now - 4 * 3600, now - 1800
    assert planted.metrics_at("pump-station-001", before) == clean.metrics_at("pump-station-001", before)
    assert 23 in planted.metrics_at("pump-station-001", during)["aws:listening-tcp-ports"]["ports"]
    assert 23 not in planted.metrics_at("pump-station-001", after)["aws:listening-tcp-ports"]["ports"]
    bytes_planted = planted.metrics_at("valve-controller-002", during)["aws:all-bytes-out"]["count"]
    assert bytes_planted == 20 * clean.metrics_at("valve-controller-002", during)["aws:all-bytes-out"]["count"]
    assert "203.0.113.9/32" in planted.metrics_at("flow-meter-003", during)["aws:destination-ip-addresses"]["cidrs"]
    clean_auth = clean.metrics_at("rtu-gateway-004", during)["aws:num-authorization-failures"]["count"]
    assert planted.metrics_at("rtu-gateway-004", during)["aws:num-authorization-failures"]["count"] == clean_auth + 15
    for other in ("pump-station-005", "valve-controller-006"):
        assert planted.metrics_at(other, during) == clean.metrics_at(other, during)
    # audit plants: the policy finding only in audits that start after the plant, logging compliant before it
    policy = [
        f
        for f in planted.findings
        if f["nonCompliantResource"]["resourceIdentifier"].get("policyVersionIdentifier", {}).get("policyName")
        == "PlantedWildcardPolicy"
    ]
    assert policy and all(f["taskStartTime"].timestamp() >= now - 30 * 3600 for f in policy)
    logging = [f for f in planted.findings if f["checkName"] == "LOGGING_DISABLED_CHECK"]
    assert logging and all(f["taskStartTime"].timestamp() >= now - 40 * 3600 for f in logging)
    assert any(f["checkName"] == "LOGGING_DISABLED_CHECK" for f in clean.findings)


def test_active_violations_at_now_are_the_fleets_active_violations(fleet):
    at_now = fleet.active_violations_at(fleet.now_epoch)
    assert [v["violationId"] for v in at_now] == [v["violationId"] for v in fleet.active_violations]
    states = {v["violationId"]: v.get("verificationState") for v in fleet.active_violations}
    assert {v["violationId"]: v.get("verificationState") for v in at_now} == states
    # at any earlier time: exactly the violations whose in-alarm event happened and whose closing one had not
    events = fleet.violation_events
    seen = 0
    for hours in range(1, 60):
        t = fleet.now_epoch - hours * 3600
        active = {v["violationId"] for v in fleet.active_violations_at(t)}
        expected = set()
        for vid in {e["violationId"] for e in events}:
            mine = [e for e in events if e["violationId"] == vid and e["violationEventTime"].timestamp() <= t]
            if mine and max(mine, key=lambda e: e["violationEventTime"])["violationEventType"] == "in-alarm":
                expected.add(vid)
        assert active == expected, hours
        seen += len(active)
    assert seen > 0
