"""Accounts, credentials, roles and SigV4 checking for the loopback AWS endpoint."""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import random
import re
import string
import threading
import time
from dataclasses import dataclass
from typing import Dict, Optional
from urllib.parse import quote

from botocore.utils import normalize_url_path

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_ACCESS_KEY = "AKIALOOPBACK0000TEST"
DEFAULT_SECRET_KEY = "loopback+secret/key/for/tests/0000000000"

_AUTH_RX = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]+)"
)


@dataclass
class Credential:
    access_key: str
    secret_key: str
    account_id: str
    arn: str
    user_id: str
    session_token: Optional[str] = None
    expiration: Optional[float] = None  # epoch seconds (wall clock); None = never expires
    role_arn: Optional[str] = None

    @property
    def temporary(self) -> bool:
        return self.session_token is not None

    def expired(self, now: Optional[float] = None) -> bool:
        return self.expiration is not None and (now if now is not None else time.time()) >= self.expiration


@dataclass
class Role:
    arn: str
    account_id: str
    external_id: Optional[str] = None
    max_session_duration: int = 3600

    @property
    def name(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


@dataclass
class AccountFeatures:
    detect: bool = True
    audit: bool = True
    incident_manager: bool = True


@dataclass
class ParsedAuth:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: list
    signature: str


class AuthError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # unknown_key | bad_signature | expired | bad_token | missing
        self.message = message


def parse_authorization(header: str) -> Optional[ParsedAuth]:
    m = _AUTH_RX.match(header.strip())
    if not m:
        return None
    parts = m.group("cred").split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return None
    return ParsedAuth(
        access_key=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        signed_headers=m.group("signed").split(";"),
        signature=m.group("sig"),
    )


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def expected_signature(
    *,
    secret_key: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Dict[str, str],
    body: bytes,
    auth: ParsedAuth,
    amz_date: str,
    s3_style: bool = False,
) -> str:
    """Recompute a SigV4 signature the way botocore builds it (see botocore.auth.SigV4Auth)."""
    if s3_style:
        path = raw_path or "/"
    else:
        path = quote(normalize_url_path(raw_path or "/"), safe="/~")
    pairs = []
    if raw_query:
        for pair in raw_query.split("&"):
            k, _, v = pair.partition("=")
            pairs.append((k, v))
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    canon_headers = []
    for name in auth.signed_headers:
        value = headers.get(name, "")
        canon_headers.append(f"{name}:{' '.join(value.split())}")
    payload_hash = headers.get("x-amz-content-sha256") or hashlib.sha256(body or b"").hexdigest()
    canonical_request = "\n".join(
        [
            method.upper(),
            path,
            canonical_query,
            "\n".join(canon_headers) + "\n",
            ";".join(auth.signed_headers),
            payload_hash,
        ]
    )
    scope = f"{auth.date}/{auth.region}/{auth.service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    k = _sign(f"AWS4{secret_key}".encode(), auth.date)
    k = _sign(k, auth.region)
    k = _sign(k, auth.service)
    k = _sign(k, "aws4_request")
    return hmac.new(k, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class CredentialRegistry:
    """Thread-safe registry of accounts, long-term keys, issued STS credentials and assumable roles."""

    def __init__(self, seed: int = 0):
        self._lock = threading.RLock()
        self._rng = random.Random(f"sts-{seed}")
        self.credentials: Dict[str, Credential] = {}
        self.roles: Dict[str, Role] = {}
        self.accounts: Dict[str, AccountFeatures] = {}
        self.sts_credential_lifetime_seconds = 3600

    # ------------------------------------------------------------------ registry
    def add_account(self, account_id: str, **features: bool) -> AccountFeatures:
        with self._lock:
            acct = self.accounts.setdefault(account_id, AccountFeatures())
            for k, v in features.items():
                if not hasattr(acct, k):
                    raise TypeError(f"unknown account feature {k!r}")
                setattr(acct, k, bool(v))
            return acct

    def features(self, account_id: str) -> AccountFeatures:
        with self._lock:
            return self.accounts.get(account_id) or AccountFeatures()

    def add_credentials(
        self, access_key: str, secret_key: str, account_id: str, user_name: Optional[str] = None
    ) -> Credential:
        user = user_name or f"loopback-{access_key[-4:].lower()}"
        cred = Credential(
            access_key=access_key,
            secret_key=secret_key,
            account_id=account_id,
            arn=f"arn:aws:iam::{account_id}:user/{user}",
            user_id="AIDA" + hashlib.sha1(access_key.encode()).hexdigest()[:17].upper(),
        )
        with self._lock:
            self.add_account(account_id)
            self.credentials[access_key] = cred
        return cred

    def add_role(
        self,
        role_arn: str,
        external_id: Optional[str] = None,
        account_id: Optional[str] = None,
        max_session_duration: int = 3600,
    ) -> Role:
        m = re.match(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(.+)$", role_arn)
        if not m:
            raise ValueError(f"not an IAM role ARN: {role_arn!r}")
        role = Role(
            arn=role_arn,
            account_id=account_id or m.group(1),
            external_id=external_id,
            max_session_duration=max_session_duration,
        )
        with self._lock:
            self.add_account(role.account_id)
            self.roles[role_arn] = role
        return role

    def get(self, access_key: str) -> Optional[Credential]:
        with self._lock:
            return self.credentials.get(access_key)

    def expire_all_credentials(self) -> int:
        """Every issued STS credential becomes expired now. Returns how many were expired."""
        now = time.time()
        n = 0
        with self._lock:
            for cred in self.credentials.values():
                if cred.temporary:
                    cred.expiration = min(cred.expiration or now, now)
                    n += 1
        return n

    # ------------------------------------------------------------------ STS
    def _rand(self, alphabet: str, n: int) -> str:
        with self._lock:
            return "".join(self._rng.choice(alphabet) for _ in range(n))

    def assume_role(
        self,
        caller: Credential,
        role_arn: str,
        session_name: str,
        duration: Optional[int],
        external_id: Optional[str],
    ) -> Credential:
        """Issue temporary credentials for ``role_arn``; raises StsError the way STS refuses."""
        with self._lock:
            role = self.roles.get(role_arn)
        if role is None:
            raise StsError(
                "AccessDenied",
                f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                403,
            )
        if role.external_id is not None and external_id != role.external_id:
            raise StsError(
                "AccessDenied",
                f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                403,
            )
        if duration is not None and duration > role.max_session_duration:
            raise StsError(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
                400,
            )
        lifetime = min(duration or 3600, int(self.sts_credential_lifetime_seconds))
        access_key = "ASIA" + self._rand(string.ascii_uppercase + string.digits, 16)
        secret = self._rand(string.ascii_letters + string.digits + "+/", 40)
        token = "IQoJb3JpZ2luX2VjE" + self._rand(string.ascii_letters + string.digits + "+/", 180)
        role_id = "AROA" + hashlib.sha1(role_arn.encode()).hexdigest()[:17].upper()
        cred = Credential(
            access_key=access_key,
            secret_key=secret,
            account_id=role.account_id,
            arn=f"arn:aws:sts::{role.account_id}:assumed-role/{role.name}/{session_name}",
            user_id=f"{role_id}:{session_name}",
            session_token=token,
            expiration=time.time() + lifetime,
            role_arn=role_arn,
        )
        with self._lock:
            self.credentials[access_key] = cred
        return cred

    # ------------------------------------------------------------------ request checks
    def authenticate(
        self,
        *,
        auth: ParsedAuth,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Dict[str, str],
        body: bytes,
        verify_signature: bool,
        s3_style: bool = False,
    ) -> Credential:
        cred = self.get(auth.access_key)
        if cred is None:
            raise AuthError("unknown_key", "The security token included in the request is invalid.")
        token = headers.get("x-amz-security-token")
        if cred.temporary:
            if token != cred.session_token:
                raise AuthError("bad_token", "The security token included in the request is invalid.")
            if cred.expired():
                raise AuthError("expired", "The security token included in the request is expired")
        elif token:
            raise AuthError("bad_token", "The security token included in the request is invalid.")
        if verify_signature:
            amz_date = headers.get("x-amz-date", "")
            want = expected_signature(
                secret_key=cred.secret_key,
                method=method,
                raw_path=raw_path,
                raw_query=raw_query,
                headers=headers,
                body=body,
                auth=auth,
                amz_date=amz_date,
                s3_style=s3_style,
            )
            if not hmac.compare_digest(want, auth.signature):
                raise AuthError(
                    "bad_signature",
                    "The request signature we calculated does not match the signature you provided. "
                    "Check your AWS Secret Access Key and signing method.",
                )
        return cred


class StsError(Exception):
    def __init__(self, code: str, message: str, status: int):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def iso8601(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Error codes per protocol family for the auth failures above.
AUTH_ERROR_CODES = {
    # kind: (rest-json/json code, query code, rest-xml code, status)
    "unknown_key": ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId", 403),
    "bad_token": ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidToken", 403),
    "bad_signature": ("InvalidSignatureException", "SignatureDoesNotMatch", "SignatureDoesNotMatch", 403),
    "expired": ("ExpiredTokenException", "ExpiredToken", "ExpiredToken", 403),
    "missing": ("MissingAuthenticationTokenException", "MissingAuthenticationToken", "AccessDenied", 403),
}
