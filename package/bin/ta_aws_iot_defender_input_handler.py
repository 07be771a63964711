"""REST handler of the three inputs: deleting an input also deletes its checkpoints and crash journals, so a
new input with the same name starts from its backfill instead of an old high-water mark."""

from __future__ import annotations

import glob
import os
import re
from typing import Any, List

from splunktaucclib.rest_handler.admin_external import AdminExternalHandler, get_splunkd_endpoint

from iot_defender.checkpoint import checkpoint_prefix
from iot_defender_input import CHECKPOINT_COLLECTION, connect_splunkd_uri
from iot_defender_splunk import get_logger


def delete_checkpoints(service: Any, input_type: str, stanza: str, journal_dir: str) -> List[str]:
    """Delete the KV checkpoints (every account and region) and journals of one input; returns the keys."""
    prefix = checkpoint_prefix(input_type, stanza)
    removed: List[str] = []
    if CHECKPOINT_COLLECTION in [c.name for c in service.kvstore.list()]:
        data = service.kvstore[CHECKPOINT_COLLECTION].data
        for document in data.query(fields="_key"):
            key = document.get("_key", "")
            if key.startswith(prefix):
                data.delete_by_id(key)
                removed.append(key)
    safe_prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", prefix)
    for path in glob.glob(os.path.join(glob.escape(journal_dir), glob.escape(safe_prefix) + "*.journal")):
        os.unlink(path)
    return removed


class InputHandler(AdminExternalHandler):
    def delete_hook(self, session_key: str, config_name: str, stanza_id: str) -> None:
        from solnlib.splunkenv import make_splunkhome_path

        service = connect_splunkd_uri(get_splunkd_endpoint(), session_key)
        journal_dir = make_splunkhome_path(["var", "lib", "splunk", "modinputs", config_name])
        removed = delete_checkpoints(service, config_name, stanza_id, journal_dir)
        get_logger("input_handler").info(
            "input %s://%s deleted: removed %d checkpoint(s)", config_name, stanza_id, len(removed)
        )
