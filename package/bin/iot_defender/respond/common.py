"""What every response action shares: action names, AWS's own name patterns, the option error, ARN helpers and
the run context."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from ..aws import partition_of_region as aws_partition_of_region

ACTION_QUARANTINE = "iot_quarantine_thing"
ACTION_RELEASE = "iot_release_thing"
ACTION_INCIDENT = "iot_start_incident"
ACTION_VERIFICATION = "iot_set_verification_state"

# AWS's own patterns (botocore service models).
THING_NAME_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
THING_GROUP_NAME_RE = THING_NAME_RE
POLICY_NAME_RE = re.compile(r"^[\w+=,.@-]{1,128}$")
VIOLATION_ID_RE = re.compile(r"^[a-zA-Z0-9-]{1,128}$")
RESPONSE_PLAN_ARN_RE = re.compile(
    r"^arn:(aws|aws-us-gov|aws-cn):ssm-incidents::(\d{12}):response-plan/([a-zA-Z0-9_-]{1,200})$"
)
SNS_TOPIC_ARN_RE = re.compile(
    r"^arn:(aws|aws-us-gov|aws-cn):sns:([a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d):(\d{12}):([A-Za-z0-9_-]{1,251})(\.fifo)?$"
)


def valid_thing_name(name: Any) -> bool:
    return isinstance(name, str) and bool(THING_NAME_RE.match(name))


def show(value: Any, limit: int = 80) -> str:
    """An untrusted value made safe for a log line or message: repr-quoted, control characters escaped, cut."""
    text = repr(str(value) if value is not None else "")
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def partition_of_region(region: str) -> str:
    """The region's partition (botocore's endpoint data; the account validation uses the same answer)."""
    return aws_partition_of_region(region)


def parse_arn(arn: str) -> Dict[str, str]:
    parts = (arn or "").split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return {}
    return dict(zip(("arn", "partition", "service", "region", "account", "resource"), parts))


class OptionError(ValueError):
    """An action option (alert parameter / Lambda setting) is unusable; the whole run is refused."""


def check_arn(value: Optional[str], pattern: Any, partition: Optional[str], *, what: str, expected: str) -> None:
    """Refuse ``value`` unless it matches ``pattern`` (group 1: the partition) in the account's partition."""
    match = pattern.match(value or "")
    if not match:
        raise OptionError(f"{what} ARN {show(value)} is not {expected}")
    if partition and match.group(1) != partition:
        raise OptionError(f"the {what} is in partition {match.group(1)}, the account in {partition}")


@dataclass(frozen=True)
class RunContext:
    """Where a run comes from: recorded on the thing (``by``) and used for the incident idempotency token."""

    sid: str = ""
    search_name: str = ""
    # The row's orig_sid (ES notables): part of the idempotency scope next to ``sid``, never in place of it.
    origin: str = ""
    results_link: Optional[str] = None
    now: Callable[[], _dt.datetime] = field(default=lambda: _dt.datetime.now(_dt.timezone.utc))
