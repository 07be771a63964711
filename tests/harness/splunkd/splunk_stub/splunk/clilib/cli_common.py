"""Stand-in for Splunk's ``splunk.clilib.cli_common``: .conf parsing and on-disk layering.

Standard library only: this module runs inside the isolated interpreter the harness starts, and it also backs
the fake ``$SPLUNK_HOME/bin/splunk cmd btool`` shim and the loopback splunkd stand-in (one implementation of
the layering rules for all three).

Layering (global context, what btool prints without ``--app``), lowest precedence first::

    etc/system/default  <  etc/apps/*/default  <  etc/apps/*/local  <  etc/system/local

Apps are ordered by directory name in ASCII order; a lower name wins (as Splunk does for the global context).
With an app context (``--app=X`` or a REST namespace) only that app's default < local are used by btool.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Dict, Iterable, List, Optional, Tuple

Stanzas = Dict[str, Dict[str, str]]

_STANZA_RE = re.compile(r"^\s*\[(.*)\]\s*$")


def splunk_home() -> str:
    try:
        return os.environ["SPLUNK_HOME"]
    except KeyError:
        raise KeyError("SPLUNK_HOME is not set") from None


def splunk_etc() -> str:
    return os.environ.get("SPLUNK_ETC") or os.path.join(splunk_home(), "etc")


def parse_conf_text(text: str) -> Stanzas:
    """Parse .conf text the way splunkd does (comments, ``\\`` continuations, keys before any stanza go to
    ``default``, later duplicates win)."""
    stanzas: Stanzas = {}
    current = "default"
    pending = ""
    for raw_line in text.splitlines():
        line = pending + raw_line
        if line.endswith("\\"):
            pending = line[:-1] + "\n"
            continue
        pending = ""
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _STANZA_RE.match(line)
        if match:
            current = match.group(1).strip()
            stanzas.setdefault(current, {})
            continue
        if "=" not in line:
            continue
        key, _, value = line.partition("=")
        stanzas.setdefault(current, {})[key.strip()] = value.strip()
    return stanzas


def readConfFile(path: str) -> Stanzas:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        return parse_conf_text(handle.read())


def render_conf(stanzas: Stanzas) -> str:
    out: List[str] = []
    for name, keys in stanzas.items():
        out.append(f"[{name}]")
        for key, value in keys.items():
            value = "" if value is None else str(value)
            out.append(f"{key} = {value}".rstrip() if value == "" else f"{key} = {value}")
        out.append("")
    return "\n".join(out)


def writeConfFile(path: str, stanzas: Stanzas) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(render_conf(stanzas))
    os.replace(tmp, path)


def _apps(etc: str) -> List[str]:
    apps_dir = os.path.join(etc, "apps")
    if not os.path.isdir(apps_dir):
        return []
    return sorted(name for name in os.listdir(apps_dir) if os.path.isdir(os.path.join(apps_dir, name)))


def conf_layers(conf: str, app: Optional[str] = None, etc: Optional[str] = None) -> List[Tuple[str, str]]:
    """Files that make up ``conf`` as ``(path, app_or_system)``, lowest precedence first (existing only)."""
    etc = etc or splunk_etc()
    name = conf if conf.endswith(".conf") else conf + ".conf"
    layers: List[Tuple[str, str]] = []
    if app:
        for level in ("default", "local"):
            layers.append((os.path.join(etc, "apps", app, level, name), app))
    else:
        apps = _apps(etc)
        layers.append((os.path.join(etc, "system", "default", name), "system"))
        # lower ASCII name = higher precedence, so the highest-precedence app is appended last
        for level in ("default", "local"):
            for app_name in reversed(apps):
                layers.append((os.path.join(etc, "apps", app_name, level, name), app_name))
        layers.append((os.path.join(etc, "system", "local", name), "system"))
    return [(path, owner) for path, owner in layers if os.path.isfile(path)]


def merge_layers(layers: Iterable[Tuple[str, str]]) -> Tuple[Stanzas, Dict[Tuple[str, str], str]]:
    """Merge layer files; also returns ``{(stanza, key): path}`` telling where each winning value came from."""
    merged: Stanzas = {}
    origin: Dict[Tuple[str, str], str] = {}
    for path, _owner in layers:
        for stanza, keys in readConfFile(path).items():
            target = merged.setdefault(stanza, {})
            for key, value in keys.items():
                target[key] = value
                origin[(stanza, key)] = path
    return merged, origin


def getMergedConf(confName: str, app: Optional[str] = None) -> Stanzas:
    merged, _ = merge_layers(conf_layers(confName, app))
    return merged


def getConfStanza(confName: str, stanzaName: str) -> Dict[str, str]:
    merged = getMergedConf(confName)
    stanza = dict(merged.get("default", {}))
    stanza.update(merged.get(stanzaName, {}))
    if stanzaName not in merged:
        raise KeyError(f"stanza [{stanzaName}] not found in {confName}.conf")
    return stanza


def getConfKeyValue(confName: str, stanzaName: str, keyName: str) -> str:
    """Merged value of ``[stanzaName] keyName`` in ``confName`` from the files under ``$SPLUNK_HOME/etc``."""
    stanza = getConfStanza(confName, stanzaName)
    if keyName not in stanza:
        raise KeyError(f"key {keyName} not found in [{stanzaName}] of {confName}.conf")
    return stanza[keyName]


def getMgmtUri() -> str:
    host_port = getConfKeyValue("web", "settings", "mgmtHostPort").strip()
    try:
        ssl = getConfKeyValue("server", "sslConfig", "enableSplunkdSSL")
    except KeyError:
        ssl = "true"
    scheme = "https" if ssl.strip().lower() in ("1", "true", "t", "yes", "y", "on") else "http"
    return f"{scheme}://{host_port}"


def btool_main(argv: List[str], out=None) -> int:
    """``splunk cmd btool <conf> list [stanza] [--app=X] [--debug]`` over the fake ``$SPLUNK_HOME/etc``."""
    out = out or sys.stdout
    app = None
    debug = False
    args: List[str] = []
    for arg in argv:
        if arg.startswith("--app="):
            app = arg.split("=", 1)[1] or None
        elif arg == "--debug":
            debug = True
        elif arg.startswith("--"):
            continue  # --user=..., --no-log: accepted and ignored
        else:
            args.append(arg)
    if len(args) < 2 or args[1] not in ("list", "check"):
        sys.stderr.write("Usage: btool <conf> list [stanza] [--app=app] [--debug]\n")
        return 1
    conf, command = args[0], args[1]
    if command == "check":
        return 0
    wanted = args[2] if len(args) > 2 else None
    merged, origin = merge_layers(conf_layers(conf, app))
    width = max((len(path) for path in origin.values()), default=0)
    for stanza, keys in merged.items():
        if wanted is not None and stanza != wanted:
            continue
        stanza_path = next((origin[(stanza, key)] for key in keys), "")
        prefix = f"{stanza_path:<{width}} " if debug else ""
        out.write(f"{prefix}[{stanza}]\n")
        for key, value in keys.items():
            prefix = f"{origin[(stanza, key)]:<{width}} " if debug else ""
            out.write(f"{prefix}{key} = {value}\n".replace(" = \n", " = \n"))
    return 0
