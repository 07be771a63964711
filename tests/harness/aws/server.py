"""LoopbackAWS: one 127.0.0.1 endpoint for every AWS service the add-on calls.

Device Defender (the Detect/Audit operations of service ``iot``), OpsCenter (the OpsItem operations of ``ssm``), all
of ``ssm-incidents`` and ``sts`` are emulated here; every other request (IoT registry, policies, certificates, SNS, S3, ...) is checked for
credentials and faults and then handed to an in-process moto WSGI app.
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, quote
from xml.sax.saxutils import escape

from . import models
from .auth import (
    AUTH_ERROR_CODES,
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_SECRET_KEY,
    AuthError,
    Credential,
    CredentialRegistry,
    StsError,
    iso8601,
    parse_authorization,
)
from .common import Clock, RequestContext
from .defender import AUDIT_OPERATIONS, DETECT_OPERATIONS, SHARED_OPERATIONS, DefenderStore
from .faults import Faults
from .incidents import INCIDENT_OPERATIONS, IncidentStore
from .models import ModelViolation, RequestError
from .moto_iot import patch_moto_iot
from .opsitems import OPSITEM_OPERATIONS, OpsItemStore
from .registry import REGISTRY_OPERATIONS, RegistryStore

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}

# service -> (validation error code, throttling (code, status), internal (code, status), unavailable (code, status))
_SERVICE_ERRORS = {
    "iot": (
        "InvalidRequestException",
        ("ThrottlingException", 400),
        ("InternalFailureException", 500),
        ("ServiceUnavailableException", 503),
    ),
    "ssm-incidents": (
        "ValidationException",
        ("ThrottlingException", 429),
        ("InternalServerException", 500),
        ("InternalServerException", 500),
    ),
    "ssm": (
        "ValidationException",
        ("ThrottlingException", 400),
        ("InternalServerError", 500),
        ("InternalServerError", 500),
    ),
    "s3": ("InvalidArgument", ("SlowDown", 503), ("InternalError", 500), ("ServiceUnavailable", 503)),
}
_QUERY_ERRORS = ("ValidationError", ("Throttling", 400), ("InternalFailure", 500), ("ServiceUnavailable", 503))
_JSON_ERRORS = (
    "ValidationException",
    ("ThrottlingException", 400),
    ("InternalFailure", 500),
    ("ServiceUnavailable", 503),
)

EMULATED_IOT_OPERATIONS = DETECT_OPERATIONS | AUDIT_OPERATIONS | SHARED_OPERATIONS


@dataclass(frozen=True)
class RequestRecord:
    time: float
    service: str
    operation: str
    params: Dict[str, Any]
    status: int
    error_code: Optional[str]
    account_id: Optional[str]
    access_key: Optional[str]
    region: Optional[str]
    emulated: bool
    user_agent: str = ""  # who called: the add-on's clients send ``TA-aws-iot-defender/<version>``


# Process-wide observers of every request any LoopbackAWS answers (the IAM test records which operations the
# add-on's own code calls during a whole test session, whatever the test that started the endpoint).
_OBSERVERS: List[Callable[[RequestRecord], None]] = []


def observe_requests(observer: Callable[[RequestRecord], None]) -> Callable[[], None]:
    """Call ``observer`` with every request record from now on (all instances); returns the undo."""
    _OBSERVERS.append(observer)
    return lambda: _OBSERVERS.remove(observer)


class RequestLog:
    """Thread-safe log of every request the endpoint answered."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items: List[RequestRecord] = []

    def append(self, rec: RequestRecord) -> None:
        with self._lock:
            self._items.append(rec)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def snapshot(self) -> List[RequestRecord]:
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __getitem__(self, i):
        with self._lock:
            return self._items[i]

    def filter(self, service: Optional[str] = None, operation: Optional[str] = None, **where: Any):
        out = []
        for r in self.snapshot():
            if service is not None and r.service != service:
                continue
            if operation is not None and r.operation != operation:
                continue
            if any(getattr(r, k) != v for k, v in where.items()):
                continue
            out.append(r)
        return out

    def count(self, operation: Optional[str] = None, service: Optional[str] = None, **where: Any) -> int:
        return len(self.filter(service=service, operation=operation, **where))

    def operations(self) -> List[str]:
        return [r.operation for r in self.snapshot()]


