"""The event model's times: every datetime, epoch number (seconds or milliseconds) or ISO string becomes one UTC
moment, written as ISO-8601 with milliseconds and a ``Z``. Re-exported by :mod:`iot_defender.events`."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
# Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MILLIS_THRESHOLD = 1e11


def to_epoch_ms(seconds: float) -> float:
    """Epoch seconds cut to the millisecond as ``Event.time`` is sent (the ISO strings cut the same way)."""
    return math.floor(round(seconds * 1000.0, 3)) / 1000.0


def to_datetime(value: Any) -> _dt.datetime:
    """A UTC datetime from a datetime, an epoch number (s or ms) or an ISO-8601 string."""
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=_dt.timezone.utc) if value.tzinfo is None else value
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        seconds = value / 1000.0 if abs(value) >= _MILLIS_THRESHOLD else float(value)
        return _EPOCH + _dt.timedelta(seconds=seconds)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = _dt.datetime.fromisoformat(text)
        except ValueError:
            try:
                return to_datetime(float(text))
            except ValueError:
                raise ValueError(f"not a time: {value!r}") from None
        return parsed.replace(tzinfo=_dt.timezone.utc) if parsed.tzinfo is None else parsed
    raise ValueError(f"not a time: {value!r}")


def to_epoch(value: Any) -> float:
    """Epoch seconds (float) from any time representation :func:`to_datetime` accepts."""
    return (to_datetime(value) - _EPOCH).total_seconds()


def to_iso(value: Any) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``: the one time format in every event body."""
    if type(value) is float or type(value) is int:  # the hot path: epoch numbers from raw API answers
        seconds = value / 1000.0 if abs(value) >= _MILLIS_THRESHOLD else float(value)
        # Whole microseconds first, exactly as datetime.fromtimestamp makes them (fraction by modf, rounded half
        # to even), then down to the millisecond, so an epoch number and the datetime botocore makes of it give the
        # same string.
        fraction, whole = math.modf(seconds)
        micros = int(whole) * 1_000_000 + round(fraction * 1e6)
        moment = _EPOCH + _dt.timedelta(milliseconds=micros // 1000)
    else:
        moment = to_datetime(value).astimezone(_dt.timezone.utc)
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
