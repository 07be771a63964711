"""AWS on loopback for tests, the demo and benchmarks: Device Defender + Incident Manager + STS emulator in front
of an in-process moto server. See :class:`LoopbackAWS`."""

from __future__ import annotations

from .auth import DEFAULT_ACCESS_KEY, DEFAULT_ACCOUNT_ID, DEFAULT_SECRET_KEY, Credential
from .common import Clock
from .defender import AUDIT_CHECKS, DefenderStore, behavior_criteria_type
from .faults import DEFENDER_QUOTAS_TPS, IOT_CORE_QUOTAS_TPS, Faults
from .incidents import IncidentStore
from .models import ModelViolation, check_shape
from .server import LoopbackAWS, RequestLog, RequestRecord

__all__ = [
    "AUDIT_CHECKS",
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_SECRET_KEY",
    "DEFENDER_QUOTAS_TPS",
    "IOT_CORE_QUOTAS_TPS",
    "Clock",
    "Credential",
    "DefenderStore",
    "Faults",
    "IncidentStore",
    "LoopbackAWS",
    "ModelViolation",
    "RequestLog",
    "RequestRecord",
    "behavior_criteria_type",
    "check_shape",
]