@dataclass
class _Response:
    status: int
    headers: List[Tuple[str, str]]
    body: bytes
    error_code: Optional[str] = None
    params: Dict[str, Any] = field(default_factory=dict)


class LoopbackAWS:
    """AWS on loopback. Use as a context manager, or call start()/stop().

    >>> with LoopbackAWS() as aws:
    ...     iot = aws.client("iot")
    ...     iot.list_violation_events(startTime=..., endTime=...)
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        account_id: str = DEFAULT_ACCOUNT_ID,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        verify_signatures: bool = True,
        validate_responses: bool = True,
        reset_moto: bool = True,
    ):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("LoopbackAWS only listens on loopback")
        self.host = host
        self.region = region
        self.seed = seed
        self.account_id = account_id
        self.access_key = access_key
        self.secret_key = secret_key
        self.verify_signatures = verify_signatures
        self.validate_responses = validate_responses
        self.reset_moto_on_start = reset_moto
        self._requested_port = port
        self.clock = Clock()
        self.faults = Faults(seed)
        self.auth = CredentialRegistry(seed)
        self.auth.add_credentials(access_key, secret_key, account_id, user_name="loopback")
        self.defender = DefenderStore(self.clock, account_id, region)
        self.incidents = IncidentStore(self.clock, account_id, region)
        self.registry = RegistryStore()
        self.opsitems = OpsItemStore(self.clock, account_id, region)
        self.requests = RequestLog()
        self.internal_errors: List[str] = []
        self.unimplemented: List[str] = []  # operations neither the emulator nor moto implement
        self.defender.add_things_to_thing_group = self._moto_add_things_to_groups
        self._server = None
        self._thread: Optional[threading.Thread] = None
        self._moto_app = None
        self._moto_lock = threading.Lock()
        self._moto_snapshot = _MotoSnapshot()
        self.port: Optional[int] = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LoopbackAWS:
        from werkzeug.serving import make_server

        if self._server is not None:
            return self
        if self.reset_moto_on_start:
            self.reset_moto()
        _moto_valid_certs()
        _moto_thing_versions()
        patch_moto_iot()
        self._server = make_server(
            self.host, self._requested_port, self._wsgi, threaded=True, request_handler=_quiet_handler()
        )
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-aws", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server.server_close()
        self._server = None
        self._thread = None
        self._moto_snapshot = _MotoSnapshot()

    def __enter__(self) -> LoopbackAWS:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("LoopbackAWS is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def env(
        self,
        access_key: Optional[str] = None,
        secret_key: Optional[str] = None,
        region: Optional[str] = None,
    ) -> Dict[str, str]:
        """Environment for a subprocess: endpoint, a valid credential, region, and IMDS disabled."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": access_key or self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key,
            "AWS_DEFAULT_REGION": region or self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def reset(self) -> None:
        """Back to a fresh endpoint: moto state, emulator state, credentials, faults, clock, request log."""
        self.reset_moto()
        self.defender.clear()
        self.incidents.clear()
        self.registry.clear()
        self.opsitems.clear()
        self.faults.reset()
        self.clock.reset()
        self.auth = CredentialRegistry(self.seed)
        self.auth.add_credentials(self.access_key, self.secret_key, self.account_id, user_name="loopback")
        self.requests.clear()
        self.internal_errors.clear()
        self.unimplemented.clear()

    def reset_moto(self) -> None:
        """Reset this instance's moto state (other LoopbackAWS instances and ``mock_aws`` are not touched)."""
        from moto.core.base_backend import BackendDict

        with self.moto_state():
            BackendDict.reset()

    def moto_state(self):
        """Context manager: moto's process-global backends hold this instance's state while inside, e.g.
        ``with aws.moto_state(): iot_backends[account][region].create_thing(...)``. Each LoopbackAWS keeps its
        own moto state and swaps it in only for the duration of a request (under a process-wide lock), so
        instances never see each other's registry and ``moto.mock_aws`` elsewhere in the process is unaffected.
        """
        return _moto_active(self._moto_snapshot)

    def reset_log(self) -> None:
        self.requests.clear()

    # ------------------------------------------------------------------ accounts and credentials
    def add_account(self, account_id: str, detect: bool = True, audit: bool = True, incident_manager: bool = True):
        return self.auth.add_account(account_id, detect=detect, audit=audit, incident_manager=incident_manager)

    def set_account_features(self, account_id: str, **features: bool):
        return self.auth.add_account(account_id, **features)

    def add_credentials(self, access_key: str, secret_key: str, account_id: Optional[str] = None) -> Credential:
        return self.auth.add_credentials(access_key, secret_key, account_id or self.account_id)

    def add_role(
        self,
        role_arn: str,
        external_id: Optional[str] = None,
        account_id: Optional[str] = None,
        max_session_duration: int = 3600,
    ):
        return self.auth.add_role(role_arn, external_id, account_id, max_session_duration)

    @property
    def sts_credential_lifetime_seconds(self) -> int:
        return self.auth.sts_credential_lifetime_seconds

    @sts_credential_lifetime_seconds.setter
    def sts_credential_lifetime_seconds(self, value: int) -> None:
        self.auth.sts_credential_lifetime_seconds = int(value)

    def expire_all_credentials(self) -> int:
        return self.auth.expire_all_credentials()

    def set_rate_limit(self, operation: str, tps: Optional[float], burst: Optional[float] = None) -> None:
        self.faults.set_rate_limit(operation, tps, burst)

    @property
    def verification_states(self) -> Dict[Tuple[str, str, str], Dict[str, Any]]:
        """(account, region, violationId) -> {verificationState, verificationStateDescription, time, caller}."""
        return self.defender.verification_states

    # ------------------------------------------------------------------ boto3 helpers
    def session(self, access_key=None, secret_key=None, session_token=None, region=None):
        import boto3

        return boto3.Session(
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or (self.secret_key if access_key is None else None),
            aws_session_token=session_token,
            region_name=region or self.region,
        )

    def client(self, service: str, region=None, access_key=None, secret_key=None, session_token=None, **config):
        """A boto3 client for ``service`` pointed at this endpoint (default credential unless given)."""
        from botocore.config import Config

        cfg = Config(**config) if config else None
        return self.session(access_key, secret_key, session_token, region).client(
            service, endpoint_url=self.endpoint_url, config=cfg
        )

    # ------------------------------------------------------------------ WSGI
    def _wsgi(self, environ, start_response):
        started = time.time()
        try:
            resp, meta = self._handle(environ)
        except Exception:  # a bug in the harness: answer 500, remember it loudly
            tb = traceback.format_exc()
            self.internal_errors.append(tb)
            print(f"LoopbackAWS internal error:\n{tb}", file=sys.stderr)
            resp = self._json_error("InternalFailure", "LoopbackAWS internal error (see stderr)", 500)
            meta = {"service": "?", "operation": "?", "account": None, "key": None, "region": None, "emulated": False}
        record = RequestRecord(
            time=started,
            service=meta["service"],
            operation=meta["operation"],
            params=resp.params,
            status=resp.status,
            error_code=resp.error_code,
            account_id=meta["account"],
            access_key=meta["key"],
            region=meta["region"],
            emulated=meta["emulated"],
            user_agent=environ.get("HTTP_USER_AGENT", ""),
        )
        self.requests.append(record)
        for observer in list(_OBSERVERS):
            observer(record)
        start_response(f"{resp.status} {_STATUS_TEXT.get(resp.status, 'Status')}", resp.headers)
        return [resp.body]

    def _handle(self, environ) -> Tuple[_Response, Dict[str, Any]]:
        meta: Dict[str, Any] = {
            "service": "?",
            "operation": "?",
            "account": None,
            "key": None,
            "region": None,
            "emulated": False,
        }
        body = _read_body(environ)
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw_uri:
            raw_path, _, raw_query = raw_uri.partition("?")
        else:
            raw_path = quote(environ.get("PATH_INFO", "/"))
            raw_query = environ.get("QUERY_STRING", "")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        headers = _headers(environ)
        query = parse_qs(raw_query, keep_blank_values=True)

        if environ.get("PATH_INFO", "").startswith("/moto-api"):
            meta.update(service="moto-api", operation=environ.get("PATH_INFO", ""))
            return self._to_moto(environ, body, None), meta

        auth_header = headers.get("authorization")
        if not auth_header:
            if "X-Amz-Credential" in query:  # presigned URL (S3 GET): key + expiry check, then moto
                ak = query["X-Amz-Credential"][0].split("/")[0]
                cred = self.auth.get(ak)
                meta.update(service="s3", operation="Presigned", key=ak)
                if cred is None or cred.expired():
                    return self._xml_error("InvalidAccessKeyId", "The AWS Access Key Id is not valid.", 403), meta
                meta["account"] = cred.account_id
                return self._to_moto(environ, body, cred.account_id), meta
            return (
                self._json_error("MissingAuthenticationTokenException", "Missing Authentication Token", 403),
                meta,
            )

        pa = parse_authorization(auth_header)
        if pa is None:
            return self._json_error("IncompleteSignatureException", "Authorization header is malformed.", 403), meta
        service = pa.service
        meta.update(service=service, key=pa.access_key, region=pa.region)
        model = models.model_for_signing_name(service)
        protocol = model.metadata.get("protocol", "rest-json") if model is not None else "rest-json"
        form = _form(headers, body) if protocol in ("query", "ec2") else None
        op = models.operation_name_for(model, method, raw_path, query, _CaseHeaders(headers), form)
        meta["operation"] = op
        err = _ErrorRenderer(service, protocol)
        emulated = (
            (service == "iot" and op in EMULATED_IOT_OPERATIONS)
            or (service == "ssm" and op in OPSITEM_OPERATIONS)
            or service in ("ssm-incidents", "sts")
        )
        meta["emulated"] = emulated

        # 1. authentication
        try:
            cred = self.auth.authenticate(
                auth=pa,
                method=method,
                raw_path=raw_path,
                raw_query=raw_query,
                headers=headers,
                body=body,
                verify_signature=self.verify_signatures,
                s3_style=(service == "s3"),
            )
        except AuthError as exc:
            codes = AUTH_ERROR_CODES[exc.kind]
            code = codes[1] if protocol in ("query", "ec2") else codes[2] if protocol == "rest-xml" else codes[0]
            return err.render(code, exc.message, codes[3]), meta
        meta["account"] = cred.account_id
        account = cred.account_id
        if service == "iot" and op in REGISTRY_OPERATIONS and self.registry.holds(account, pa.region):
            emulated = meta["emulated"] = True  # a fleet-scale registry held by the emulator, not moto

        # 2. account features (Detect / Audit / Incident Manager not enabled for this account)
        feats = self.auth.features(account)
        disabled = None
        if service == "iot" and op in DETECT_OPERATIONS and not feats.detect:
            disabled = "AWS IoT Device Defender Detect"
        elif service == "iot" and op in AUDIT_OPERATIONS and not feats.audit:
            disabled = "AWS IoT Device Defender Audit"
        elif service == "ssm-incidents" and not feats.incident_manager:
            disabled = "AWS Systems Manager Incident Manager"
        if disabled:
            return (
                err.render(
                    "AccessDeniedException",
                    f"{disabled} is not available to account {account}: the feature is not enabled "
                    "(the service is closed to new customers).",
                    403,
                ),
                meta,
            )

        # 3. faults
        delay = self.faults.delay_for(op)
        if delay:
            time.sleep(delay)
        injected = self.faults.pop_fail_next(op)
        if injected is not None:
            return err.render(injected[0], injected[2], injected[1]), meta
        if self.faults.rate_limited(account, pa.region, op) or self.faults.roll_throttle(op):
            code, status = err.codes[1]
            return err.render(code, "Rate exceeded", status), meta
        kind = self.faults.roll_error(op)
        if kind is not None:
            code, status = err.codes[2] if kind == "internal" else err.codes[3]
            return err.render(code, "We encountered an internal error. Please try again.", status), meta

        # 4. dispatch
        if service == "sts":
            return self._sts(op, form or {}, cred, err), meta
        if emulated:
            ctx = RequestContext(
                account_id=account,
                region=pa.region,
                now=self.clock.now(),
                caller_arn=cred.arn,
                access_key=cred.access_key,
                service=service,
                operation=op,
                error_code=err.codes[0],
            )
            return self._emulate(model, op, ctx, raw_path, query, headers, body, err), meta
        resp = self._to_moto(environ, body, account)
        resp.params = _best_effort_params(model, op, raw_path, query, headers, body, form)
        return resp, meta

    # ------------------------------------------------------------------ emulated rest-json operations
    def _handler(self, service: str, op: str) -> Optional[Callable]:
        if service == "iot":
            if op in REGISTRY_OPERATIONS:
                return getattr(self.registry, f"op_{op}", None)
            return getattr(self.defender, f"op_{op}", None)
        if service == "ssm-incidents" and op in INCIDENT_OPERATIONS:
            return getattr(self.incidents, f"op_{op}", None)
        if service == "ssm" and op in OPSITEM_OPERATIONS:
            return getattr(self.opsitems, f"op_{op}", None)
        return None

    def _emulate(self, model, op, ctx, raw_path, query, headers, body, err) -> _Response:
        handler = self._handler(ctx.service, op)
        if handler is None:
            return err.render("UnknownOperationException", f"{op} is not emulated by LoopbackAWS", 400)
        op_model = model.operation_model(op)
        json_protocol = model.metadata.get("protocol") == "json"
        params: Dict[str, Any] = {}
        try:
            if json_protocol:
                params = models.parse_json_request(op_model, body, ctx.error_code)
            else:
                _, labels = models.router_for(model.service_name).match(op_model.http["method"], raw_path, query)
                params = models.parse_rest_json_request(
                    op_model, labels, query, _CaseHeaders(headers), body, ctx.error_code
                )
            models.validate_params(op_model, params, ctx.error_code)
            out = handler(ctx, params)
        except RequestError as exc:
            r = err.render(exc.code, exc.message, exc.status, exc.extra)
            r.params = _loggable(params)
            return r
        if self.validate_responses:
            try:
                models.check_output(op_model, out)
            except ModelViolation as exc:
                self.internal_errors.append(str(exc))
                print(f"LoopbackAWS: {exc}", file=sys.stderr)
                r = err.render("InternalFailure", str(exc), 500)
                r.params = _loggable(params)
                return r
        malformed = self.faults.pop_malformed(op)
        if malformed is not None:
            item, list_key = malformed
            if list_key is None:
                list_key = next((k for k, v in out.items() if isinstance(v, list)), None)
            if list_key is None:
                out.update(item if isinstance(item, dict) else {"malformed": item})
            else:
                out.setdefault(list_key, []).append(item)
        status = int(op_model.http.get("responseCode", 200))
        payload = json.dumps(out, separators=(",", ":"), default=models.json_default).encode()
        content_type = f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}"
        hdrs = [
            ("Content-Type", content_type if json_protocol else "application/json"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("Content-Length", str(len(payload))),
        ]
        return _Response(status, hdrs, payload, None, _loggable(params))

    # ------------------------------------------------------------------ STS (query protocol)
    def _sts(self, op: str, form: Dict[str, str], cred: Credential, err: _ErrorRenderer) -> _Response:
        sts_model = models.service_model("sts")
        params_log = {k: v for k, v in form.items() if k not in ("Action", "Version")}
        if op == "GetCallerIdentity":
            result = {"UserId": cred.user_id, "Account": cred.account_id, "Arn": cred.arn}
            return self._sts_response(op, result, params_log)
        if op == "AssumeRole":
            om = sts_model.operation_model("AssumeRole")
            params: Dict[str, Any] = {}
            try:
                for name, member in om.input_shape.members.items():
                    if name in form and member.type_name in ("string", "integer"):
                        params[name] = int(form[name]) if member.type_name == "integer" else form[name]
                models.validate_params(om, params, "ValidationError")
                issued = self.auth.assume_role(
                    cred,
                    params["RoleArn"],
                    params["RoleSessionName"],
                    params.get("DurationSeconds"),
                    params.get("ExternalId"),
                )
            except RequestError as exc:
                r = err.render(exc.code, exc.message, exc.status)
                r.params = params_log
                return r
            except StsError as exc:
                r = err.render(exc.code, exc.message, exc.status)
                r.params = params_log
                return r
            except ValueError as exc:
                r = err.render("ValidationError", str(exc), 400)
                r.params = params_log
                return r
            result = {
                "Credentials": {
                    "AccessKeyId": issued.access_key,
                    "SecretAccessKey": issued.secret_key,
                    "SessionToken": issued.session_token,
                    "Expiration": iso8601(issued.expiration),
                },
                "AssumedRoleUser": {"AssumedRoleId": issued.user_id, "Arn": issued.arn},
            }
            return self._sts_response(op, result, params_log)
        r = err.render("InvalidAction", f"Could not find operation {op} for version 2011-06-15", 400)
        r.params = params_log
        return r

    def _sts_response(self, op: str, result: Dict[str, Any], params_log: Dict[str, Any]) -> _Response:
        if self.validate_responses:
            om = models.service_model("sts").operation_model(op)
            wire = _sts_wire(result)
            errors = models.check_shape(om.output_shape, wire, op)
            if errors:
                raise ModelViolation(f"emulator STS {op} response invalid: {errors}")

        def xml(d: Any) -> str:
            if isinstance(d, dict):
                return "".join(f"<{k}>{xml(v)}</{k}>" for k, v in d.items())
            return escape(str(d))

        rid = str(uuid.uuid4())
        doc = (
            f'<{op}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<{op}Result>{xml(result)}</{op}Result>"
            f"<ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata></{op}Response>"
        ).encode()
        hdrs = [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid), ("Content-Length", str(len(doc)))]
        return _Response(200, hdrs, doc, None, params_log)

    # ------------------------------------------------------------------ moto
    def _moto(self):
        with self._moto_lock:
            if self._moto_app is None:
                self._moto_app = _moto_dispatcher()
            return self._moto_app

    def _to_moto(self, environ, body: bytes, account: Optional[str]) -> _Response:
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        env.pop("HTTP_TRANSFER_ENCODING", None)
        env["wsgi.input_terminated"] = False
        if account:
            env["HTTP_X_MOTO_ACCOUNT_ID"] = account
        captured: Dict[str, Any] = {}
        chunks: List[bytes] = []

        def start_response(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = headers
            return chunks.append

        try:
            with self.moto_state():
                result = self._moto()(env, start_response)
                try:
                    for c in result:
                        chunks.append(c)
                finally:
                    if hasattr(result, "close"):
                        result.close()
        except NotImplementedError as exc:
            self.unimplemented.append(str(exc))
            r = self._json_error("NotImplemented", f"LoopbackAWS: not emulated and not in moto: {exc}", 501)
            return r
        payload = b"".join(chunks)
        status = int(str(captured.get("status", "500")).split()[0])
        headers = [(k, v) for k, v in captured.get("headers", []) if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(payload))))
        code = None
        if status >= 400:
            code = _error_code_from(headers, payload)
        return _Response(status, headers, payload, code)

    def _moto_add_things_to_groups(self, account: str, region: str, thing_name: str, groups: List[str]) -> None:
        """ADD_THINGS_TO_THING_GROUP mitigation: really move the thing into the groups in moto's registry."""
        from moto.iot.models import iot_backends

        with self.moto_state():
            backend = iot_backends[account][region]
            for g in groups:
                backend.add_thing_to_thing_group(g, None, thing_name, None)

    # ------------------------------------------------------------------ errors
    @staticmethod
    def _json_error(code: str, message: str, status: int) -> _Response:
        return _ErrorRenderer("?", "rest-json").render(code, message, status)

    @staticmethod
    def _xml_error(code: str, message: str, status: int) -> _Response:
        return _ErrorRenderer("s3", "rest-xml").render(code, message, status)


