"""One call for a test: a running stand-in with a fake ``$SPLUNK_HOME`` attached."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Tuple

from .home import DEFAULT_APP_DIR, SplunkHome
from .server import SplunkdStandIn


@contextlib.contextmanager
def splunk_environment(
    tmp_path: Path,
    app_dir: Optional[Path] = DEFAULT_APP_DIR,
    splunk_bundled: Sequence[str] = (),
    **standin_kwargs: Any,
) -> Iterator[Tuple[SplunkdStandIn, SplunkHome]]:
    """``with splunk_environment(tmp_path) as (splunkd, home): ...`` -- the built app installed in a fresh
    home, served by a fresh stand-in. ``SPLUNK_HOME`` is removed from this process's environment meanwhile,
    so in-process solnlib clients (given scheme/host/port) never try to discover a real Splunk."""
    saved = os.environ.pop("SPLUNK_HOME", None)
    try:
        with SplunkdStandIn(**standin_kwargs) as splunkd:
            home = SplunkHome.create(tmp_path, app_dir=app_dir, splunkd=splunkd, splunk_bundled=splunk_bundled)
            yield splunkd, home
    finally:
        if saved is not None:
            os.environ["SPLUNK_HOME"] = saved
