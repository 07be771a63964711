"""A loopback splunkd stand-in serving the REST endpoints the add-on reaches through solnlib, splunklib and
splunktaucclib: conf files, storage/passwords, the KV store, server info, messages, apps, and UCC's own
``<restRoot>_*`` endpoints (emulated from the app's globalConfig.json).

Everything lives in memory (conf writes are also written through to a fake ``$SPLUNK_HOME`` when one is
attached, because splunkd itself persists them and scripts read some conf from disk). Responses follow
splunkd's wire formats: Atom XML by default, JSON with ``output_mode=json``; KV store data is always JSON.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets as _secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple
from urllib.parse import parse_qsl, unquote

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import render
from .confstore import SYSTEM, ConfStore
from .kvstore import KVError, KVStore

APP_ID = "TA-aws-iot-defender"
REST_ROOT = "ta_aws_iot_defender"
PLACEHOLDER = "******"  # solnlib ConfFile.ENCRYPTED_TOKEN and splunktaucclib RestCredentials.PASSWORD
CRED_SEP = "``splunk_cred_sep``"
CRED_END_MARK = (
    "``splunk_cred_sep``S``splunk_cred_sep``P``splunk_cred_sep``L``splunk_cred_sep``"
    "U``splunk_cred_sep``N``splunk_cred_sep``K``splunk_cred_sep``"
)
CRED_CHUNK = 255
KV_NOT_READY = "KV Store is initializing. Please try again later."
UNAUTHENTICATED = "call not properly authenticated"


def credential_realm(conf: str, app: str = APP_ID) -> str:
    """Realm UCC's REST handler (and solnlib ConfManager with this realm) uses for a conf's secrets."""
    return f"__REST_CREDENTIAL__#{app}#configs/conf-{conf}"


def _escape_colon(value: str) -> str:
    return value.replace(":", "\\:")


def password_name(realm: str, username: str) -> str:
    return f"{_escape_colon(realm)}:{_escape_colon(username)}:"


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int
    query: Dict[str, str]
    owner: Optional[str] = None
    app: Optional[str] = None
    duration: float = 0.0


@dataclass
class _Failure:
    pattern: re.Pattern
    status: int
    remaining: int
    body: Optional[str] = None
    methods: Optional[Set[str]] = None


class Faults:
    """Fault injection. All counters are per HTTP request (a client's own retries each consume one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kv_unavailable = 0
        self._failures: List[_Failure] = []
        self.latency: float = 0.0
        self.latency_pattern: Optional[re.Pattern] = None

    def kvstore_unavailable_for(self, n_requests: int) -> None:
        """The next ``n_requests`` KV store requests (config or data) get 503 "KV Store is initializing"."""
        with self._lock:
            self._kv_unavailable = n_requests

    def fail(
        self,
        path_regex: str,
        status: int = 500,
        times: int = 1,
        body: Optional[str] = None,
        methods: Optional[List[str]] = None,
    ) -> None:
        """The next ``times`` requests whose path matches ``path_regex`` get ``status`` (splunkd XML body)."""
        with self._lock:
            self._failures.append(
                _Failure(re.compile(path_regex), status, times, body, {m.upper() for m in methods or []} or None)
            )

    def set_latency(self, seconds: float, path_regex: Optional[str] = None) -> None:
        self.latency = seconds
        self.latency_pattern = re.compile(path_regex) if path_regex else None

    def clear(self) -> None:
        with self._lock:
            self._kv_unavailable = 0
            self._failures.clear()
            self.latency = 0.0
            self.latency_pattern = None

    def _take_kv(self) -> bool:
        with self._lock:
            if self._kv_unavailable > 0:
                self._kv_unavailable -= 1
                return True
            return False

    def _take_failure(self, method: str, path: str) -> Optional[_Failure]:
        with self._lock:
            for failure in self._failures:
                if (
                    failure.remaining > 0
                    and failure.pattern.search(path)
                    and (failure.methods is None or method in failure.methods)
                ):
                    failure.remaining -= 1
                    return failure
            return None

    def _delay(self, path: str) -> None:
        if self.latency and (self.latency_pattern is None or self.latency_pattern.search(path)):
            time.sleep(self.latency)


class _QuietHandler(WSGIRequestHandler):
    """No per-request access log on stderr: ``SplunkdStandIn.requests`` is the log."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HttpError(Exception):
    def __init__(self, status: int, text: str, msg_type: str = "ERROR"):
        super().__init__(text)
        self.status = status
        self.text = text
        self.msg_type = msg_type


@dataclass
class _Password:
    realm: str
    username: str
    clear_password: str
    app: str
    owner: str = "nobody"

    @property
    def name(self) -> str:
        return password_name(self.realm, self.username)

    def content(self) -> Dict[str, Any]:
        encr = "$7$" + base64.b64encode(("harness:" + self.clear_password).encode()).decode()
        return {
            "clear_password": self.clear_password,
            "encr_password": encr,
            "password": "********",
            "realm": self.realm,
            "username": self.username,
            "eai:appName": self.app,
            "eai:userName": self.owner,
        }


# What the built-in roles hold before any authorize.conf of an app adds to them (a subset: the ones the add-on and
# its tests look at). admin's list stands for "everything splunkd itself grants".
BUILTIN_ROLE_CAPABILITIES: Dict[str, Tuple[str, ...]] = {
    "admin": ("admin_all_objects", "list_storage_passwords", "edit_modinput_iot", "search", "schedule_search"),
    "power": ("search", "schedule_search", "rtsearch"),
    "user": ("search",),
    "ess_analyst": ("search",),
    "ess_admin": ("search", "schedule_search"),
}


@dataclass
class _Ctx:
    request: Request
    method: str
    owner: str
    app: str
    segments: List[str]
    params: Dict[str, str]
    form: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def json_mode(self) -> bool:
        return self.params.get("output_mode") == "json"

    @property
    def ns_prefix(self) -> str:
        return f"/servicesNS/{self.owner}/{self.app}"


class SplunkdStandIn:
    """Loopback splunkd stand-in. Use as a context manager::

    with SplunkdStandIn() as splunkd:
        home = SplunkHome.create(tmp_path, splunkd=splunkd)   # attaches the home
        splunkd.create_account("prod", {...}, {"aws_secret_access_key": "..."})
    """

    def __init__(
        self,
        session_key: Optional[str] = None,
        server_name: str = "harness-splunk",
        host: str = "127.0.0.1",
        version: str = render.GENERATOR_VERSION,
        username: str = "admin",
        password: str = "changeme",
    ) -> None:
        self.session_key = session_key or _secrets.token_hex(32)
        self.session_keys: Set[str] = {self.session_key}
        # session key -> user, user -> roles; the first key is the admin's.
        self._session_users: Dict[str, str] = {self.session_key: username}
        self._users: Dict[str, List[str]] = {username: ["admin"]}
        self.server_name = server_name
        self.host = host
        self.version = version
        self.username = username
        self.password = password
        self.faults = Faults()
        self.requests: List[RequestRecord] = []
        self.unknown: List[RequestRecord] = []
        self.messages: Dict[str, Dict[str, str]] = {}
        self.confs = ConfStore()
        self.kv = KVStore()
        self.home: Any = None
        self._passwords: Dict[Tuple[str, str], _Password] = {}
        self._lock = threading.RLock()
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None
        self._ucc: Dict[str, Dict[str, Any]] = {}
        self._apps_meta: Dict[str, Dict[str, str]] = {}

    # lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> SplunkdStandIn:
        self._server = make_server(self.host, 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self._seed_system()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="splunkd-stand-in", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SplunkdStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _seed_system(self) -> None:
        # What solnlib's get_splunkd_access_info asks splunkd for (server.conf sslConfig, web.conf settings).
        if self.confs.stanza("server", "sslConfig", SYSTEM) is None:
            self.confs.set("server", "sslConfig", {"enableSplunkdSSL": "false"}, SYSTEM)
        if self.confs.stanza("server", "general", SYSTEM) is None:
            self.confs.set("server", "general", {"serverName": self.server_name}, SYSTEM)
        if self.confs.stanza("web", "settings", SYSTEM) is None:
            self.confs.set("web", "settings", {"mgmtHostPort": f"{self.host}:{self.port}"}, SYSTEM)

    def attach(self, home: Any) -> None:
        """Serve the conf files of a fake ``$SPLUNK_HOME`` (system + every app) and write local changes back."""
        self.home = home
        self.confs.load_etc(Path(home.etc))
        self._seed_system()
        for app in self.confs.apps():
            self._load_app_meta(app, Path(home.etc) / "apps" / app)

    def reload_from_disk(self) -> None:
        """Forget in-memory conf and re-read the attached home (after editing its files directly)."""
        if self.home is None:
            raise RuntimeError("no SplunkHome attached")
        self.confs.load_etc(Path(self.home.etc), reset=True)
        self._seed_system()

    def _load_app_meta(self, app: str, app_dir: Path) -> None:
        gc_path = app_dir / "appserver" / "static" / "js" / "build" / "globalConfig.json"
        if gc_path.is_file():
            with contextlib.suppress(ValueError, KeyError):
                self._register_ucc(app, json.loads(gc_path.read_text()))

    def register_global_config(self, app: str, global_config: Dict[str, Any]) -> None:
        """Emulate UCC's REST handler endpoints for ``app`` from its globalConfig (done by ``attach``)."""
        self._register_ucc(app, global_config)

    def _register_ucc(self, app: str, gc: Dict[str, Any]) -> None:
        root = gc["meta"]["restRoot"]
        pages = gc.get("pages", {})
        settings_tabs = {}
        for tab in pages.get("configuration", {}).get("tabs", []):
            enc = [e["field"] for e in tab.get("entity", []) if e.get("encrypted")]
            if "table" in tab:
                conf = tab.get("conf") or f"{root}_{tab['name']}"
                self._ucc[f"{root}_{tab['name']}"] = {"app": app, "kind": "config", "conf": conf, "encrypted": enc}
            else:
                settings_tabs[tab["name"]] = enc
        if settings_tabs:
            self._ucc[f"{root}_settings"] = {
                "app": app,
                "kind": "settings",
                "conf": f"{root}_settings",
                "tabs": settings_tabs,
            }
        for service in pages.get("inputs", {}).get("services", []):
            enc = [e["field"] for e in service.get("entity", []) if e.get("encrypted")]
            self._ucc[f"{root}_{service['name']}"] = {
                "app": app,
                "kind": "input",
                "conf": service.get("conf") or "inputs",
                "prefix": f"{service['name']}://",
                "encrypted": enc,
            }

    # test helpers -------------------------------------------------------------------------------------------
    def set_conf(self, file: str, stanza: str, values: Dict[str, Any], app: str = APP_ID) -> None:
        """Write keys into ``[stanza]`` of ``file`` (no ``.conf``) in ``app``'s local layer."""
        self.confs.set(file, stanza, values, app)

    def get_conf(self, file: str, stanza: Optional[str] = None, app: str = APP_ID) -> Any:
        """Merged view of ``file`` as ``app`` sees it: all stanzas, or one stanza's keys (None if absent)."""
        stanzas, _ = self.confs.view(file, app)
        return stanzas if stanza is None else stanzas.get(stanza)

    def delete_conf_stanza(self, file: str, stanza: str, app: str = APP_ID) -> None:
        self.confs.delete(file, stanza, app)

    def set_password(self, realm: str, username: str, clear_password: str, app: str = APP_ID) -> None:
        """Store one storage/passwords entry verbatim."""
        with self._lock:
            self._passwords[(realm, username)] = _Password(realm, username, clear_password, app)

    def set_credential(self, realm: str, username: str, secret: str, app: str = APP_ID) -> None:
        """Store ``secret`` the way solnlib ``CredentialManager.set_password`` does (255-char chunks named
        ``user``splunk_cred_sep``N`` plus an end-mark entry)."""
        with self._lock:
            for key in [k for k in self._passwords if k[0] == realm and k[1].startswith(username + CRED_SEP)]:
                del self._passwords[key]
            index = 1
            for start in range(0, len(secret), CRED_CHUNK):
                self.set_password(realm, f"{username}{CRED_SEP}{index}", secret[start : start + CRED_CHUNK], app)
                index += 1
            self.set_password(realm, f"{username}{CRED_SEP}{index}", CRED_END_MARK, app)

    def get_credential(self, realm: str, username: str) -> Optional[str]:
        with self._lock:
            chunks = sorted(
                (int(u[len(username) + len(CRED_SEP) :]), p.clear_password)
                for (r, u), p in self._passwords.items()
                if r == realm and u.startswith(username + CRED_SEP) and u[len(username) + len(CRED_SEP) :].isdigit()
            )
            if not chunks:
                plain = self._passwords.get((realm, username))
                return plain.clear_password if plain else None
            out = ""
            for _index, chunk in chunks:
                if chunk == CRED_END_MARK:
                    break
                out += chunk
            return out

    def delete_credential(self, realm: str, username: str) -> None:
        with self._lock:
            for key in [
                k
                for k in self._passwords
                if k[0] == realm and (k[1] == username or k[1].startswith(username + CRED_SEP))
            ]:
                del self._passwords[key]

    def create_account(
        self,
        name: str,
        fields: Dict[str, Any],
        encrypted_fields: Optional[Dict[str, Any]] = None,
        conf: str = f"{REST_ROOT}_account",
        app: str = APP_ID,
        placeholder: str = PLACEHOLDER,
    ) -> None:
        """Persist an account as UCC's REST handler does: non-secret fields in ``<conf>.conf``, each non-empty
        secret replaced by ``******`` there and the secrets JSON-encoded (``{"field": "value"}``) in
        storage/passwords, realm ``__REST_CREDENTIAL__#<app>#configs/conf-<conf>``, username = stanza name.
        ``placeholder="********"`` reproduces accounts saved by older UCC versions (solnlib does not decrypt
        those)."""
        values = {k: v for k, v in fields.items() if k != "name"}
        secrets = {k: v for k, v in (encrypted_fields or {}).items() if v not in (None, "")}
        for key in encrypted_fields or {}:
            values[key] = placeholder if key in secrets else ""
        self.confs.set(conf, name, values, app, replace=True)
        if secrets:
            self.set_credential(credential_realm(conf, app), name, json.dumps(secrets), app)
        else:
            self.delete_credential(credential_realm(conf, app), name)

    def delete_account(self, name: str, conf: str = f"{REST_ROOT}_account", app: str = APP_ID) -> None:
        self.confs.delete(conf, name, app)
        self.delete_credential(credential_realm(conf, app), name)

    def kv_collection(self, name: str, app: str = "-") -> List[Dict[str, Any]]:
        """The documents of KV collection ``name`` (copies; empty if it does not exist)."""
        return self.kv.snapshot(name, app)

    def secrets(self) -> Set[str]:
        """Every clear secret held in storage/passwords (JSON credential blobs are opened up too), for tests
        to grep logs and outputs with."""
        found: Set[str] = set()
        with self._lock:
            realms_users = {(p.realm, p.username.split(CRED_SEP)[0]) for p in self._passwords.values()}
            for p in self._passwords.values():
                if p.clear_password and p.clear_password != CRED_END_MARK:
                    found.add(p.clear_password)
        for realm, user in realms_users:
            whole = self.get_credential(realm, user)
            if not whole:
                continue
            found.add(whole)
            try:
                blob = json.loads(whole)
            except ValueError:
                continue
            if isinstance(blob, dict):
                found.update(str(v) for v in blob.values() if v not in (None, ""))
        return {s for s in found if s}

    def requests_to(self, pattern: str, method: Optional[str] = None) -> List[RequestRecord]:
        rx = re.compile(pattern)
        return [r for r in list(self.requests) if rx.search(r.path) and (method is None or r.method == method)]

    def new_session_key(self, username: Optional[str] = None) -> str:
        key = _secrets.token_hex(32)
        with self._lock:
            self.session_keys.add(key)
            self._session_users[key] = username or self.username
        return key

    def add_user(self, username: str, roles: Sequence[str] = ("user",)) -> str:
        """A user holding ``roles``; returns a session key of theirs (what an alert payload would carry)."""
        with self._lock:
            self._users[username] = list(roles)
        return self.new_session_key(username)

    def add_role(self, role: str, capabilities: Sequence[str]) -> None:
        """A role made in Settings > Roles (system-local authorize.conf, as splunkd stores it)."""
        self.confs.set("authorize", f"role_{role}", {c: "enabled" for c in capabilities}, SYSTEM)

    def capabilities_of(self, username: str) -> List[str]:
        """What ``/services/authentication/current-context`` reports for the user: the union over their roles of
        the built-in capabilities below and the ``[role_<name>]`` grants of authorize.conf (system and every
        app: splunkd merges authorize.conf globally; ``<capability> = disabled`` in the merged stanza removes it)."""
        with self._lock:
            roles = list(self._users.get(username, []))
        found: Set[str] = set()
        for role in roles:
            granted = set(BUILTIN_ROLE_CAPABILITIES.get(role, ()))
            merged: Dict[str, str] = {}
            for app in [SYSTEM, *sorted(set(self.confs.apps()) - {SYSTEM})]:
                stanzas, _ = self.confs.view("authorize", app)
                for key, value in (stanzas.get(f"role_{role}") or {}).items():
                    merged.setdefault(key, str(value).strip().lower())
            granted |= {k for k, v in merged.items() if v == "enabled"}
            granted -= {k for k, v in merged.items() if v == "disabled"}
            found |= granted
        return sorted(found)

    # WSGI ---------------------------------------------------------------------------------------------------
    def _wsgi(self, environ: Dict[str, Any], start_response: Callable) -> Any:
        request = Request(environ)
        started = time.monotonic()
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path
        raw_path = raw_path.split("?", 1)[0]
        record = RequestRecord(request.method, unquote(raw_path).rstrip("/") or "/", 0, dict(request.args))
        try:
            response = self._dispatch(request, raw_path, record)
        except HttpError as error:
            response = self._error(error, request)
        except KVError as error:
            response = self._error(HttpError(error.status, error.text), request)
        except Exception as error:  # a bug in the stand-in: make it loud, as splunkd would log it
            response = self._error(HttpError(500, f"stand-in error: {error!r}"), request)
        record.status = response.status_code
        record.duration = time.monotonic() - started
        with self._lock:
            self.requests.append(record)
            if response.status_code == 404 and getattr(response, "_unknown", False):
                self.unknown.append(record)
        return response(environ, start_response)

    def _error(self, error: HttpError, request: Request, json_body: Optional[bool] = None) -> Response:
        wants_json = json_body if json_body is not None else self._wants_json(request)
        if wants_json:
            return Response(
                render.json_messages(error.text, error.msg_type),
                error.status,
                content_type="application/json; charset=UTF-8",
            )
        return Response(
            render.xml_messages(error.text, error.msg_type), error.status, content_type="text/xml; charset=UTF-8"
        )

    @staticmethod
    def _wants_json(request: Request) -> bool:
        if request.args.get("output_mode") == "json":
            return True
        if request.method in ("POST", "PUT") and not (request.mimetype or "").endswith("json"):
            return dict(parse_qsl(request.get_data(as_text=True))).get("output_mode") == "json"
        return False

    def _dispatch(self, request: Request, raw_path: str, record: RequestRecord) -> Response:
        segments = [unquote(s) for s in raw_path.split("/") if s != ""]
        if not segments or segments[0] not in ("services", "servicesNS"):
            raise HttpError(404, f"Unknown path {raw_path}")
        if segments[0] == "servicesNS":
            if len(segments) < 3:
                raise HttpError(404, "servicesNS needs owner and app")
            owner, app, rest = segments[1], segments[2], segments[3:]
        else:
            owner, app, rest = "nobody", SYSTEM, segments[1:]
        record.owner, record.app = owner, app
        self.faults._delay(record.path)

        if rest[:2] == ["auth", "login"]:
            return self._login(request)
        auth = request.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1].strip() if " " in auth else ""
        if not auth.startswith(("Splunk ", "Bearer ")) or token not in self.session_keys:
            raise HttpError(401, UNAUTHENTICATED, "WARN")

        failure = self.faults._take_failure(request.method, record.path)
        if failure is not None:
            if failure.body is not None:
                return Response(failure.body, failure.status)
            raise HttpError(failure.status, f"Injected failure {failure.status}")

        params: Dict[str, str] = dict(request.args)
        form: List[Tuple[str, str]] = []
        if request.method in ("POST", "PUT") and not (request.mimetype or "").endswith("json"):
            form = parse_qsl(request.get_data(as_text=True), keep_blank_values=True)
            for key, value in form:
                if key in ("output_mode", "--cred--"):
                    params[key] = value
        ctx = _Ctx(request, request.method, owner, app, rest, params, form)

        if rest[:2] == ["storage", "collections"]:
            if self.faults._take_kv():
                is_data = rest[2:3] == ["data"]
                return self._error(HttpError(503, KV_NOT_READY), request, json_body=is_data or None)
            return self._kvstore(ctx)
        if rest[:2] == ["storage", "passwords"]:
            return self._passwords_endpoint(ctx)
        if rest and rest[0].startswith("configs") and len(rest) >= 2 and rest[1].startswith("conf-"):
            return self._configs(ctx, rest[1][len("conf-") :], rest[2:])
        if rest and rest[0] == "properties":
            return self._properties(ctx, rest[1:])
        if rest[:2] == ["server", "info"]:
            return self._server_info(ctx)
        if rest[:2] == ["authentication", "current-context"]:
            return self._current_context(ctx)
        if rest and rest[0] == "messages":
            return self._messages(ctx, rest[1:])
        if rest[:2] == ["apps", "local"]:
            return self._apps(ctx, rest[2:])
        if rest and rest[0] in self._ucc:
            return self._ucc_endpoint(ctx, rest[0], rest[1:])
        response = self._error(HttpError(404, f"Not Found: the stand-in does not serve {record.path}"), request)
        response._unknown = True  # type: ignore[attr-defined]
        return response

    # rendering helpers ---------------------------------------------------------------------------------------
    def _feed(
        self, ctx: _Ctx, title: str, path: str, entries: List[render.Entry], status: int = 200, paginate: bool = True
    ) -> Response:
        total = len(entries)
        offset = 0
        if paginate:
            entries, total, offset = self._paginate(ctx, entries)
        if ctx.json_mode:
            body = render.json_feed(self.uri, path, entries, total, offset)
            return Response(body, status, content_type="application/json; charset=UTF-8")
        body = render.atom_feed(self.uri, title, path, entries, total, offset)
        return Response(body, status, content_type="text/xml; charset=UTF-8")

    @staticmethod
    def _paginate(ctx: _Ctx, entries: List[render.Entry]) -> Tuple[List[render.Entry], int, int]:
        search = ctx.params.get("search")
        if search:
            entries = [e for e in entries if _search_matches(e, search)]
        total = len(entries)
        try:
            offset = int(ctx.params.get("offset", "0") or 0)
            count = int(ctx.params.get("count", "30") or 30)
        except ValueError:
            raise HttpError(400, "count and offset must be integers") from None
        entries = entries[offset:]
        if count > 0:
            entries = entries[:count]
        return entries, total, offset

    # auth -----------------------------------------------------------------------------------------------------
    def _login(self, request: Request) -> Response:
        form = dict(parse_qsl(request.get_data(as_text=True)))
        if form.get("username") != self.username or form.get("password") != self.password:
            raise HttpError(401, "Login failed", "WARN")
        key = self.new_session_key()
        if form.get("output_mode") == "json" or request.args.get("output_mode") == "json":
            return Response(json.dumps({"sessionKey": key}), 200, content_type="application/json")
        return Response(
            f"<response>\n  <sessionKey>{key}</sessionKey>\n</response>\n", 200, content_type="text/xml; charset=UTF-8"
        )

    def _server_info(self, ctx: _Ctx) -> Response:
        content = {
            "build": render.GENERATOR_BUILD,
            "cpu_arch": "x86_64",
            "guid": "00000000-0000-4000-8000-000000000001",
            "host": self.server_name,
            "host_fqdn": self.server_name,
            "isFree": "0",
            "isTrial": "0",
            "kvStoreStatus": "ready",
            "os_name": "Linux",
            "product_type": "enterprise",
            "server_roles": ["indexer", "kv_store", "license_master", "search_head"],
            "serverName": self.server_name,
            "version": self.version,
        }
        entry = render.Entry("server-info", "/services/server/info", content, render.acl(SYSTEM, sharing="system"))
        return self._feed(ctx, "server-info", "/services/server/info", [entry], paginate=False)

    def _current_context(self, ctx: _Ctx) -> Response:
        auth = ctx.request.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1].strip() if " " in auth else ""
        with self._lock:
            username = self._session_users.get(token, self.username)
            roles = list(self._users.get(username, []))
        content = {
            "username": username,
            "realname": "Administrator" if username == self.username else username,
            "roles": roles,
            "capabilities": self.capabilities_of(username),
        }
        entry = render.Entry(
            "context", "/services/authentication/current-context", content, render.acl(SYSTEM, sharing="system")
        )
        return self._feed(ctx, "current-context", "/services/authentication/current-context", [entry])

    # conf endpoints -------------------------------------------------------------------------------------------
    def _conf_entry(self, ctx: _Ctx, conf: str, name: str, values: Dict[str, str], owner_app: str) -> render.Entry:
        content = dict(values)
        content.setdefault("disabled", "0")
        content["eai:appName"] = owner_app
        content["eai:userName"] = "nobody"
        return render.Entry(
            name,
            f"{ctx.ns_prefix}/configs/conf-{conf}",
            content,
            render.acl(owner_app, sharing="system" if owner_app == SYSTEM else "app"),
        )

    def _configs(self, ctx: _Ctx, conf: str, rest: List[str]) -> Response:
        app = ctx.app
        path = f"{ctx.ns_prefix}/configs/conf-{conf}"
        name = "/".join(rest)
        action = None
        if (
            rest
            and rest[-1] in ("_reload", "disable", "enable", "acl", "move")
            and self.confs.stanza(conf, name, app) is None
        ):
            action, name = rest[-1], "/".join(rest[:-1])
        if name == "_reload" or action == "_reload":
            return self._feed(ctx, f"conf-{conf}", path, [])
        if name == "_new":
            return self._feed(ctx, f"conf-{conf}", path, [self._conf_entry(ctx, conf, "_new", {}, app)])
        if ctx.method == "GET":
            stanzas, owners = self.confs.view(conf, app)
            if name:
                if name not in stanzas:
                    raise HttpError(404, f"Could not find object id={name}")
                return self._feed(
                    ctx,
                    f"conf-{conf}",
                    path,
                    [self._conf_entry(ctx, conf, name, stanzas[name], owners[name])],
                    paginate=False,
                )
            entries = [self._conf_entry(ctx, conf, n, v, owners[n]) for n, v in stanzas.items()]
            return self._feed(ctx, f"conf-{conf}", path, entries)
        if ctx.method == "POST":
            values = {k: v for k, v in ctx.form if k not in ("output_mode",)}
            if not name:
                new_name = values.pop("name", None)
                if not new_name:
                    raise HttpError(400, "Missing required argument: name")
                if self.confs.stanza(conf, new_name, app) is not None:
                    raise HttpError(409, f"An object with name={new_name} already exists")
                self.confs.set(conf, new_name, values, app)
                status, name = 201, new_name
            else:
                if self.confs.stanza(conf, name, app) is None:
                    raise HttpError(404, f"Could not find object id={name}")
                if action in ("disable", "enable"):
                    values = {"disabled": "1" if action == "disable" else "0"}
                values.pop("name", None)
                self.confs.set(conf, name, values, app)
                status = 200
            stanzas, owners = self.confs.view(conf, app)
            return self._feed(
                ctx,
                f"conf-{conf}",
                path,
                [self._conf_entry(ctx, conf, name, stanzas[name], owners[name])],
                status,
                paginate=False,
            )
        if ctx.method == "DELETE":
            if not name or not self.confs.delete(conf, name, app):
                raise HttpError(404, f"Could not find object id={name}")
            stanzas, owners = self.confs.view(conf, app)
            entries = [self._conf_entry(ctx, conf, n, v, owners[n]) for n, v in stanzas.items()]
            return self._feed(ctx, f"conf-{conf}", path, entries)
        raise HttpError(405, f"Method {ctx.method} not allowed")

    def _properties(self, ctx: _Ctx, rest: List[str]) -> Response:
        app = ctx.app
        base = f"{ctx.ns_prefix}/properties"
        if not rest:
            if ctx.method == "POST":
                form = dict(ctx.form)
                conf = form.get("__conf")
                if not conf:
                    raise HttpError(400, "Missing required argument: __conf")
                self.confs.ensure_conf(conf, app)
                return self._feed(ctx, "properties", base, [render.Entry(conf, base, {}, render.acl(app))], 201)
            entries = [render.Entry(n, base, {}, render.acl(app)) for n in self.confs.conf_names(app)]
            return self._feed(ctx, "properties", base, entries)
        conf = rest[0]
        if not self.confs.conf_exists(conf, app):
            raise HttpError(404, f"Could not find object id={conf}")
        stanzas, owners = self.confs.view(conf, app)
        conf_path = f"{base}/{conf}"
        if len(rest) == 1:
            if ctx.method == "POST":
                stanza = dict(ctx.form).get("__stanza")
                if not stanza:
                    raise HttpError(400, "Missing required argument: __stanza")
                self.confs.set(conf, stanza, {}, app)
                return self._feed(ctx, conf, conf_path, [render.Entry(stanza, conf_path, {}, render.acl(app))], 201)
            entries = [render.Entry(n, conf_path, {}, render.acl(owners[n])) for n in stanzas]
            return self._feed(ctx, conf, conf_path, entries)
        stanza = "/".join(rest[1:])
        if ctx.method == "POST":
            self.confs.set(conf, stanza, dict(ctx.form), app)
            stanzas, owners = self.confs.view(conf, app)
        if stanza not in stanzas:
            raise HttpError(404, f"Could not find object id={stanza}")
        stanza_path = f"{conf_path}/{stanza}"
        entries = [
            render.Entry(k, stanza_path, {"$text": v}, render.acl(owners[stanza])) for k, v in stanzas[stanza].items()
        ]
        return self._feed(ctx, stanza, stanza_path, entries)

    # storage/passwords ----------------------------------------------------------------------------------------
    def _password_entry(self, ctx: _Ctx, pw: _Password) -> render.Entry:
        return render.Entry(pw.name, f"{ctx.ns_prefix}/storage/passwords", pw.content(), render.acl(pw.app))

    def _visible_passwords(self, app: str) -> List[_Password]:
        with self._lock:
            return [p for p in self._passwords.values() if app in ("-", SYSTEM, p.app) or p.app == SYSTEM]

    def _find_password(self, app: str, name: str) -> _Password:
        for pw in self._visible_passwords(app):
            if (
                pw.name == name
                or (pw.username == name and pw.realm == "")
                or password_name(pw.realm, pw.username) == name + ":"
            ):
                return pw
        raise HttpError(404, f"Could not find object id={name}")

    def _passwords_endpoint(self, ctx: _Ctx) -> Response:
        path = f"{ctx.ns_prefix}/storage/passwords"
        name = "/".join(ctx.segments[2:])
        if name == "_new":
            return self._feed(ctx, "passwords", path, [])
        if ctx.method == "GET":
            if name:
                return self._feed(
                    ctx,
                    "passwords",
                    path,
                    [self._password_entry(ctx, self._find_password(ctx.app, name))],
                    paginate=False,
                )
            entries = [self._password_entry(ctx, p) for p in self._visible_passwords(ctx.app)]
            return self._feed(ctx, "passwords", path, entries)
        form = dict(ctx.form)
        if ctx.method == "POST" and not name:
            if ctx.app in ("-",) or ctx.owner == "-":
                raise HttpError(400, "Cannot create a password in a wildcard namespace")
            username, password = form.get("name"), form.get("password")
            if not username or password is None:
                raise HttpError(400, "Missing required argument: name or password")
            realm = form.get("realm", "")
            with self._lock:
                if (realm, username) in self._passwords:
                    raise HttpError(409, f"An object with name={password_name(realm, username)} already exists")
                pw = _Password(realm, username, password, ctx.app if ctx.app != SYSTEM else SYSTEM, ctx.owner)
                self._passwords[(realm, username)] = pw
            return self._feed(ctx, "passwords", path, [self._password_entry(ctx, pw)], 201, paginate=False)
        if ctx.method == "POST":
            pw = self._find_password(ctx.app, name)
            if "password" not in form:
                raise HttpError(400, "Missing required argument: password")
            pw.clear_password = form["password"]
            return self._feed(ctx, "passwords", path, [self._password_entry(ctx, pw)], paginate=False)
        if ctx.method == "DELETE":
            pw = self._find_password(ctx.app, name)
            with self._lock:
                self._passwords.pop((pw.realm, pw.username), None)
            entries = [self._password_entry(ctx, p) for p in self._visible_passwords(ctx.app)]
            return self._feed(ctx, "passwords", path, entries)
        raise HttpError(405, f"Method {ctx.method} not allowed")

    # KV store ------------------------------------------------------------------------------------------------
    def _kvstore(self, ctx: _Ctx) -> Response:
        kind = ctx.segments[2] if len(ctx.segments) > 2 else ""
        if kind == "config":
            return self._kv_config(ctx, "/".join(ctx.segments[3:]))
        if kind == "data" and len(ctx.segments) >= 4:
            return self._kv_data(ctx, ctx.segments[3], "/".join(ctx.segments[4:]))
        raise HttpError(404, "Unknown KV store endpoint")

    def _kv_entry(self, ctx: _Ctx, coll: Any) -> render.Entry:
        content: Dict[str, Any] = {f"field.{k}": v for k, v in coll.fields.items()}
        content.update({f"accelerated_fields.{k}": v for k, v in coll.accelerated_fields.items()})
        content.update({"disabled": "0", "eai:appName": coll.app, "eai:userName": coll.owner, "type": "undefined"})
        return render.Entry(
            coll.name,
            f"/servicesNS/{coll.owner}/{coll.app}/storage/collections/config",
            content,
            render.acl(coll.app, owner=coll.owner),
        )

    def _kv_config(self, ctx: _Ctx, name: str) -> Response:
        path = f"{ctx.ns_prefix}/storage/collections/config"
        if ctx.method == "GET":
            if name:
                return self._feed(
                    ctx,
                    "collections-conf",
                    path,
                    [self._kv_entry(ctx, self.kv.get_collection(ctx.app, name))],
                    paginate=False,
                )
            entries = [self._kv_entry(ctx, c) for c in self.kv.list_collections(ctx.app)]
            return self._feed(ctx, "collections-conf", path, entries)
        if ctx.method == "POST":
            form = dict(ctx.form)
            if not name:
                new_name = form.pop("name", None)
                if not new_name:
                    raise HttpError(400, "Missing required argument: name")
                if ctx.app == "-":
                    raise HttpError(400, "Cannot create a collection in a wildcard namespace")
                coll = self.kv.create_collection(ctx.app, new_name, ctx.owner if ctx.owner != "-" else "nobody", **form)
                return self._feed(ctx, "collections-conf", path, [self._kv_entry(ctx, coll)], 201, paginate=False)
            coll = self.kv.get_collection(ctx.app, name)
            for key, value in form.items():
                if key.startswith("field."):
                    coll.fields[key[len("field.") :]] = value
                elif key.startswith("accelerated_fields."):
                    coll.accelerated_fields[key[len("accelerated_fields.") :]] = value
            return self._feed(ctx, "collections-conf", path, [self._kv_entry(ctx, coll)], paginate=False)
        if ctx.method == "DELETE":
            self.kv.delete_collection(ctx.app, name)
            return self._feed(
                ctx, "collections-conf", path, [self._kv_entry(ctx, c) for c in self.kv.list_collections(ctx.app)]
            )
        raise HttpError(405, f"Method {ctx.method} not allowed")

    @staticmethod
    def _json(payload: Any, status: int = 200) -> Response:
        return Response(json.dumps(payload), status, content_type="application/json; charset=UTF-8")

    def _kv_data(self, ctx: _Ctx, collection: str, rest: str) -> Response:
        app = ctx.app
        user = ctx.owner if ctx.owner not in ("-", "") else "nobody"
        try:
            if ctx.method == "GET":
                if rest:
                    return self._json(self.kv.get(app, collection, rest))
                query = _json_param(ctx.params.get("query"))
                docs = self.kv.query(
                    app,
                    collection,
                    query,
                    sort=ctx.params.get("sort"),
                    limit=int(ctx.params.get("limit", "0") or 0),
                    skip=int(ctx.params.get("skip", "0") or 0),
                    fields=ctx.params.get("fields"),
                )
                return self._json(docs)
            body_text = ctx.request.get_data(as_text=True)
            if ctx.method == "POST":
                body = _json_body(body_text)
                if rest == "batch_save":
                    return self._json(self.kv.batch_save(app, collection, body, user))
                if rest == "batch_find":
                    if not isinstance(body, list):
                        raise HttpError(400, "batch_find expects a JSON array of queries")
                    return self._json(
                        [
                            self.kv.query(
                                app,
                                collection,
                                q.get("query") or {},
                                sort=_sort_param(q.get("sort")),
                                limit=int(q.get("limit", 0) or 0),
                                skip=int(q.get("skip", 0) or 0),
                                fields=_fields_param(q.get("fields")),
                            )
                            for q in body
                        ]
                    )
                if rest:
                    return self._json({"_key": self.kv.update(app, collection, rest, body, user)})
                return self._json({"_key": self.kv.insert(app, collection, body, user)}, 201)
            if ctx.method == "DELETE":
                if rest:
                    self.kv.delete(app, collection, rest)
                else:
                    self.kv.delete_where(app, collection, _json_param(ctx.params.get("query")))
                return Response("", 200)
        except KVError as error:
            return self._json({"messages": [{"type": "ERROR", "text": error.text}]}, error.status)
        except HttpError as error:
            return self._json({"messages": [{"type": "ERROR", "text": error.text}]}, error.status)
        raise HttpError(405, f"Method {ctx.method} not allowed")

    # messages / apps -------------------------------------------------------------------------------------------
    def _messages(self, ctx: _Ctx, rest: List[str]) -> Response:
        path = f"{ctx.ns_prefix}/messages"
        name = "/".join(rest)

        def entry(n: str, m: Dict[str, str]) -> render.Entry:
            return render.Entry(
                n,
                path,
                {n: m.get("value", ""), **{k: v for k, v in m.items() if k != "value"}},
                render.acl(SYSTEM, sharing="system"),
            )

        if ctx.method == "POST" and not name:
            form = dict(ctx.form)
            if "name" not in form or "value" not in form:
                raise HttpError(400, "Missing required argument: name or value")
            msg = {
                "value": form["value"],
                "severity": form.get("severity", "warn"),
                "timeCreated_epochSecs": str(int(time.time())),
            }
            msg.update({k: v for k, v in form.items() if k not in ("name", "value", "severity", "output_mode")})
            with self._lock:
                self.messages[form["name"]] = msg
            return self._feed(ctx, "messages", path, [entry(form["name"], msg)], 201, paginate=False)
        if ctx.method == "DELETE":
            with self._lock:
                if self.messages.pop(name, None) is None:
                    raise HttpError(404, f"Could not find object id={name}")
            return self._feed(ctx, "messages", path, [entry(n, m) for n, m in self.messages.items()])
        if name:
            if name not in self.messages:
                raise HttpError(404, f"Could not find object id={name}")
            return self._feed(ctx, "messages", path, [entry(name, self.messages[name])], paginate=False)
        return self._feed(ctx, "messages", path, [entry(n, m) for n, m in self.messages.items()])

    def _apps(self, ctx: _Ctx, rest: List[str]) -> Response:
        path = f"{ctx.ns_prefix}/apps/local"

        def entry(app: str) -> render.Entry:
            conf, _ = self.confs.view("app", app)
            content = {
                "check_for_updates": conf.get("package", {}).get("check_for_updates", "1"),
                "configured": conf.get("install", {}).get("is_configured", "0"),
                "disabled": conf.get("install", {}).get("state", "enabled") == "disabled",
                "label": conf.get("ui", {}).get("label", app),
                "version": conf.get("launcher", {}).get("version", conf.get("id", {}).get("version", "")),
                "visible": conf.get("ui", {}).get("is_visible", "1"),
            }
            return render.Entry(app, path, content, render.acl(app))

        apps = self.confs.apps()
        name = "/".join(rest)
        if name:
            if name not in apps:
                raise HttpError(404, f"Could not find object id={name}")
            return self._feed(ctx, "localapps", path, [entry(name)], paginate=False)
        return self._feed(ctx, "localapps", path, [entry(a) for a in apps])

    # UCC REST handler emulation ------------------------------------------------------------------------------
    def _ucc_endpoint(self, ctx: _Ctx, endpoint: str, rest: List[str]) -> Response:
        spec = self._ucc[endpoint]
        app = spec["app"]
        conf = spec["conf"]
        realm = credential_realm(conf, app)
        path = f"{ctx.ns_prefix}/{endpoint}"
        decrypt = ctx.params.get("--cred--") == "1"
        name = "/".join(rest)
        prefix = spec.get("prefix", "")

        def encrypted_fields(entity: str) -> List[str]:
            if spec["kind"] == "settings":
                return spec["tabs"].get(entity, [])
            return spec["encrypted"]

        def entity_names() -> List[str]:
            stanzas, _ = self.confs.view(conf, app)
            if spec["kind"] == "settings":
                return list(spec["tabs"])  # UCC lists every settings tab, stored or not
            return [n[len(prefix) :] for n in stanzas if n != "default" and n.startswith(prefix)]

        def entry(entity: str) -> render.Entry:
            stanza = self.confs.stanza(conf, prefix + entity, app) or {}
            content = {k: v for k, v in stanza.items() if not k.startswith("eai:")}
            enc = encrypted_fields(entity)
            clear = {}
            if enc:
                blob = self.get_credential(realm, entity)
                try:
                    clear = json.loads(blob) if blob else {}
                except ValueError:
                    clear = {}
            for key in enc:
                if content.get(key) in (PLACEHOLDER, "********"):
                    content[key] = clear.get(key, content[key]) if decrypt else PLACEHOLDER
            content.setdefault("disabled", "0")
            content["eai:appName"] = app
            content["eai:userName"] = "nobody"
            return render.Entry(entity, path, content, render.acl(app))

        if ctx.method == "GET":
            if name and name != "_new":
                if name not in entity_names():
                    raise HttpError(404, f"Could not find object id={name}")
                return self._feed(ctx, endpoint, path, [entry(name)], paginate=False)
            return self._feed(ctx, endpoint, path, [entry(n) for n in entity_names()])
        form = {k: v for k, v in ctx.form if k not in ("output_mode", "--cred--")}
        if ctx.method == "POST":
            creating = not name
            if creating:
                if spec["kind"] == "settings":
                    raise HttpError(405, "Settings can only be edited")
                name = form.pop("name", "")
                if not name:
                    raise HttpError(400, "Missing required argument: name")
                if name in entity_names():
                    raise HttpError(409, f"Name {name} is already in use")
            elif spec["kind"] != "settings" and name not in entity_names():
                raise HttpError(404, f"Could not find object id={name}")
            enc = encrypted_fields(name)
            secrets = {}
            existing = {}
            blob = self.get_credential(realm, name) if enc else None
            if blob:
                try:
                    existing = json.loads(blob)
                except ValueError:
                    existing = {}
            for key in enc:
                if key in form and form[key] not in ("", PLACEHOLDER, "********"):
                    secrets[key] = form[key]
                    form[key] = PLACEHOLDER
                elif key in form and form[key] in (PLACEHOLDER, "********") and key in existing:
                    secrets[key] = existing[key]
                    form[key] = PLACEHOLDER
                elif key not in form and key in existing and not creating:
                    secrets[key] = existing[key]
            self.confs.set(conf, prefix + name, form, app)
            if secrets:
                self.set_credential(realm, name, json.dumps(secrets), app)
            elif enc:
                self.delete_credential(realm, name)
            return self._feed(ctx, endpoint, path, [entry(name)], 201 if creating else 200, paginate=False)
        if ctx.method == "DELETE":
            if spec["kind"] == "settings" or name not in entity_names():
                raise HttpError(404, f"Could not find object id={name}")
            self.confs.delete(conf, prefix + name, app)
            self.delete_credential(realm, name)
            return self._feed(ctx, endpoint, path, [entry(n) for n in entity_names()])
        raise HttpError(405, f"Method {ctx.method} not allowed")


