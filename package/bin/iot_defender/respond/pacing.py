"""Pacing and concurrency: calls paced per operation at the documented TPS quotas (:class:`RateLimiter`),
throttled answers counted (:class:`CallStats`, botocore retries them), and targets run on a bounded thread pool
where one failing never stops the others (:func:`run_all`)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar

from ..aws import THROTTLING_CODES
from ..events import ActionResult

DEFAULT_WORKERS = 8

# Documented default TPS quotas (AWS IoT Core and Device Defender service quotas). Calls are paced at these rates
# so a run stays under the quota instead of relying on throttling + backoff.
DEFAULT_TPS: Dict[str, float] = {
    "AddThingToThingGroup": 100,
    "RemoveThingFromThingGroup": 100,
    "UpdateThing": 100,
    "DescribeThing": 350,
    "ListThingGroupsForThing": 100,
    "ListThingPrincipals": 10,
    "ListPrincipalThings": 10,
    "CreateThingGroup": 25,
    "PutVerificationStateOnViolation": 10,
}

T = TypeVar("T")


class RateLimiter:
    """Per-operation pacing: calls of one operation are spaced ``1 / rate`` seconds apart, across threads.

    ``fraction`` (< 1) keeps a margin under the quota so a server counting calls per sliding second never sees
    one too many.
    """

    def __init__(
        self,
        rates: Optional[Mapping[str, float]] = None,
        *,
        fraction: float = 0.98,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rates = dict(DEFAULT_TPS if rates is None else rates)
        self.fraction = fraction
        self._clock = clock
        self._sleep = sleep
        self._next: Dict[str, float] = {}
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, operation: str) -> float:
        rate = self.rates.get(operation)
        if not rate:
            return 0.0
        interval = 1.0 / (rate * self.fraction)
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(operation, now))
            self._next[operation] = slot + interval
            wait = slot - now
            self.waited += wait
        if wait > 0:
            self._sleep(wait)
        return wait


class CallStats:
    """Counts API calls and throttled answers (which botocore then retries), per operation and per thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Dict[str, int] = {}
        self.throttled: Dict[str, int] = {}
        self.errors: Dict[str, int] = {}
        self._local = threading.local()

    def count_call(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1

    def count_error(self, code: str) -> None:
        with self._lock:
            self.errors[code] = self.errors.get(code, 0) + 1

    def on_needs_retry(self, response: Any = None, operation: Any = None, **_: Any) -> None:
        """botocore ``needs-retry`` hook: sees every attempt's answer; never decides anything itself."""
        if not response or not isinstance(response, tuple) or len(response) < 2:
            return None
        parsed = response[1] or {}
        code = str((parsed.get("Error") or {}).get("Code") or "")
        if code in THROTTLING_CODES:
            name = getattr(operation, "name", str(operation))
            with self._lock:
                self.throttled[name] = self.throttled.get(name, 0) + 1
            self._local.throttled = getattr(self._local, "throttled", 0) + 1
        return None

    def thread_throttled(self) -> int:
        return int(getattr(self._local, "throttled", 0))

    def reset_thread(self) -> None:
        self._local.throttled = 0

    def summary(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self.calls),
                "throttled": dict(self.throttled),
                "errors": dict(self.errors),
                "total_calls": sum(self.calls.values()),
                "total_throttled": sum(self.throttled.values()),
            }


def run_all(
    items: Sequence[T],
    work: Callable[[T], ActionResult],
    on_crash: Callable[[T, BaseException], ActionResult],
    *,
    workers: int = DEFAULT_WORKERS,
) -> List[ActionResult]:
    """Run ``work`` on every item with at most ``workers`` threads; results keep the order of ``items``.

    An exception escaping ``work`` becomes that item's result via ``on_crash``: one item never stops another.
    """

    def guarded(item: T) -> ActionResult:
        try:
            return work(item)
        except Exception as exc:
            return on_crash(item, exc)

    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        return [guarded(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="iot-respond") as pool:
        return list(pool.map(guarded, items))
