"""AWS on loopback for tests, the demo and benchmarks.

One endpoint (``LoopbackAWS().endpoint_url``, 127.0.0.1, OS-chosen port) for every service: Device Defender
(Detect/Audit operations of ``iot``), OpsCenter (CreateOpsItem/GetOpsItem/UpdateOpsItem/DescribeOpsItems of ``ssm``),
all of ``ssm-incidents`` and ``sts`` are emulated with requests and responses
checked against botocore's service models; everything else (IoT registry, policies, certificates, SNS, S3, SQS...)
is checked for credentials/faults and served by an in-process moto app whose state belongs to this instance.

    with LoopbackAWS() as aws:
        Fleet(seed=7).install(aws)
        subprocess.run([...], env={**os.environ, **aws.env()})
        assert aws.requests.count(operation="AddThingToThingGroup") == 1

Main handles: ``aws.client(service)``, ``aws.env()``, ``aws.defender`` (DefenderStore), ``aws.registry``
(RegistryStore: a fleet-scale IoT registry), ``aws.incidents`` (IncidentStore), ``aws.opsitems`` (OpsItemStore),
``aws.faults`` (Faults), ``aws.clock`` (Clock), ``aws.requests`` (RequestLog),
``aws.add_account/add_credentials/add_role/set_account_features``, ``aws.sts_credential_lifetime_seconds``,
``aws.expire_all_credentials()``, ``aws.set_rate_limit(op, tps)``, ``aws.reset()``, ``aws.moto_state()``,
``aws.internal_errors`` (harness bugs, should stay empty), ``aws.unimplemented`` (ops neither emulated nor in moto).
CLI: ``python -m tests.harness.aws --port 0 --seed 7 --things 50``.
"""

from __future__ import annotations

from .auth import DEFAULT_ACCESS_KEY, DEFAULT_ACCOUNT_ID, DEFAULT_SECRET_KEY, Credential
from .common import Clock
from .defender import AUDIT_CHECKS, DefenderStore, behavior_criteria_type
from .faults import DEFENDER_QUOTAS_TPS, IOT_CORE_QUOTAS_TPS, REGISTRY_QUOTAS_TPS, Faults
from .incidents import IncidentStore
from .models import ModelViolation, check_shape
from .opsitems import OpsItemStore
from .registry import REGISTRY_OPERATIONS, RegistryStore
from .server import LoopbackAWS, RequestLog, RequestRecord

__all__ = [
    "AUDIT_CHECKS",
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_SECRET_KEY",
    "DEFENDER_QUOTAS_TPS",
    "IOT_CORE_QUOTAS_TPS",
    "REGISTRY_OPERATIONS",
    "REGISTRY_QUOTAS_TPS",
    "Clock",
    "Credential",
    "DefenderStore",
    "Faults",
    "IncidentStore",
    "LoopbackAWS",
    "ModelViolation",
    "OpsItemStore",
    "RegistryStore",
    "RequestLog",
    "RequestRecord",
    "behavior_criteria_type",
    "check_shape",
]
