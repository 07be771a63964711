"""The three SAM templates: cfn-lint (0 errors, 0 warnings), checkov (0 failed checks, every skip justified
inline), aws-sam-translator (each template transforms), plus structural checks of what the issue asks for.

cfn-lint, checkov and aws-sam-translator live in their own venv (``.venv-infra``, ``requirements/infra.txt``:
checkov pins an old boto3) and are run by path. checkov runs once per session over ``infra/`` and once over
copies of the templates whose parameter defaults switch on every optional branch (checkov only evaluates the
resources whose conditions hold for the defaults). Nothing here talks to AWS or any network: checkov runs with
``--skip-download`` and its update check off, and any HTTP(S) client is pointed at a dead loopback proxy.
"""

from __future__ import annotations

import ast
import copy
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests.harness.aws.defender import AUDIT_CHECKS
from tests.infra.conftest import INFRA_DIR, INFRA_VENV, REPO_ROOT, TEMPLATES, load_template

PARTITION_ARN = "arn:${AWS::Partition}:"
RESPONSE_LAMBDA_ENV = {"QUARANTINE_GROUP", "ISOLATION_POLICY_NAME", "RESPONSE_PLAN_ARN", "NOTIFY_TOPIC_ARN", "MODE"}

# Read-only actions allowed on Resource "*" (list calls without a resource scope, or filtered by request
# parameters), and the one write action AWS offers no resource-level permission for.
STAR_OK_READ_ACTIONS = {
    "iot:ListAuditTasks",
    "iot:DescribeAuditTask",
    "iot:ListAuditFindings",
    "iot:DescribeAuditFinding",
    "iot:ListScheduledAudits",
    "iot:DescribeAccountAuditConfiguration",
    "iot:ListViolationEvents",
    "iot:ListActiveViolations",
    "iot:ListSecurityProfiles",
    "iot:ListMetricValues",
    "iot:ListThings",
    "iot:ListThingTypes",
    "iot:ListThingGroups",
    "iot:ListThingGroupsForThing",
    "iot:ListThingPrincipals",
    "iot:ListPrincipalThings",
    "iot:ListAttachedPolicies",
    "iot:ListCertificates",
    "iot:GetIndexingConfiguration",
}
STAR_OK_WRITE_ACTIONS_WITHOUT_RESOURCE_SUPPORT = {"iot:PutVerificationStateOnViolation", "ssm:CreateOpsItem"}

ALL_AUDIT_CHECKS = frozenset(AUDIT_CHECKS)  # the 17 checks of AWS's "Audit checks" page, as the emulator knows them

# Parameter defaults that switch on every optional resource/statement, per template (for the checkov pass).
ALL_BRANCHES = {
    "ingestion": {
        "SplunkHecTokenSecretKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555",
        "AlertTopicArn": "arn:aws:sns:us-east-1:123456789012:iot-defender-alerts",
        "TargetThingGroupName": "fleet",
        "SplunkIndex": "iot",
    },
    "response": {
        "Mode": "incident_manager",
        "CreateReplicationSet": "true",
        "EnableMlProfile": "true",
        "EngagementContactArn": "arn:aws:ssm-contacts:us-east-1:123456789012:contact/soc-oncall",
        "NotificationEmail": "soc@example.com",
        "RecoveryApprovers": "arn:aws:iam::123456789012:role/soc-lead",
        "AllowedDestinationCidrs": "203.0.113.0/24",
        "TargetThingGroupName": "fleet",
    },
    "addon-role": {
        "Regions": "us-east-1,eu-west-1",
        "ResponsePlanArn": "arn:aws:ssm-incidents::123456789012:response-plan/iot-defender-device-compromise",
        "NotifyTopicArn": "arn:aws:sns:us-east-1:123456789012:notify",
        "NotifyTopicKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555",
    },
}

# The response stack's deployment modes beside its defaults (OpsCenter, Detect available) and the all-branches
# variant (Incident Manager, every option on): each must pass cfn-lint and checkov as deployed. The accounts
# without Detect (closed to new customers on 2026-08-31) get no security profile and no Detect alert publisher.
RESPONSE_MODES = {
    "response-opscenter-without-detect": {"Mode": "opscenter", "DetectAvailable": "false", "EnableMlProfile": "true"},
    "response-sns-only-without-detect": {"Mode": "sns_only", "DetectAvailable": "false"},
    "response-incident-manager-without-detect": {
        "Mode": "incident_manager",
        "DetectAvailable": "false",
        "CreateReplicationSet": "true",
    },
    "response-sns-only": {"Mode": "sns_only", "NotificationEmail": "soc@example.com"},
}

SAM_TRANSLATE = r"""
import json, sys
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

out = {}
for path in sys.argv[1:]:
    with open(path) as handle:
        template = yaml_parse(handle.read())
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        # what `sam package` does before CloudFormation runs the transform: code goes to S3
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = "s3://example-artifacts/" + props["CodeUri"].strip("/") + ".zip"
    try:
        result = Translator(managed_policy_map={}, sam_parser=Parser()).translate(
            sam_template=template, parameter_values={}
        )
        out[path] = {"types": sorted({r["Type"] for r in result["Resources"].values()}), "template": result}
    except Exception as exc:
        out[path] = {"error": "%s: %s" % (type(exc).__name__, exc)}
print(json.dumps(out))
"""


# ----------------------------------------------------------------------------------------- helpers


