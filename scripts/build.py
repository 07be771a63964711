"""Build the add-on with UCC into output/TA-aws-iot-defender and check what Splunk Cloud would refuse.

UCC facts this encodes: `ucc-gen build` needs an explicit version; with pip 26.3 in the lib installer it needs
`--pip-version 25.3`; libraries are installed by a dedicated clean venv so nothing from the dev venv leaks in.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "TA-aws-iot-defender"
LIB_VENV = ROOT / ".venv-lib"
PIP_VERSION = "25.3"
FORBIDDEN_LIB_SUFFIXES = (".so", ".pyd", ".dll", ".dylib", ".exe")


def lib_python() -> Path:
    python = LIB_VENV / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(LIB_VENV)
    return python


def disable_botocore_csm(lib_dir: Path) -> None:
    """Remove botocore's client-side monitoring publisher from the vendored copy.

    CSM (off unless AWS_CSM_ENABLED is set, and deprecated) sends metrics over a UDP socket; Splunk Cloud
    forbids programmatic UDP and AppInspect fails the package for the mere socket call. The add-on never
    enables CSM, so the method is replaced by one that reports "no monitor".
    """
    session_py = lib_dir / "botocore" / "session.py"
    text = session_py.read_text()
    start = text.index("    def _create_csm_monitor(self):")
    end = text.index("    def _get_crt_version(self):")
    stub = (
        "    def _create_csm_monitor(self):\n"
        "        # TA-aws-iot-defender: client-side monitoring (UDP) removed for Splunk Cloud.\n"
        "        return None\n\n"
    )
    session_py.write_text(text[:start] + stub + text[end:])
    if "SOCK_DGRAM" in session_py.read_text():
        raise SystemExit("botocore CSM patch did not apply")


def drop_charset_normalizer(lib_dir: Path) -> None:
    """requests pulls in charset-normalizer, whose wheels are compiled (mypyc). requests falls back to the
    pure-Python chardet we vendor. UCC's own exclude.txt cannot remove it: its RECORD lists a console script
    outside lib/ and UCC's remover crashes on that, so it is removed here."""
    for path in [*lib_dir.glob("charset_normalizer*"), lib_dir / "bin" / "normalizer"]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_output(app_dir: Path, version: str) -> None:
    compiled = [p for p in (app_dir / "lib").rglob("*") if p.suffix in FORBIDDEN_LIB_SUFFIXES]
    if compiled:
        raise SystemExit(f"compiled files in lib/ (Splunk Cloud refuses them): {compiled[:5]}")
    init = (app_dir / "bin" / "iot_defender" / "__init__.py").read_text()
    if f'__version__ = "{version}"' not in init:
        raise SystemExit(f"iot_defender.__version__ does not match VERSION {version}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", required=True)
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_global_config.py")], check=True)
    output = ROOT / "output"
    if output.exists():
        shutil.rmtree(output)
    ucc = Path(sys.executable).parent / "ucc-gen"
    subprocess.run(
        [
            str(ucc),
            "build",
            "--source",
            str(ROOT / "package"),
            "--config",
            str(ROOT / "globalConfig.json"),
            "--ta-version",
            args.version,
            "--python-binary-name",
            str(lib_python()),
            "--pip-version",
            PIP_VERSION,
            "-o",
            str(output),
        ],
        check=True,
        cwd=ROOT,
    )
    app_dir = output / APP
    for cache in list(app_dir.rglob("__pycache__")):
        shutil.rmtree(cache)
    disable_botocore_csm(app_dir / "lib")
    drop_charset_normalizer(app_dir / "lib")
    check_output(app_dir, args.version)
    print(f"built {app_dir}")


if __name__ == "__main__":
    main()
