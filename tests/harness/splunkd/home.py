"""A fake ``$SPLUNK_HOME``: the directory layout, system conf pointing at the stand-in, a ``bin/splunk`` shim
(``cmd btool`` / ``cmd python``) and the minimal bundled ``splunk`` Python package add-ons import."""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .splunk_stub.splunk.clilib import cli_common

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_APP_DIR = Path("output/TA-aws-iot-defender")
STUB_SOURCE = Path(__file__).resolve().parent / "splunk_stub" / "splunk"
SITE_PACKAGES = ("lib", "python3", "site-packages")

_SHIM = '''#!{python} -S
"""Fake $SPLUNK_HOME/bin/splunk: `splunk cmd btool <conf> list [--app=X] [--debug]`, `splunk cmd python ...`."""
import os
import sys

HOME = os.environ.get("SPLUNK_HOME") or {home!r}
SITE = os.path.join(HOME, "lib", "python3", "site-packages")
sys.path.insert(0, SITE)
os.environ.setdefault("SPLUNK_HOME", HOME)


def main(argv):
    args = argv[1:]
    if args and args[0] == "cmd":
        args = args[1:]
    if not args:
        sys.stderr.write("usage: splunk cmd btool|python ...\\n")
        return 1
    if args[0] == "btool":
        from splunk.clilib.cli_common import btool_main

        return btool_main(args[1:])
    if args[0] in ("python", "python3"):
        env = dict(os.environ)
        env["PYTHONPATH"] = SITE
        os.execve(sys.executable, [sys.executable, "-S"] + args[1:], env)
    sys.stderr.write("fake splunk: unsupported command: %s\\n" % " ".join(args))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''


@dataclass
class SplunkHome:
    """A fake Splunk installation rooted at ``root``."""

    root: Path
    app_name: Optional[str]
    built_app: Optional[Path]
    splunkd_uri: str
    server_name: str

    # layout ---------------------------------------------------------------------------------------------------
    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def apps_dir(self) -> Path:
        return self.etc / "apps"

    @property
    def app_path(self) -> Path:
        """``$SPLUNK_HOME/etc/apps/<app>``: run scripts from here, never from the build output."""
        if not self.app_name:
            raise ValueError("no app installed in this SplunkHome")
        return self.apps_dir / self.app_name

    @property
    def log_dir(self) -> Path:
        return self.root / "var" / "log" / "splunk"

    @property
    def spool_dir(self) -> Path:
        return self.root / "var" / "spool" / "splunk"

    @property
    def modinputs_dir(self) -> Path:
        return self.root / "var" / "lib" / "splunk" / "modinputs"

    @property
    def dispatch_dir(self) -> Path:
        return self.root / "var" / "run" / "splunk" / "dispatch"

    @property
    def site_packages(self) -> Path:
        """Where Splunk's own bundled ``splunk`` package lives (the stand-in version)."""
        return self.root.joinpath(*SITE_PACKAGES)

    @property
    def splunk_bin(self) -> Path:
        return self.root / "bin" / "splunk"

    @property
    def process_home(self) -> Path:
        """An empty ``$HOME`` for child processes, so no ``~/.aws`` or user site config leaks in."""
        return self.root / "var" / "run" / "home"

    # construction ---------------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        tmp_path: Path,
        app_dir: Optional[Path] = DEFAULT_APP_DIR,
        splunkd_port: Optional[int] = None,
        splunkd: Any = None,
        server_name: str = "harness-splunk",
        app_name: Optional[str] = None,
        python: str = sys.executable,
        splunk_bundled: Sequence[str] = (),
    ) -> SplunkHome:
        """Build the tree under ``tmp_path/splunk``. ``app_dir`` (relative paths are taken from the repo root)
        is installed as ``etc/apps/<name>``: a real directory whose entries are symlinks to the built app, so
        conf writes land in this home's ``local/`` and never in the build output. Pass ``splunkd=`` (a
        started :class:`SplunkdStandIn`) to point ``mgmtHostPort`` at it and attach this home to it.

        ``splunk_bundled``: top-level modules of the harness venv (e.g. ``("requests", "idna", "certifi",
        "charset_normalizer")``) to expose beside the ``splunk`` stand-in, emulating third-party packages
        Splunk Enterprise happens to ship in its own Python. Default none: the app must vendor what it uses."""
        if splunkd is not None:
            splunkd_port = splunkd.port
            server_name = getattr(splunkd, "server_name", server_name)
        if splunkd_port is None:
            raise ValueError("pass splunkd= (a started SplunkdStandIn) or splunkd_port=")
        root = Path(tmp_path) / "splunk"
        home = cls(root, None, None, f"http://127.0.0.1:{splunkd_port}", server_name)
        for directory in (
            home.etc / "system" / "default",
            home.etc / "system" / "local",
            home.apps_dir,
            home.log_dir,
            home.spool_dir,
            home.modinputs_dir,
            home.dispatch_dir,
            home.process_home,
            home.root / "bin",
            home.root / "var" / "lib" / "splunk" / "kvstore",
        ):
            directory.mkdir(parents=True, exist_ok=True)
        cli_common.writeConfFile(
            str(home.etc / "system" / "local" / "server.conf"),
            {"general": {"serverName": server_name}, "sslConfig": {"enableSplunkdSSL": "false"}},
        )
        cli_common.writeConfFile(
            str(home.etc / "system" / "local" / "web.conf"),
            {"settings": {"mgmtHostPort": f"127.0.0.1:{splunkd_port}", "enableSplunkWebSSL": "false"}},
        )
        cli_common.writeConfFile(
            str(home.etc / "system" / "default" / "inputs.conf"),
            {"default": {"index": "default", "host": server_name}},
        )
        shutil.copytree(
            STUB_SOURCE,
            home.site_packages / "splunk",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
        for module in splunk_bundled:
            home.add_bundled_module(module)
        home.splunk_bin.write_text(_SHIM.format(python=python, home=str(root)))
        home.splunk_bin.chmod(home.splunk_bin.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        if app_dir is not None:
            home.install_app(app_dir, app_name)
        if splunkd is not None:
            splunkd.attach(home)
        return home

    def add_bundled_module(self, module: str) -> Path:
        """Symlink an importable top-level module/package of the harness interpreter into the bundled
        site-packages (see ``splunk_bundled``)."""
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(module)
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        target = self.site_packages / source.name
        if not target.exists():
            target.symlink_to(source, target_is_directory=source.is_dir())
        return target

    def install_app(self, app_dir: Path, app_name: Optional[str] = None) -> Path:
        """Install a built app (symlinked entry by entry; ``local/`` copied) and make it this home's app."""
        source = Path(app_dir)
        if not source.is_absolute():
            source = REPO_ROOT / source
        if not source.is_dir():
            raise FileNotFoundError(f"built app not found: {source} (run `make build`)")
        name = app_name or source.name
        target = self.apps_dir / name
        target.mkdir(parents=True, exist_ok=True)
        for entry in source.iterdir():
            if entry.name == "local":
                shutil.copytree(entry, target / "local", dirs_exist_ok=True)
            elif not (target / entry.name).exists():
                (target / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        (target / "local").mkdir(exist_ok=True)
        if not (target / "metadata").exists():
            (target / "metadata").mkdir()
        self.app_name = name
        self.built_app = source
        return target

    # helpers --------------------------------------------------------------------------------------------------
    def env(self) -> Dict[str, str]:
        """Variables splunkd gives the scripts it runs (the runner adds PYTHONPATH and the caller's extras)."""
        return {
            "SPLUNK_HOME": str(self.root),
            "SPLUNK_ETC": str(self.etc),
            "SPLUNK_DB": str(self.root / "var" / "lib" / "splunk"),
            "SPLUNK_SERVER_NAME": self.server_name,
            "HOME": str(self.process_home),
            "PATH": os.pathsep.join([str(self.root / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
        }

    def write_conf(
        self, conf: str, stanza: str, values: Dict[str, Any], app: Optional[str] = None, level: str = "local"
    ) -> Path:
        """Write keys into a conf file on disk (``app=None`` = ``etc/system``). A stand-in attached to this
        home does not see disk edits made after ``attach``; use ``SplunkdStandIn.set_conf`` for live changes."""
        base = self.etc / "system" if app is None else self.apps_dir / app
        path = base / level / f"{conf}.conf"
        stanzas = cli_common.readConfFile(str(path))
        stanzas.setdefault(stanza, {}).update({k: "" if v is None else str(v) for k, v in values.items()})
        cli_common.writeConfFile(str(path), stanzas)
        return path

    def read_conf(self, conf: str, app: Optional[str] = None) -> Dict[str, Dict[str, str]]:
        """Merged on-disk view (btool's global view, or one app's default<local with ``app=``)."""
        merged, _ = cli_common.merge_layers(cli_common.conf_layers(conf, app, str(self.etc)))
        return merged

    def log_files(self) -> List[Path]:
        return sorted(p for p in self.log_dir.rglob("*") if p.is_file())

    def spool_files(self) -> List[Path]:
        return sorted(p for p in self.spool_dir.glob("*.stash*") if p.is_file())
