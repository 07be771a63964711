"""AWS account layer: boto3 sessions and clients built from an account configuration.

- Credentials: access keys, or the host's default credential chain, optionally with an IAM role assumed on top.
  Assumed-role credentials are ``RefreshableCredentials`` that renew themselves before they expire, so a long
  run never dies on an expired token; a token the service rejects early is refreshed once and the call retried.
- Retries: botocore's own ``standard``/``adaptive`` modes with a configurable attempt cap.
- Proxy and timeouts from the add-on settings; the user agent carries ``TA-aws-iot-defender/<version>``.
- Endpoints: nothing is hard-coded; botocore's own ``AWS_ENDPOINT_URL`` points every client at a local
  endpoint in tests.
- Secrets never appear in ``repr()``, exceptions or log lines made here.
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
    UnknownRegionError,
)
from botocore.paginate import TokenEncoder
from botocore.parsers import ResponseParserFactory, RestJSONParser

from . import USER_AGENT_EXTRA
from .params import AWS_NAMES, ParameterError, aws_match, boolean, choice, integer, shown

PARTITIONS = ("aws", "aws-us-gov", "aws-cn")
CREDENTIAL_SOURCES = ("access_key", "default_chain")
RETRY_MODES = ("standard", "adaptive")
DEFAULT_SESSION_NAME = "splunk-ta-aws-iot-defender"

# Kept for callers that match a region; the pattern is params.AWS_NAMES' (ASCII only, whole string with fullmatch).
REGION_RE = re.compile("^(?:" + AWS_NAMES["region"][0].pattern + r")\Z", re.ASCII)

# Error codes that mean "these temporary credentials are no longer good": refresh and retry once.
EXPIRED_TOKEN_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)


@functools.lru_cache(maxsize=256)
def partition_of_region(region: str) -> str:
    """The AWS partition of a region name, from botocore's endpoint data (which knows every region and each
    partition's naming pattern); the well-known prefixes when botocore cannot place the name."""
    try:
        return _botocore_session().get_partition_for_region(region)
    except (UnknownRegionError, AttributeError):  # a name botocore cannot place; a botocore without the method
        if region.startswith("cn-"):
            return "aws-cn"
        if region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"


@functools.lru_cache(maxsize=1)
def _botocore_session() -> botocore.session.Session:
    return botocore.session.get_session()


class ConfigError(ValueError):
    """The account or settings are not usable. The message is safe to show (it never holds a secret)."""


