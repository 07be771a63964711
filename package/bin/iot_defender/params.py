"""The one parser per kind of parameter: booleans, whole numbers, fixed choices and plain text.

Used alike by the modular inputs (inputs.conf values), the alert actions (alert_actions.conf ``param.*`` and the
search's overrides), the Lambdas (environment variables and event keys) and the AWS settings (proxy tab). Every
parser reads an *absent or empty* value as the caller's default; anything else must be a recognised spelling, or
the parser raises :class:`ParameterError` naming the parameter and the value it refused. Nothing is guessed: a
``dry_run`` of ``"dry"`` is an error, never a silent "false" that would let a run act.

The boolean spellings are Splunk's own (``splunk.util.normalizeBoolean``), case-insensitive, surrounding blanks
ignored. Whole numbers are ASCII digits only (Python's ``int()`` would also take ``"1_000"`` and ``"١٢"``). Names are
checked against the pattern AWS documents for them (:data:`AWS_NAMES`), whole-string, ASCII only.

Settings an admin types into the configuration page (account, AWS API and proxy tabs) may hold a secret pasted into
the wrong field: their errors come from :meth:`ParameterError.without_value`, which names the field and what it
must be, never the value.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Pattern, Sequence, Tuple

TRUE_SPELLINGS = ("1", "true", "t", "yes", "y", "on")
FALSE_SPELLINGS = ("0", "false", "f", "no", "n", "off")
_SHOWN = 60
# ASCII digits only, an optional minus sign, at most 18 digits (int() of a longer text is never a parameter).
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,18}", re.ASCII)


class ParameterError(ValueError):
    """A parameter value that is not one of the accepted spellings; the message names both."""

    def __init__(self, name: str, value: Any, expected: str):
        super().__init__(f"parameter {name}: {shown(value)} is not {expected}")
        self.name = name
        self.value = value
        self.expected = expected

    def without_value(self) -> str:
        """The message without the refused value: for settings, where a secret may sit in the wrong field."""
        return f"parameter {self.name}: the value given is not {self.expected}"


def shown(value: Any) -> str:
    """A refused value as it appears in an error: quoted, control characters escaped, clipped."""
    text = repr(str(value))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 4] + "...'"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def boolean(value: Any, name: str, default: bool) -> bool:
    """A boolean parameter; absent/empty is ``default``, anything but a recognised spelling is an error."""
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if not text:
        return default
    if text in TRUE_SPELLINGS:
        return True
    if text in FALSE_SPELLINGS:
        return False
    raise ParameterError(name, value, f"a boolean ({'/'.join(TRUE_SPELLINGS)} or {'/'.join(FALSE_SPELLINGS)})")


def integer(value: Any, name: str, default: int, low: int, high: int) -> int:
    """A whole number within [low, high]; absent/empty is ``default``."""
    if isinstance(value, bool):
        raise ParameterError(name, value, "a whole number")
    text = _text(value)
    if not text:
        return default
    if not _WHOLE_NUMBER.fullmatch(text):
        raise ParameterError(name, value, "a whole number")
    number = int(text)
    if not low <= number <= high:
        raise ParameterError(name, value, f"between {low} and {high}")
    return number


def choice(value: Any, name: str, choices: Sequence[str], default: Optional[str] = None) -> str:
    """One of a fixed set of values (exact, case-insensitive match; returned as spelled in ``choices``)."""
    text = _text(value)
    if not text and default is not None:
        return default
    for option in choices:
        if option.lower() == text.lower():
            return option
    raise ParameterError(name, value, f"one of {', '.join(choices)}")


def text(value: Any, default: str = "") -> str:
    """A free-text parameter, blanks stripped; absent/empty is ``default``."""
    return _text(value) or default


# ------------------------------------------------------------------------------------------------ AWS names

# Each AWS name kind the add-on reads, with the pattern (and length) AWS documents for it: (regex, description).
AWS_NAMES: Dict[str, Tuple[Pattern[str], str]] = {
    kind: (re.compile(regex, re.ASCII), what)
    for kind, regex, what in (
        ("thing_name", r"[a-zA-Z0-9:_-]{1,128}", "a thing name ([a-zA-Z0-9:_-], 1-128)"),
        ("thing_group_name", r"[a-zA-Z0-9:_-]{1,128}", "a thing group name ([a-zA-Z0-9:_-], 1-128)"),
        ("security_profile_name", r"[a-zA-Z0-9:_-]{1,128}", "a security profile name ([a-zA-Z0-9:_-], 1-128)"),
        ("policy_name", r"[\w+=,.@-]{1,128}", "an IoT policy name ([\\w+=,.@-], 1-128)"),
        ("account_id", r"[0-9]{12}", "an AWS account id (12 digits)"),
        ("region", r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]", "an AWS region name (e.g. us-east-1)"),
        (
            "role_arn",
            r"arn:(aws|aws-us-gov|aws-cn):iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}",
            "an IAM role ARN (arn:<partition>:iam::<12-digit account>:role/<name>)",
        ),
        ("role_session_name", r"[\w+=,.@-]{2,64}", "a role session name (2-64 characters of [\\w+=,.@-])"),
        ("access_key_id", r"[A-Z0-9]{16,128}", "an access key ID (16-128 upper-case letters and digits)"),
        (
            "response_plan_arn",
            r"arn:(aws|aws-us-gov|aws-cn):ssm-incidents::([0-9]{12}):response-plan/([a-zA-Z0-9_-]{1,200})",
            "an Incident Manager response plan ARN "
            "(arn:<partition>:ssm-incidents::<12-digit account>:response-plan/<name>)",
        ),
        # A host name or an IPv4/bracketed IPv6 address: nothing that changes how a URL is read (@ # / ? : %).
        (
            "proxy_host",
            r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\]",
            "a host name or IP address",
        ),
    )
}


def aws_name(value: Any, name: str, kind: str, default: Optional[str] = None) -> Optional[str]:
    """A name of AWS kind ``kind`` (a key of :data:`AWS_NAMES`), matched whole; absent/empty is ``default``."""
    pattern, what = AWS_NAMES[kind]
    text = _text(value)
    if not text:
        return default
    if pattern.fullmatch(text) is None:
        raise ParameterError(name, value, what)
    return text


def aws_match(value: Any, name: str, kind: str) -> re.Match[str]:
    """The match of a present name of AWS kind ``kind`` (its groups, e.g. an ARN's partition); else an error."""
    pattern, what = AWS_NAMES[kind]
    found = pattern.fullmatch(_text(value))
    if found is None:
        raise ParameterError(name, value, what)
    return found
