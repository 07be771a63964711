"""Layered .conf store behind the stand-in's conf endpoints (memory first, written through to a fake home)."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .splunk_stub.splunk.clilib import cli_common

Stanzas = Dict[str, Dict[str, str]]
LayerKey = Tuple[str, str]  # (app name or "system", "default" | "local")

SYSTEM = "system"


class ConfStore:
    """Every layer of every conf: ``layers[(app, level)][conf] = stanzas``.

    Views follow Splunk's precedence. App context (a REST namespace naming an app):
    system/default < system/local < app/default < app/local. Global context (``-`` or ``system``):
    system/default < apps/*/default < apps/*/local < system/local. ``[default]`` keys are inherited by
    every stanza in a view, as splunkd's configs endpoint does.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.layers: Dict[LayerKey, Dict[str, Stanzas]] = {}
        self.etc: Optional[Path] = None

    # loading / persistence ---------------------------------------------------------------------------------
    def load_etc(self, etc: Path, reset: bool = False) -> None:
        """Read every conf file under ``etc`` (system and apps); later writes to local layers go to disk.
        ``reset`` drops what is in memory first (disk becomes the truth again)."""
        with self.lock:
            if reset:
                self.layers.clear()
            self.etc = Path(etc)
            for level in ("default", "local"):
                self._load_dir(self.etc / SYSTEM / level, (SYSTEM, level))
            apps = self.etc / "apps"
            if apps.is_dir():
                for app in sorted(p.name for p in apps.iterdir() if p.is_dir()):
                    for level in ("default", "local"):
                        self._load_dir(apps / app / level, (app, level))

    def _load_dir(self, directory: Path, key: LayerKey) -> None:
        if not directory.is_dir():
            return
        for path in sorted(directory.glob("*.conf")):
            stanzas = cli_common.readConfFile(str(path))
            layer = self.layers.setdefault(key, {})
            merged = layer.setdefault(path.stem, {})
            for name, keys in stanzas.items():
                merged.setdefault(name, {}).update(keys)

    def _layer_path(self, key: LayerKey, conf: str) -> Optional[Path]:
        if self.etc is None:
            return None
        app, level = key
        base = self.etc / SYSTEM if app == SYSTEM else self.etc / "apps" / app
        return base / level / f"{conf}.conf"

    def _persist(self, key: LayerKey, conf: str) -> None:
        path = self._layer_path(key, conf)
        if path is None or key[1] != "local":
            return
        if not path.parent.parent.is_dir():
            return  # app not installed in the fake home: keep it in memory only
        cli_common.writeConfFile(str(path), self.layers.get(key, {}).get(conf, {}))

    # raw access ---------------------------------------------------------------------------------------------
    def apps(self) -> List[str]:
        with self.lock:
            return sorted({app for app, _level in self.layers if app != SYSTEM})

    def conf_names(self, app: str) -> List[str]:
        with self.lock:
            names = set()
            for (layer_app, _level), confs in self.layers.items():
                if app in ("-", SYSTEM) or layer_app in (app, SYSTEM):
                    names.update(confs)
            return sorted(names)

    def conf_exists(self, conf: str, app: str) -> bool:
        return conf in self.conf_names(app)

    def _order(self, app: str) -> List[LayerKey]:
        if app in ("-", SYSTEM, "", None):
            apps = self.apps()
            order: List[LayerKey] = [(SYSTEM, "default")]
            order += [(a, "default") for a in reversed(apps)]
            order += [(a, "local") for a in reversed(apps)]
            order.append((SYSTEM, "local"))
            return order
        return [(SYSTEM, "default"), (SYSTEM, "local"), (app, "default"), (app, "local")]

    def view(self, conf: str, app: str) -> Tuple[Stanzas, Dict[str, str]]:
        """Merged stanzas for ``conf`` seen from ``app`` and, per stanza, the app that defines it last."""
        with self.lock:
            merged: Stanzas = {}
            owner: Dict[str, str] = {}
            for key in self._order(app):
                for name, keys in self.layers.get(key, {}).get(conf, {}).items():
                    merged.setdefault(name, {}).update(keys)
                    owner[name] = key[0]
            defaults = merged.get("default", {})
            if defaults:
                for name, keys in merged.items():
                    if name != "default":
                        merged[name] = {**defaults, **keys}
            return copy.deepcopy(merged), owner

    def stanza(self, conf: str, name: str, app: str) -> Optional[Dict[str, str]]:
        stanzas, _ = self.view(conf, app)
        return stanzas.get(name)

    # writes (always to the local layer, as splunkd does) ------------------------------------------------------
    def ensure_conf(self, conf: str, app: str) -> None:
        with self.lock:
            self.layers.setdefault((app or SYSTEM, "local"), {}).setdefault(conf, {})

    def set(self, conf: str, name: str, values: Dict[str, object], app: str, replace: bool = False) -> None:
        key = (app if app not in ("-", "", None) else SYSTEM, "local")
        with self.lock:
            stanzas = self.layers.setdefault(key, {}).setdefault(conf, {})
            target = {} if replace else stanzas.get(name, {})
            for k, v in values.items():
                target[k] = "" if v is None else (("1" if v else "0") if isinstance(v, bool) else str(v))
            stanzas[name] = target
            self._persist(key, conf)

    def delete(self, conf: str, name: str, app: str) -> bool:
        """Remove the stanza from the app's local layer; True if it existed in any layer of that view."""
        key = (app if app not in ("-", "", None) else SYSTEM, "local")
        with self.lock:
            existed = self.stanza(conf, name, app) is not None
            local = self.layers.get(key, {}).get(conf, {})
            if name in local:
                del local[name]
                self._persist(key, conf)
            return existed