class AccountValidationError(Exception):
    """AWS refused the configured credentials. The message says why, and never holds a secret."""

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Account:
    """One configured AWS account. Secret fields are excluded from ``repr`` and comparisons."""

    name: str
    credential_source: str = "access_key"
    access_key_id: Optional[str] = None
    secret_access_key: Optional[str] = field(default=None, repr=False, compare=False)
    role_arn: Optional[str] = None
    external_id: Optional[str] = field(default=None, repr=False, compare=False)
    role_session_name: str = DEFAULT_SESSION_NAME
    partition: str = "aws"
    default_region: str = "us-east-1"
    # iot_start_incident's default destination: Incident Manager with this plan, OpsCenter without one.
    response_plan_arn: Optional[str] = None

    @classmethod
    def from_conf(cls, name: str, conf: Mapping[str, Any]) -> Account:
        """Build from the account stanza as solnlib returns it (secrets already decrypted)."""

        def text(key: str) -> Optional[str]:
            value = conf.get(key)
            value = str(value).strip() if value is not None else ""
            return value or None

        account = cls(
            name=name,
            credential_source=text("credential_source") or "access_key",
            access_key_id=text("aws_access_key_id"),
            secret_access_key=text("aws_secret_access_key"),
            role_arn=text("role_arn"),
            external_id=text("external_id"),
            role_session_name=text("role_session_name") or DEFAULT_SESSION_NAME,
            partition=text("partition") or "aws",
            default_region=text("default_region") or "us-east-1",
            response_plan_arn=text("response_plan_arn"),
        )
        account.check()
        return account

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the first unusable field.

        Messages name the field, never its value: a secret pasted into the wrong field must not come back in the UI
        and the log. Every name goes through :mod:`iot_defender.params` with its AWS pattern.
        """
        where = f"account '{self.name}'"
        try:
            self._check_fields(where)
        except ParameterError as exc:
            raise ConfigError(f"{where}: {exc.without_value()}") from None

    def _check_fields(self, where: str) -> None:
        choice(self.credential_source, "credential source", CREDENTIAL_SOURCES)
        if self.credential_source not in CREDENTIAL_SOURCES:  # choice() accepts any case; the conf value must be exact
            raise ConfigError(f"{where}: credential source must be one of {', '.join(CREDENTIAL_SOURCES)}")
        if self.credential_source == "access_key":
            if not self.access_key_id or not self.secret_access_key:
                raise ConfigError(f"{where}: access key ID and secret access key are both required")
            aws_match(self.access_key_id, "access key ID", "access_key_id")
        if self.partition not in PARTITIONS:
            raise ConfigError(f"{where}: partition must be one of {', '.join(PARTITIONS)}")
        aws_match(self.default_region, "default region", "region")
        region_partition = partition_of_region(self.default_region)
        if region_partition != self.partition:
            raise ConfigError(
                f"{where}: the default region is in partition '{region_partition}' but the account's partition is "
                f"'{self.partition}'"
            )
        for value, label, kind in (
            (self.role_arn, "role ARN", "role_arn"),
            (self.response_plan_arn, "response plan ARN", "response_plan_arn"),
        ):
            if value:
                arn_partition = aws_match(value, label, kind).group(1)
                if arn_partition != self.partition:
                    raise ConfigError(
                        f"{where}: the {label} is in partition '{arn_partition}' but the account is '{self.partition}'"
                    )
        aws_match(self.role_session_name, "role session name", "role_session_name")

    def field_values(self) -> List[str]:
        """Every configured value an admin typed (secrets and names): scrubbed from AWS's own error messages, which
        may quote a role ARN holding a secret pasted into the wrong field."""
        values = (self.access_key_id, self.role_arn, self.role_session_name, self.response_plan_arn)
        return [*self.secrets(), *(v for v in values if v and v != DEFAULT_SESSION_NAME)]

    def secrets(self) -> List[str]:
        """The secret values of this account, for log scrubbing and leak tests."""
        return [s for s in (self.secret_access_key, self.external_id) if s]


@dataclass(frozen=True)
class ClientSettings:
    """Add-on wide AWS API behaviour (Configuration > AWS API and Proxy tabs)."""

    retry_mode: str = "adaptive"
    max_attempts: int = 8
    timeout_seconds: int = 30
    proxy_url: Optional[str] = field(default=None, repr=False)
    max_pool_connections: int = 10

    @classmethod
    def from_conf(
        cls, advanced: Optional[Mapping[str, Any]] = None, proxy: Optional[Mapping[str, Any]] = None
    ) -> ClientSettings:
        """The AWS API and proxy tabs, every field through :mod:`iot_defender.params` (errors never echo a value)."""
        advanced = advanced or {}
        try:
            settings = cls(
                retry_mode=choice(advanced.get("retry_mode"), "retry_mode", RETRY_MODES, "adaptive"),
                max_attempts=integer(advanced.get("max_attempts"), "max_attempts", 8, 1, 20),
                timeout_seconds=integer(advanced.get("timeout_seconds"), "timeout_seconds", 30, 1, 300),
                proxy_url=proxy_url_from_conf(proxy or {}),
            )
        except ParameterError as exc:
            raise ConfigError(exc.without_value()) from None
        settings.check()
        return settings

    def check(self) -> None:
        if self.retry_mode not in RETRY_MODES:
            raise ConfigError(f"retry mode must be one of {', '.join(RETRY_MODES)}")
        if not 1 <= self.max_attempts <= 20:
            raise ConfigError("max attempts must be between 1 and 20")
        if not 1 <= self.timeout_seconds <= 300:
            raise ConfigError("timeout must be between 1 and 300 seconds")

    def botocore_config(self) -> Config:
        options: Dict[str, Any] = {
            "retries": {"mode": self.retry_mode, "max_attempts": self.max_attempts},
            "user_agent_extra": USER_AGENT_EXTRA,
            "connect_timeout": self.timeout_seconds,
            "read_timeout": self.timeout_seconds,
            "max_pool_connections": self.max_pool_connections,
        }
        if self.proxy_url:
            options["proxies"] = {"http": self.proxy_url, "https": self.proxy_url}
        return Config(**options)


PROXY_TYPES = ("http",)  # botocore speaks HTTP CONNECT to a proxy; UCC's tab also offers socks4/socks5


def proxy_url_from_conf(proxy: Mapping[str, Any]) -> Optional[str]:
    """The proxy URL from UCC's proxy tab fields, or None when the proxy is off.

    Host, port and type go through :mod:`iot_defender.params`: a host with ``@``, ``#``, ``/`` or ``:`` would make
    a URL that names another host; user name and password are percent-encoded. Errors name the field, never its
    value (a password pasted into the host field must not be logged).
    """
    try:
        if not boolean(proxy.get("proxy_enabled"), "proxy_enabled", False):
            return None
        if not str(proxy.get("proxy_url") or "").strip() or not str(proxy.get("proxy_port") or "").strip():
            raise ConfigError("the proxy is enabled but its host or port is missing")
        host = aws_match(proxy.get("proxy_url"), "proxy_url", "proxy_host").group(0)
        port = integer(proxy.get("proxy_port"), "proxy_port", 0, 1, 65535)
        kind = choice(proxy.get("proxy_type"), "proxy_type", ("http", "socks4", "socks5"), "http")
    except ParameterError as exc:
        raise ConfigError(exc.without_value()) from None
    if kind not in PROXY_TYPES:
        raise ConfigError(f"proxy type '{kind}' is not supported by the AWS SDK; use an HTTP proxy")
    credentials = ""
    user = str(proxy.get("proxy_username") or "")
    if user:
        credentials = quote(user, safe="") + ":" + quote(str(proxy.get("proxy_password") or ""), safe="") + "@"
    return f"http://{credentials}{host}:{port}"


def redact(text: str, secrets: Sequence[Optional[str]]) -> str:
    """Replace every secret (and URL userinfo) in ``text`` so it can be logged or shown."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return re.sub(r"(https?://)[^/@\s]+@", r"\1********@", text)


def error_code(exc: BaseException) -> str:
    """The AWS error code of an exception, or its class name for non-AWS failures."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message") or exc)
    return str(exc)


# ------------------------------------------------------------------------------------ sessions


def _lifetime_timeouts(expiry: _dt.datetime) -> Tuple[int, int]:
    """Advisory/mandatory refresh lead times scaled to the token's lifetime.

    botocore's defaults (15/10 minutes) assume hour-long tokens; with shorter tokens they would refresh on every
    call. A quarter (advisory) and a sixth (mandatory) of the lifetime keep refreshes rare and always early.
    """
    lifetime = max(1.0, (expiry - _dt.datetime.now(_dt.timezone.utc)).total_seconds())
    return int(min(15 * 60, max(1, lifetime / 4))), int(min(10 * 60, max(1, lifetime / 6)))


def _keep_raw_timestamp(value: Any) -> Any:
    return value


_PLAIN_SCALARS = frozenset({"string", "integer", "long", "float", "double", "boolean", "timestamp"})


def is_plain_json_shape(shape: Any, _seen: Optional[set] = None) -> bool:
    """True when botocore's parse of ``shape`` (timestamps kept raw) equals the JSON as sent: JSON-native types
    only, no blobs, no renamed members, no header/status members."""
    if shape is None:
        return True
    seen = _seen if _seen is not None else set()
    if shape.name in seen:
        return True
    seen.add(shape.name)
    kind = shape.type_name
    if kind in _PLAIN_SCALARS:
        return True
    if kind == "list":
        return is_plain_json_shape(shape.member, seen)
    if kind == "map":
        return is_plain_json_shape(shape.key, seen) and is_plain_json_shape(shape.value, seen)
    if kind == "structure":
        for name, member in shape.members.items():
            serialization = member.serialization
            if serialization.get("location") or serialization.get("name", name) != name:
                return False
            if not is_plain_json_shape(member, seen):
                return False
        return True
    return False


class _PlainJsonRestParser(RestJSONParser):
    """rest-json parser that returns plain JSON bodies as decoded, skipping the per-field shape walk."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._plain: Dict[str, bool] = {}

    def _parse_shape(self, shape: Any, node: Any) -> Any:
        if shape is not None and shape.type_name == "structure" and isinstance(node, dict):
            plain = self._plain.get(shape.name)
            if plain is None:
                plain = self._plain[shape.name] = is_plain_json_shape(shape)
            if plain:
                return {k: v for k, v in node.items() if k in shape.members}
        return super()._parse_shape(shape, node)  # type: ignore[misc]  # botocore's stubs omit the private walk


class PlainJsonParserFactory(ResponseParserFactory):
    """Parser factory of the inputs' sessions: raw timestamps, plain JSON answers taken as they are."""

    def __init__(self) -> None:
        super().__init__()
        self.set_parser_defaults(timestamp_parser=_keep_raw_timestamp)

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "rest-json":
            return _PlainJsonRestParser(**self._defaults)  # type: ignore[attr-defined]  # private, not in the stubs
        return super().create_parser(protocol_name)


class AwsSession:
    """A boto3 session for one account, with clients cached per (service, region)."""

    def __init__(
        self,
        account: Account,
        settings: Optional[ClientSettings] = None,
        *,
        base_session_factory: Callable[..., boto3.Session] = boto3.Session,
        raw_timestamps: bool = False,
    ):
        self.account = account
        self.settings = settings or ClientSettings()
        self._config = self.settings.botocore_config()
        self._lock = threading.Lock()
        self._clients: Dict[Tuple[str, str], Any] = {}
        if account.credential_source == "access_key":
            base = base_session_factory(
                aws_access_key_id=account.access_key_id,
                aws_secret_access_key=account.secret_access_key,
                region_name=account.default_region,
            )
        else:
            base = base_session_factory(region_name=account.default_region)
        self._base = base
        self.assume_role_calls = 0
        # Figures for the run summary: HTTP attempts and throttled answers, counted by botocore event hooks.
        self.api_calls = 0
        self.throttles = 0
        if account.role_arn:
            self.credentials: Optional[RefreshableCredentials] = self._role_credentials()
            botocore_session = botocore.session.get_session()
            # boto3 offers no public setter for this (and botocore's stubs do not declare the attribute)
            botocore_session._credentials = self.credentials  # type: ignore[attr-defined]
            self.session = boto3.Session(botocore_session=botocore_session, region_name=account.default_region)
        else:
            self.credentials = None
            self.session = base
        if raw_timestamps:
            # Keep timestamps as the epoch numbers AWS sent (the event model turns them into ISO strings anyway)
            # and take plain JSON answers as they are: botocore's shape walk would only copy them.
            self.session._session.register_component("response_parser_factory", PlainJsonParserFactory())

    def _assume_role(self) -> Dict[str, Any]:
        sts = self._base.client("sts", region_name=self.account.default_region, config=self._config)
        params: Dict[str, Any] = {
            "RoleArn": self.account.role_arn,
            "RoleSessionName": self.account.role_session_name,
        }
        if self.account.external_id:
            params["ExternalId"] = self.account.external_id
        response = sts.assume_role(**params)
        self.assume_role_calls += 1
        creds = response["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    def _role_credentials(self) -> RefreshableCredentials:
        metadata = self._assume_role()
        advisory, mandatory = _lifetime_timeouts(_dt.datetime.fromisoformat(metadata["expiry_time"]))
        return RefreshableCredentials.create_from_metadata(
            metadata,
            refresh_using=self._assume_role,
            method="assume-role",
            advisory_timeout=advisory,
            mandatory_timeout=mandatory,
        )

    def client(self, service: str, region: Optional[str] = None) -> Any:
        region = region or self.account.default_region
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                # The service name is a runtime string: boto3-stubs only types literal service names.
                make_client: Callable[..., Any] = self.session.client
                client = make_client(service, region_name=region, config=self._config)
                client.meta.events.register("before-send", self._count_attempt)
                client.meta.events.register("needs-retry", self._count_throttle)
                self._clients[key] = client
            return self._clients[key]

    def _count_attempt(self, **_kwargs: Any) -> None:
        self.api_calls += 1

    def _count_throttle(self, response: Any = None, **_kwargs: Any) -> None:
        # Returning None leaves the retry decision to botocore's own retry mode.
        parsed = response[1] if isinstance(response, tuple) and len(response) == 2 else None
        if isinstance(parsed, dict) and parsed.get("Error", {}).get("Code") in THROTTLING_CODES:
            self.throttles += 1

    def refresh_credentials(self) -> bool:
        """Force new temporary credentials now (after the service said the current ones expired).

        Returns False when the credentials are not refreshable (static keys): then retrying is pointless.
        """
        if self.credentials is None:
            return False
        # botocore has no public "refresh now" (nor a stub for the private one)
        self.credentials._protected_refresh(is_mandatory=True)  # type: ignore[attr-defined]
        return True

    def call(self, client: Any, operation: str, **params: Any) -> Dict[str, Any]:
        """Call one API operation; on an expired-token answer refresh the credentials and retry once."""
        method = getattr(client, operation)
        try:
            return method(**params)
        except ClientError as exc:
            if error_code(exc) in EXPIRED_TOKEN_CODES and self.refresh_credentials():
                return method(**params)
            raise

    def paginate(
        self,
        client: Any,
        operation: str,
        *,
        result_key: str,
        starting_token: Optional[str] = None,
        page_size: Optional[int] = None,
        **params: Any,
    ) -> Iterator[Tuple[List[Any], Optional[str]]]:
        """Yield ``(items, next_token)`` per page with botocore's paginator (operations whose token is
        ``nextToken``: every Device Defender and registry list call the add-on makes).

        ``next_token`` is where a later call resumes after this page (None on the last page), so a caller can
        checkpoint between pages. Expired credentials mid-way are refreshed once and paging resumes at the
        page that failed.
        """
        token = starting_token
        refreshed = False
        while True:
            config: Dict[str, Any] = {}
            if token:
                # The paginator wants its own encoded form of the service's token.
                config["StartingToken"] = TokenEncoder().encode({"nextToken": token})
            if page_size:
                config["PageSize"] = page_size
            pages = client.get_paginator(operation).paginate(PaginationConfig=config, **params)
            try:
                for page in pages:
                    token = page.get("nextToken")
                    yield list(page.get(result_key) or []), token
                    refreshed = False
                return
            except ClientError as exc:
                if error_code(exc) in EXPIRED_TOKEN_CODES and not refreshed and self.refresh_credentials():
                    refreshed = True
                    continue
                raise


# --------------------------------------------------------------------------------- validation


def caller_identity(session: AwsSession) -> Dict[str, str]:
    sts = session.client("sts")
    answer = sts.get_caller_identity()
    return {"account": answer["Account"], "arn": answer["Arn"], "user_id": answer["UserId"]}


_VALIDATION_HINTS = {
    "InvalidClientTokenId": "AWS does not recognise the access key ID",
    "UnrecognizedClientException": "AWS does not recognise the access key ID",
    "SignatureDoesNotMatch": "the secret access key does not match the access key ID",
    "ExpiredToken": "the credentials have expired",
    "ExpiredTokenException": "the credentials have expired",
    "AccessDenied": "access was denied",
}


def validate_account(
    account: Account,
    settings: Optional[ClientSettings] = None,
    *,
    base_session_factory: Callable[..., boto3.Session] = boto3.Session,
) -> Dict[str, str]:
    """Prove the account works: STS GetCallerIdentity through the configured path (role included).

    Returns the caller identity; raises :class:`AccountValidationError` with a message for a human that names
    the failing step and never contains a secret.
    """
    try:
        account.check()
    except ConfigError as exc:
        raise AccountValidationError(str(exc), "InvalidConfiguration") from None
    # The step names the role by its field, never by value (a secret pasted into the role ARN field), and AWS's own
    # message is scrubbed of every configured value for the same reason.
    step = "assuming the configured role" if account.role_arn else "calling STS GetCallerIdentity"
    scrub = account.field_values()
    try:
        session = AwsSession(account, settings, base_session_factory=base_session_factory)
        step = "calling STS GetCallerIdentity"
        return caller_identity(session)
    except ClientError as exc:
        code = error_code(exc)
        hint = _VALIDATION_HINTS.get(code, "AWS refused the request")
        detail = redact(error_message(exc), scrub)
        raise AccountValidationError(
            f"Account '{account.name}': {hint} while {step} ({code}: {detail})", code
        ) from None
    except NoCredentialsError:
        raise AccountValidationError(
            f"Account '{account.name}': no credentials were found in the default credential chain of this "
            "Splunk host (instance profile or environment)",
            "NoCredentials",
        ) from None
    except (EndpointConnectionError, ProxyConnectionError) as exc:
        raise AccountValidationError(
            f"Account '{account.name}': could not reach AWS STS while {step}: {redact(str(exc), scrub)}",
            type(exc).__name__,
        ) from None
    except BotoCoreError as exc:
        raise AccountValidationError(
            f"Account '{account.name}': {redact(str(exc), scrub)}", type(exc).__name__
        ) from None


def parse_regions(value: Optional[str], default_region: str) -> List[str]:
    """Regions from a comma-separated input parameter; the account's default region when empty."""
    regions = [part.strip() for part in (value or "").split(",") if part.strip()]
    if not regions:
        regions = [default_region]
    pattern = AWS_NAMES["region"][0]
    bad = [region for region in regions if pattern.fullmatch(region) is None]
    if bad:
        raise ConfigError(f"not AWS region names: {', '.join(shown(region) for region in bad[:5])}")
    return list(dict.fromkeys(regions))
