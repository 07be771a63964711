"""The small services every quarantine / release action is handed (composition, no shared base class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .calls import AwsCalls
from .isolation import Isolation
from .outcomes import Outcomes
from .registry import Registry
from .store import RecordStore


@dataclass
class Services:
    calls: AwsCalls  # paced, counted AWS calls
    outcomes: Outcomes  # the results
    registry: Registry  # registry reads
    isolation: Isolation  # the quarantine group and isolation policy (ownership-checked)
    records: RecordStore  # the quarantine record on the thing
    dry_run: bool = False
    # What releases certificates when records cannot be authenticated (the response stack's runbook, for its
    # containment Lambda, which holds no record key); None in the add-on.
    keyless_recovery: Optional[str] = None
