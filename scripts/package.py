"""Package the built add-on (output/TA-aws-iot-defender) into dist/TA-aws-iot-defender-<version>.tar.gz."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "TA-aws-iot-defender"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", required=True)
    args = parser.parse_args()
    dist = ROOT / "dist"
    dist.mkdir(exist_ok=True)
    for old in dist.glob(f"{APP}-*.tar.gz"):
        old.unlink()
    ucc = Path(sys.executable).parent / "ucc-gen"
    subprocess.run([str(ucc), "package", "--path", str(ROOT / "output" / APP), "-o", str(dist)], check=True)
    made = sorted(dist.glob(f"{APP}*.tar.gz"))
    if not made:
        raise SystemExit("ucc-gen package produced no tarball")
    target = dist / f"{APP}-{args.version}.tar.gz"
    if made[-1] != target:
        made[-1].rename(target)
    print(f"packaged {target} ({target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
