"""Run an app's built scripts the way splunkd runs them: modular inputs (``--scheme``,
``--validate-arguments``, streaming with the XML input definition on stdin) and custom alert actions
(``--execute`` with the JSON payload on stdin and a gzipped results file in a dispatch directory).

Isolation: scripts run as ``<python> -S <home>/etc/apps/<app>/bin/<script>.py`` with an environment built
from scratch. ``-S`` keeps the harness venv's site-packages out, so only the standard library, the script's
own ``bin/`` (``sys.path[0]``), what the app puts on ``sys.path`` itself (UCC's ``import_declare_test`` adds
``<app>/lib``) and ``$SPLUNK_HOME/lib/python3/site-packages`` (the stand-in for Splunk's bundled ``splunk``
package, via ``PYTHONPATH``) are importable, as on a Splunk host where boto3/solnlib exist only if the app
vendors them. Nothing is inherited from the caller's environment (no ``AWS_*``, no ``~/.aws``: ``$HOME`` is an
empty directory inside the fake home); pass what a script needs in ``env=``.

Working directory: ``$SPLUNK_HOME`` by default (``cwd=`` overrides). splunkd's exact cwd for a modular input
is not something the add-on may rely on; running away from ``bin/`` makes a script that opens files by
relative path fail here rather than on a customer's host.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as defused_et

from tests.harness.splunkd.home import STUB_SOURCE, SplunkHome

AppRef = Union[str, Path, SplunkHome]
Params = Mapping[str, Union[str, int, float, bool, Sequence[str], None]]

STASH_BREAKER = "==##~~##~~  1E8N3D4E6V5E7N2T9 ~~##~~##=="
_HEADER_ITEM = re.compile(r'(\w+)="([^"]*)"')
_STASH_FIELD = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
PYCACHE_PREFIX = Path(tempfile.gettempdir()) / "ta-aws-iot-defender-harness-pycache"


# ------------------------------------------------------------------------------------------------ environment
def _app_dir(app: AppRef, home: Optional[SplunkHome]) -> Path:
    if isinstance(app, SplunkHome):
        return app.app_path
    path = Path(app)
    if path.is_dir():
        return path
    if home is not None and (home.apps_dir / str(app)).is_dir():
        return home.apps_dir / str(app)
    if home is not None and home.app_name:
        return home.app_path
    raise FileNotFoundError(f"app not found: {app}")


def _home_of(app: AppRef, home: Optional[SplunkHome]) -> Optional[SplunkHome]:
    if home is not None:
        return home
    return app if isinstance(app, SplunkHome) else None


def script_env(home: Optional[SplunkHome], env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment a script gets: splunkd's variables for ``home``, the bundled-``splunk`` path and
    ``env`` (the caller's additions, e.g. the AWS emulator's endpoint and credentials). Nothing else."""
    base: Dict[str, str] = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "HOME": tempfile.gettempdir(),
    }
    if home is not None:
        base.update(home.env())
        base["PYTHONPATH"] = str(home.site_packages)
    else:
        base["PYTHONPATH"] = str(STUB_SOURCE.parent)
    # compiled bytecode goes outside the app, so runs never write __pycache__ into the build output
    base["PYTHONPYCACHEPREFIX"] = str(PYCACHE_PREFIX)
    for key, value in (env or {}).items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = str(value)
    return base


def python_command(script: Path, *args: str) -> List[str]:
    return [sys.executable, "-S", str(script), *args]


def _script(app_dir: Path, name: str) -> Path:
    script = app_dir / "bin" / (name if name.endswith(".py") else f"{name}.py")
    if not script.is_file():
        raise FileNotFoundError(f"no script {script}")
    return script


