"""Stand-in for ``splunk.clilib.bundle_paths``."""

from __future__ import annotations

import os
from typing import Sequence

from .cli_common import splunk_etc, splunk_home


def make_splunkhome_path(parts: Sequence[str]) -> str:
    """``$SPLUNK_HOME`` joined with ``parts``; ``etc`` honours ``$SPLUNK_ETC``; refuses to escape the home."""
    parts = [str(part) for part in parts]
    if parts and parts[0] == "etc":
        base = splunk_etc()
        rest = parts[1:]
    else:
        base = splunk_home()
        rest = parts
    base = os.path.normpath(base)
    path = os.path.normpath(os.path.join(base, *rest))
    if path != base and not path.startswith(base + os.sep):
        raise ValueError(f"Illegal escape from parent directory {base!r}: {path!r}")
    return path


def get_base_path() -> str:
    return splunk_home()
