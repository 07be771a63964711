"""The repository stands alone: a clone in an empty directory has everything the tests, demo and benchmarks read.

Walks every tracked file (and every untracked one that is not ignored) for a reference to a place outside the
checkout: the parent directory's folders, or an absolute path into a workshop or home directory.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOTDOT = ".."  # kept apart so this file does not match its own patterns
OUTSIDE = re.compile(
    "|".join(
        [
            re.escape(DOTDOT) + r"/shared\b",
            r"(?<![A-Za-z0-9_.~])/" + "work/",
            r"(?<![A-Za-z0-9_.~])/(?:root|home/[A-Za-z0-9_-]+)/",
            r'/\s*"' + 'shared"',  # a path join into a folder beside the checkout
        ]
    )
)
SKIP_SUFFIXES = {".png", ".gz", ".lock"}
SKIP_NAMES = {"package-lock.json"}


def tracked_files():
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    return [REPO / name for name in listed if name and (REPO / name).is_file()]


def test_the_walk_sees_the_repository():
    names = {path.relative_to(REPO).as_posix() for path in tracked_files()}
    assert {"Makefile", "README.md", ".ci/run", "tests/fixtures/samples/metrics-export.json"} <= names


@pytest.mark.parametrize(
    "line",
    [
        "SAMPLES = Path('" + DOTDOT + "/shared/samples')",
        'SAMPLES = Path("' + "/work" + '/shared/samples")',
        "SAMPLES = Path(__file__).resolve().parents[3] / " + '"shared"',
        "ROOT.parent / " + '"' + 'shared" / "samples"',
        "see " + "/home" + "/dev/notes.md",
    ],
)
def test_the_pattern_catches_outside_references(line):
    assert OUTSIDE.search(line)


def test_no_tracked_file_references_a_path_outside_the_repository():
    leaks = []
    for path in tracked_files():
        if path.suffix in SKIP_SUFFIXES or path.name in SKIP_NAMES:
            continue
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(content.splitlines(), 1):
            if OUTSIDE.search(line):
                leaks.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not leaks, "references outside the repository:\n" + "\n".join(leaks)
