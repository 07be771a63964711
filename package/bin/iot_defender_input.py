"""Splunk side of the modular inputs: one runner for every kind declared in :mod:`iot_defender.inputs`.

For each input stanza and region it loads the account (secrets from Splunk's credential store), builds the run's
scope, and hands the kind to :func:`iot_defender.inputs.collect` with Splunk's ports: an XML sink on stdout, the
KV store for checkpoints and lookups, a crash journal in the input's checkpoint_dir. It logs one run summary line
per region, plus solnlib's ``events_ingested`` and categorised error lines for UCC's monitoring dashboard.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import urlparse
from xml.sax.saxutils import escape, quoteattr

import iot_defender_kv
from splunklib import binding
from splunklib import client as splunk_client

from iot_defender import certificate_index, events, inventory
from iot_defender.aws import AwsSession, ConfigError, error_code, error_message, parse_regions, redact
from iot_defender.checkpoint import Journal
from iot_defender.inputs import (
    NEWLY_UNAVAILABLE,
    STILL_UNAVAILABLE,
    InputKind,
    Outcome,
    Ports,
    collect,
    is_access_denied,
    kind_of,
)
from iot_defender.pipeline import RunScope, RunStats
from iot_defender_splunk import (
    SECRET_FILTER,
    error_category,
    get_logger,
    load_account,
    load_client_settings,
    log_error,
    report_ingested,
    set_log_level,
)

APP = "TA-aws-iot-defender"
CHECKPOINT_COLLECTION = "ta_aws_iot_defender_checkpoints"
INVENTORY_COLLECTION = "iot_thing_inventory"
CERTIFICATE_COLLECTION = certificate_index.COLLECTION
# KV store answers 503 while it starts (splunkd restart, SHC member joining): wait this long, then give up.
KV_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class XmlEventSink:
    """Writes events in splunkd's XML streaming format, one flushed write per event.

    Built by hand rather than with ElementTree: it is several times faster, and a single write per event
    keeps the moment an event becomes visible to splunkd right next to its journal line.
    """

    def __init__(self, event_writer: Any, stanza: str, index: Optional[str]):
        self._out = getattr(event_writer, "_out", None) or sys.stdout
        self._head = f'<event stanza={quoteattr(stanza)} unbroken="1">'
        self._index = f"<index>{escape(index)}</index>" if index else ""
        if not getattr(event_writer, "header_written", False):
            self._out.write("<stream>")
            self._out.flush()
            event_writer.header_written = True

    def write(self, event: events.Event) -> None:
        host = f"<host>{escape(event.host)}</host>" if event.host else ""
        self._out.write(
            f"{self._head}<time>{event.epoch_ms():.3f}</time><source>{escape(event.source)}</source>"
            f"<sourcetype>{escape(event.sourcetype)}</sourcetype>{self._index}{host}"
            f"<data>{escape(event.body())}</data><done /></event>"
        )
        self._out.flush()


def _kv_retry(operation: Callable[[], Any], what: str, logger: Any) -> Any:
    for delay in (*KV_RETRY_DELAYS, None):
        try:
            return operation()
        except binding.HTTPError as exc:
            if exc.status not in (500, 503) or delay is None:
                raise
            logger.warning("KV store answered %s to %s; retrying in %.1f s", exc.status, what, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def collection_data(service: Any, name: str, logger: Any) -> Any:
    """The data endpoint of a KV collection, created if this app does not have it yet."""

    def ensure() -> Any:
        if name not in [c.name for c in service.kvstore.list()]:
            service.kvstore.create(name)
        return service.kvstore[name].data

    return _kv_retry(ensure, f"the {name} collection look-up", logger)


class KvCheckpointStore:
    """Checkpoints in a KV store collection (created on first use), with patience for a starting KV store."""

    def __init__(self, service: Any, logger: Any):
        self._logger = logger
        self._service = service
        self._data = None

    def _collection(self) -> Any:
        if self._data is None:
            self._data = collection_data(self._service, CHECKPOINT_COLLECTION, self._logger)
        return self._data

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        data = self._collection()

        def read() -> Optional[Dict[str, Any]]:
            try:
                record = data.query_by_id(key)
            except binding.HTTPError as exc:
                if exc.status == 404:
                    return None
                raise
            return json.loads(record.get("state") or "null")

        return _kv_retry(read, "a checkpoint read", self._logger)

    def update(self, key: str, state: Dict[str, Any]) -> None:
        data = self._collection()
        document = {"_key": key, "state": json.dumps(state, separators=(",", ":"))}
        _kv_retry(lambda: data.batch_save(document), "a checkpoint write", self._logger)

    def delete(self, key: str) -> None:
        data = self._collection()

        def remove() -> None:
            try:
                data.delete_by_id(key)
            except binding.HTTPError as exc:
                if exc.status != 404:
                    raise

        _kv_retry(remove, "a checkpoint delete", self._logger)


def connect_splunkd(metadata: Dict[str, Any]) -> Any:
    return connect_splunkd_uri(metadata["server_uri"], metadata["session_key"])


def connect_splunkd_uri(server_uri: str, session_key: str) -> Any:
    uri = urlparse(server_uri)
    return splunk_client.connect(
        scheme=uri.scheme,
        host=uri.hostname,
        port=uri.port,
        token=session_key,
        app=APP,
        owner="nobody",
        autologin=False,
    )


def _journal_path(checkpoint_dir: str, key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    return os.path.join(checkpoint_dir, f"{safe}.journal")


def _stanza_name(full_name: str) -> str:
    return full_name.split("://", 1)[-1]


class KvInventoryLookup:
    """The ``iot_thing_inventory`` KV lookup (paged reads, batched writes, stale rows deleted: iot_defender_kv)."""

    def __init__(self, service: Any, logger: Any, stanza: str):
        self._service = service
        self._logger = logger
        self._stanza = stanza
        self._rows: Optional[iot_defender_kv.KvRows] = None

    def rows(self) -> iot_defender_kv.KvRows:
        def retry(operation: Callable[[], Any], what: str) -> Any:
            return _kv_retry(operation, what, self._logger)

        data = collection_data(self._service, INVENTORY_COLLECTION, self._logger)
        links = iot_defender_kv.KvLinks(collection_data(self._service, CERTIFICATE_COLLECTION, self._logger), retry)
        self._rows = iot_defender_kv.KvRows(data, retry, links)
        return self._rows

    def finish(self, result: inventory.InventoryResult, *, account_id: str, region: str) -> None:
        rows = self._rows if self._rows is not None else self.rows()
        rows.write_page(result)
        deleted = (
            iot_defender_kv.delete_stale(rows, result, account_id=account_id, region=region) if result.complete else 0
        )
        counts = {**result.counts(), "rows_written": rows.writes, "rows_deleted": deleted, "row_reads": rows.reads}
        if rows.links is not None:
            links = rows.links
            counts.update(
                links_written=links.written, links_deleted=links.deleted_keys, link_things_deleted=links.thing_deletes
            )
        self._logger.info(
            "%s: inventory lookup %s: %s",
            self._stanza,
            INVENTORY_COLLECTION,
            " ".join(f"{key}={value}" for key, value in counts.items()),
        )


def _account_id(session: AwsSession) -> str:
    """The AWS account id events carry (from STS; needs no extra permission)."""
    answer = session.call(session.client("sts"), "get_caller_identity")
    return str(answer["Account"])


def _log_failure(logger: Any, stats: RunStats, kind: InputKind, exc: BaseException, secrets: List[str]) -> None:
    stats.status = "error"
    stats.errors += 1
    category = error_category(exc)
    if isinstance(exc, ConfigError):
        stats.error_code = "ConfigError"
        log_error(logger, exc, category, f"{stats.stanza}: configuration error: {exc}")
        return
    code = error_code(exc)
    stats.error_code = code
    where = f"{stats.stanza}: account={stats.account} region={stats.region}"
    detail = redact(error_message(exc), secrets)
    if is_access_denied(exc):
        log_error(logger, exc, category, f"{where}: {kind.feature_hint} ({code}: {detail})")
        return
    log_error(
        logger,
        exc,
        category,
        f"{where}: run failed ({code}: {detail}); the checkpoint was not advanced past delivered events, "
        "the next run resumes there",
    )
    logger.debug("%s", redact(traceback.format_exc(), secrets))


def _log_outcome(logger: Any, stats: RunStats, kind: InputKind, outcome: Outcome, secrets: List[str]) -> None:
    """One warning when AWS first says the feature is not available; an info line at each daily re-check."""
    if outcome.status not in (NEWLY_UNAVAILABLE, STILL_UNAVAILABLE) or outcome.error is None:
        return
    where = f"{stats.stanza}: account={stats.account} region={stats.region}"
    detail = f"{error_code(outcome.error)}: {redact(error_message(outcome.error), secrets)}"
    next_check = events.to_iso(stats.next_check) if stats.next_check is not None else "-"
    if outcome.status == NEWLY_UNAVAILABLE:
        logger.warning(
            "%s: %s (%s). Recorded as status=unavailable; AWS is asked again at %s, not at every interval.",
            where,
            kind.feature_hint,
            detail,
            next_check,
        )
    else:
        logger.info("%s: re-checked: still not available (%s); next check at %s", where, detail, next_check)


def run_input(input_type: str, inputs: Any, event_writer: Any) -> None:
    """Entry point of every input helper's ``stream_events``."""
    metadata = inputs.metadata
    session_key = metadata["session_key"]
    kind = kind_of(input_type)
    logger = get_logger(input_type)
    set_log_level(logger, session_key)
    service = connect_splunkd(metadata)
    for full_name, params in inputs.inputs.items():
        _run_stanza(kind, _stanza_name(full_name), params, metadata, service, event_writer, logger)


