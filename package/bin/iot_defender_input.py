"""Splunk side of the three modular inputs: one runner, three sources.

For each input stanza and region it loads the account (secrets from Splunk's credential store), the checkpoint
(KV store) and the crash journal (the input's checkpoint_dir), hands the library's pages to
:func:`iot_defender.pipeline.deliver` with an XML sink on stdout, and logs one run summary line.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
from typing import Any, Callable, Dict, Iterator, List, Optional
from urllib.parse import urlparse
from xml.sax.saxutils import escape, quoteattr

import iot_defender_kv
from splunklib import binding
from splunklib import client as splunk_client

from iot_defender import audit as audit_source
from iot_defender import detect, events, inventory
from iot_defender.aws import AwsSession, ConfigError, error_code, error_message, parse_regions, redact
from iot_defender.checkpoint import InputState, Journal, checkpoint_key, merge_seen
from iot_defender.pipeline import Page, RunStats, deliver
from iot_defender_splunk import SECRET_FILTER, get_logger, load_account, load_client_settings, set_log_level

APP = "TA-aws-iot-defender"
CHECKPOINT_COLLECTION = "ta_aws_iot_defender_checkpoints"
INVENTORY_COLLECTION = "iot_thing_inventory"
# KV store answers 503 while it starts (splunkd restart, SHC member joining): wait this long, then give up.
KV_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
FEATURE_HINT = {
    "iot_defender_violations": (
        "Device Defender Detect is not available to this account or role (AWS closed Detect to new customers on "
        "2026-08-31; Audit is unaffected). If this account only uses Audit, disable this input; otherwise grant "
        "iot:ListViolationEvents and iot:ListActiveViolations to the add-on's role."
    ),
    "iot_defender_audit": (
        "Device Defender Audit is not available to this account or role: grant iot:ListAuditTasks, "
        "iot:DescribeAuditTask and iot:ListAuditFindings to the add-on's role, and check that audit is configured."
    ),
    "iot_defender_inventory": (
        "The thing registry is not readable by this account or role: grant iot:ListCertificates, "
        "iot:GetIndexingConfiguration, iot:SearchIndex, iot:ListThings, iot:ListThingGroupsForThing, "
        "iot:ListThingPrincipals and iot:DescribeCertificate."
    ),
}
ACCESS_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedException", "ForbiddenException"})


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


def _violation_run(
    session: AwsSession, region: str, state: InputState, params: Dict[str, Any], *, account_id: str, now: float
) -> tuple:
    options = detect.ViolationOptions.from_params(params)

    def pages() -> Iterator[Page]:
        yield from detect.violation_pages(session, region, state, options, account_id=account_id, now=now)
        if options.collect_active:
            yield from detect.active_violation_pages(session, region, options, account_id=account_id, now=now)

    return pages(), detect.violation_keep_after(options)


def _audit_run(
    session: AwsSession, region: str, state: InputState, params: Dict[str, Any], *, account_id: str, now: float
) -> tuple:
    options = audit_source.AuditOptions.from_params(params)
    pages = audit_source.audit_pages(session, region, state, options, account_id=account_id, now=now)
    return pages, audit_source.audit_keep_after


SOURCES = {"iot_defender_violations": _violation_run, "iot_defender_audit": _audit_run}


def _account_id(session: AwsSession, logger: Any) -> str:
    """The AWS account id events carry (from STS; needs no extra permission)."""
    answer = session.call(session.client("sts"), "get_caller_identity")
    return str(answer["Account"])


def _log_failure(logger: Any, stats: RunStats, input_type: str, exc: BaseException, secrets: List[str]) -> None:
    stats.status = "error"
    stats.errors += 1
    if isinstance(exc, ConfigError):
        stats.error_code = "ConfigError"
        logger.error("%s: configuration error: %s", stats.stanza, exc)
        return
    code = error_code(exc)
    stats.error_code = code
    detail = redact(error_message(exc), secrets)
    if code in ACCESS_CODES:
        logger.error(
            "%s: account=%s region=%s: %s (%s: %s)",
            stats.stanza,
            stats.account,
            stats.region,
            FEATURE_HINT[input_type],
            code,
            detail,
        )
    else:
        logger.error(
            "%s: account=%s region=%s: run failed (%s: %s); the checkpoint was not advanced past delivered events, "
            "the next run resumes there",
            stats.stanza,
            stats.account,
            stats.region,
            code,
            detail,
        )
        logger.debug("%s", redact(traceback.format_exc(), secrets))


def run_input(input_type: str, inputs: Any, event_writer: Any) -> None:
    """Entry point of every input helper's ``stream_events``."""
    metadata = inputs.metadata
    session_key = metadata["session_key"]
    logger = get_logger(input_type)
    set_log_level(logger, session_key)
    service = connect_splunkd(metadata)
    for full_name, params in inputs.inputs.items():
        stanza = _stanza_name(full_name)
        _run_stanza(input_type, stanza, params, metadata, service, event_writer, logger)


