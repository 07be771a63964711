"""Content of the shipped lookups: the audit check catalogue, risky IoT ports and the editable allow-list."""

from __future__ import annotations

import csv
import re
from collections import Counter

import pytest

from tests.knowledge import fleet_events, model

# Every audit check AWS documents, with the severity its page states.
# Source: AWS IoT Device Defender Developer Guide, "Audit checks"
#   https://docs.aws.amazon.com/iot-device-defender/latest/devguide/device-defender-audit-checks.html
# (17 checks, read through the search tool's docs corpus and the guide's llms.txt index), each check's own page
# for "This check appears as <NAME> in the CLI and API" and "Severity: <level>"; cross-checked against the
# CloudFormation AWS::IoT::AccountAuditConfiguration AuditCheckConfigurations property list (the same 17).
DOCUMENTED_CHECKS = {
    "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK": "CRITICAL",
    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK": "CRITICAL",
    "DEVICE_CERTIFICATE_SHARED_CHECK": "CRITICAL",
    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK": "CRITICAL",
    "CA_CERTIFICATE_KEY_QUALITY_CHECK": "CRITICAL",
    "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK": "CRITICAL",
    "AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK": "CRITICAL",
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK": "CRITICAL",
    "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK": "MEDIUM",
    "IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK": "CRITICAL",
    "IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK": "MEDIUM",
    "CA_CERTIFICATE_EXPIRING_CHECK": "MEDIUM",
    "CONFLICTING_CLIENT_IDS_CHECK": "HIGH",
    "DEVICE_CERTIFICATE_EXPIRING_CHECK": "MEDIUM",
    "DEVICE_CERTIFICATE_AGE_CHECK": "LOW",
    "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK": "MEDIUM",
    "LOGGING_DISABLED_CHECK": "LOW",
}
# The misconfiguration check is spelled IOT_POLICY_POTENTIAL_MIS_CONFIGURATION_CHECK in CloudFormation/CDK
# material; the catalogue carries that spelling too so findings match whichever the API returns.
ALTERNATE_SPELLINGS = {"IOT_POLICY_POTENTIAL_MIS_CONFIGURATION_CHECK": "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK"}

SEVERITIES = {"CRITICAL", "HIGH", "MEDIUM", "LOW"}


def catalogue():
    return model.csv_rows("iot_defender_audit_checks.csv")


def test_every_documented_audit_check_is_in_the_catalogue_with_its_severity():
    _columns, rows = catalogue()
    by_name = {row["checkName"]: row for row in rows}
    for name, severity in DOCUMENTED_CHECKS.items():
        assert name in by_name, f"{name} is missing from the catalogue"
        assert by_name[name]["severity"] == severity, name
    assert set(by_name) == set(DOCUMENTED_CHECKS) | set(ALTERNATE_SPELLINGS)
    for alternate, documented in ALTERNATE_SPELLINGS.items():
        row, original = by_name[alternate], by_name[documented]
        assert row["api_name_note"] and not original["api_name_note"]
        assert {k: v for k, v in row.items() if k not in ("checkName", "api_name_note")} == {
            k: v for k, v in original.items() if k not in ("checkName", "api_name_note")
        }


def test_catalogue_rows_are_complete():
    columns, rows = catalogue()
    assert columns[:7] == ["checkName", "check_title", "severity", "category", "description", "remediation", "doc_url"]
    assert len({r["checkName"] for r in rows}) == len(rows)
    for row in rows:
        assert re.fullmatch(r"[A-Z_]+_CHECK", row["checkName"]), row
        assert row["severity"] in SEVERITIES, row
        assert row["category"] in {"certificates", "policies", "identity", "devices", "logging"}, row
        assert len(row["description"]) > 30 and len(row["remediation"]) > 30, row["checkName"]
        assert row["doc_url"].startswith("https://docs.aws.amazon.com/iot-device-defender/latest/devguide/"), row


def test_every_check_the_code_reports_is_in_the_catalogue():
    names = {row["checkName"] for row in catalogue()[1]}
    seen = Counter(
        i.fields["checkName"]
        for i in fleet_events.indexed()
        if i.sourcetype in ("aws:iot:defender:audit:task", "aws:iot:defender:audit:finding") and "checkName" in i.fields
    )
    assert seen and set(seen) <= names, set(seen) - names
    enriched = [i for i in fleet_events.indexed() if i.sourcetype == "aws:iot:defender:audit:finding"]
    assert all("check_title" in i.fields and "remediation" in i.fields for i in enriched)