class _ErrorRenderer:
    def __init__(self, service: str, protocol: str):
        self.service = service
        self.protocol = protocol
        if service in _SERVICE_ERRORS:
            self.codes = _SERVICE_ERRORS[service]
        elif protocol in ("query", "ec2"):
            self.codes = _QUERY_ERRORS
        else:
            self.codes = _JSON_ERRORS

    def render(self, code: str, message: str, status: int, extra: Optional[Dict[str, Any]] = None) -> _Response:
        rid = str(uuid.uuid4())
        if self.protocol in ("query", "ec2"):
            kind = "Sender" if status < 500 else "Receiver"
            body = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f"<Error><Type>{kind}</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
                f"<RequestId>{rid}</RequestId></ErrorResponse>"
            ).encode()
            headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)]
        elif self.protocol == "rest-xml":
            body = (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{escape(code)}</Code>"
                f"<Message>{escape(message)}</Message><RequestId>{rid}</RequestId></Error>"
            ).encode()
            headers = [("Content-Type", "application/xml"), ("x-amz-request-id", rid)]
        else:
            doc: Dict[str, Any] = {"message": message}
            if self.protocol == "json":  # botocore's json parser reads the code from the body, not the header
                doc["__type"] = code
            if code == "ThrottlingException" and self.service == "ssm-incidents":
                doc.update(serviceCode="ssm-incidents", quotaCode="loopback-rate")
            doc.update(extra or {})
            body = json.dumps(doc).encode()
            headers = [
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", code),
                ("x-amzn-RequestId", rid),
            ]
        headers.append(("Content-Length", str(len(body))))
        return _Response(status, headers, body, code)