def _run_stanza(
    kind: InputKind,
    stanza: str,
    params: Dict[str, Any],
    metadata: Dict[str, Any],
    service: Any,
    event_writer: Any,
    logger: Any,
) -> None:
    session_key = metadata["session_key"]
    account_name = str(params.get("account") or "")
    try:
        account = load_account(session_key, account_name)
        settings = load_client_settings(session_key)
        regions = parse_regions(params.get("regions"), account.default_region)
        options = kind.parse_options(params)
    except (ConfigError, ValueError) as exc:
        stats = RunStats(input=kind.name, stanza=stanza, account=account_name or "-", region="-")
        _log_failure(logger, stats, kind, ConfigError(str(exc)), [])
        logger.info(stats.summary_line())
        return
    secrets = [*account.secrets(), *SECRET_FILTER.secrets]
    journal_dir = metadata.get("checkpoint_dir") or "."
    ports = Ports(
        sink=XmlEventSink(event_writer, f"{kind.name}://{stanza}", params.get("index")),
        store=KvCheckpointStore(service, logger),
        journal_for=lambda key: Journal(_journal_path(journal_dir, key)),
        lookup=KvInventoryLookup(service, logger, stanza),
    )

    def scope_for(region: str, session: AwsSession) -> RunScope:
        return RunScope(
            input=kind.name,
            stanza=stanza,
            account=account.name,
            account_id=_account_id(session),
            region=region,
            options=options,
            now=time.time(),
        )

    for region in regions:
        stats = RunStats(input=kind.name, stanza=stanza, account=account.name, region=region)
        _run_region(
            kind, lambda: AwsSession(account, settings, raw_timestamps=True), scope_for, ports, stats, logger, secrets
        )
        report_ingested(logger, f"{kind.name}://{stanza}", stats.by_sourcetype, params.get("index"), account.name)


