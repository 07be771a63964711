"""Shared fixtures for the infra tests: the documented payload samples, the transform module, the infra venv.

The samples are the repository's own ``tests/fixtures/samples/`` (constructed from AWS documentation, not captured
from a live account).
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict

import pytest
import yaml

from tests.fixtures import sample

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
TRANSFORM_DIR = INFRA_DIR / "ingestion" / "functions" / "transform"
INFRA_VENV = REPO_ROOT / ".venv-infra"
TEMPLATES = {
    "ingestion": INFRA_DIR / "ingestion" / "template.yaml",
    "response": INFRA_DIR / "response" / "template.yaml",
    "addon-role": INFRA_DIR / "addon-role" / "template.yaml",
}

METRICS_EXPORT: Dict[str, Any] = sample("metrics-export")
SNS_AUDIT_NOTIFICATION: Dict[str, Any] = sample("sns-audit-notification")
SNS_VIOLATION_LAMBDA_EVENT: Dict[str, Any] = sample("sns-violation-lambda-event")
FIREHOSE_TRANSFORM_EVENT: Dict[str, Any] = sample("firehose-transform-event")


class _CfnLoader(yaml.SafeLoader):
    """PyYAML loader that reads CloudFormation short-form tags (``!Sub``, ``!GetAtt`` ...) as their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Dict[str, Any]:
    name = "Ref" if suffix == "Ref" else ("Condition" if suffix == "Condition" else f"Fn::{suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> Dict[str, Any]:
    """A CloudFormation/SAM YAML template as plain data (intrinsics in their long JSON form)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with only tag constructors


def load_transform() -> ModuleType:
    """The transform Lambda's ``app`` module, imported from its file under a unique name (each Lambda has an
    ``app.py``; importing them all as ``app`` would make one shadow another in ``sys.modules``)."""
    name = "iot_defender_infra_transform_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TRANSFORM_DIR / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def transform() -> ModuleType:
    return load_transform()


@pytest.fixture
def metrics_export() -> Dict[str, Any]:
    return copy.deepcopy(METRICS_EXPORT)


@pytest.fixture
def sns_audit_notification() -> Dict[str, Any]:
    return copy.deepcopy(SNS_AUDIT_NOTIFICATION)


@pytest.fixture
def sns_violation_lambda_event() -> Dict[str, Any]:
    return copy.deepcopy(SNS_VIOLATION_LAMBDA_EVENT)


@pytest.fixture
def firehose_transform_event() -> Dict[str, Any]:
    return copy.deepcopy(FIREHOSE_TRANSFORM_EVENT)