# ---------------------------------------------------------------------------------------------------- helpers
_HANDLER = None


class _MotoSnapshot:
    """One LoopbackAWS's moto state while swapped out: {BackendDict: {account: AccountSpecificBackend}}."""

    def __init__(self):
        self.backends: Dict[Any, Dict[str, Any]] = {}
        self.depth = 0


_MOTO_LOCK = threading.RLock()


def _take_moto_state() -> Dict[Any, Dict[str, Any]]:
    from moto.core.base_backend import BackendDict

    taken = {bd: dict(bd.items()) for bd in BackendDict._instances}
    for bd in list(BackendDict._instances):
        dict.clear(bd)
    BackendDict._instances.clear()
    return taken


def _put_moto_state(state: Dict[Any, Dict[str, Any]]) -> None:
    from moto.core.base_backend import BackendDict

    for bd, content in state.items():
        dict.update(bd, content)
        if bd not in BackendDict._instances:
            BackendDict._instances.append(bd)


class _moto_active:
    def __init__(self, snap: _MotoSnapshot):
        self.snap = snap
        self.foreign: Optional[Dict[Any, Dict[str, Any]]] = None

    def __enter__(self):
        _MOTO_LOCK.acquire()
        if self.snap.depth == 0:
            self.foreign = _take_moto_state()
            _put_moto_state(self.snap.backends)
        self.snap.depth += 1
        return self

    def __exit__(self, *exc):
        try:
            self.snap.depth -= 1
            if self.snap.depth == 0:
                self.snap.backends = _take_moto_state()
                _put_moto_state(self.foreign or {})
                self.foreign = None
        finally:
            _MOTO_LOCK.release()


