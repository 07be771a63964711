"""The add-on's pull inputs, each declared once, and the run of one input for one account and region.

An :class:`InputKind` says everything the shared runner needs to know about an input: how its parameters are
parsed, which pages it reads, whether it keeps a checkpoint (and what it may forget), which API quotas its calls
are paced at, and what to tell the admin when AWS refuses access. :func:`collect` runs one kind for one
:class:`~iot_defender.pipeline.RunScope` through the shared delivery pipeline; the Splunk adapter
(``iot_defender_input.py``) only supplies the ports: the event sink, checkpoint store, journal and lookup.

Adding a fourth input: write its source module (options with ``from_params`` and a page source), add one
``InputKind`` to :data:`KINDS`, declare its fields in ``scripts/make_global_config.py`` (plus the copy of an
existing ``<input>_helper.py`` that UCC's generated script imports, with the new name) and its sourcetypes in
``props.conf``. Nothing else names input kinds; a unit test keeps the registry and globalConfig in step.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Protocol, Tuple

from botocore.exceptions import ClientError

from . import audit, detect, inventory
from .aws import THROTTLING_CODES, AwsSession, ConfigError, error_code, error_message
from .checkpoint import DAY, InputState, Journal, MemoryJournal, merge_seen
from .pipeline import Page, RunScope, RunStats, Sink, deliver

ACCESS_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedException", "ForbiddenException"})
# IAM's wording for a missing grant: the admin can fix that now, so it stays an error on every run.
_IAM_DENIAL = re.compile(r"not authorized to perform|no identity-based policy|explicit deny", re.IGNORECASE)


class Lookup(Protocol):
    """The inventory's KV lookup (``iot_thing_inventory``), supplied by the adapter."""

    def rows(self) -> Any:
        """The :class:`iot_defender.inventory.RowStore` the run reads prior rows from, with ``write_page(result)``
        that drains a page's rows and certificate index rows (see ``iot_defender_kv.KvRows``)."""

    def finish(self, result: inventory.InventoryResult, *, account_id: str, region: str) -> None:
        """After the last page: write what is left, delete the rows of things a complete run did not see."""


