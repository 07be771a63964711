"""No tracked symbolic link leaves the checkout: a clone must not depend on (or, as a tracked `.venv` link did,
overwrite) anything outside it. git stores a link as its target text; a target that is absolute or climbs out of
the repository breaks a fresh clone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tracked_links():
    listed = subprocess.run(
        ["git", "ls-files", "--stage"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    links = []
    for line in listed:
        meta, _, path = line.partition("\t")
        if meta.startswith("120000 "):  # git's mode for a symbolic link
            blob = meta.split()[1]
            target = subprocess.run(
                ["git", "cat-file", "blob", blob], cwd=REPO, check=True, capture_output=True, text=True
            ).stdout
            links.append((path, target))
    return links


def test_no_tracked_link_points_outside_the_checkout():
    outside = []
    for path, target in tracked_links():
        resolved = os.path.normpath(os.path.join(REPO, os.path.dirname(path), target))
        if os.path.isabs(target) or not resolved.startswith(str(REPO) + os.sep):
            outside.append(f"{path} -> {target}")
    assert outside == []