def _moto_valid_certs() -> None:
    """Make moto compute certificate ids as AWS IoT does (SHA-256 of the DER), not of the PEM text."""
    from moto.core.config import default_user_config

    default_user_config.setdefault("iot", {})["use_valid_cert"] = True


def _moto_thing_versions() -> None:
    """Give moto's things a registry version as AWS IoT keeps it: UpdateThing with ``expectedVersion`` is refused
    with VersionConflictException (409) unless it equals the thing's version, and every UpdateThing advances the
    version by one (moto 5.2.5 ignores ``expectedVersion`` and never changes the version). Requests reach moto one
    at a time (the moto state lock), so the check and the update are atomic."""
    from moto.iot import exceptions, responses

    patch_moto_iot()
    if getattr(responses.IoTResponse.update_thing, "_loopback_versions", False):
        return
    original = responses.IoTResponse.update_thing

    def update_thing(self):  # type: ignore[no-untyped-def]
        name = self._get_param("thingName")
        expected = self._get_param("expectedVersion")
        thing = self.iot_backend.describe_thing(thing_name=name)
        if expected is not None and int(expected) != int(thing.version):
            raise exceptions.VersionConflictException(name)
        answer = original(self)
        thing.version = int(thing.version) + 1
        return answer

    update_thing._loopback_versions = True  # type: ignore[attr-defined]
    responses.IoTResponse.update_thing = update_thing