# ------------------------------------------------------------------------------------------- risky ports

REQUIRED_RISKY = {
    (21, "tcp"),
    (23, "tcp"),
    (69, "udp"),
    (445, "tcp"),
    (1883, "tcp"),
    (2323, "tcp"),
    (5555, "tcp"),
    (7547, "tcp"),
    (502, "tcp"),
    (47808, "udp"),
    (161, "udp"),
    (1900, "udp"),
    (5683, "udp"),
    (3389, "tcp"),
    (5900, "tcp"),
}


def test_every_risky_port_has_a_service_a_risk_and_a_reason():
    columns, rows = model.csv_rows("iot_defender_risky_ports.csv")
    assert columns == ["port", "protocol", "service", "risk", "why"]
    keys = [(int(r["port"]), r["protocol"]) for r in rows]
    assert len(keys) == len(set(keys)), "one row per port and protocol"
    assert set(keys) >= REQUIRED_RISKY, REQUIRED_RISKY - set(keys)
    for row in rows:
        assert 0 < int(row["port"]) < 65536 and row["protocol"] in ("tcp", "udp"), row
        assert row["service"].strip(), row
        assert row["risk"] in ("critical", "high", "medium", "low"), row
        assert len(row["why"]) >= 40, f"port {row['port']}: give the reason it is risky"
    # MQTT over TLS and HTTPS, what AWS IoT devices are meant to use, are not "risky"
    assert (8883, "tcp") not in keys and (443, "tcp") not in keys


def test_compromised_things_ports_are_flagged():
    rows = model.csv_rows("iot_defender_risky_ports.csv")[1]
    risky = {(int(r["port"]), r["protocol"]) for r in rows if r["risk"] in ("critical", "high")}
    assert {(c.port, "tcp") for c in fleet_events.fleet().compromises} <= risky


# ------------------------------------------------------------------------------------------ allowed ports


def allowed_rows():
    return model.csv_rows("iot_defender_allowed_ports.csv")


def fleet_allowed_rows():
    """The demo fleet's own allow-list (what a user's local copy of the lookup holds), not the shipped one."""
    with (model.ROOT / "tests" / "fixtures" / "fleet_allowed_ports.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_shipped_allow_list_holds_generic_defaults_only():
    """The add-on ships defaults any AWS IoT device may need, never thing types or groups of one fleet."""
    rows = allowed_rows()[1]
    assert {r["scope"] for r in rows} == {"default"}
    assert {(r["protocol"], r["port"]) for r in rows} == {("tcp", "8883"), ("tcp", "443"), ("udp", "123")}


def test_allowed_ports_file_parses():
    columns, rows = allowed_rows()
    assert columns == ["scope", "protocol", "port", "comment"]
    assert rows
    for row in rows:
        assert re.fullmatch(r"default|thing_type:[A-Za-z0-9_.:-]+|thing_group:[A-Za-z0-9_.:-]+", row["scope"]), row
        assert row["protocol"] in ("tcp", "udp") and 0 < int(row["port"]) < 65536, row
        assert row["comment"].strip(), row
    keys = [(r["scope"], r["protocol"], r["port"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_allow_list_never_allows_a_critical_port():
    risky = {
        (r["port"], r["protocol"]) for r in model.csv_rows("iot_defender_risky_ports.csv")[1] if r["risk"] == "critical"
    }
    assert not [r for r in allowed_rows()[1] if (r["port"], r["protocol"]) in risky]


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_fleet_allow_list_fits_the_simulated_fleet(protocol):
    """The demo fleet's allow-list, read the way the saved search reads it (default, thing_type:, thing_group:), allows
    every port a healthy simulated thing listens on, and not the port a compromised thing opens."""
    rows = fleet_allowed_rows()
    f = fleet_events.fleet()

    def allowed(thing):
        scopes = {"default", f"thing_type:{thing.thing_type}"} | {f"thing_group:{g}" for g in thing.groups}
        return {int(r["port"]) for r in rows if r["scope"] in scopes and r["protocol"] == protocol}

    compromised = {c.thing_name for c in f.compromises}
    for thing in f.things:
        if thing.name in compromised:
            continue
        ports = set(thing.tcp_ports if protocol == "tcp" else thing.udp_ports)  # its healthy listening set
        assert ports <= allowed(thing), (thing.name, ports - allowed(thing))
    for c in f.compromises:
        if protocol == "tcp":
            assert c.port not in allowed(f.thing_by_name[c.thing_name])
