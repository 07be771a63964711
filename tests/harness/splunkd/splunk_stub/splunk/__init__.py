"""Minimal stand-in for the ``splunk`` package that Splunk's own Python ships (``$SPLUNK_HOME/lib/python3.*/
site-packages/splunk``). Only what add-on libraries (solnlib, splunktaucclib) import is provided; everything
talks to the loopback splunkd stand-in or reads the fake ``$SPLUNK_HOME``. Standard library only.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

_DEFAULTS: Dict[str, Any] = {"sessionKey": None, "namespace": None, "owner": None}


class SplunkdException(Exception):
    def __init__(self, msg: str = "", extendedMessages: Any = None, statusCode: Optional[int] = None):
        super().__init__(msg)
        self.msg = msg
        self.extendedMessages = extendedMessages
        self.statusCode = statusCode

    def get_extended_message_text(self) -> str:
        return str(self.extendedMessages or self.msg)


class SplunkdConnectionException(SplunkdException):
    pass


class RESTException(SplunkdException):
    pass


class BadRequest(RESTException):
    pass


class AuthenticationFailed(RESTException):
    pass


class AuthorizationFailed(RESTException):
    pass


class ResourceNotFound(RESTException):
    pass


class InternalServerError(RESTException):
    pass


class QuotaExceededException(SplunkdException):
    pass


def setDefault(key: str, value: Any) -> None:
    _DEFAULTS[key] = value


def getDefault(key: str) -> Any:
    return _DEFAULTS.get(key)


def getSessionKey() -> Optional[str]:
    """No session key outside a splunkd-hosted handler: a modular input or alert gets it on stdin."""
    return _DEFAULTS.get("sessionKey")


def getLocalServerInfo() -> str:
    from .clilib.cli_common import getMgmtUri

    return getMgmtUri()


def mergeHostPath(hostPath: Optional[str] = None, useDefault: bool = False) -> str:
    return hostPath or getLocalServerInfo()