def _moto_dispatcher():
    """moto's host-based dispatcher with its host -> backend answer remembered: requests to 127.0.0.1 carry no
    service host, and moto re-derives one by listing its package directory on every request (~12% of the
    emulator's time per call)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class RememberingDispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backend_by_host: Dict[Optional[str], Any] = {}

        def get_backend_for_host(self, host: Optional[str]) -> Any:
            # Called under self.lock (DomainDispatcherApplication.get_application).
            if host not in self._backend_by_host:
                self._backend_by_host[host] = super().get_backend_for_host(host)
            return self._backend_by_host[host]

    return RememberingDispatcher()


def _quiet_handler():
    """moto's request handler (keeps S3's underscore headers) without the per-request access log."""
    global _HANDLER
    if _HANDLER is None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args, **kwargs):
                pass

        _HANDLER = QuietHandler
    return _HANDLER


class _CaseHeaders:
    """Case-insensitive read-only view on a lower-cased header dict."""

    def __init__(self, lower: Dict[str, str]):
        self._h = lower

    def get(self, name: str, default=None):
        return self._h.get(name.lower(), default)


def _headers(environ) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for k, v in environ.items():
        if k.startswith("HTTP_"):
            out[k[5:].replace("_", "-").lower()] = v
    if environ.get("CONTENT_TYPE"):
        out["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        out["content-length"] = environ["CONTENT_LENGTH"]
    return out


def _read_body(environ) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            return stream.read(int(length))
        except ValueError:
            return b""
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    return b""


def _form(headers: Dict[str, str], body: bytes) -> Dict[str, str]:
    if not body:
        return {}
    try:
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        return {}


def _loggable(params: Dict[str, Any]) -> Dict[str, Any]:
    return dict(params)


def _best_effort_params(model, op, raw_path, query, headers, body, form) -> Dict[str, Any]:
    if model is None:
        return {}
    protocol = model.metadata.get("protocol")
    if protocol in ("query", "ec2"):
        return {k: v for k, v in (form or {}).items() if k not in ("Action", "Version")}
    if protocol == "rest-json" and op in model.operation_names:
        om = model.operation_model(op)
        _, labels = models.router_for(model.service_name).match(om.http["method"], raw_path, query)
        try:
            return models.parse_rest_json_request(om, labels, query, _CaseHeaders(headers), body, "x")
        except RequestError:
            return {}
    if protocol == "json" and body:
        try:
            doc = json.loads(body)
            return doc if isinstance(doc, dict) else {}
        except ValueError:
            return {}
    return {}


_XML_CODE = re.compile(rb"<Code>([^<]+)</Code>")


def _error_code_from(headers: List[Tuple[str, str]], payload: bytes) -> Optional[str]:
    for k, v in headers:
        if k.lower() == "x-amzn-errortype":
            return v.split(":", 1)[0]
    m = _XML_CODE.search(payload)
    if m:
        return m.group(1).decode()
    try:
        doc = json.loads(payload)
        if isinstance(doc, dict):
            code = doc.get("__type") or doc.get("code") or doc.get("Code")
            if code:
                return str(code).rsplit("#", 1)[-1]
    except ValueError:
        pass
    return None


def _sts_wire(result: Dict[str, Any]) -> Dict[str, Any]:
    """STS result in check_shape's wire form (Expiration as epoch)."""
    import datetime as _dt

    out = json.loads(json.dumps(result))
    exp = out.get("Credentials", {}).get("Expiration")
    if exp:
        out["Credentials"]["Expiration"] = _dt.datetime.fromisoformat(exp.replace("Z", "+00:00")).timestamp()
    return out