def run_python(
    code: str,
    home: Optional[SplunkHome] = None,
    env: Optional[Mapping[str, str]] = None,
    sys_path: Iterable[Union[str, Path]] = (),
    timeout: float = 30,
) -> subprocess.CompletedProcess:
    """Run ``code`` in the same isolated interpreter scripts get (``sys_path`` entries prepended), e.g. to
    check that a module is importable only when the app vendors it."""
    prelude = "import sys\n" + "".join(f"sys.path.insert(0, {str(p)!r})\n" for p in sys_path)
    return subprocess.run(
        [sys.executable, "-S", "-c", prelude + code],
        env=script_env(home, env),
        cwd=str(home.root if home else tempfile.gettempdir()),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --------------------------------------------------------------------------------------------------- scheme
def run_scheme(
    app: AppRef,
    input_name: str,
    home: Optional[SplunkHome] = None,
    env: Optional[Mapping[str, str]] = None,
    timeout: float = 30,
) -> ET.Element:
    """``<script> --scheme``; returns the parsed ``<scheme>`` element (AssertionError if it fails)."""
    home = _home_of(app, home)
    app_dir = _app_dir(app, home)
    proc = subprocess.run(
        python_command(_script(app_dir, input_name), "--scheme"),
        env=script_env(home, env),
        cwd=str(home.root if home else app_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"--scheme exited {proc.returncode}: {proc.stderr}")
    return defused_et.fromstring(proc.stdout)


def scheme_arguments(scheme: ET.Element) -> Dict[str, Dict[str, Any]]:
    """``{name: {"required_on_create": bool, "title": ..., ...}}`` from a parsed scheme."""
    out: Dict[str, Dict[str, Any]] = {}
    for arg in scheme.iter("arg"):
        info: Dict[str, Any] = {}
        for child in arg:
            text = (child.text or "").strip()
            info[child.tag] = text.lower() in ("true", "1") if child.tag.startswith("required") else text
        out[arg.get("name", "")] = info
    return out


# ------------------------------------------------------------------------------------------------ XML builders
def _param_xml(name: str, value: Any, indent: str) -> str:
    if isinstance(value, (list, tuple)):
        values = "".join(f"<value>{escape(str(v))}</value>" for v in value)
        return f"{indent}<param_list name={quoteattr(name)}>{values}</param_list>\n"
    if isinstance(value, bool):
        value = "1" if value else "0"
    return f"{indent}<param name={quoteattr(name)}>{escape('' if value is None else str(value))}</param>\n"


def _metadata_xml(home: Optional[SplunkHome], standin: Any, checkpoint_dir: Path) -> str:
    server_host = getattr(standin, "server_name", None) or (home.server_name if home else "harness-splunk")
    server_uri = standin.uri if standin is not None else (home.splunkd_uri if home else "http://127.0.0.1:8089")
    session_key = standin.session_key if standin is not None else "no-session-key"
    return (
        f"  <server_host>{escape(server_host)}</server_host>\n"
        f"  <server_uri>{escape(server_uri)}</server_uri>\n"
        f"  <session_key>{escape(session_key)}</session_key>\n"
        f"  <checkpoint_dir>{escape(str(checkpoint_dir))}</checkpoint_dir>\n"
    )


def validation_xml(
    input_name: str, item_name: str, params: Params, home: Optional[SplunkHome] = None, standin: Any = None
) -> str:
    """The ``<items>`` document splunkd sends to ``--validate-arguments``."""
    checkpoint_dir = (home.modinputs_dir / input_name) if home else Path(tempfile.gettempdir())
    body = "".join(_param_xml(k, v, "    ") for k, v in params.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<items>\n'
        f"{_metadata_xml(home, standin, checkpoint_dir)}"
        f"  <item name={quoteattr(item_name)}>\n{body}  </item>\n</items>\n"
    )


def input_xml(
    input_name: str,
    stanzas: Mapping[str, Params],
    home: Optional[SplunkHome] = None,
    standin: Any = None,
    app_name: Optional[str] = None,
) -> str:
    """The ``<input>`` document splunkd writes to a modular input's stdin. Stanza keys may be bare names
    (``"x"`` becomes ``"<input_name>://x"``) or full stanza names."""
    checkpoint_dir = (home.modinputs_dir / input_name) if home else Path(tempfile.gettempdir())
    parts = []
    for name, params in stanzas.items():
        full = name if "://" in name else f"{input_name}://{name}"
        app_attr = f" app={quoteattr(app_name)}" if app_name else ""
        body = "".join(_param_xml(k, v, "      ") for k, v in params.items())
        parts.append(f"    <stanza name={quoteattr(full)}{app_attr}>\n{body}    </stanza>\n")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<input>\n'
        f"{_metadata_xml(home, standin, checkpoint_dir)}"
        f"  <configuration>\n{''.join(parts)}  </configuration>\n</input>\n"
    )


# -------------------------------------------------------------------------------------------------- validate
@dataclass
class ValidationResult:
    ok: bool
    message: str
    exit_code: int
    stderr: List[str]

    def __iter__(self):  # ``ok, message = run_validate(...)``
        return iter((self.ok, self.message))


def run_validate(
    app: AppRef,
    input_name: str,
    params: Params,
    home: Optional[SplunkHome] = None,
    standin: Any = None,
    env: Optional[Mapping[str, str]] = None,
    item_name: str = "harness",
    timeout: float = 60,
) -> ValidationResult:
    """``<script> --validate-arguments`` with splunkd's validation XML; unpacks as ``(ok, message)``.
    ``message`` is the ``<error><message>`` text the script printed (what splunkd shows the user)."""
    home = _home_of(app, home)
    app_dir = _app_dir(app, home)
    if home is not None:
        (home.modinputs_dir / input_name).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        python_command(_script(app_dir, input_name), "--validate-arguments"),
        input=validation_xml(input_name, item_name, params, home, standin),
        env=script_env(home, env),
        cwd=str(home.root if home else app_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    message = ""
    if proc.stdout.strip():
        try:
            message = defused_et.fromstring(proc.stdout.strip()).findtext("message") or ""
        except ET.ParseError:
            message = proc.stdout.strip()
    stderr = proc.stderr.splitlines()
    if home is not None:
        _append_splunkd_log(home, _script(app_dir, input_name), stderr)
    return ValidationResult(proc.returncode == 0, message, proc.returncode, stderr)


# ----------------------------------------------------------------------------------------------------- input
@dataclass
class InputResult:
    events: List[Dict[str, Any]]
    exit_code: Optional[int]
    stderr: List[str]
    duration: float
    killed: bool = False
    timed_out: bool = False
    stdout: str = ""
    stream_error: Optional[str] = None  # XML problem in the stream (expected after a kill mid-event)
    input_xml: str = ""

    def by_sourcetype(self, sourcetype: str) -> List[Dict[str, Any]]:
        return [e for e in self.events if e["sourcetype"] == sourcetype]


class _StreamParser:
    """Incremental parser for splunkd's modular input XML stream; only complete ``<event>`` elements count
    (an event in pieces, ``unbroken="1"`` without ``<done/>``, is joined until its ``<done/>``)."""

    def __init__(self, defaults: Mapping[str, Mapping[str, Any]], fallback_stanza: Optional[str]):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.events: List[Dict[str, Any]] = []
        self.error: Optional[str] = None
        self.mode: Optional[str] = None  # "xml" or "text"
        self.text_buffer = ""
        self.defaults = defaults
        self.fallback = fallback_stanza
        self.depth = 0
        self.pending: Dict[str, Dict[str, Any]] = {}
        self.on_event: Optional[Any] = None

    def feed(self, chunk: str) -> None:
        if self.mode is None:
            stripped = chunk.lstrip()
            if not stripped:
                return
            self.mode = "xml" if stripped.startswith("<") else "text"
        if self.mode == "text":
            self._feed_text(chunk)
            return
        if self.error:
            return
        try:
            self.parser.feed(chunk)
            for kind, element in self.parser.read_events():
                if kind == "start":
                    self.depth += 1
                    continue
                self.depth -= 1
                if element.tag == "event" and self.depth == 1:
                    self._event(element)
                    element.clear()
        except ET.ParseError as error:
            self.error = str(error)

    def _feed_text(self, chunk: str) -> None:
        self.text_buffer += chunk
        while "\n" in self.text_buffer:
            line, self.text_buffer = self.text_buffer.split("\n", 1)
            if line.strip():
                self._emit(self.fallback, {"data": line})

    def close(self) -> None:
        if self.mode == "text" and self.text_buffer.strip():
            self._emit(self.fallback, {"data": self.text_buffer})
            self.text_buffer = ""

    def _event(self, element: ET.Element) -> None:
        stanza = element.get("stanza") or self.fallback
        fields = {child.tag: child.text for child in element if child.tag != "done"}
        done = element.find("done") is not None
        unbroken = element.get("unbroken", "0") == "1"
        key = stanza or ""
        if unbroken and not done:
            piece = self.pending.setdefault(key, {"data": ""})
            piece["data"] += fields.pop("data", None) or ""
            piece.update({k: v for k, v in fields.items() if v is not None})
            return
        if key in self.pending:
            piece = self.pending.pop(key)
            fields["data"] = piece.pop("data", "") + (fields.get("data") or "")
            for k, v in piece.items():
                fields.setdefault(k, v)
        self._emit(stanza, fields)

    def _emit(self, stanza: Optional[str], fields: Dict[str, Any]) -> None:
        params = self.defaults.get(stanza or "", {})
        data = fields.get("data") or ""
        try:
            parsed: Any = json.loads(data)
        except ValueError:
            parsed = data
        raw_time = fields.get("time")
        try:
            when: Optional[float] = float(raw_time) if raw_time not in (None, "") else None
        except ValueError:
            when = None
        kind = (stanza or "").split("://", 1)[0]
        event = {
            "time": when,
            "sourcetype": fields.get("sourcetype") or params.get("sourcetype") or kind or None,
            "source": fields.get("source") or params.get("source") or stanza,
            "host": fields.get("host") or params.get("host"),
            "index": fields.get("index") or params.get("index") or "default",
            "event": parsed,
            "data": data,
            "stanza": stanza,
        }
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(len(self.events))


def _stanza_defaults(
    home: Optional[SplunkHome], standin: Any, input_name: str, app_name: Optional[str]
) -> Dict[str, str]:
    """``inputs.conf`` keys splunkd merges into every stanza of this input kind (``[default]`` then
    ``[<input_name>]``), from the stand-in's view of the app if there is one, else from disk."""
    if standin is not None and app_name:
        view = standin.get_conf("inputs", app=app_name) or {}
    elif home is not None:
        view = home.read_conf("inputs")
    else:
        view = {}
    merged = dict(view.get("default", {}))
    merged.update(view.get(input_name, {}))
    return merged


def run_input(
    app: AppRef,
    input_name: str,
    stanzas: Mapping[str, Params],
    home: Optional[SplunkHome] = None,
    standin: Any = None,
    env: Optional[Mapping[str, str]] = None,
    timeout: float = 120,
    kill_after: Optional[float] = None,
    kill_after_events: Optional[int] = None,
    merge_defaults: bool = True,
    cwd: Optional[Path] = None,
) -> InputResult:
    """Run ``bin/<input_name>.py`` as splunkd does for one invocation (all ``stanzas`` in one process, as
    for ``use_single_instance`` or per-stanza invocations when you pass one stanza).

    ``stanzas``: ``{name: params}``; with ``merge_defaults`` the ``[default]`` and ``[<input_name>]`` keys of
    ``inputs.conf`` (interval, index, python.version...) are merged under each stanza's params, as splunkd
    does. Events are parsed from the stream as they arrive; ``kill_after`` (seconds) or
    ``kill_after_events`` SIGKILLs the process group and keeps every event completely written so far (what
    splunkd would already have indexed). stderr lines are returned and appended to ``splunkd.log``."""
    home = _home_of(app, home)
    app_dir = _app_dir(app, home)
    app_name = app_dir.name
    script = _script(app_dir, input_name)
    defaults = _stanza_defaults(home, standin, input_name, app_name) if merge_defaults else {}
    full_stanzas: Dict[str, Dict[str, Any]] = {}
    for name, params in stanzas.items():
        full = name if "://" in name else f"{input_name}://{name}"
        merged: Dict[str, Any] = dict(defaults)
        merged.update(params)
        if home is not None:
            merged.setdefault("host", home.server_name)
        full_stanzas[full] = merged
    if home is not None:
        (home.modinputs_dir / input_name).mkdir(parents=True, exist_ok=True)
    document = input_xml(input_name, full_stanzas, home, standin, app_name)
    parser = _StreamParser(full_stanzas, next(iter(full_stanzas)) if len(full_stanzas) == 1 else None)

    started = time.monotonic()
    proc = subprocess.Popen(
        python_command(script),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=script_env(home, env),
        cwd=str(cwd or (home.root if home else app_dir)),
        start_new_session=True,
    )
    killed = threading.Event()

    def kill() -> None:
        if proc.poll() is None and not killed.is_set():
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    if kill_after_events is not None:
        parser.on_event = lambda count: kill() if count >= kill_after_events else None
        if kill_after_events <= 0:
            kill()

    stdout_chunks: List[str] = []
    stderr_lines: List[str] = []

    def read_stdout() -> None:
        assert proc.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            text = decoder.decode(chunk, final=not chunk)
            if text:
                stdout_chunks.append(text)
                parser.feed(text)
            if not chunk:
                break
        parser.close()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for reader in readers:
        reader.start()
    try:
        assert proc.stdin is not None
        proc.stdin.write(document.encode("utf-8"))
        proc.stdin.close()
    except BrokenPipeError:
        pass

    deadline = started + timeout
    kill_at = started + kill_after if kill_after is not None else None
    timed_out = False
    while proc.poll() is None:
        now = time.monotonic()
        if kill_at is not None and now >= kill_at:
            kill()
        elif now >= deadline:
            timed_out = True
            kill()
        time.sleep(0.01)
    for reader in readers:
        reader.join(timeout=10)
    duration = time.monotonic() - started
    if home is not None:
        _append_splunkd_log(home, script, stderr_lines)
    stdout = "".join(stdout_chunks)
    error = parser.error
    if error is None and parser.mode == "xml" and not killed.is_set() and not stdout.rstrip().endswith("</stream>"):
        error = "stream not closed with </stream>"
    return InputResult(
        events=parser.events,
        exit_code=proc.returncode,
        stderr=stderr_lines,
        duration=duration,
        killed=killed.is_set() and not timed_out,
        timed_out=timed_out,
        stdout=stdout,
        stream_error=error,
        input_xml=document,
    )


def _append_splunkd_log(home: SplunkHome, script: Path, lines: Sequence[str]) -> None:
    """splunkd logs a script's stderr to splunkd.log (ExecProcessor), one line each."""
    if not lines:
        return
    home.log_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%m-%d-%Y %H:%M:%S", time.gmtime())
    with (home.log_dir / "splunkd.log").open("a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(
                f"{stamp}.000 +0000 ERROR ExecProcessor [0 ExecProcessor] - message from "
                f'"{sys.executable} {script}" {line}\n'
            )


# ----------------------------------------------------------------------------------------------------- alerts
@dataclass
class AlertResult:
    exit_code: int
    stderr: List[str]
    events: List[Dict[str, Any]]
    log_lines: List[str]
    duration: float
    payload: Dict[str, Any]
    dispatch_dir: Path
    stdout: str = ""
    spool_files: List[Path] = field(default_factory=list)


def write_results_csv_gz(path: Path, results: Sequence[Mapping[str, Any]]) -> None:
    """Search results as splunkd writes them for alert actions: gzip CSV; a list value becomes a
    newline-joined field plus its ``__mv_<field>`` column (``$a$;$b$``)."""
    columns: List[str] = []
    multivalue = set()
    for row in results:
        for key, value in row.items():
            if key not in columns:
                columns.append(key)
            if isinstance(value, (list, tuple)):
                multivalue.add(key)
    header = columns + [f"__mv_{c}" for c in columns if c in multivalue]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in results:
        out = []
        for column in columns:
            value = row.get(column)
            if isinstance(value, (list, tuple)):
                out.append("\n".join(str(v) for v in value))
            else:
                out.append("" if value is None else str(value))
        for column in columns:
            if column in multivalue:
                value = row.get(column)
                if isinstance(value, (list, tuple)):
                    out.append(";".join("$" + str(v).replace("$", "$$") + "$" for v in value))
                else:
                    out.append("")
        writer.writerow(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())


def _alert_defaults(home: Optional[SplunkHome], standin: Any, action: str, app_name: str) -> Dict[str, str]:
    if standin is not None:
        view = standin.get_conf("alert_actions", app=app_name) or {}
    elif home is not None:
        view = home.read_conf("alert_actions")
    else:
        view = {}
    stanza = view.get(action, {})
    return {k[len("param.") :]: v for k, v in stanza.items() if k.startswith("param.")}


def run_alert(
    app: AppRef,
    action_name: str,
    params: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    home: Optional[SplunkHome] = None,
    standin: Any = None,
    env: Optional[Mapping[str, str]] = None,
    sid: Optional[str] = None,
    search_name: str = "Harness Alert",
    search_app: str = "search",
    owner: str = "admin",
    session_key: Optional[str] = None,
    cam: Optional[Union[str, Mapping[str, Any]]] = None,
    merge_defaults: bool = True,
    result_id: Optional[Union[int, str]] = None,
    timeout: float = 120,
    cwd: Optional[Path] = None,
) -> AlertResult:
    """Run ``bin/<action_name>.py --execute`` as splunkd does for a triggered alert.

    ``results`` are written to ``$SPLUNK_HOME/var/run/splunk/dispatch/<sid>/results.csv.gz`` (plus a minimal
    ``info.csv``); the payload carries ``configuration`` = ``param.*`` defaults of the app's
    ``alert_actions.conf`` overlaid with ``params`` (all as strings; ``cam`` sets ``_cam``). Returns the
    events the action spooled (``var/spool/splunk/*.stash_*``, parsed), its new log lines under
    ``var/log/splunk`` and stderr. ``session_key``: the triggering user's session (``standin.add_user``); the
    stand-in's admin session by default."""
    home = _home_of(app, home)
    if home is None:
        raise ValueError("run_alert needs a SplunkHome (dispatch, spool and log directories live there)")
    app_dir = _app_dir(app, home)
    app_name = app_dir.name
    script = _script(app_dir, action_name)
    sid = sid or f"scheduler__{owner}__{search_app}__RMD5{uuid.uuid4().hex[:16]}_at_{int(time.time())}_1"
    dispatch = home.dispatch_dir / sid
    results_file = dispatch / "results.csv.gz"
    write_results_csv_gz(results_file, results)
    now = time.time()
    with (dispatch / "info.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["_sid", "_search", "_search_et", "_search_lt", "_timestamp", "_ppc.app", "_ppc.user"])
        writer.writerow(
            [sid, f"search {search_name}", f"{now - 3600:.3f}", f"{now:.3f}", f"{now:.3f}", search_app, owner]
        )

    configuration: Dict[str, str] = _alert_defaults(home, standin, action_name, app_name) if merge_defaults else {}
    for key, value in params.items():
        if isinstance(value, bool):
            value = "1" if value else "0"
        configuration[key] = "" if value is None else str(value)
    if cam is not None:
        configuration["_cam"] = cam if isinstance(cam, str) else json.dumps(cam)
    server_uri = standin.uri if standin is not None else home.splunkd_uri
    first = {
        k: ("\n".join(map(str, v)) if isinstance(v, (list, tuple)) else ("" if v is None else str(v)))
        for k, v in (results[0] if results else {}).items()
    }
    payload: Dict[str, Any] = {
        "app": search_app,
        "owner": owner,
        "results_file": str(results_file),
        "results_link": f"http://{home.server_name}:8000/app/{search_app}/search?q=%7Cloadjob%20{sid}"
        "%20%7C%20head%201%20%7C%20tail%201&earliest=0&latest=now",
        "server_host": home.server_name,
        "server_uri": server_uri,
        "session_key": session_key or (standin.session_key if standin is not None else "no-session-key"),
        "sid": sid,
        "search_name": search_name,
        "search_uri": f"/servicesNS/nobody/{search_app}/saved/searches/{search_name.replace(' ', '%20')}",
        "configuration": configuration,
        "result": first,
    }
    if result_id is not None:
        payload["result_id"] = str(result_id)

    spool_before = set(home.spool_files())
    log_marks = _log_marks(home)
    started = time.monotonic()
    proc = subprocess.run(
        python_command(script, "--execute"),
        input=json.dumps(payload),
        env=script_env(home, env),
        cwd=str(cwd or home.root),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    duration = time.monotonic() - started
    stderr = proc.stderr.splitlines()
    _append_splunkd_log(home, script, stderr)
    new_spool = [p for p in home.spool_files() if p not in spool_before]
    events: List[Dict[str, Any]] = []
    for path in sorted(new_spool):
        events.extend(parse_stash(path.read_text(encoding="utf-8"), source_file=path))
    return AlertResult(
        exit_code=proc.returncode,
        stderr=stderr,
        events=events,
        log_lines=_new_log_lines(home, log_marks),
        duration=duration,
        payload=payload,
        dispatch_dir=dispatch,
        stdout=proc.stdout,
        spool_files=new_spool,
    )


def parse_stash(text: str, source_file: Optional[Path] = None) -> List[Dict[str, Any]]:
    """Parse a ``stash`` spool file (splunktaucclib ``ModularAction.writeevents``) into events:
    ``{index, host, source, sourcetype, orig_action_name, orig_sid, orig_rid, raw, fields, event, file}``.
    ``fields`` are the ``key="value"`` pairs of a stash-format raw; ``event`` is the raw parsed as JSON when
    it is JSON, else ``fields``."""
    lines = text.split("\n", 1)
    header = dict(_HEADER_ITEM.findall(lines[0])) if lines[0].startswith("***SPLUNK***") else {}
    body = lines[1] if len(lines) > 1 and header else text
    chunks = [c for c in body.split(STASH_BREAKER + "\n")]
    events = []
    for chunk in chunks:
        chunk = chunk[:-1] if chunk.endswith("\n") else chunk
        if not chunk.strip():
            continue
        meta: Dict[str, str] = {}
        raw = chunk
        if chunk.startswith("***Common Action Model***"):
            idline, _, raw = chunk.partition("\n")
            meta = dict(_HEADER_ITEM.findall(idline))
        fields = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _STASH_FIELD.findall(raw)}
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = fields
        events.append(
            {
                "index": header.get("index", "summary"),
                "host": header.get("host"),
                "source": header.get("source"),
                "sourcetype": meta.get("sourcetype", "stash"),
                "orig_action_name": meta.get("orig_action_name"),
                "orig_sid": meta.get("orig_sid"),
                "orig_rid": meta.get("orig_rid"),
                "raw": raw,
                "fields": fields,
                "event": parsed,
                "file": str(source_file) if source_file else None,
            }
        )
    return events


# ------------------------------------------------------------------------------------------------------- logs
def _log_marks(home: SplunkHome) -> Dict[Path, int]:
    return {path: path.stat().st_size for path in home.log_files()}


def _new_log_lines(home: SplunkHome, marks: Mapping[Path, int]) -> List[str]:
    lines: List[str] = []
    for path in home.log_files():
        start = marks.get(path, 0)
        with path.open("rb") as handle:
            handle.seek(start if path.stat().st_size >= start else 0)
            lines.extend(handle.read().decode("utf-8", "replace").splitlines())
    return lines


def collect_logs(home: SplunkHome) -> List[str]:
    """Every line of every file under ``$SPLUNK_HOME/var/log/splunk`` (add-on logs, splunkd.log with the
    scripts' stderr), e.g. to assert no secret from ``SplunkdStandIn.secrets()`` leaked."""
    return _new_log_lines(home, {})


def collect_log_files(home: SplunkHome) -> Dict[str, List[str]]:
    """``{relative file name: lines}`` for the files under ``$SPLUNK_HOME/var/log/splunk``."""
    return {
        str(path.relative_to(home.log_dir)): path.read_text(encoding="utf-8", errors="replace").splitlines()
        for path in home.log_files()
    }


def find_secrets(texts: Iterable[str], secrets: Iterable[str], min_length: int = 4) -> List[str]:
    """The secrets (at least ``min_length`` long) that occur in any of ``texts``."""
    haystack = "\n".join(texts)
    return sorted({s for s in secrets if len(s) >= min_length and s in haystack})
