"""Run Splunk AppInspect offline with the Splunk Cloud tags and fail on any failure or future failure.

Writes the JSON report to build/appinspect/report.json and prints a summary with every failing check.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def summarize(report: dict) -> tuple:
    counts = {"failure": 0, "future_failure": 0, "error": 0, "warning": 0, "manual_check": 0}
    problems = []
    for app in report.get("reports", []):
        for group in app.get("groups", []):
            for check in group.get("checks", []):
                result = check.get("result")
                if result in counts:
                    counts[result] += 1
                if result in ("failure", "future_failure", "error"):
                    messages = [m.get("message", "") for m in check.get("messages", [])][:3]
                    problems.append((result, check.get("name"), messages))
    return counts, problems


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("package")
    args = parser.parse_args()
    out = ROOT / "build" / "appinspect"
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    tool = Path(sys.executable).parent / "splunk-appinspect"
    subprocess.run(
        [
            str(tool),
            "inspect",
            args.package,
            "--mode",
            "precert",
            "--included-tags",
            "cloud",
            "--skip-trusted-libraries-update",
            "--data-format",
            "json",
            "--output-file",
            str(report_path),
        ],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    if not report_path.exists():
        raise SystemExit("AppInspect produced no report")
    counts, problems = summarize(json.loads(report_path.read_text()))
    print("AppInspect (cloud): " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for result, name, messages in problems:
        print(f"  {result}: {name}")
        for message in messages:
            print(f"      {message[:300]}")
    if counts["failure"] or counts["future_failure"] or counts["error"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
