"""Stand-in for ``splunk.util``: the helpers add-on libraries import."""

from __future__ import annotations

import calendar
import time
from typing import Any

_TRUE = ("true", "t", "on", "yes", "y")
_FALSE = ("false", "f", "off", "no", "n")


def mktimegm(tuple_time: Any) -> int:
    """UTC ``struct_time`` (or 9-tuple) to epoch seconds, like ``calendar.timegm``."""
    return int(calendar.timegm(tuple_time))


def normalizeBoolean(input: Any, enableStrictMode: bool = False, includeIntegers: bool = True) -> Any:
    """Splunk's boolean normaliser: true/false words (and "1"/"0" with ``includeIntegers``) become bools;
    lists and dicts are walked; anything else comes back unchanged (``ValueError`` in strict mode)."""
    true_things = _TRUE + (("1",) if includeIntegers else ())
    false_things = _FALSE + (("0",) if includeIntegers else ())

    def norm(value: Any) -> Any:
        if value is True or value is False:
            return value
        if includeIntegers and isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        try:
            test = value.strip().lower()
        except AttributeError:
            return value
        if test in true_things:
            return True
        if test in false_things:
            return False
        if enableStrictMode:
            raise ValueError(f"Unable to cast value to boolean: {value}")
        return value

    if isinstance(input, dict):
        return {key: norm(value) for key, value in input.items()}
    if isinstance(input, list):
        return [norm(value) for value in input]
    return norm(input)


def localTZ() -> Any:
    return time.localtime().tm_zone
