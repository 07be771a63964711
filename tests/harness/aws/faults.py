"""Fault injection for the loopback AWS endpoint: throttling, 5xx, latency, rate limits, malformed pages."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, Optional, Tuple

# Device Defender TPS quotas (AWS General Reference, Device Defender endpoints and quotas; not adjustable).
DEFENDER_QUOTAS_TPS = {
    "ListActiveViolations": 10,
    "ListViolationEvents": 10,
    "ListAuditFindings": 10,
    "ListAuditTasks": 10,
    "ListSecurityProfiles": 10,
    "DescribeAuditTask": 25,
    "DescribeAuditFinding": 25,
    "ListMetricValues": 15,
    "StartDetectMitigationActionsTask": 10,
    "StartAuditMitigationActionsTask": 10,
    "CreateMitigationAction": 10,
    "StartOnDemandAuditTask": 10,
    "PutVerificationStateOnViolation": 10,
    "ListScheduledAudits": 5,
}

# IoT Core quotas from a third-party dump [verify]; opt in with enable_iot_core_quotas().
IOT_CORE_QUOTAS_TPS = {
    "AddThingToThingGroup": 100,
    "CreateThingGroup": 25,
    "DescribeThing": 350,
    "UpdateThing": 100,
    "ListThingPrincipals": 10,
    "ListThingGroupsForThing": 100,
    "TagResource": 10,
}

# Registry reads of the inventory input [verify: no published figure was found for these; 10 TPS, the usual
# IoT Core list quota, is assumed, and 100 for ListThingGroupsForThing as above]. Opt in with
# enable_registry_quotas(). The add-on paces itself with the same table (iot_defender.inventory.QUOTAS_TPS).
REGISTRY_QUOTAS_TPS = {
    "SearchIndex": 10,
    "ListCertificates": 10,
    "ListThings": 10,
    "ListThingPrincipals": 10,
    "ListPrincipalThings": 10,
    "ListThingGroupsForThing": 100,
    "DescribeCertificate": 10,
    "GetIndexingConfiguration": 10,
}


class TokenBucket:
    """Classic token bucket: ``rate`` tokens per second, at most ``burst`` stored (default: rate)."""

    def __init__(self, rate: float, burst: Optional[float] = None, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate, 1.0))
        self.tokens = self.burst
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Faults:
    """Thread-safe fault settings; change any attribute at any time (tests, the CLI, a debugger).

    - ``throttle_ratio`` (0-1) and ``throttle_ratio_by_operation`` ({operation: ratio}): answer with the
      service's throttling error.
    - ``error_ratio`` / ``error_ratio_by_operation``: answer with a 5xx (InternalFailure / ServiceUnavailable,
      in the service's spelling), alternating by the seeded RNG.
    - ``latency`` (seconds, fixed) + ``latency_jitter`` (uniform extra 0..jitter), ``latency_by_operation``.
    - ``set_rate_limit(operation, tps, burst=None)``: token bucket per (account, region, operation), timed by
      ``clock`` (``time.monotonic``; a benchmark may set a scaled clock, then buckets made afterwards use it).
    - ``malformed_next_page(operation, item)``: the next successful response of ``operation`` carries ``item``
      in its result list, bypassing the emulator's response validation (emulated operations only).
    - ``fail_next(operation, code, status, message)``: the next call of ``operation`` fails with that error.
    """

    def __init__(self, seed: int = 0):
        self._lock = threading.RLock()
        self.seed = seed
        self._rng = random.Random(seed)
        self.throttle_ratio = 0.0
        self.throttle_ratio_by_operation: Dict[str, float] = {}
        self.error_ratio = 0.0
        self.error_ratio_by_operation: Dict[str, float] = {}
        self.latency = 0.0
        self.latency_jitter = 0.0
        self.latency_by_operation: Dict[str, float] = {}
        self._rate_limits: Dict[str, Tuple[float, Optional[float]]] = {}
        self._buckets: Dict[Tuple[str, str, str], TokenBucket] = {}
        self._malformed: Dict[str, Deque[Tuple[Any, Optional[str]]]] = {}
        self._fail_next: Dict[str, Deque[Tuple[str, int, str]]] = {}
        self.clock = time.monotonic

    # ---------------------------------------------------------------- configuration
    def reset(self, seed: Optional[int] = None) -> None:
        with self._lock:
            self.__init__(self.seed if seed is None else seed)

    def set_rate_limit(self, operation: str, tps: Optional[float], burst: Optional[float] = None) -> None:
        """Limit ``operation`` to ``tps`` calls per second per account+region (None removes the limit)."""
        with self._lock:
            if tps is None:
                self._rate_limits.pop(operation, None)
            else:
                self._rate_limits[operation] = (float(tps), burst)
            for key in [k for k in self._buckets if k[2] == operation]:
                del self._buckets[key]

    def clear_rate_limits(self) -> None:
        with self._lock:
            self._rate_limits.clear()
            self._buckets.clear()

    def enable_defender_quotas(self) -> None:
        """Turn on the documented Device Defender TPS quotas (off by default to keep tests fast)."""
        for op, tps in DEFENDER_QUOTAS_TPS.items():
            self.set_rate_limit(op, tps)

    def enable_iot_core_quotas(self) -> None:
        for op, tps in IOT_CORE_QUOTAS_TPS.items():
            self.set_rate_limit(op, tps)

    def enable_registry_quotas(self) -> None:
        for op, tps in REGISTRY_QUOTAS_TPS.items():
            self.set_rate_limit(op, tps)

    @property
    def rate_limits(self) -> Dict[str, float]:
        with self._lock:
            return {op: tps for op, (tps, _) in self._rate_limits.items()}

    def malformed_next_page(self, operation: str, item: Any, list_key: Optional[str] = None) -> None:
        """Queue ``item`` (raw JSON value, not checked) into the next page of ``operation``."""
        with self._lock:
            self._malformed.setdefault(operation, deque()).append((item, list_key))

    def fail_next(self, operation: str, code: str, status: int = 500, message: str = "injected failure") -> None:
        with self._lock:
            self._fail_next.setdefault(operation, deque()).append((code, status, message))

    # ---------------------------------------------------------------- decisions (called per request)
    def delay_for(self, operation: str) -> float:
        with self._lock:
            base = self.latency_by_operation.get(operation, self.latency)
            jitter = self._rng.uniform(0, self.latency_jitter) if self.latency_jitter else 0.0
        return max(0.0, base + jitter)

    def rate_limited(self, account: str, region: str, operation: str) -> bool:
        with self._lock:
            limit = self._rate_limits.get(operation)
            if limit is None:
                return False
            key = (account, region, operation)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(limit[0], limit[1], clock=self.clock)
            return not bucket.take()

    def roll_throttle(self, operation: str) -> bool:
        with self._lock:
            ratio = self.throttle_ratio_by_operation.get(operation, self.throttle_ratio)
            return bool(ratio) and self._rng.random() < ratio

    def roll_error(self, operation: str) -> Optional[str]:
        """None, or 'internal' / 'unavailable'."""
        with self._lock:
            ratio = self.error_ratio_by_operation.get(operation, self.error_ratio)
            if not ratio or self._rng.random() >= ratio:
                return None
            return "internal" if self._rng.random() < 0.5 else "unavailable"

    def pop_fail_next(self, operation: str) -> Optional[Tuple[str, int, str]]:
        with self._lock:
            q = self._fail_next.get(operation)
            return q.popleft() if q else None

    def pop_malformed(self, operation: str) -> Optional[Tuple[Any, Optional[str]]]:
        with self._lock:
            q = self._malformed.get(operation)
            return q.popleft() if q else None