def _run_stanza(
    input_type: str,
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
    except ConfigError as exc:
        stats = RunStats(input=input_type, stanza=stanza, account=account_name or "-", region="-")
        _log_failure(logger, stats, input_type, exc, [])
        logger.info(stats.summary_line())
        return
    secrets = [*account.secrets(), *SECRET_FILTER.secrets]
    sink = XmlEventSink(event_writer, f"{input_type}://{stanza}", params.get("index"))
    store = KvCheckpointStore(service, logger)
    for region in regions:
        stats = RunStats(input=input_type, stanza=stanza, account=account.name, region=region)
        session = None
        try:
            session = AwsSession(account, settings, raw_timestamps=True)
            account_id = _account_id(session, logger)
            now = time.time()
            if input_type == "iot_defender_inventory":
                _run_inventory(session, region, params, account_id, now, sink, service, stats, logger)
            else:
                _run_windowed(
                    input_type, session, region, params, account_id, now, metadata, sink, store, stats, stanza, account
                )
        except Exception as exc:  # one region's failure must not stop the others, nor crash-loop the input
            _log_failure(logger, stats, input_type, exc, secrets)
        finally:
            if session is not None:
                stats.api_calls += session.api_calls
                stats.throttles += session.throttles
            if stats.malformed_samples:
                logger.warning(
                    "%s: %d malformed records reported and skipped, e.g.: %s",
                    stanza,
                    stats.malformed,
                    " | ".join(stats.malformed_samples[:5]),
                )
            logger.info(stats.summary_line())


def _run_windowed(
    input_type: str,
    session: AwsSession,
    region: str,
    params: Dict[str, Any],
    account_id: str,
    now: float,
    metadata: Dict[str, Any],
    sink: XmlEventSink,
    store: KvCheckpointStore,
    stats: RunStats,
    stanza: str,
    account: Any,
) -> None:
    key = checkpoint_key(input_type, stanza, account.name, region)
    state = InputState.from_dict(store.get(key))
    journal = Journal(_journal_path(metadata.get("checkpoint_dir") or ".", key))
    stats.recovered_from_journal = merge_seen(state, journal.keys())
    pages, keep_after = SOURCES[input_type](session, region, state, params, account_id=account_id, now=now)
    try:
        deliver(
            pages,
            state=state,
            sink=sink,
            journal=journal,
            save=lambda s: store.update(key, s.to_dict()),
            stats=stats,
            keep_after=keep_after,
        )
    finally:
        journal.close()
    if state.high_water is not None:
        stats.lag_seconds = max(0.0, time.time() - state.high_water)


def _run_inventory(
    session: AwsSession,
    region: str,
    params: Dict[str, Any],
    account_id: str,
    now: float,
    sink: XmlEventSink,
    service: Any,
    stats: RunStats,
    logger: Any,
) -> None:
    data = collection_data(service, INVENTORY_COLLECTION, logger)
    counts = iot_defender_kv.run_inventory(
        session,
        region,
        params,
        account_id=account_id,
        now=now,
        sink=sink,
        data=data,
        retry=lambda operation, what: _kv_retry(operation, what, logger),
        stats=stats,
    )
    logger.info(
        "%s: inventory lookup %s: %s",
        stats.stanza,
        INVENTORY_COLLECTION,
        " ".join(f"{key}={value}" for key, value in counts.items()),
    )
    stats.lag_seconds = 0.0


_OPTION_PARSERS = {
    "iot_defender_violations": detect.ViolationOptions.from_params,
    "iot_defender_audit": audit_source.AuditOptions.from_params,
    "iot_defender_inventory": inventory.InventoryOptions.from_params,
}


def validate_params(input_type: str, params: Dict[str, Any]) -> None:
    """``--validate-arguments``: refuse bad parameters with a message splunkd shows to the admin."""
    try:
        parse_regions(params.get("regions"), "us-east-1")
        _OPTION_PARSERS[input_type](params)
    except (ConfigError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    if not str(params.get("account") or "").strip():
        raise ValueError("an AWS account must be selected")