def infra_tool(name: str) -> Path:
    tool = INFRA_VENV / "bin" / name
    if not tool.exists():
        pytest.fail(
            f"{tool} is missing: the infra tools live in their own venv. Create it with `make venv` "
            f"(or: python3 -m venv .venv-infra && .venv-infra/bin/pip install -r requirements/infra.txt)."
        )
    return tool


def offline_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
            "BC_SKIP_MAPPING": "TRUE",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    return env


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def branches(node: Any) -> Iterator[Any]:
    """Every concrete value an ``Fn::If`` may yield (both branches), recursively for lists of statements."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        for option in node["Fn::If"][1:]:
            yield from branches(option)
    elif isinstance(node, dict) and node == {"Ref": "AWS::NoValue"}:
        return
    else:
        yield node


def as_list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else [value]


def iam_statements(template: Dict[str, Any]) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """Every statement of every identity policy: roles, policies, managed policies, SAM function policies."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        documents: List[Any] = []
        kind = resource["Type"]
        if kind == "AWS::IAM::Role":
            documents += [policy["PolicyDocument"] for policy in props.get("Policies", [])]
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        elif kind == "AWS::Serverless::Function":
            documents += [p for p in as_list(props.get("Policies", [])) if isinstance(p, dict) and "Statement" in p]
        for document in documents:
            for statement_or_if in document["Statement"]:
                for statement in branches(statement_or_if):
                    yield name, statement


