"""Stand-in for ``splunk.rest``: ``simpleRequest`` really calls the loopback splunkd stand-in over HTTP.

The splunkd URI comes from the fake ``$SPLUNK_HOME/etc`` (``web.conf [settings] mgmtHostPort`` and
``server.conf [sslConfig] enableSplunkdSSL``), as Splunk's own module does. Standard library only.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

import splunk


class _Response(dict):
    """httplib2-style response: a dict of (lower-cased) headers with ``status`` and ``reason``."""

    def __init__(self, status: int, reason: str, headers: Dict[str, str]):
        super().__init__({key.lower(): value for key, value in headers.items()})
        self.status = status
        self.reason = reason
        self.messages: List[Dict[str, str]] = []


def _messages(content: bytes) -> List[Dict[str, str]]:
    text = content.decode("utf-8", "replace")
    try:
        body = json.loads(text)
        return [{"type": m.get("type", "ERROR"), "text": m.get("text", "")} for m in body.get("messages", [])]
    except (ValueError, AttributeError):
        pass
    return [{"type": t, "text": m} for t, m in re.findall(r'<msg type="([^"]*)"[^>]*>(.*?)</msg>', text, re.S)]


def _encode(args: Optional[Dict[str, Any]]) -> str:
    pairs: List[Tuple[str, str]] = []
    for key, value in (args or {}).items():
        if isinstance(value, (list, tuple)):
            pairs.extend((key, str(item)) for item in value)
        elif value is not None:
            pairs.append((key, str(value)))
    return urllib.parse.urlencode(pairs)


def simpleRequest(
    path: str,
    sessionKey: Optional[str] = None,
    getargs: Optional[Dict[str, Any]] = None,
    postargs: Optional[Dict[str, Any]] = None,
    method: str = "GET",
    raiseAllErrors: bool = False,
    proxyMode: bool = False,
    rawResult: bool = False,
    timeout: Optional[float] = None,
    jsonargs: Optional[str] = None,
    token: bool = False,
) -> Tuple[_Response, bytes]:
    if path.startswith("http://") or path.startswith("https://"):
        uri = path
    else:
        if not path.startswith("/"):
            path = "/services/" + path
        uri = splunk.getLocalServerInfo() + path
    if getargs:
        uri += ("&" if "?" in uri else "?") + _encode(getargs)
    headers = {"User-Agent": "splunk-sdk-stand-in/simpleRequest"}
    session_key = sessionKey or splunk.getSessionKey()
    if session_key:
        headers["Authorization"] = (
            session_key if session_key.startswith(("Splunk ", "Bearer ")) else f"Splunk {session_key}"
        )
    data: Optional[bytes] = None
    if jsonargs is not None:
        data = (jsonargs if isinstance(jsonargs, str) else json.dumps(jsonargs)).encode("utf-8")
        headers["Content-Type"] = "application/json"
    elif postargs is not None:
        data = _encode(postargs).encode("utf-8")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if data is not None and method.upper() == "GET":
        method = "POST"
    request = urllib.request.Request(uri, data=data, headers=headers, method=method.upper())
    try:
        with urllib.request.urlopen(request, timeout=timeout or 30) as handle:
            response = _Response(handle.status, handle.reason, dict(handle.headers))
            content = handle.read()
    except urllib.error.HTTPError as error:
        response = _Response(error.code, error.reason, dict(error.headers or {}))
        content = error.read()
    except (urllib.error.URLError, OSError) as error:
        raise splunk.SplunkdConnectionException(f"Error connecting to {uri}: {error}") from error
    response.messages = _messages(content) if response.status >= 400 else []
    if rawResult:
        return response, content
    status = response.status
    text = "; ".join(m["text"] for m in response.messages) or content.decode("utf-8", "replace")
    if status == 400:
        raise splunk.BadRequest(text, response.messages, status)
    if status == 401:
        raise splunk.AuthenticationFailed(text, response.messages, status)
    if status == 403:
        raise splunk.AuthorizationFailed(text, response.messages, status)
    if status == 404:
        raise splunk.ResourceNotFound(uri, response.messages, status)
    if status == 500:
        raise splunk.InternalServerError(text, response.messages, status)
    if status == 503:
        raise splunk.SplunkdConnectionException(text, response.messages, status)
    if raiseAllErrors and status > 399:
        raise splunk.RESTException(text, response.messages, status)
    return response, content
