"""The one parser per kind of parameter: booleans, whole numbers, fixed choices and plain text.

Used alike by the modular inputs (inputs.conf values), the alert actions (alert_actions.conf ``param.*`` and the
search's overrides), the Lambdas (environment variables and event keys) and the AWS settings (proxy tab). Every
parser reads an *absent or empty* value as the caller's default; anything else must be a recognised spelling, or
the parser raises :class:`ParameterError` naming the parameter and the value it refused. Nothing is guessed: a
``dry_run`` of ``"dry"`` is an error, never a silent "false" that would let a run act.

The boolean spellings are Splunk's own (``splunk.util.normalizeBoolean``), case-insensitive, surrounding blanks
ignored.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

TRUE_SPELLINGS = ("1", "true", "t", "yes", "y", "on")
FALSE_SPELLINGS = ("0", "false", "f", "no", "n", "off")
_SHOWN = 60


class ParameterError(ValueError):
    """A parameter value that is not one of the accepted spellings; the message names both."""

    def __init__(self, name: str, value: Any, expected: str):
        super().__init__(f"parameter {name}: {shown(value)} is not {expected}")
        self.name = name
        self.value = value


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
    try:
        number = int(text)
    except ValueError:
        raise ParameterError(name, value, "a whole number") from None
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