def render_sub(value: Any) -> str:
    """The text of a string or Fn::Sub (first form) for pattern checks."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return json.dumps(value)


def variant(template: Dict[str, Any], defaults: Dict[str, str]) -> Dict[str, Any]:
    changed = copy.deepcopy(template)
    for parameter, value in defaults.items():
        assert parameter in changed["Parameters"], parameter
        changed["Parameters"][parameter]["Default"] = value
    return changed


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def templates() -> Dict[str, Dict[str, Any]]:
    return {name: load_template(path) for name, path in TEMPLATES.items()}


@pytest.fixture(scope="session")
def tool_runs(tmp_path_factory: pytest.TempPathFactory, templates) -> Dict[str, subprocess.CompletedProcess]:
    """cfn-lint, checkov (infra/ and the all-branches variants) and aws-sam-translator, started together once
    per session (they are independent and mostly single-threaded), then collected."""
    cfn_lint, checkov, python = infra_tool("cfn-lint"), infra_tool("checkov"), infra_tool("python")
    variants_dir = tmp_path_factory.mktemp("checkov-variants")
    for name, defaults in ALL_BRANCHES.items():
        (variants_dir / f"{name}-all-branches.json").write_text(json.dumps(variant(templates[name], defaults)))
    for name, defaults in RESPONSE_MODES.items():
        (variants_dir / f"{name}.json").write_text(json.dumps(variant(templates["response"], defaults)))
    mode_files = sorted(str(variants_dir / f"{name}.json") for name in RESPONSE_MODES)
    checkov_args = ["--framework", "cloudformation", "--compact", "--skip-download", "-o", "json"]
    # checkov runs from inside the scanned directory with ``-d .``: it feeds each resource's file path (a
    # ``__file__`` key it adds to Environment.Variables) to CKV_AWS_45's secret regexes, and an absolute path
    # whose letters/digits/slashes run to exactly 40 characters reads as an AWS secret key. Relative paths keep
    # the verdict independent of where the checkout lives.
    commands = {
        "cfn-lint": (REPO_ROOT, [str(cfn_lint), "--format", "json", "--", *map(str, TEMPLATES.values())]),
        "cfn-lint-modes": (REPO_ROOT, [str(cfn_lint), "--format", "json", "--", *mode_files]),
        "checkov-infra": (INFRA_DIR, [str(checkov), "-d", ".", *checkov_args]),
        "checkov-variants": (variants_dir, [str(checkov), "-d", ".", *checkov_args]),
        "sam-translator": (REPO_ROOT, [str(python), "-c", SAM_TRANSLATE, *map(str, TEMPLATES.values())]),
    }
    started = {
        name: subprocess.Popen(
            command, cwd=cwd, env=offline_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, (cwd, command) in commands.items()
    }
    done = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=600)
        done[name] = subprocess.CompletedProcess(commands[name][1], process.returncode, stdout, stderr)
    return done


@pytest.fixture(scope="session")
def cfn_lint_matches(tool_runs) -> List[Dict[str, Any]]:
    done = tool_runs["cfn-lint"]
    assert done.stdout.strip(), f"cfn-lint printed nothing (rc={done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout)


@pytest.fixture(scope="session")
def cfn_lint_mode_matches(tool_runs) -> List[Dict[str, Any]]:
    done = tool_runs["cfn-lint-modes"]
    assert done.stdout.strip(), f"cfn-lint printed nothing (rc={done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout)


@pytest.fixture(scope="session")
def checkov_reports(tool_runs) -> Dict[str, List[Dict[str, Any]]]:
    reports: Dict[str, List[Dict[str, Any]]] = {}
    for name in ("infra", "variants"):
        done = tool_runs[f"checkov-{name}"]
        assert done.stdout.strip(), f"checkov ({name}) printed nothing (rc={done.returncode}): {done.stderr[-2000:]}"
        parsed = json.loads(done.stdout)
        reports[name] = parsed if isinstance(parsed, list) else [parsed]
    return reports


@pytest.fixture(scope="session")
def translated(tool_runs) -> Dict[str, Dict[str, Any]]:
    done = tool_runs["sam-translator"]
    assert done.returncode == 0, f"aws-sam-translator failed to run: {done.stderr[-3000:]}"
    raw = json.loads(done.stdout)
    return {name: raw[str(path)] for name, path in TEMPLATES.items()}


# ----------------------------------------------------------------------------------------- linters


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_cfn_lint_clean(cfn_lint_matches: List[Dict[str, Any]], name: str) -> None:
    path = str(TEMPLATES[name])
    mine = [m for m in cfn_lint_matches if os.path.abspath(m["Filename"]) == os.path.abspath(path)]
    errors_and_warnings = [m for m in mine if m["Level"] in ("Error", "Warning")]
    assert errors_and_warnings == [], json.dumps(errors_and_warnings, indent=1)


def test_cfn_lint_clean_in_every_response_mode(cfn_lint_mode_matches: List[Dict[str, Any]]) -> None:
    errors_and_warnings = [m for m in cfn_lint_mode_matches if m["Level"] in ("Error", "Warning")]
    assert errors_and_warnings == [], json.dumps(errors_and_warnings, indent=1)


def test_checkov_scanned_every_response_mode(checkov_reports) -> None:
    (variants,) = checkov_reports["variants"]
    results = variants["results"]
    scanned = {Path(c["file_path"]).stem for c in results.get("passed_checks", []) + results.get("skipped_checks", [])}
    assert set(RESPONSE_MODES) <= scanned, sorted(scanned)


def test_checkov_no_failed_checks(checkov_reports: Dict[str, List[Dict[str, Any]]]) -> None:
    for run, reports in checkov_reports.items():
        assert [r["check_type"] for r in reports] == ["cloudformation"], run
        (report,) = reports
        summary = report["summary"]
        failed = report["results"].get("failed_checks", [])
        details = [(f["check_id"], f["resource"], f["file_path"]) for f in failed]
        assert summary["failed"] == 0 and failed == [], f"{run}: {details}"
        assert summary["parsing_errors"] == 0, run
        assert summary["passed"] >= 40, f"{run}: suspiciously few checks ran: {summary}"


def test_checkov_covers_every_resource_branch(checkov_reports) -> None:
    (infra,) = checkov_reports["infra"]
    (variants,) = checkov_reports["variants"]
    # the variants switch on the Incident Manager role, extra policies and subscriptions, so more checks run
    assert variants["summary"]["passed"] > infra["summary"]["passed"]


def test_checkov_skips_are_justified_inline(templates, checkov_reports) -> None:
    skips = []
    for name, template in templates.items():
        for logical_id, resource in template["Resources"].items():
            for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", []):
                skips.append((name, logical_id, skip["id"]))
                assert len(skip.get("comment", "").strip()) >= 40, f"{name}/{logical_id} {skip['id']}: justify it"
    (infra,) = checkov_reports["infra"]
    assert infra["summary"]["skipped"] == len(skips), "every skip in the templates is one checkov applied"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_sam_translator_transforms(translated: Dict[str, Dict[str, Any]], name: str) -> None:
    result = translated[name]
    assert "error" not in result, result.get("error")
    assert not [t for t in result["types"] if t.startswith("AWS::Serverless::")]
    if name in ("ingestion", "response"):
        assert "AWS::Lambda::Function" in result["types"]


# ----------------------------------------------------------------------------------------- partitions, IAM


def arn_texts(node: Any) -> Iterator[Tuple[bool, str]]:
    """``(inside Fn::Sub, text)`` for every string that holds an ARN."""
    if isinstance(node, dict) and "Fn::Sub" in node:
        text = render_sub(node)
        if "arn:" in text:
            yield True, text
        return
    if isinstance(node, dict):
        for value in node.values():
            yield from arn_texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from arn_texts(value)
    elif isinstance(node, str) and "arn:" in node:
        yield False, node


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_arns_are_built_with_the_partition(templates, name: str) -> None:
    body = json.dumps({k: templates[name].get(k) for k in ("Resources", "Outputs", "Conditions")})
    assert "arn:aws:" not in body and "arn:aws-" not in body
    found = list(arn_texts(templates[name]["Resources"]))
    assert found
    for in_sub, text in found:
        assert in_sub and PARTITION_ARN in text, text


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_iam_no_star_resource_on_write_actions(templates, name: str) -> None:
    seen = 0
    for logical_id, statement in iam_statements(templates[name]):
        seen += 1
        assert statement["Effect"] in ("Allow", "Deny")
        actions = as_list(statement.get("Action", []))
        assert "NotAction" not in statement and "NotResource" not in statement, logical_id
        for action in actions:
            assert isinstance(action, str) and "*" not in action, f"{logical_id}: wildcard action {action}"
        if statement["Effect"] == "Allow" and "*" in as_list(statement.get("Resource")):
            loose = set(actions) - STAR_OK_READ_ACTIONS - STAR_OK_WRITE_ACTIONS_WITHOUT_RESOURCE_SUPPORT
            assert not loose, f"{name}/{logical_id}: {sorted(loose)} on Resource '*'"
            if set(actions) & STAR_OK_WRITE_ACTIONS_WITHOUT_RESOURCE_SUPPORT:
                assert "aws:RequestedRegion" in json.dumps(statement.get("Condition")), logical_id
    assert seen > 0


def test_trust_policies_are_confused_deputy_safe(templates) -> None:
    for template in templates.values():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            for statement in resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
                condition = json.dumps(statement.get("Condition"))
                if "Service" in statement["Principal"]:
                    assert "aws:SourceAccount" in condition or "sts:ExternalId" in condition, logical_id
                else:
                    assert "sts:ExternalId" in condition, logical_id


# ----------------------------------------------------------------------------------------- ingestion


def test_ingestion_firehose_to_hec(templates) -> None:
    resources = templates["ingestion"]["Resources"]
    splunk = resources["DeliveryStream"]["Properties"]["SplunkDestinationConfiguration"]
    assert splunk["HECEndpointType"] == "Event"
    assert "HECToken" not in splunk
    assert splunk["SecretsManagerConfiguration"]["Enabled"] is True
    assert splunk["SecretsManagerConfiguration"]["SecretARN"] == {"Ref": "SplunkHecTokenSecretArn"}
    assert splunk["HECAcknowledgmentTimeoutInSeconds"] == {"Ref": "HecAcknowledgmentTimeoutSeconds"}
    assert splunk["RetryOptions"]["DurationInSeconds"] == {"Ref": "RetryDurationSeconds"}
    assert set(splunk["BufferingHints"]) == {"IntervalInSeconds", "SizeInMBs"}
    assert splunk["CloudWatchLoggingOptions"]["Enabled"] is True
    assert splunk["S3Configuration"]["CloudWatchLoggingOptions"]["Enabled"] is True
    assert "KMSEncryptionConfig" in splunk["S3Configuration"]["EncryptionConfiguration"]
    (processor,) = splunk["ProcessingConfiguration"]["Processors"]
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert parameters["LambdaArn"] == {"Fn::GetAtt": ["TransformFunction", "Arn"]}
    assert parameters["BufferSizeInMBs"] == {"Ref": "TransformBufferSizeMB"}
    bucket = resources["BackupBucket"]["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["LifecycleConfiguration"]["Rules"] and bucket["LoggingConfiguration"]


def test_ingestion_transform_function_vendors_the_event_model(templates) -> None:
    function = templates["ingestion"]["Resources"]["TransformFunction"]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    props = function["Properties"]
    assert (props["CodeUri"], props["Handler"], props["Runtime"]) == (
        "functions/transform/",
        "app.lambda_handler",
        "python3.13",
    )
    makefile = (INFRA_DIR / "ingestion" / "functions" / "transform" / "Makefile").read_text()
    assert "build-TransformFunction:" in makefile and "package/bin/iot_defender" in makefile
    assert props["Environment"]["Variables"] == {"SPLUNK_INDEX": {"Ref": "SplunkIndex"}}


def test_ingestion_metrics_path(templates) -> None:
    ingestion = templates["ingestion"]
    resources = ingestion["Resources"]
    profile = resources["MetricsExportProfile"]
    assert (
        profile["Condition"] == "UseDetectExport" and resources["MetricsExportRole"]["Condition"] == "UseDetectExport"
    )
    exported = {m["Metric"] for m in profile["Properties"]["AdditionalMetricsToRetainV2"] if m["ExportMetric"]}
    assert exported >= {
        "aws:listening-tcp-ports",
        "aws:num-listening-tcp-ports",
        "aws:listening-udp-ports",
        "aws:num-listening-udp-ports",
        "aws:all-bytes-out",
        "aws:all-packets-out",
        "aws:destination-ip-addresses",
        "aws:num-authorization-failures",
        "aws:source-ip-address",
    }
    topic = render_sub(profile["Properties"]["MetricsExportConfig"]["MqttTopic"])
    assert topic == "$aws/rules/${MetricsRuleName}/${MetricsTopic}"  # Basic Ingest into this stack's rule
    publish = resources["MetricsExportRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
    assert render_sub(publish["Resource"]).endswith(":topic/" + topic)
    rule = resources["MetricsRule"]["Properties"]
    assert rule["RuleName"] == {"Ref": "MetricsRuleName"}
    assert render_sub(rule["TopicRulePayload"]["Sql"]) == "SELECT * FROM '${MetricsTopic}'"
    assert "Firehose" in rule["TopicRulePayload"]["Actions"][0]
    assert "S3" in rule["TopicRulePayload"]["ErrorAction"]
    assert ingestion["Parameters"]["MetricsSource"]["AllowedValues"] == ["detect-export", "custom-topic"]
    targets = json.dumps(profile["Properties"]["TargetArns"])
    assert "thinggroup/${TargetThingGroupName}" in targets and "all/registered-things" in targets


def test_audit_check_list_is_the_one_users_get_in_the_lookup() -> None:
    """ALL_AUDIT_CHECKS comes from the emulator; pin it to the 17 checks the shipped lookup documents (which also
    carries CloudFormation's MIS_CONFIGURATION spelling variant as an 18th row)."""
    with (REPO_ROOT / "package" / "lookups" / "iot_defender_audit_checks.csv").open(newline="") as lookup:
        documented = {row["checkName"] for row in csv.DictReader(lookup)}
    assert len(ALL_AUDIT_CHECKS) == 17 and documented >= ALL_AUDIT_CHECKS


def test_ingestion_audit_all_checks_daily_to_firehose(templates) -> None:
    resources = templates["ingestion"]["Resources"]
    config = resources["AccountAuditConfiguration"]["Properties"]
    checks = config["AuditCheckConfigurations"]
    assert len(checks) == len(ALL_AUDIT_CHECKS) and all(c == {"Enabled": True} for c in checks.values())
    assert config["AuditNotificationTargetConfigurations"]["Sns"]["Enabled"] is True
    audit = resources["DailyAudit"]["Properties"]
    assert audit["Frequency"] == "DAILY" and set(audit["TargetCheckNames"]) == ALL_AUDIT_CHECKS
    assert resources["AuditTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}
    subscription = resources["AuditTopicSubscription"]["Properties"]
    assert subscription["Protocol"] == "firehose" and subscription["RawMessageDelivery"] is False
    assert subscription["SubscriptionRoleArn"] == {"Fn::GetAtt": ["SnsToFirehoseRole", "Arn"]}


# ----------------------------------------------------------------------------------------- response


def test_response_lambdas_contract(templates) -> None:
    """The two functions another engineer writes: exact directories, handler, runtime and env-var names."""
    resources = templates["response"]["Resources"]
    for logical_id, directory in (
        ("ContainmentFunction", "functions/containment/"),
        ("StartIncidentFunction", "functions/start_incident/"),
    ):
        props = resources[logical_id]["Properties"]
        assert (props["CodeUri"], props["Handler"], props["Runtime"]) == (directory, "app.lambda_handler", "python3.13")
        assert resources[logical_id]["Metadata"]["BuildMethod"] == "makefile"
        assert set(props["Environment"]["Variables"]) == RESPONSE_LAMBDA_ENV
        plan = props["Environment"]["Variables"]["RESPONSE_PLAN_ARN"]["Fn::If"]
        assert plan[0] == "UseIncidentManager" and plan[2] == ""  # empty in SNS-only mode
    event = resources["StartIncidentFunction"]["Properties"]["Events"]["DetectAlert"]
    assert event == {"Type": "SNS", "Properties": {"Topic": {"Ref": "AlertTopic"}}}
    assert templates["response"]["Parameters"]["Mode"]["AllowedValues"] == ["opscenter", "incident_manager", "sns_only"]


def test_response_lambda_permissions_are_scoped(templates) -> None:
    statements = {
        (logical_id, statement.get("Sid")): statement for logical_id, statement in iam_statements(templates["response"])
    }
    add = statements[("ContainmentFunction", "AddThingsToTheQuarantineGroupOnly")]
    assert add["Resource"][0] == {"Fn::GetAtt": ["QuarantineGroup", "Arn"]}
    attach = statements[("ContainmentFunction", "AttachTheIsolationPolicyToTheQuarantineGroupOnly")]
    assert attach["Resource"] == {"Fn::GetAtt": ["QuarantineGroup", "Arn"]}
    start = statements[("StartIncidentFunction", "StartIncidentsFromThisPlanOnly")]
    assert start["Resource"] == {"Fn::GetAtt": ["ResponsePlan", "Arn"]}
    for logical_id in ("ContainmentFunction", "StartIncidentFunction"):
        assert statements[(logical_id, "NotifyTheNotificationTopic")]["Resource"] == {"Ref": "NotifyTopic"}


def test_response_security_profiles(templates) -> None:
    resources = templates["response"]["Resources"]
    behaviors = {}
    for behavior_or_if in resources["RuleProfile"]["Properties"]["Behaviors"]:
        for behavior in branches(behavior_or_if):
            behaviors[behavior["Metric"]] = behavior["Criteria"]
    assert behaviors["aws:listening-tcp-ports"]["ComparisonOperator"] == "in-port-set"
    assert behaviors["aws:listening-tcp-ports"]["Value"]["Ports"] == {"Ref": "AllowedTcpPorts"}
    assert behaviors["aws:listening-udp-ports"]["Value"]["Ports"] == {"Ref": "AllowedUdpPorts"}
    assert templates["response"]["Parameters"]["AllowedTcpPorts"]["Type"] == "List<Number>"
    assert {"aws:all-bytes-out", "aws:all-packets-out", "aws:destination-ip-addresses"} <= set(behaviors)
    assert resources["MlProfile"]["Condition"] == "MakeMlProfile"
    for profile in ("RuleProfile", "MlProfile"):
        alert = resources[profile]["Properties"]["AlertTargets"]["SNS"]
        assert alert["AlertTargetArn"] == {"Ref": "AlertTopic"}
    key_policy = json.dumps(resources["AlertKey"]["Properties"]["KeyPolicy"])
    assert '"AWS": {"Fn::GetAtt": ["AlertPublisherRole", "Arn"]}' in key_policy


def condition_values(template: Dict[str, Any], overrides: Dict[str, str]) -> Dict[str, bool]:
    """Every condition of ``template`` evaluated for its parameter defaults with ``overrides`` applied."""
    params = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    params.update(overrides)
    conditions = template.get("Conditions", {})
    done: Dict[str, bool] = {}

    def value(node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            return params[node["Ref"]]
        if isinstance(node, dict) and "Fn::Join" in node:
            separator, items = node["Fn::Join"]
            items = value(items)
            return separator.join(items.split(",") if isinstance(items, str) else [value(i) for i in items])
        if isinstance(node, dict):
            return truth(node)
        return node

    def truth(node: Any) -> bool:
        (fn, args), *_ = node.items()
        if fn == "Condition":
            if args not in done:
                done[args] = truth(conditions[args])
            return done[args]
        if fn == "Fn::Equals":
            return str(value(args[0])) == str(value(args[1]))
        if fn == "Fn::And":
            return all(truth(a) for a in args)
        if fn == "Fn::Or":
            return any(truth(a) for a in args)
        if fn == "Fn::Not":
            return not truth(args[0])
        raise AssertionError(f"condition function {fn} not understood")

    return {name: truth({"Condition": name}) for name in conditions}


def active_resources(template: Dict[str, Any], overrides: Dict[str, str]) -> Dict[str, Dict[str, Any]]:
    conditions = condition_values(template, overrides)
    return {k: r for k, r in template["Resources"].items() if conditions.get(r.get("Condition", ""), True)}


def test_response_deploys_without_detect(templates) -> None:
    template = templates["response"]
    assert template["Parameters"]["DetectAvailable"]["AllowedValues"] == ["true", "false"]
    with_detect = active_resources(template, {})
    without = active_resources(template, {"DetectAvailable": "false", "EnableMlProfile": "true"})
    detect_only = {"RuleProfile", "MlProfile", "AlertPublisherRole", "AlertPublisherPolicy"}
    assert {"RuleProfile", "AlertPublisherRole", "AlertPublisherPolicy"} <= set(with_detect)
    assert not detect_only & set(without)
    assert not [k for k, r in without.items() if r["Type"] == "AWS::IoT::SecurityProfile"]
    # quarantine, the runbook and the incident path stay
    assert {"QuarantineGroup", "IsolationPolicy", "ContainmentRunbook", "StartIncidentFunction"} <= set(without)
    # the key policy names the publisher role only where it exists
    (publisher,) = [
        s
        for s in template["Resources"]["AlertKey"]["Properties"]["KeyPolicy"]["Statement"]
        if "Fn::If" in s and "AlertPublisherRole" in json.dumps(s)
    ]
    assert publisher["Fn::If"][0] == "UseDetect" and publisher["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    assert template["Outputs"]["RuleProfileName"]["Condition"] == "UseDetect"


def test_response_opscenter_mode(templates) -> None:
    template = templates["response"]
    assert template["Parameters"]["Mode"]["Default"] == "opscenter"
    conditions = condition_values(template, {})
    assert conditions["UseOpsCenter"] and not conditions["UseIncidentManager"]
    statements = {(logical_id, statement.get("Sid")): statement for logical_id, statement in iam_statements(template)}
    create = statements[("StartIncidentFunction", "OpenOpsItemsInThisRegion")]
    assert create["Action"] == "ssm:CreateOpsItem"
    assert create["Condition"] == {"StringEquals": {"aws:RequestedRegion": {"Ref": "AWS::Region"}}}
    # OpsCenter may publish the OpsItem notifications to the encrypted notification topic
    topic_policy = json.dumps(template["Resources"]["TopicsPolicy"]["Properties"]["PolicyDocument"])
    key_policy = json.dumps(template["Resources"]["AlertKey"]["Properties"]["KeyPolicy"])
    for policy in (topic_policy, key_policy):
        assert '"UseOpsCenter"' in policy and '"Service": "ssm.amazonaws.com"' in policy


def resolve_subs(node: Any, values: Dict[str, str]) -> Any:
    """Resolve Fn::Sub strings (``${Name}`` from ``values``, ``${!x}`` to ``${x}``) throughout ``node``."""
    if isinstance(node, dict) and set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        text = re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: values[m.group(1)], node["Fn::Sub"])
        return text.replace("${!", "${")
    if isinstance(node, dict):
        return {key: resolve_subs(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_subs(value, values) for value in node]
    return node


def test_response_isolation_policy(templates) -> None:
    resources = templates["response"]["Resources"]
    document = resources["IsolationPolicy"]["Properties"]["PolicyDocument"]["Fn::If"]
    assert document[0] == "AllowShadowAndJobs"
    remediation, full = document[1]["Statement"], document[2]["Statement"]
    assert all(statement["Effect"] == "Deny" for statement in remediation + full)
    assert full == [{"Sid": "QuarantineDenyAll", "Effect": "Deny", "Action": "iot:*", "Resource": "*"}]
    open_topics = [render_sub(r) for s in remediation for r in as_list(s.get("NotResource", []))]
    assert len(open_topics) == 4
    for suffix in ("shadow/*", "jobs/*"):
        for kind in ("topic", "topicfilter"):
            expected = f":{kind}/$aws/things/${{!iot:Connection.Thing.ThingName}}/{suffix}"
            assert any(t.endswith(expected) for t in open_topics), expected
    # the policy goes on the group at quarantine time (CloudFormation cannot attach IoT policies to groups)
    assert not [r for r in resources.values() if r["Type"] == "AWS::IoT::PolicyPrincipalAttachment"]
    assert resources["QuarantineGroup"]["Properties"]["ThingGroupName"] == {"Ref": "QuarantineGroupName"}


@pytest.mark.parametrize("allow_remediation", [True, False])
def test_isolation_policy_is_the_add_ons_own(templates, allow_remediation: bool) -> None:
    """The stack's document equals what the add-on's quarantine action would write, so the action finds the
    stack-managed policy up to date and never rewrites it (no drift, no version churn)."""
    respond = pytest.importorskip("iot_defender.respond")
    branch = templates["response"]["Resources"]["IsolationPolicy"]["Properties"]["PolicyDocument"]["Fn::If"]
    values = {"AWS::Partition": "aws-us-gov", "AWS::Region": "us-gov-west-1", "AWS::AccountId": "123456789012"}
    ours = resolve_subs(branch[1] if allow_remediation else branch[2], values)
    theirs = respond.isolation_policy("aws-us-gov", "us-gov-west-1", "123456789012", allow_remediation)
    assert ours == theirs


def test_response_plan(templates) -> None:
    resources = templates["response"]["Resources"]
    plan = resources["ResponsePlan"]
    assert plan["Condition"] == "UseIncidentManager"
    automation = plan["Properties"]["Actions"][0]["SsmAutomation"]
    assert automation["DocumentName"] == {"Ref": "ContainmentRunbook"}
    dynamic = {p["Key"]: p["Value"]["Variable"] for p in automation["DynamicParameters"]}
    assert dynamic == {"IncidentRecordArn": "INCIDENT_RECORD_ARN", "InvolvedResources": "INVOLVED_RESOURCES"}
    assert plan["Properties"]["Engagements"]["Fn::If"][1] == [{"Ref": "EngagementContactArn"}]
    assert plan["Properties"]["IncidentTemplate"]["NotificationTargets"] == [{"SnsTopicArn": {"Ref": "NotifyTopic"}}]


# ----------------------------------------------------------------------------------------- runbook


@pytest.fixture(scope="module")
def runbook(templates) -> Dict[str, Any]:
    return templates["response"]["Resources"]["ContainmentRunbook"]["Properties"]["Content"]


def runbook_steps(runbook: Dict[str, Any], approvers: bool = True) -> List[Dict[str, Any]]:
    steps = []
    for step in runbook["mainSteps"]:
        if "Fn::If" in step:
            step = step["Fn::If"][1 if approvers else 2]
        steps.append(step)
    return steps


def test_runbook_phases_and_declared_outputs(runbook) -> None:
    for approvers in (True, False):
        steps = runbook_steps(runbook, approvers)
        names = [step["name"] for step in steps]
        assert names == [
            "AttachIsolationPolicy",
            "Contain",
            "ReadContainmentResult",
            "AnythingContained",
            "Analyze",
            "ApproveRecovery",
            "Recover",
            "NothingContained",
        ]
        assert steps[5]["action"] == ("aws:approve" if approvers else "aws:pause")
        outputs = {"Contain": {"Payload", "StatusCode", "FunctionError", "LogResult", "ExecutedVersion"}}
        for step in steps:
            outputs.setdefault(step["name"], set()).update(o["Name"] for o in step.get("outputs", []))
        parameters = set(runbook["parameters"]) | {"automation:EXECUTION_ID"}
        available = set(parameters)
        for step in steps:
            for reference in re.findall(r"\{\{\s*([\w:.]+)\s*\}\}", json.dumps(step)):
                assert reference in available, f"{step['name']} uses {reference} before it exists"
            available |= {f"{step['name']}.{name}" for name in outputs.get(step["name"], set())}
        for declared in runbook["outputs"]:
            step_name, output = declared.split(".")
            assert output in outputs[step_name], declared
    attach = runbook_steps(runbook)[0]["inputs"]
    assert (attach["Service"], attach["Api"]) == ("iot", "AttachPolicy")
    assert attach["target"] == {"Fn::GetAtt": ["QuarantineGroup", "Arn"]}


def runbook_script(runbook: Dict[str, Any], step_name: str) -> str:
    (step,) = [s for s in runbook_steps(runbook) if s["name"] == step_name]
    return step["inputs"]["Script"]


class FakeIot:
    def __init__(self, fail_for: Tuple[str, ...] = (), shared: Tuple[str, ...] = (), held: Tuple[str, ...] = ()):
        self.calls: List[Tuple[str, Dict[str, Any]]] = []
        self.fail_for = fail_for
        self.shared = shared  # other things using the certificate
        self.held = held  # things still in the quarantine group "Q"

    def _call(self, name: str, **kwargs: Any) -> Dict[str, Any]:
        self.calls.append((name, kwargs))
        if kwargs.get("thingName") in self.fail_for:
            raise RuntimeError("AccessDenied")
        return {}

    def remove_thing_from_thing_group(self, **kwargs: Any) -> Dict[str, Any]:
        return self._call("remove_thing_from_thing_group", **kwargs)

    def list_active_violations(self, **kwargs: Any) -> Dict[str, Any]:
        self._call("list_active_violations", **kwargs)
        return {"activeViolations": [{"securityProfileName": "p", "behavior": {"name": "b", "metric": "m"}}]}

    def list_thing_principals(self, **kwargs: Any) -> Dict[str, Any]:
        self._call("list_thing_principals", **kwargs)
        return {"principals": ["arn:aws:iot:us-east-1:123456789012:cert/abc"]}

    def list_thing_groups_for_thing(self, **kwargs: Any) -> Dict[str, Any]:
        self._call("list_thing_groups_for_thing", **kwargs)
        held = [{"groupName": "Q"}] if kwargs.get("thingName") in self.held else []
        return {"thingGroups": [{"groupName": "QUARANTINED"}, *held]}

    def list_attached_policies(self, **kwargs: Any) -> Dict[str, Any]:
        self._call("list_attached_policies", **kwargs)
        return {"policies": [{"policyName": "device-policy"}, {"policyName": "P"}]}

    def list_principal_things(self, **kwargs: Any) -> Dict[str, Any]:
        self._call("list_principal_things", **kwargs)
        return {"things": ["t1", "t2", *self.shared]}

    def detach_policy(self, **kwargs: Any) -> Dict[str, Any]:
        return self._call("detach_policy", **kwargs)


def run_script(source: str, events: Dict[str, Any], iot: Any = None) -> Dict[str, Any]:
    ast.parse(source)  # python3.11 in SSM: plain syntax check first
    fake_boto3 = type(sys)("boto3")
    fake_boto3.client = lambda service: iot  # type: ignore[attr-defined]
    saved = sys.modules.get("boto3")
    sys.modules["boto3"] = fake_boto3
    try:
        namespace: Dict[str, Any] = {}
        exec(compile(source, "<runbook>", "exec"), namespace)  # noqa: S102 - our own template's script
        return namespace["handler"](events, None)
    finally:
        if saved is not None:
            sys.modules["boto3"] = saved
        else:
            del sys.modules["boto3"]


def test_runbook_reads_the_containment_answer(runbook) -> None:
    source = runbook_script(runbook, "ReadContainmentResult")
    answer = {"quarantined": ["a", "b"], "already_quarantined": ["b", "c"], "refused": ["x"]}
    result = run_script(source, {"Payload": json.dumps(answer)})
    assert result["QuarantinedThings"] == ["a", "b", "c"] and result["ThingCount"] == 3
    assert run_script(source, {"Payload": "{}"})["ThingCount"] == 0
    with pytest.raises(RuntimeError):
        run_script(source, {"Payload": json.dumps({"errorMessage": "boom", "errorType": "X"})})
    with pytest.raises(ValueError):
        run_script(source, {"Payload": "[1]"})


def test_runbook_analysis_and_recovery(runbook) -> None:
    iot = FakeIot()
    report = run_script(runbook_script(runbook, "Analyze"), {"Things": ["t1"]}, iot)
    assert report["ActiveViolationCount"] == 1 and json.loads(report["Report"])[0]["groups"] == ["QUARANTINED"]
    recover = runbook_script(runbook, "Recover")
    events = {"Things": ["t1", "t2"], "QuarantineGroup": "Q", "PolicyName": "P"}
    released = run_script(recover, events, iot)
    assert released == {"ReleasedThings": ["t1", "t2"]}
    assert ("remove_thing_from_thing_group", {"thingGroupName": "Q", "thingName": "t2"}) in iot.calls
    cert = "arn:aws:iot:us-east-1:123456789012:cert/abc"
    assert iot.calls.count(("detach_policy", {"policyName": "P", "target": cert})) == 2  # one per released thing
    # a certificate another thing still in the quarantine group uses keeps the isolation policy
    shared = FakeIot(shared=("t9",), held=("t9",))
    run_script(recover, events, shared)
    assert not [c for c in shared.calls if c[0] == "detach_policy"]
    with pytest.raises(RuntimeError, match="t2"):
        run_script(recover, events, FakeIot(("t2",)))


# ----------------------------------------------------------------------------------------- add-on role


def test_addon_role(templates) -> None:
    template = templates["addon-role"]
    resources = template["Resources"]
    (trust,) = resources["AddonRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"Ref": "TrustedPrincipalArn"}}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
    assert template["Parameters"]["ExternalId"]["NoEcho"] is True
    read = {
        a for s in resources["ReadPolicy"]["Properties"]["PolicyDocument"]["Statement"] for a in as_list(s["Action"])
    }
    assert read >= {
        "iot:ListAuditTasks",
        "iot:DescribeAuditTask",
        "iot:ListAuditFindings",
        "iot:ListViolationEvents",
        "iot:ListActiveViolations",
        "iot:ListSecurityProfiles",
        "iot:ListMetricValues",
        "iot:ListThings",
        "iot:DescribeThing",
        "iot:ListThingGroupsForThing",
        "iot:ListThingPrincipals",
        "iot:DescribeCertificate",
        "iot:ListThingTypes",
        "iot:ListCertificates",
        "iot:GetIndexingConfiguration",
        "iot:SearchIndex",
    }
    assert all(not a.split(":")[1].startswith(("Create", "Update", "Delete", "Attach", "Add", "Put")) for a in read)
    response = resources["ResponsePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    by_action: Dict[str, Dict[str, Any]] = {}
    for statement in response:  # the first statement naming an action (AttachPolicy: the group's)
        for action in as_list(statement["Action"]):
            by_action.setdefault(action, statement)
    group = "thinggroup/${QuarantineGroupName}"
    assert group in render_sub(by_action["iot:AddThingToThingGroup"]["Resource"][0])
    assert group in render_sub(by_action["iot:AttachPolicy"]["Resource"])
    assert group in render_sub(by_action["iot:CreateThingGroup"]["Resource"])
    assert "policy/${IsolationPolicyName}" in render_sub(by_action["iot:CreatePolicy"]["Resource"])
    for action in ("iot:UpdateThing", "iot:UpdateCertificate", "iot:PutVerificationStateOnViolation"):
        assert action in by_action
    certificates = by_action["iot:DetachPolicy"]
    assert "iot:AttachPolicy" in certificates["Action"] and render_sub(certificates["Resource"]).endswith(":cert/*")
    assert by_action["ssm:CreateOpsItem"]["Resource"] == "*"
    assert resources["IncidentPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Resource"] == {
        "Ref": "ResponsePlanArn"
    }
    assert resources["NotifyPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Resource"] == {
        "Ref": "NotifyTopicArn"
    }
    outputs = template["Outputs"]
    assert {"RoleArn", "ReadPolicyArn", "ResponsePolicyArn"} <= set(outputs)


def test_readme_documents_each_stack() -> None:
    readme = (INFRA_DIR / "README.md").read_text(encoding="utf-8")
    for needle in ("sam deploy --guided", "hec_token", "indexer acknowledgement", "ExternalId", "sns_only"):
        assert needle in readme, needle