def _json_param(value: Optional[str]) -> Optional[Dict[str, Any]]:
    if not value:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        raise HttpError(400, f"Invalid JSON in query: {value}") from None
    if not isinstance(parsed, dict):
        raise HttpError(400, "query must be a JSON object")
    return parsed


def _json_body(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        raise HttpError(400, "Request body is not valid JSON") from None


def _sort_param(sort: Any) -> Optional[str]:
    if isinstance(sort, list):
        return ",".join(f"{s.get('field')}:{s.get('direction', 1)}" if isinstance(s, dict) else str(s) for s in sort)
    return sort


def _fields_param(fields: Any) -> Optional[str]:
    if isinstance(fields, dict):
        return ",".join(f"{k}:{v}" for k, v in fields.items())
    if isinstance(fields, list):
        return ",".join(fields)
    return fields


_TERM_RE = re.compile(r"((?:\\.|[^\s\\])+)")


def _entry_field(entry: render.Entry, key: str) -> Optional[str]:
    if key in ("name", "title"):
        return entry.name
    if key.startswith("eai:acl."):
        value = (entry.acl or {}).get(key[len("eai:acl.") :])
        return None if value is None else str(value)
    value = entry.content.get(key)
    return None if value is None else str(value)


def _search_matches(entry: render.Entry, search: str) -> bool:
    """splunkd's ``search=`` filter: whitespace-separated terms ANDed; ``key=value`` matches that field,
    a bare term matches the name or any content value; matching is a case-insensitive substring test with
    ``*`` as a wildcard (``\\=`` escapes an equals sign)."""
    for term in _TERM_RE.findall(search):
        key, value = None, term
        split = re.split(r"(?<!\\)=", term, maxsplit=1)
        if len(split) == 2:
            key, value = split
        value = value.replace("\\=", "=").replace("\\\\", "\\")
        pattern = re.compile(".*".join(re.escape(part) for part in value.split("*")), re.IGNORECASE)
        if key is not None:
            candidate = _entry_field(entry, key.replace("\\=", "="))
            if candidate is None or not pattern.search(candidate):
                return False
        else:
            candidates = [entry.name] + [str(v) for v in entry.content.values() if isinstance(v, (str, int, float))]
            if not any(pattern.search(c) for c in candidates):
                return False
    return True
