"""Paced, counted AWS calls: the one way every response action reaches AWS (a service handed to each action)."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterable, List, Optional

from botocore import xform_name
from botocore.exceptions import ClientError

from ..aws import AwsSession, error_code
from .pacing import CallStats, RateLimiter

# Observer of every call an action is about to make: (service, region, operation, params). Tests use it to check
# each call against the add-on role (the IAM evaluation test) and to interleave concurrent runs.
CallObserver = Callable[[str, str, str, Dict[str, Any]], None]


class AwsCalls:
    """One account's AWS session: calls paced at the operation's quota, retried by botocore, counted; safe to use
    from many threads."""

    def __init__(
        self,
        session: AwsSession,
        *,
        account_id: str = "",
        partition: Optional[str] = None,
        limiter: Optional[RateLimiter] = None,
        stats: Optional[CallStats] = None,
    ):
        self.session = session
        self.account_id = account_id
        self.partition = partition or session.account.partition
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.stats = stats or CallStats()
        self.observers: List[CallObserver] = []
        self._hooked: set = set()
        self._lock = threading.Lock()

    def _client(self, service: str, region: str) -> Any:
        client = self.session.client(service, region)
        with self._lock:
            if id(client) not in self._hooked:
                client.meta.events.register("needs-retry", self.stats.on_needs_retry)
                self._hooked.add(id(client))
        return client

    def call(self, service: str, region: str, operation: str, **params: Any) -> Dict[str, Any]:
        """One API call: paced at the operation's quota, credentials refreshed once if expired, counted."""
        for observer in list(self.observers):
            observer(service, region, operation, params)
        client = self._client(service, region)
        self.limiter.acquire(operation)
        self.stats.count_call(operation)
        try:
            return self.session.call(client, xform_name(operation), **params)
        except ClientError as exc:
            self.stats.count_error(error_code(exc))
            raise

    def pages(
        self, service: str, region: str, operation: str, result_key: str, token_key: str = "nextToken", **params: Any
    ) -> Iterable[Any]:
        token: Optional[str] = None
        while True:
            request = dict(params)
            if token:
                request["marker" if token_key == "nextMarker" else "nextToken"] = token
            page = self.call(service, region, operation, **request)
            yield from page.get(result_key) or []
            token = page.get(token_key)
            if not token:
                return

    def arn(self, region: str, kind: str, name: str) -> str:
        """An IoT resource ARN of this account: ``kind`` is thing, thinggroup, policy or cert."""
        return f"arn:{self.partition}:iot:{region}:{self.account_id}:{kind}/{name}"