class CheckpointStore(Protocol):
    def get(self, key: str) -> Optional[Dict[str, Any]]: ...

    def update(self, key: str, state: Dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Ports:
    """Where a run writes: supplied by the adapter (Splunk) or by tests (memory)."""

    sink: Sink
    store: CheckpointStore
    journal_for: Callable[[str], Journal]  # the crash journal of one checkpoint key
    lookup: Optional[Lookup] = None


PageSource = Callable[[AwsSession, RunScope, InputState, Optional[Lookup]], Iterator[Page]]


@dataclass(frozen=True)
class InputKind:
    """One modular input, declared once."""

    name: str
    parse_options: Callable[[Dict[str, Any]], Any]
    pages: PageSource
    feature_hint: str  # logged when AWS denies access
    # Checkpointed inputs: what the state may forget after each checkpoint (None: a snapshot input, no checkpoint).
    keep_after: Optional[Callable[[Any], Callable[[InputState], float]]] = None
    # Documented TPS quotas of the operations the input calls, per account and region: paced once throttled.
    quotas: Mapping[str, float] = field(default_factory=dict)
    # "Not available to this account": remembered in the checkpoint, AWS asked again after this long (None: error).
    recheck_unavailable_seconds: Optional[float] = None

    @property
    def keeps_checkpoint(self) -> bool:
        return self.keep_after is not None


def _violation_source(session: AwsSession, scope: RunScope, state: InputState, _lookup: Any) -> Iterator[Page]:
    return detect.pages(session, scope, state)


def _audit_source(session: AwsSession, scope: RunScope, state: InputState, _lookup: Any) -> Iterator[Page]:
    return audit.audit_pages(session, scope, state)


def _inventory_source(
    session: AwsSession, scope: RunScope, _state: InputState, lookup: Optional[Lookup]
) -> Iterator[Page]:
    if lookup is None:
        raise ConfigError("the inventory input needs its KV lookup")
    result = inventory.InventoryResult()
    rows = lookup.rows()
    for page in inventory.inventory_pages(
        session, scope.region, scope.options, result, account_id=scope.account_id, now=scope.now, state=rows
    ):
        # A page's rows (and its certificate index rows, first) are saved before its events are delivered: an event
        # never names a row that is not there.
        rows.write_page(result)
        yield page
    # Resumed only once every page was delivered: the lookup follows the events, never runs ahead of them.
    lookup.finish(result, account_id=scope.account_id, region=scope.region)


KINDS: Dict[str, InputKind] = {
    kind.name: kind
    for kind in (
        InputKind(
            name="iot_defender_violations",
            parse_options=detect.ViolationOptions.from_params,
            pages=_violation_source,
            keep_after=detect.violation_keep_after,
            quotas={"ListViolationEvents": 10, "ListActiveViolations": 10},
            recheck_unavailable_seconds=DAY,
            feature_hint=(
                "Device Defender Detect is not available to this account or role (AWS closed Detect to new "
                "customers on 2026-08-31; Audit is unaffected). If this account only uses Audit, disable this "
                "input; otherwise grant iot:ListViolationEvents and iot:ListActiveViolations to the add-on's role."
            ),
        ),
        InputKind(
            name="iot_defender_audit",
            parse_options=audit.AuditOptions.from_params,
            pages=_audit_source,
            keep_after=lambda _options: audit.audit_keep_after,
            quotas={"ListAuditTasks": 10, "DescribeAuditTask": 25, "ListAuditFindings": 10},
            feature_hint=(
                "Device Defender Audit is not available to this account or role: grant iot:ListAuditTasks, "
                "iot:DescribeAuditTask and iot:ListAuditFindings to the add-on's role, and check that audit is "
                "configured."
            ),
        ),
        InputKind(
            name="iot_defender_inventory",
            parse_options=inventory.InventoryOptions.from_params,
            pages=_inventory_source,
            feature_hint=(
                "The thing registry is not readable by this account or role: grant iot:ListCertificates, "
                "iot:GetIndexingConfiguration, iot:SearchIndex, iot:ListThings, iot:ListThingGroupsForThing, "
                "iot:ListThingPrincipals and iot:DescribeCertificate."
            ),
        ),
    )
}


def kind_of(name: str) -> InputKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown input kind {name!r}") from None


# ------------------------------------------------------------------------------------------------ AWS answers


def is_access_denied(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in ACCESS_CODES


def feature_unavailable(exc: BaseException) -> bool:
    """AWS refused the call because the feature is not available to the account (not for a missing IAM grant)."""
    return is_access_denied(exc) and not _IAM_DENIAL.search(error_message(exc))


class Pacer:
    """Keeps each operation under its documented TPS quota once AWS has throttled it.

    Calls go out unpaced until the first throttled answer of an operation (botocore retries it); from then on the
    operation's attempts take tokens from a bucket refilled at ``quota * fraction`` per second, starting empty
    (AWS's own bucket just ran dry). A small ``burst`` lets a run catch up after a slow page without ever
    exceeding the quota's own burst, so a long drain runs at the quota instead of throttling and backing off.
    """

    def __init__(
        self,
        quotas: Mapping[str, float],
        *,
        fraction: float = 0.98,
        burst: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.quotas = dict(quotas)
        self.fraction = fraction
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: Dict[str, Tuple[float, float]] = {}  # operation -> (tokens, when counted)
        self.paced: Dict[str, bool] = {}
        self.waited = 0.0

    def install(self, session: AwsSession) -> None:
        """Hook every client the session creates from now on (botocore's before-send / needs-retry events)."""
        session.session.events.register("before-send", self._before_send)
        session.session.events.register("needs-retry", self._needs_retry)

    @staticmethod
    def _operation(event_name: str) -> str:
        return event_name.rsplit(".", 1)[-1]

    def _needs_retry(self, event_name: str = "", response: Any = None, **_kwargs: Any) -> None:
        parsed = response[1] if isinstance(response, tuple) and len(response) == 2 else None
        if isinstance(parsed, dict) and parsed.get("Error", {}).get("Code") in THROTTLING_CODES:
            operation = self._operation(event_name)
            if operation in self.quotas and not self.paced.get(operation):
                self.paced[operation] = True
                self._buckets[operation] = (0.0, self._clock())
        return None  # the retry decision stays botocore's

    def _before_send(self, event_name: str = "", **_kwargs: Any) -> None:
        operation = self._operation(event_name)
        if self.paced.get(operation):
            self.wait(operation)
        return None  # None lets botocore send the request

    def wait(self, operation: str) -> float:
        """Take a token for ``operation``, sleeping until one is there; returns the seconds waited."""
        rate = self.quotas[operation] * self.fraction
        with self._lock:
            now = self._clock()
            tokens, counted = self._buckets.get(operation, (0.0, now))
            tokens = min(self.burst, tokens + (now - counted) * rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
            # The token is taken when the wait ends: count the bucket from then.
            self._buckets[operation] = (tokens + wait * rate - 1.0, now + wait)
            self.waited += wait
        if wait > 0:
            self._sleep(wait)
        return wait


# ------------------------------------------------------------------------------------------------ one run


@dataclass(frozen=True)
class Outcome:
    """How a run ended when it did not raise: delivered, or the feature is not available to the account."""

    status: str  # DELIVERED | NEWLY_UNAVAILABLE | STILL_UNAVAILABLE | WAITING
    error: Optional[BaseException] = None


DELIVERED = "delivered"
NEWLY_UNAVAILABLE = "newly-unavailable"  # AWS said so for the first time: tell the admin once
STILL_UNAVAILABLE = "still-unavailable"  # the daily re-check found it still unavailable
WAITING = "waiting"  # not asked this run: the re-check is not due yet


def collect(kind: InputKind, scope: RunScope, session: AwsSession, ports: Ports, stats: RunStats) -> Outcome:
    """Run one input for one account and region: pages → sink, checkpoint and journal as the kind wants."""
    if kind.quotas:
        Pacer(kind.quotas).install(session)
    if not kind.keeps_checkpoint:
        deliver(
            kind.pages(session, scope, InputState(), ports.lookup),
            state=InputState(),
            sink=ports.sink,
            journal=MemoryJournal(),
            save=lambda _state: None,
            stats=stats,
            keep_after=lambda _state: float("-inf"),
        )
        stats.lag_seconds = 0.0
        return Outcome(DELIVERED)
    return _collect_checkpointed(kind, scope, session, ports, stats)


def _collect_checkpointed(
    kind: InputKind, scope: RunScope, session: AwsSession, ports: Ports, stats: RunStats
) -> Outcome:
    key = scope.checkpoint_key
    state = InputState.from_dict(ports.store.get(key))
    until = state.unavailable_until
    rechecking = until is not None
    if until is not None and scope.now < until:
        _mark_unavailable(stats, until)
        return Outcome(WAITING)
    state.unavailable_until = None  # saved with the first checkpoint if AWS answers this time
    journal = ports.journal_for(key)
    stats.recovered_from_journal = merge_seen(state, journal.keys())

    def save(current: InputState) -> None:
        ports.store.update(key, current.to_dict())

    keep_after = kind.keep_after(scope.options) if kind.keep_after else (lambda _state: float("-inf"))
    try:
        deliver(
            kind.pages(session, scope, state, ports.lookup),
            state=state,
            sink=ports.sink,
            journal=journal,
            save=save,
            stats=stats,
            keep_after=keep_after,
        )
    except Exception as exc:
        if kind.recheck_unavailable_seconds is None or not feature_unavailable(exc):
            raise
        state.unavailable_until = scope.now + kind.recheck_unavailable_seconds
        save(state)  # keeps every key already delivered, so the journal is no longer needed
        journal.reset()
        stats.error_code = error_code(exc)
        _mark_unavailable(stats, state.unavailable_until)
        return Outcome(STILL_UNAVAILABLE if rechecking else NEWLY_UNAVAILABLE, exc)
    finally:
        journal.close()
    if state.high_water is not None:
        stats.lag_seconds = max(0.0, scope.clock() - state.high_water)
    return Outcome(DELIVERED)


def _mark_unavailable(stats: RunStats, until: Optional[float]) -> None:
    stats.status = "unavailable"
    stats.next_check = until


def parse_params(name: str, params: Dict[str, Any]) -> Any:
    """The options of input ``name``; :class:`ValueError` names the parameter and value it refuses."""
    return kind_of(name).parse_options(params)