def _run_region(
    kind: InputKind,
    new_session: Callable[[], AwsSession],
    scope_for: Callable[[str, AwsSession], RunScope],
    ports: Ports,
    stats: RunStats,
    logger: Any,
    secrets: List[str],
) -> None:
    session: Optional[AwsSession] = None
    try:
        session = new_session()
        outcome = collect(kind, scope_for(stats.region, session), session, ports, stats)
        _log_outcome(logger, stats, kind, outcome, secrets)
    except Exception as exc:  # one region's failure must not stop the others, nor crash-loop the input
        _log_failure(logger, stats, kind, exc, secrets)
    finally:
        if session is not None:
            stats.api_calls += session.api_calls
            stats.throttles += session.throttles
        if stats.malformed_samples:
            logger.warning(
                "%s: %d malformed records reported and skipped, e.g.: %s",
                stats.stanza,
                stats.malformed,
                " | ".join(stats.malformed_samples[:5]),
            )
        logger.info(stats.summary_line())


def validate_params(input_type: str, params: Dict[str, Any]) -> None:
    """``--validate-arguments``: refuse bad parameters with a message splunkd shows to the admin."""
    try:
        parse_regions(params.get("regions"), "us-east-1")
        kind_of(input_type).parse_options(params)
    except (ConfigError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    if not str(params.get("account") or "").strip():
        raise ValueError("an AWS account must be selected")
