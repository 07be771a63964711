"""Small shared pieces: the data clock, request context, pagination tokens, time conversion."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from .models import RequestError

DAY = 86400.0


class Clock:
    """The emulator's notion of "now" for data (retention, visibility, audit completion).

    Defaults to the wall clock. ``freeze(t)`` pins it, ``advance(seconds)`` moves it (frozen or not: an offset
    is kept), ``unfreeze()`` returns to wall clock + offset, ``reset()`` to the plain wall clock. Credential expiry
    always uses the wall clock, because botocore's refresh logic does.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._frozen: Optional[float] = None
        self._offset = 0.0

    def now(self) -> float:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def now_datetime(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.now(), _dt.timezone.utc)

    def freeze(self, at: Any = None) -> None:
        t = to_epoch(at) if at is not None else self.now()
        with self._lock:
            self._frozen = t

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
            self._frozen = None

    def reset(self) -> None:
        with self._lock:
            self._frozen = None
            self._offset = 0.0


def to_epoch(value: Any) -> float:
    """datetime (naive = UTC) / epoch seconds / epoch ms (> 1e11) / ISO-8601 text -> epoch seconds float."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        return v / 1000.0 if v > 1e11 else v
    if isinstance(value, str):
        return _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    raise TypeError(f"not a time: {value!r}")


@dataclass
class RequestContext:
    account_id: str
    region: str
    now: float
    caller_arn: str
    access_key: str
    service: str
    operation: str
    error_code: str  # the service's validation error code (InvalidRequestException / ValidationException)


def fingerprint(params: Dict[str, Any]) -> str:
    """Hash of the request parameters other than nextToken/maxResults (a token is only valid for its query)."""
    rest = {k: v for k, v in params.items() if k not in ("nextToken", "maxResults")}
    raw = json.dumps(rest, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode_token(operation: str, key: Any, params: Dict[str, Any]) -> str:
    doc = {"o": operation, "k": key, "f": fingerprint(params)}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(ctx: RequestContext, token: str, params: Dict[str, Any]) -> Any:
    try:
        pad = "=" * (-len(token) % 4)
        doc = json.loads(base64.urlsafe_b64decode(token + pad))
        if not isinstance(doc, dict) or doc.get("o") != ctx.operation:
            raise ValueError("operation mismatch")
        if doc.get("f") != fingerprint(params):
            raise ValueError("parameters changed")
        return doc["k"]
    except Exception:
        raise RequestError(ctx.error_code, "The provided nextToken is not valid.") from None


def page_size(ctx: RequestContext, params: Dict[str, Any], default: int) -> int:
    n = params.get("maxResults")
    return default if n is None else int(n)
