"""Response actions on AWS IoT: quarantine / release a thing, start an incident, set a violation's verification
state. Pure library: the Splunk alert actions (``iot_defender_alert``) and the response Lambdas
(``infra/response/functions/*``) are thin adapters around :class:`Responder`.

Safety rules every action follows:

- every input is untrusted: thing names, violation ids, ARNs and templates are validated against AWS's own
  patterns *before* any call, and a refused input never leads to an AWS write;
- each action reads the current state first and writes only the difference, so running it twice is harmless
  (outcome ``already-in-state``), and a dry run reports the exact plan without writing anything;
- quarantine records what it changed on the thing itself (one attribute, see :class:`QuarantineRecord`) so that
  release restores exactly that and nothing else; a certificate that was inactive or revoked before quarantine
  is never recorded, so never reactivated;
- calls are paced per operation at the documented TPS quotas (:class:`RateLimiter`) and botocore retries what
  is still throttled; one target failing never stops the others (:func:`run_all`).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError

from . import incident as inc
from .aws import THROTTLING_CODES, AwsSession, error_code, error_message
from .events import ActionResult, to_epoch, to_iso
from .params import boolean

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
CERT_ID_RE = re.compile(r"^[0-9a-f]{64}$")
VERIFICATION_STATES = ("TRUE_POSITIVE", "FALSE_POSITIVE", "BENIGN_POSITIVE", "UNKNOWN")
DESTINATIONS = ("incident_manager", "sns")

DEFAULT_QUARANTINE_GROUP = "QUARANTINED"
DEFAULT_POLICY_NAME = "TA-IoTDefender-Quarantine"
DEFAULT_TITLE = "IoT Device Defender: {thing_name} {behavior_name|behavior.name}"
DEFAULT_WORKERS = 8
BULK_MEMBERSHIP_MIN = 50
MANAGED_BY = "TA-aws-iot-defender"

# Documented default TPS quotas (API-FACTS.md; IoT Core figures marked [verify] there). Calls are paced at these
# rates so a run stays under the quota instead of relying on throttling + backoff.
DEFAULT_TPS: Dict[str, float] = {
    "AddThingToThingGroup": 100,
    "RemoveThingFromThingGroup": 100,
    "UpdateThing": 100,
    "DescribeThing": 350,
    "ListThingGroupsForThing": 100,
    "ListThingPrincipals": 10,
    "ListPrincipalThings": 10,
    "CreateThingGroup": 25,
    "PutVerificationStateOnViolation": 10,
}

T = TypeVar("T")


def valid_thing_name(name: Any) -> bool:
    return isinstance(name, str) and bool(THING_NAME_RE.match(name))


def show(value: Any, limit: int = 80) -> str:
    """An untrusted value made safe for a log line or message: repr-quoted, control characters escaped, cut."""
    text = repr(str(value) if value is not None else "")
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def partition_of_region(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def parse_arn(arn: str) -> Dict[str, str]:
    parts = (arn or "").split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return {}
    return dict(zip(("arn", "partition", "service", "region", "account", "resource"), parts))


# ------------------------------------------------------------------------------------------ pacing


class RateLimiter:
    """Per-operation pacing: calls of one operation are spaced ``1 / rate`` seconds apart, across threads.

    ``fraction`` (< 1) keeps a margin under the quota so a server counting calls per sliding second never sees
    one too many.
    """

    def __init__(
        self,
        rates: Optional[Mapping[str, float]] = None,
        *,
        fraction: float = 0.98,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rates = dict(DEFAULT_TPS if rates is None else rates)
        self.fraction = fraction
        self._clock = clock
        self._sleep = sleep
        self._next: Dict[str, float] = {}
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, operation: str) -> float:
        rate = self.rates.get(operation)
        if not rate:
            return 0.0
        interval = 1.0 / (rate * self.fraction)
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(operation, now))
            self._next[operation] = slot + interval
            wait = slot - now
            self.waited += wait
        if wait > 0:
            self._sleep(wait)
        return wait


class CallStats:
    """Counts API calls and throttled answers (which botocore then retries), per operation and per thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Dict[str, int] = {}
        self.throttled: Dict[str, int] = {}
        self.errors: Dict[str, int] = {}
        self._local = threading.local()

    def count_call(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1

    def count_error(self, code: str) -> None:
        with self._lock:
            self.errors[code] = self.errors.get(code, 0) + 1

    def on_needs_retry(self, response: Any = None, operation: Any = None, **_: Any) -> None:
        """botocore ``needs-retry`` hook: sees every attempt's answer; never decides anything itself."""
        if not response or not isinstance(response, tuple) or len(response) < 2:
            return None
        parsed = response[1] or {}
        code = str((parsed.get("Error") or {}).get("Code") or "")
        if code in THROTTLING_CODES:
            name = getattr(operation, "name", str(operation))
            with self._lock:
                self.throttled[name] = self.throttled.get(name, 0) + 1
            self._local.throttled = getattr(self._local, "throttled", 0) + 1
        return None

    def thread_throttled(self) -> int:
        return int(getattr(self._local, "throttled", 0))

    def reset_thread(self) -> None:
        self._local.throttled = 0

    def summary(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self.calls),
                "throttled": dict(self.throttled),
                "errors": dict(self.errors),
                "total_calls": sum(self.calls.values()),
                "total_throttled": sum(self.throttled.values()),
            }


# --------------------------------------------------------------------------------- quarantine record


RECORD_ATTRIBUTE = "iotdefender_quarantine"
RECORD_VALUE_MAX = 800
_RECORD_SAFE = re.compile(r"[^A-Za-z0-9_.:@-]")
_ATTRIBUTE_VALUE_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]*$")


@dataclass
class QuarantineRecord:
    """What a quarantine changed on one thing, kept in ONE thing attribute so it fits the 3-attribute limit of
    things without a thing type and AWS's attribute charset ``[a-zA-Z0-9_.,@/:#=\\[\\]-]*`` (no spaces).

    Encoding (<= 800 characters): ``v1,at=<ISO time>,g=<group joined>,c=<cert id>/<cert id>,by=<sid>``.
    ``g`` is present only if quarantine added the thing to the group (it was not a member before); ``c`` lists
    only certificates quarantine switched from ACTIVE to INACTIVE. If full certificate ids do not fit, ``by`` is
    dropped first, then ids are shortened to a common prefix (>= 16 hex digits) that release resolves against
    the thing's own certificates.
    """

    at: str
    group: Optional[str] = None
    certificates: List[str] = field(default_factory=list)
    by: str = ""

    def encode(self) -> str:
        def build(certs: List[str], by: str) -> str:
            parts = ["v1", f"at={self.at}"]
            if self.group:
                parts.append(f"g={self.group}")
            if certs:
                parts.append("c=" + "/".join(certs))
            if by:
                parts.append(f"by={by}")
            return ",".join(parts)

        by = _RECORD_SAFE.sub("_", self.by or "")[:160]
        value = build(self.certificates, by)
        if len(value) > RECORD_VALUE_MAX:
            value = build(self.certificates, "")
        length = 64
        while len(value) > RECORD_VALUE_MAX and length > 16:
            length -= 8
            value = build([cert[:length] for cert in self.certificates], "")
        if len(value) > RECORD_VALUE_MAX:
            raise ValueError(f"{len(self.certificates)} certificate ids do not fit in one thing attribute")
        if not _ATTRIBUTE_VALUE_RE.match(value):
            raise ValueError("quarantine record holds characters AWS does not allow in attributes")
        return value

    @classmethod
    def decode(cls, value: Optional[str]) -> Optional[QuarantineRecord]:
        """The record, or None when absent or not ours (anything unparsable is treated as absent)."""
        if not value or not value.startswith("v1,"):
            return None
        fields: Dict[str, str] = {}
        for part in value.split(",")[1:]:
            key, sep, val = part.partition("=")
            if sep:
                fields[key] = val
        if "at" not in fields:
            return None
        group = fields.get("g") or None
        if group and not THING_GROUP_NAME_RE.match(group):
            group = None
        certs = [c for c in (fields.get("c") or "").split("/") if re.match(r"^[0-9a-f]{16,64}$", c)]
        return cls(at=fields["at"], group=group, certificates=certs, by=fields.get("by", ""))


def isolation_policy(partition: str, region: str, account_id: str, allow_remediation: bool) -> Dict[str, Any]:
    """The IoT policy attached to the quarantine group. Explicit Deny statements override any Allow the device's
    own certificate policies grant (IoT evaluates policies like IAM: an explicit deny always wins).

    - ``allow_remediation=False``: deny every IoT action (AWS's own Device Defender quarantine example).
    - ``allow_remediation=True``: deny all messaging except the thing's own shadow and jobs topics (so a fix can
      still be pushed through the shadow or a job), and deny the credentials provider and retained messages.

    Thing-group policies apply only when the MQTT client id equals the thing name; to contain a device that
    connects under another client id, also deactivate its certificates.
    """
    if not allow_remediation:
        return {
            "Version": "2012-10-17",
            "Statement": [{"Sid": "QuarantineDenyAll", "Effect": "Deny", "Action": "iot:*", "Resource": "*"}],
        }
    prefix = f"arn:{partition}:iot:{region}:{account_id}"
    own = "$aws/things/${iot:Connection.Thing.ThingName}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "QuarantineDenyMessagingExceptOwnShadowAndJobs",
                "Effect": "Deny",
                "Action": ["iot:Publish", "iot:RetainPublish", "iot:Receive"],
                "NotResource": [f"{prefix}:topic/{own}/shadow/*", f"{prefix}:topic/{own}/jobs/*"],
            },
            {
                "Sid": "QuarantineDenySubscribeExceptOwnShadowAndJobs",
                "Effect": "Deny",
                "Action": "iot:Subscribe",
                "NotResource": [f"{prefix}:topicfilter/{own}/shadow/*", f"{prefix}:topicfilter/{own}/jobs/*"],
            },
            {
                "Sid": "QuarantineDenyCredentialsAndRetained",
                "Effect": "Deny",
                "Action": ["iot:AssumeRoleWithCertificate", "iot:GetRetainedMessage", "iot:ListRetainedMessages"],
                "Resource": "*",
            },
        ],
    }


# ------------------------------------------------------------------------------------------ options


class OptionError(ValueError):
    """An action option (alert parameter / Lambda setting) is unusable; the whole run is refused."""


def _check_arn(value: Optional[str], pattern: Any, partition: Optional[str], *, what: str, expected: str) -> None:
    """Refuse ``value`` unless it matches ``pattern`` (group 1: the partition) in the account's partition."""
    match = pattern.match(value or "")
    if not match:
        raise OptionError(f"{what} ARN {show(value)} is not {expected}")
    if partition and match.group(1) != partition:
        raise OptionError(f"the {what} is in partition {match.group(1)}, the account in {partition}")


@dataclass(frozen=True)
class QuarantineOptions:
    group: str = DEFAULT_QUARANTINE_GROUP
    policy_name: str = DEFAULT_POLICY_NAME
    allow_remediation: bool = True
    deactivate_certificates: bool = False
    protected_groups: Tuple[str, ...] = ()
    # False when the isolation policy is owned by someone else (the response stack's CloudFormation): then it is
    # only checked to exist and attached to the group, never created or rewritten.
    manage_policy: bool = True

    def check(self) -> None:
        if not THING_GROUP_NAME_RE.match(self.group or ""):
            raise OptionError(f"quarantine group {show(self.group)} is not a thing group name ([a-zA-Z0-9:_-], 1-128)")
        if not POLICY_NAME_RE.match(self.policy_name or ""):
            raise OptionError(f"policy name {show(self.policy_name)} is not an IoT policy name ([\\w+=,.@-], 1-128)")
        for name in self.protected_groups:
            if not THING_GROUP_NAME_RE.match(name):
                raise OptionError(f"protected thing group {show(name)} is not a thing group name")
        if self.group in self.protected_groups:
            raise OptionError(f"the quarantine group {self.group} is also listed as protected")


@dataclass(frozen=True)
class IncidentOptions:
    destination: str = "incident_manager"
    response_plan_arn: Optional[str] = None
    sns_topic_arn: Optional[str] = None
    title: str = DEFAULT_TITLE
    impact: str = "3"
    suppression_minutes: int = 0
    source: str = inc.TRIGGER_SOURCE

    def check(self, partition: Optional[str] = None) -> None:
        if self.destination not in DESTINATIONS:
            raise OptionError(f"destination must be one of {', '.join(DESTINATIONS)}")
        if self.destination == "incident_manager":
            _check_arn(
                self.response_plan_arn,
                RESPONSE_PLAN_ARN_RE,
                partition,
                what="response plan",
                expected="an Incident Manager response plan ARN (arn:<partition>:ssm-incidents::<account>:"
                "response-plan/<name>)",
            )
        else:
            _check_arn(
                self.sns_topic_arn,
                SNS_TOPIC_ARN_RE,
                partition,
                what="SNS topic",
                expected="an SNS topic ARN (arn:<partition>:sns:<region>:<account>:<topic>)",
            )
        if not self.title or not self.title.strip():
            raise OptionError("the incident title template is empty")
        if self.impact.strip() and not inc.template_fields(self.impact):
            inc.render_impact(self.impact, {})  # a fixed impact is checked once, before any row
        if not 0 <= self.suppression_minutes <= 7 * 24 * 60:
            raise OptionError("suppression window must be between 0 and 10080 minutes (7 days)")
        source = self.source or ""
        if not source or len(source) > inc.SOURCE_MAX or source.lower().startswith("aws."):
            raise OptionError("trigger source must be 1-50 characters and must not start with 'aws.'")


@dataclass(frozen=True)
class RunContext:
    """Where a run comes from: recorded on the thing (``by``) and used for the incident idempotency token."""

    sid: str = ""
    search_name: str = ""
    results_link: Optional[str] = None
    now: Callable[[], _dt.datetime] = field(default=lambda: _dt.datetime.now(_dt.timezone.utc))


class SuppressionStore:
    """Where the per-thing incident suppression state lives (KV store in Splunk, memory in tests/Lambda)."""

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        raise NotImplementedError

    def put(self, key: str, value: Dict[str, Any]) -> None:
        raise NotImplementedError


class MemorySuppressionStore(SuppressionStore):
    def __init__(self) -> None:
        self.data: Dict[str, Dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        with self._lock:
            value = self.data.get(key)
            return dict(value) if value else None

    def put(self, key: str, value: Dict[str, Any]) -> None:
        with self._lock:
            self.data[key] = dict(value)


# ------------------------------------------------------------------------------------------ runner


class _Refused(Exception):
    def __init__(self, outcome: str, message: str, details: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.details = details or {}


class SetupError(Exception):
    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def run_all(
    items: Sequence[T],
    work: Callable[[T], ActionResult],
    on_crash: Callable[[T, BaseException], ActionResult],
    *,
    workers: int = DEFAULT_WORKERS,
) -> List[ActionResult]:
    """Run ``work`` on every item with at most ``workers`` threads; results keep the order of ``items``.

    An exception escaping ``work`` becomes that item's result via ``on_crash``: one item never stops another.
    """

    def guarded(item: T) -> ActionResult:
        try:
            return work(item)
        except Exception as exc:
            return on_crash(item, exc)

    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        return [guarded(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="iot-respond") as pool:
        return list(pool.map(guarded, items))


# ------------------------------------------------------------------------------------------ responder


@dataclass
class _Setup:
    group_arn: Optional[str]
    changes: List[str]
    plan: List[str]
    # Things already in the quarantine group when the run started (read once per run instead of one
    # ListThingGroupsForThing per thing); None when protected groups need each thing's groups anyway.
    members: Optional[frozenset] = None


class Responder:
    """Runs response actions for one account with one AWS session; safe to use from many threads."""

    def __init__(
        self,
        session: AwsSession,
        *,
        account_id: str = "",
        partition: Optional[str] = None,
        dry_run: bool = False,
        limiter: Optional[RateLimiter] = None,
        stats: Optional[CallStats] = None,
        store: Optional[SuppressionStore] = None,
        run_size: int = 0,
    ):
        """``run_size``: how many targets the caller is about to act on. From BULK_MEMBERSHIP_MIN targets on,
        quarantine reads the quarantine group's members once instead of each thing's groups (one call per
        thing fewer), unless protected groups need each thing's groups anyway."""
        self.session = session
        self.run_size = run_size
        self.account_id = account_id
        self.partition = partition or session.account.partition
        self.dry_run = dry_run
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.stats = stats or CallStats()
        self.store = store
        self._hooked: set = set()
        self._lock = threading.Lock()
        self._setups: Dict[Tuple[Any, ...], Any] = {}
        self._ancestors: Dict[Tuple[str, str], List[str]] = {}

    # ---------------------------------------------------------------- plumbing

    def _client(self, service: str, region: str) -> Any:
        client = self.session.client(service, region)
        with self._lock:
            if id(client) not in self._hooked:
                client.meta.events.register("needs-retry", self.stats.on_needs_retry)
                self._hooked.add(id(client))
        return client

    def call(self, service: str, region: str, operation: str, **params: Any) -> Dict[str, Any]:
        """One API call: paced at the operation's quota, credentials refreshed once if expired, counted."""
        client = self._client(service, region)
        self.limiter.acquire(operation)
        self.stats.count_call(operation)
        try:
            return self.session.call(client, xform_name(operation), **params)
        except ClientError as exc:
            self.stats.count_error(error_code(exc))
            raise

    def _pages(
        self, service: str, region: str, operation: str, result_key: str, token_key: str = "nextToken", **params: Any
    ) -> Iterable[Any]:
        token: Optional[str] = None
        while True:
            request = dict(params)
            if token:
                request["marker" if token_key == "nextMarker" else "nextToken"] = token
            page = self.call(service, region, operation, **request)
            yield from page.get(result_key) or []
            token = page.get(token_key)
            if not token:
                return

    def result(self, action: str, outcome: str, thing_name: Optional[str], region: str, message: str, **kw: Any):
        return ActionResult(
            action=action,
            outcome=outcome,
            thing_name=thing_name,
            message=message,
            account_id=self.account_id or None,
            region=region,
            **kw,
        )

    def crashed(self, action: str, thing_name: Optional[str], region: str, exc: BaseException) -> ActionResult:
        """The result for an unexpected exception (used by :func:`run_all`)."""
        code = error_code(exc)
        return self.result(action, "failed", thing_name, region, f"{code}: {error_message(exc)[:300]}", error_code=code)

    def _failed(
        self, action: str, thing: str, region: str, exc: BaseException, changes: List[str], what: str
    ) -> ActionResult:
        code = error_code(exc)
        text = f"{what} failed: {code}: {error_message(exc)[:300]}"
        if changes:
            text += f" (already changed: {'; '.join(changes)})"
        return self.result(action, "failed", thing, region, text, error_code=code, details={"changes": changes})

    # ---------------------------------------------------------------- reads

    def describe_thing(self, region: str, thing_name: str) -> Optional[Dict[str, Any]]:
        try:
            return self.call("iot", region, "DescribeThing", thingName=thing_name)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise

    def thing_groups(self, region: str, thing_name: str) -> List[str]:
        groups = self._pages(
            "iot", region, "ListThingGroupsForThing", "thingGroups", thingName=thing_name, maxResults=250
        )
        return [g["groupName"] for g in groups]

    def _group_ancestors(self, region: str, group: str) -> List[str]:
        key = (region, group)
        with self._lock:
            if key in self._ancestors:
                return self._ancestors[key]
        try:
            answer = self.call("iot", region, "DescribeThingGroup", thingGroupName=group)
            parents = (answer.get("thingGroupMetadata") or {}).get("rootToParentThingGroups") or []
            names = [p.get("groupName") for p in parents if p.get("groupName")]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            names = []
        with self._lock:
            self._ancestors[key] = names
        return names

    def protected_by(self, region: str, groups: List[str], protected: Sequence[str]) -> Optional[str]:
        """The protected group a thing belongs to (directly or through a child group), or None."""
        if not protected:
            return None
        wanted = set(protected)
        for group in groups:
            if group in wanted:
                return group
        for group in groups:
            for ancestor in self._group_ancestors(region, group):
                if ancestor in wanted:
                    return f"{ancestor} (through {group})"
        return None

    def certificates(self, region: str, thing_name: str) -> List[Dict[str, str]]:
        """The thing's X.509 certificates: ``[{id, arn, status}]``."""
        principals = self._pages("iot", region, "ListThingPrincipals", "principals", thingName=thing_name)
        found = []
        for arn in principals:
            if ":cert/" not in arn:
                continue
            cert_id = arn.rsplit("/", 1)[-1]
            status = self._certificate_status(region, cert_id)
            found.append({"id": cert_id, "arn": arn, "status": status})
        return found

    def _certificate_status(self, region: str, cert_id: str) -> str:
        try:
            answer = self.call("iot", region, "DescribeCertificate", certificateId=cert_id)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return "MISSING"
            raise
        return str((answer.get("certificateDescription") or {}).get("status") or "UNKNOWN")

    def thing_arn(self, region: str, thing_name: str) -> str:
        return f"arn:{self.partition}:iot:{region}:{self.account_id}:thing/{thing_name}"

    # ---------------------------------------------------------------- quarantine setup (once per region)

    def quarantine_setup(self, region: str, options: QuarantineOptions) -> _Setup:
        """Make sure the quarantine group exists and carries the isolation policy (once per region and run).

        In a dry run nothing is written: the result's ``plan`` says what would be created or changed.
        """
        key = (region, options, self.dry_run)
        with self._lock:
            lock = self._setups.setdefault(("lock", *key), threading.Lock())
        with lock:
            if key not in self._setups:
                try:
                    self._setups[key] = self._do_setup(region, options)
                except SetupError as exc:
                    self._setups[key] = exc
                except (ClientError, BotoCoreError) as exc:
                    code = error_code(exc)
                    self._setups[key] = SetupError(
                        f"preparing quarantine group {options.group} failed: {code}: {error_message(exc)[:300]}", code
                    )
            value = self._setups[key]
        if isinstance(value, SetupError):
            raise value
        return value

    def _do_setup(self, region: str, options: QuarantineOptions) -> _Setup:
        changes: List[str] = []
        plan: List[str] = []
        group_arn: Optional[str] = None
        try:
            group_arn = self.call("iot", region, "DescribeThingGroup", thingGroupName=options.group)["thingGroupArn"]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
        if group_arn is None:
            if self.dry_run:
                plan.append(f"create thing group {options.group}")
            else:
                group_arn = self._create_group(region, options.group, options.policy_name)
                changes.append(f"created thing group {options.group}")
        arn = parse_arn(group_arn or "")
        account = arn.get("account") or self.account_id
        document = isolation_policy(self.partition, region, account, options.allow_remediation)
        if options.manage_policy:
            policy_plan = self._ensure_policy(region, options.policy_name, document)
            (plan if self.dry_run else changes).extend(policy_plan)
        else:
            try:
                self.call("iot", region, "GetPolicy", policyName=options.policy_name)
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                raise SetupError(
                    f"isolation policy {options.policy_name} does not exist (it is managed outside this action)",
                    "ResourceNotFoundException",
                ) from None
        attached = False
        if group_arn:
            attached = any(
                p.get("policyName") == options.policy_name
                for p in self._pages(
                    "iot", region, "ListAttachedPolicies", "policies", "nextMarker", target=group_arn, pageSize=250
                )
            )
        if not attached:
            if self.dry_run:
                plan.append(f"attach policy {options.policy_name} to thing group {options.group}")
            else:
                self.call("iot", region, "AttachPolicy", policyName=options.policy_name, target=group_arn)
                changes.append(f"attached policy {options.policy_name} to thing group {options.group}")
        members: Optional[frozenset] = None
        if not options.protected_groups and self.run_size >= BULK_MEMBERSHIP_MIN:
            members = frozenset(
                t
                for t in (
                    self._pages(
                        "iot", region, "ListThingsInThingGroup", "things", thingGroupName=options.group, maxResults=250
                    )
                    if group_arn
                    else ()
                )
            )
        return _Setup(group_arn=group_arn, changes=changes, plan=plan, members=members)

    def _create_group(self, region: str, group: str, policy_name: str) -> str:
        try:
            return self.call(
                "iot",
                region,
                "CreateThingGroup",
                thingGroupName=group,
                thingGroupProperties={
                    "thingGroupDescription": f"Quarantined things: isolated by IoT policy {policy_name}. "
                    f"Managed by {MANAGED_BY}."
                },
                # no tags: tagging on create would also need iot:TagResource in the add-on's role
            )["thingGroupArn"]
        except ClientError as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":  # created meanwhile by a concurrent run
                raise
            return self.call("iot", region, "DescribeThingGroup", thingGroupName=group)["thingGroupArn"]

    def _ensure_policy(self, region: str, name: str, document: Dict[str, Any]) -> List[str]:
        """The isolation policy with ``document`` as its default version; returns what was (or would be) done."""
        text = json.dumps(document, separators=(",", ":"))
        try:
            current = self.call("iot", region, "GetPolicy", policyName=name)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            if not self.dry_run:
                try:
                    self.call("iot", region, "CreatePolicy", policyName=name, policyDocument=text)
                except ClientError as create_exc:
                    if error_code(create_exc) != "ResourceAlreadyExistsException":
                        raise
                    return self._ensure_policy(region, name, document)
            return [f"{'create' if self.dry_run else 'created'} IoT policy {name}"]
        try:
            same = json.loads(current.get("policyDocument") or "{}") == document
        except ValueError:
            same = False
        if same:
            return []
        if not self.dry_run:
            self._new_policy_version(region, name, text)
        return [f"{'set' if self.dry_run else 'made'} a new default version of IoT policy {name}"]

    def _new_policy_version(self, region: str, name: str, text: str) -> None:
        try:
            self.call("iot", region, "CreatePolicyVersion", policyName=name, policyDocument=text, setAsDefault=True)
        except ClientError as exc:
            if error_code(exc) != "VersionsLimitExceededException":
                raise
            versions = self.call("iot", region, "ListPolicyVersions", policyName=name).get("policyVersions") or []
            old = [v for v in versions if not v.get("isDefaultVersion")]
            old.sort(key=lambda v: int(v.get("versionId") or 0))
            if not old:
                raise
            self.call("iot", region, "DeletePolicyVersion", policyName=name, policyVersionId=old[0]["versionId"])
            self.call("iot", region, "CreatePolicyVersion", policyName=name, policyDocument=text, setAsDefault=True)

    def refuse_invalid_name(self, action: str, thing_name: str, region: str) -> Optional[ActionResult]:
        """The refusal for a thing name AWS would reject, before any call; None when the name is valid."""
        if valid_thing_name(thing_name):
            return None
        return self.result(
            action,
            "refused-invalid",
            None,
            region,
            f"{show(thing_name)} is not a valid thing name ([a-zA-Z0-9:_-], 1-128 characters)",
        )

    # ---------------------------------------------------------------- quarantine

    def quarantine(self, thing_name: str, region: str, options: QuarantineOptions, context: RunContext) -> ActionResult:
        action = ACTION_QUARANTINE
        refused = self.refuse_invalid_name(action, thing_name, region)
        if refused is not None:
            return refused
        self.stats.reset_thread()
        changes: List[str] = []
        try:
            try:
                setup = self.quarantine_setup(region, options)
            except SetupError as exc:
                return self.result(action, "failed", thing_name, region, str(exc), error_code=exc.code)
            thing = self.describe_thing(region, thing_name)
            if thing is None:
                return self.result(
                    action, "refused-invalid", thing_name, region, f"thing {thing_name} does not exist in {region}"
                )
            if setup.members is None:
                groups = self.thing_groups(region, thing_name)
            else:
                groups = [options.group] if thing_name in setup.members else []
            protected = self.protected_by(region, groups, options.protected_groups)
            if protected:
                return self.result(
                    action,
                    "refused-protected",
                    thing_name,
                    region,
                    f"thing {thing_name} is in protected thing group {protected}: never quarantined",
                    details={"thing_groups": groups},
                )
            attributes = dict(thing.get("attributes") or {})
            previous = QuarantineRecord.decode(attributes.get(RECORD_ATTRIBUTE))
            in_group = options.group in groups
            to_deactivate: List[Dict[str, str]] = []
            cert_states: Dict[str, str] = {}
            if options.deactivate_certificates:
                for cert in self.certificates(region, thing_name):
                    cert_states[cert["id"]] = cert["status"]
                    if cert["status"] == "ACTIVE":
                        to_deactivate.append(cert)
            other_attributes = [k for k in attributes if k != RECORD_ATTRIBUTE]
            can_record = bool(thing.get("thingTypeName")) or len(other_attributes) < 3
            details: Dict[str, Any] = {
                "quarantine_group": options.group,
                "policy_name": options.policy_name,
                "was_member": in_group,
            }
            if setup.members is None:
                details["thing_groups_before"] = groups
            if cert_states:
                details["certificates_before"] = cert_states
            if setup.changes:
                details["setup_changes"] = setup.changes
            if in_group and not to_deactivate:
                note = "already in quarantine group " + options.group
                if options.deactivate_certificates:
                    note += "; no ACTIVE certificate left"
                return self.result(action, "already-in-state", thing_name, region, note, details=details)
            plan = []
            if not in_group:
                plan.append(f"add to thing group {options.group}")
            plan.extend(f"deactivate certificate {c['id']}" for c in to_deactivate)
            if self.dry_run:
                details["plan"] = setup.plan + plan
                return self.result(
                    action,
                    "dry-run",
                    thing_name,
                    region,
                    "dry run, would: " + "; ".join(details["plan"]),
                    details=details,
                )
            if not in_group:
                self.call("iot", region, "AddThingToThingGroup", thingGroupName=options.group, thingName=thing_name)
                changes.append(f"added to thing group {options.group}")
            deactivated = []
            for cert in to_deactivate:
                self.call("iot", region, "UpdateCertificate", certificateId=cert["id"], newStatus="INACTIVE")
                deactivated.append(cert["id"])
                changes.append(f"deactivated certificate {cert['id']}")
            record = QuarantineRecord(
                at=previous.at if previous else to_iso(context.now()),
                group=options.group if (not in_group or (previous and previous.group)) else None,
                certificates=list(dict.fromkeys((previous.certificates if previous else []) + deactivated)),
                by=(previous.by if previous else "") or context.sid,
            )
            details.update(changes=changes, certificates_deactivated=deactivated)
            message = "quarantined: " + "; ".join(changes)
            try:
                if not can_record:
                    raise ValueError(
                        "the thing has no thing type and already 3 attributes (AWS's limit), so the quarantine "
                        "record cannot be stored"
                    )
                value = record.encode()
            except ValueError as exc:
                details["record_stored"] = False
                message += f". WARNING: {exc}; release will only remove the group membership"
                if deactivated:
                    message += f" and will not reactivate certificates {', '.join(deactivated)}"
            else:
                self.call(
                    "iot",
                    region,
                    "UpdateThing",
                    thingName=thing_name,
                    attributePayload={"attributes": {RECORD_ATTRIBUTE: value}, "merge": True},
                )
                details["record_stored"] = True
                details["record"] = value
            details["throttled_retries"] = self.stats.thread_throttled()
            return self.result(action, "done", thing_name, region, message, details=details)
        except (ClientError, BotoCoreError) as exc:
            return self._failed(action, thing_name, region, exc, changes, "quarantine")

    # ---------------------------------------------------------------- release

    def release(self, thing_name: str, region: str, options: QuarantineOptions, context: RunContext) -> ActionResult:
        """Undo exactly what quarantine recorded on the thing.

        Without a record (quarantined by hand or by a Device Defender mitigation action), membership of the
        quarantine group is removed and certificates are left alone: release never reactivates a certificate it
        cannot prove quarantine deactivated.
        """
        action = ACTION_RELEASE
        refused = self.refuse_invalid_name(action, thing_name, region)
        if refused is not None:
            return refused
        self.stats.reset_thread()
        changes: List[str] = []
        try:
            thing = self.describe_thing(region, thing_name)
            if thing is None:
                return self.result(
                    action, "refused-invalid", thing_name, region, f"thing {thing_name} does not exist in {region}"
                )
            attributes = dict(thing.get("attributes") or {})
            raw_record = attributes.get(RECORD_ATTRIBUTE)
            record = QuarantineRecord.decode(raw_record)
            groups = self.thing_groups(region, thing_name)
            details: Dict[str, Any] = {"thing_groups_before": groups}
            if raw_record:
                details["record"] = raw_record
            plan: List[str] = []
            notes: List[str] = []
            leave: Optional[str] = None
            if record is not None:
                if record.group and record.group in groups:
                    leave = record.group
                elif record.group:
                    notes.append(f"no longer in thing group {record.group}")
                elif options.group in groups:
                    notes.append(f"stays in thing group {options.group}: it was a member before quarantine")
            elif options.group in groups:
                leave = options.group
                notes.append("no quarantine record on the thing: certificates left unchanged")
            if leave:
                plan.append(f"remove from thing group {leave}")
            reactivate: List[str] = []
            if record is not None and record.certificates:
                reactivate, cert_notes = self._certificates_to_reactivate(region, thing_name, record, leave)
                notes.extend(cert_notes)
                plan.extend(f"reactivate certificate {c}" for c in reactivate)
            if raw_record is not None:
                plan.append(f"remove attribute {RECORD_ATTRIBUTE}")
            details["plan"] = plan
            if notes:
                details["notes"] = notes
            if not plan:
                return self.result(
                    action,
                    "already-in-state",
                    thing_name,
                    region,
                    f"not quarantined (not in {options.group}, no quarantine record)",
                    details=details,
                )
            if self.dry_run:
                return self.result(
                    action, "dry-run", thing_name, region, "dry run, would: " + "; ".join(plan), details=details
                )
            if leave:
                self.call("iot", region, "RemoveThingFromThingGroup", thingGroupName=leave, thingName=thing_name)
                changes.append(f"removed from thing group {leave}")
            for cert_id in reactivate:
                self.call("iot", region, "UpdateCertificate", certificateId=cert_id, newStatus="ACTIVE")
                changes.append(f"reactivated certificate {cert_id}")
            if raw_record is not None:
                self.call(
                    "iot",
                    region,
                    "UpdateThing",
                    thingName=thing_name,
                    attributePayload={"attributes": {RECORD_ATTRIBUTE: ""}, "merge": True},
                )
                changes.append(f"removed attribute {RECORD_ATTRIBUTE}")
            details["changes"] = changes
            details["certificates_reactivated"] = reactivate
            details["throttled_retries"] = self.stats.thread_throttled()
            message = "released: " + "; ".join(changes)
            if notes:
                message += " (" + "; ".join(notes) + ")"
            return self.result(action, "done", thing_name, region, message, details=details)
        except (ClientError, BotoCoreError) as exc:
            return self._failed(action, thing_name, region, exc, changes, "release")

    def _certificates_to_reactivate(
        self, region: str, thing_name: str, record: QuarantineRecord, leaving: Optional[str]
    ) -> Tuple[List[str], List[str]]:
        notes: List[str] = []
        recorded = list(record.certificates)
        if any(not CERT_ID_RE.match(c) for c in recorded):
            # shortened ids (very many certificates): resolve against the thing's own certificates
            principals = [
                arn.rsplit("/", 1)[-1]
                for arn in self._pages("iot", region, "ListThingPrincipals", "principals", thingName=thing_name)
                if ":cert/" in arn
            ]
            resolved = []
            for cert in recorded:
                matches = [p for p in principals if p.startswith(cert)]
                if len(matches) == 1:
                    resolved.append(matches[0])
                else:
                    notes.append(f"certificate {cert}... is no longer attached to the thing: left unchanged")
            recorded = resolved
        reactivate = []
        for cert_id in recorded:
            status = self._certificate_status(region, cert_id)
            if status != "INACTIVE":
                notes.append(f"certificate {cert_id} is {status}: left unchanged")
                continue
            holder = self._quarantined_co_owner(region, cert_id, thing_name, leaving or record.group)
            if holder:
                notes.append(f"certificate {cert_id} stays INACTIVE: shared with quarantined thing {holder}")
                continue
            reactivate.append(cert_id)
        return reactivate, notes

    def _quarantined_co_owner(self, region: str, cert_id: str, thing_name: str, group: Optional[str]) -> Optional[str]:
        """Another thing using this certificate that is still quarantined (reactivating would free it too)."""
        cert_arn = f"arn:{self.partition}:iot:{region}:{self.account_id}:cert/{cert_id}"
        try:
            others = [
                t
                for t in self._pages("iot", region, "ListPrincipalThings", "things", principal=cert_arn, maxResults=250)
                if t != thing_name
            ]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise
        for other in others:
            other_thing = self.describe_thing(region, other)
            other_groups = self.thing_groups(region, other) if other_thing else []
            record = QuarantineRecord.decode(((other_thing or {}).get("attributes") or {}).get(RECORD_ATTRIBUTE))
            if record is not None or (group and group in other_groups):
                return other
        return None

    # ---------------------------------------------------------------- incidents

    def start_incident(
        self,
        thing_name: str,
        region: str,
        row: Mapping[str, Any],
        options: IncidentOptions,
        context: RunContext,
        *,
        violation_id: str = "",
        trigger_time: Any = None,
        verify_thing: bool = True,
    ) -> ActionResult:
        """Start one incident (Incident Manager) or publish it (SNS) for one thing.

        Idempotent: the client token is derived from (sid, thing, violation id), so the same alert fired twice
        yields one incident. With a suppression window, a thing that had an incident started within the window
        gets none (outcome ``already-in-state``).
        """
        action = ACTION_INCIDENT
        refused = self.refuse_invalid_name(action, thing_name, region)
        if refused is not None:
            return refused
        if violation_id and not VIOLATION_ID_RE.match(violation_id):
            return self.result(
                action, "refused-invalid", thing_name, region, f"{show(violation_id)} is not a violation id"
            )
        self.stats.reset_thread()
        fields = dict(row)
        fields.setdefault("thing_name", thing_name)
        title = inc.render_template(options.title, fields, inc.TITLE_MAX) or f"IoT incident: thing {thing_name}"
        try:
            # an empty impact leaves the response plan's own impact in force
            impact = inc.render_impact(options.impact, fields) if options.impact.strip() else None
        except inc.TemplateError as exc:
            return self.result(action, "refused-invalid", thing_name, region, str(exc))
        token = inc.client_token(context.sid, thing_name, violation_id)
        details: Dict[str, Any] = {"destination": options.destination, "title": title, "client_token": token}
        if impact is not None:
            details["impact"] = impact
        if violation_id:
            details["violation_id"] = violation_id
        try:
            if verify_thing:  # rows are untrusted; a Device Defender message (Lambda) names a real thing
                thing = self.describe_thing(region, thing_name)
                if thing is None:
                    return self.result(
                        action, "refused-invalid", thing_name, region, f"thing {thing_name} does not exist in {region}"
                    )
            else:
                thing = {"thingArn": self.thing_arn(region, thing_name)}
            now = context.now()
            key = f"{self.account_id or self.session.account.name}.{region}.{thing_name}"
            previous = self._store_get(key, details)
            if previous and previous.get("client_token") != token and options.suppression_minutes > 0:
                started = float(previous.get("time") or 0)
                age = now.timestamp() - started
                if 0 <= age < options.suppression_minutes * 60:
                    details.update(suppressed=True, previous=previous)
                    return self.result(
                        action,
                        "already-in-state",
                        thing_name,
                        region,
                        f"suppressed: an incident was started for {thing_name} {int(age // 60)} min ago "
                        f"({previous.get('reference')}), window {options.suppression_minutes} min",
                        details=details,
                    )
            raw = inc.raw_data(row)
            when = now
            if trigger_time in (None, ""):
                trigger_time = row.get("_time") or row.get("violationEventTime")
            if trigger_time not in (None, ""):
                try:
                    when = _dt.datetime.fromtimestamp(to_epoch(trigger_time), _dt.timezone.utc)
                except (TypeError, ValueError, OverflowError, OSError):
                    when = now
            items = inc.related_items(
                partition=self.partition,
                region=region,
                thing_name=thing_name,
                thing_arn=thing.get("thingArn"),
                results_link=context.results_link,
            )
            if self.dry_run:
                details["related_items"] = items
                return self.result(
                    action, "dry-run", thing_name, region, f"dry run, would start incident {title!r}", details=details
                )
            repeat = bool(previous and previous.get("client_token") == token)
            if options.destination == "incident_manager":
                request: Dict[str, Any] = {
                    "clientToken": token,
                    "responsePlanArn": options.response_plan_arn,
                    "title": title,
                    "relatedItems": items,
                    "triggerDetails": {"source": options.source, "timestamp": when, "rawData": raw},
                }
                if impact is not None:
                    request["impact"] = impact
                answer = self.call("ssm-incidents", region, "StartIncident", **request)
                reference = answer["incidentRecordArn"]
                repeat = repeat or bool(previous and previous.get("reference") == reference)
                details["incident_record_arn"] = reference
            else:
                if repeat:
                    details["message_id"] = previous.get("reference") if previous else None
                    return self.result(
                        action,
                        "already-in-state",
                        thing_name,
                        region,
                        f"incident for {thing_name} already published to SNS by this alert",
                        details=details,
                    )
                reference = self._publish(options, title, impact, thing_name, region, row, items, when, token)
                details["message_id"] = reference
            self._store_put(key, {"client_token": token, "reference": reference, "time": now.timestamp()}, details)
            details["throttled_retries"] = self.stats.thread_throttled()
            if repeat:
                return self.result(
                    action,
                    "already-in-state",
                    thing_name,
                    region,
                    f"incident already started: {reference}",
                    details=details,
                )
            return self.result(action, "done", thing_name, region, f"incident started: {reference}", details=details)
        except (ClientError, BotoCoreError) as exc:
            return self._failed(action, thing_name, region, exc, [], "start incident")

    def _store_get(self, key: str, details: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Suppression state is best effort: when it cannot be read, the incident is started (a duplicate
        incident is better than a missed one; the client token still stops repeats of the same alert)."""
        if self.store is None:
            return None
        try:
            value = self.store.get(key)
        except Exception as exc:
            details["suppression_state"] = f"unavailable ({type(exc).__name__})"
            return None
        return value if isinstance(value, dict) else None

    def _store_put(self, key: str, value: Dict[str, Any], details: Dict[str, Any]) -> None:
        if self.store is None:
            return
        try:
            self.store.put(key, value)
        except Exception as exc:
            details["suppression_state"] = f"not saved ({type(exc).__name__})"

    def _publish(
        self,
        options: IncidentOptions,
        title: str,
        impact: Optional[int],
        thing_name: str,
        region: str,
        row: Mapping[str, Any],
        items: List[Dict[str, Any]],
        when: _dt.datetime,
        token: str,
    ) -> str:
        topic = options.sns_topic_arn or ""
        topic_region = parse_arn(topic).get("region") or region
        message = {
            "type": "iot-defender-incident",
            "title": title,
            "impact": impact,
            "thing_name": thing_name,
            "account_id": self.account_id,
            "region": region,
            "related_items": [
                {"type": i["identifier"]["type"], "title": i.get("title"), **i["identifier"]["value"]} for i in items
            ],
            "trigger": {"source": options.source, "timestamp": to_iso(when)},
            "dedupe_key": token,
            "raw_data": json.loads(inc.raw_data(row)),
        }
        params: Dict[str, Any] = {
            "TopicArn": topic,
            "Subject": inc.clean_text(title.encode("ascii", "replace").decode("ascii"), inc.SNS_SUBJECT_MAX),
            "Message": json.dumps(message, separators=(",", ":"), ensure_ascii=False),
            "MessageAttributes": {
                "thing_name": {"DataType": "String", "StringValue": thing_name},
            },
        }
        if impact is not None:
            params["MessageAttributes"]["impact"] = {"DataType": "Number", "StringValue": str(impact)}
        if topic.endswith(".fifo"):
            params["MessageGroupId"] = thing_name
            params["MessageDeduplicationId"] = token
        return str(self.call("sns", topic_region, "Publish", **params)["MessageId"])

    # ---------------------------------------------------------------- verification state

    def set_verification_state(
        self,
        violation_id: str,
        region: str,
        state: str,
        description: str = "",
        *,
        thing_name: Optional[str] = None,
    ) -> ActionResult:
        action = ACTION_VERIFICATION
        if not VIOLATION_ID_RE.match(violation_id or ""):
            return self.result(
                action,
                "refused-invalid",
                thing_name if valid_thing_name(thing_name) else None,
                region,
                f"{show(violation_id)} is not a Device Defender violation id ([a-zA-Z0-9-], 1-128)",
            )
        if state not in VERIFICATION_STATES:
            return self.result(
                action, "refused-invalid", thing_name, region, f"unknown verification state {show(state)}"
            )
        text = inc.clean_text(description, inc.DESCRIPTION_MAX)
        details: Dict[str, Any] = {"violation_id": violation_id, "verification_state": state}
        if text:
            details["description"] = text
        if self.dry_run:
            return self.result(
                action, "dry-run", thing_name, region, f"dry run, would set {violation_id} to {state}", details=details
            )
        self.stats.reset_thread()
        params: Dict[str, Any] = {"violationId": violation_id, "verificationState": state}
        if text:
            params["verificationStateDescription"] = text
        try:
            self.call("iot", region, "PutVerificationStateOnViolation", **params)
        except (ClientError, BotoCoreError) as exc:
            return self._failed(action, thing_name, region, exc, [], "set verification state")
        details["throttled_retries"] = self.stats.thread_throttled()
        return self.result(
            action, "done", thing_name, region, f"violation {violation_id} set to {state}", details=details
        )


def with_origin(result: ActionResult, **origin: Any) -> ActionResult:
    """The result with the alert's origin fields (orig_sid, orig_rid, search_name, ...) filled in."""
    return replace(result, **{k: v for k, v in origin.items() if v is not None})


# ------------------------------------------------------------------------------------------ Lambda adapters
# Shared by infra/response/functions/{containment,start_incident}/app.py, which vendor this package at build time.

_THING_ARN_RE = re.compile(r"^arn:(aws|aws-us-gov|aws-cn):iot:([a-z0-9-]+):(\d{12}):thing/([a-zA-Z0-9:_-]{1,128})$")


def _as_json(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _string_list(value: Any) -> List[str]:
    """A list of strings from a list, a JSON array string or a comma-separated string (SSM StringList values
    arrive in any of these shapes depending on how the runbook interpolates them)."""
    value = _as_json(value) if isinstance(value, str) and value.strip().startswith(("[", "{")) else value
    if isinstance(value, Mapping):
        value = [v for values in value.values() for v in (values if isinstance(values, list) else [values])]
    if isinstance(value, str):
        value = [part for part in re.split(r"[\s,]+", value) if part]
    if not isinstance(value, list):
        return []
    return [str(v.get("arn") if isinstance(v, Mapping) else v) for v in value if v not in (None, "")]


def violation_messages(event: Any) -> List[Dict[str, Any]]:
    """The violations a Lambda was invoked for, whatever invoked it.

    - SNS (Device Defender alert target): ``Records[].Sns.Message`` is the violation JSON;
    - the containment runbook (``aws:invokeLambdaFunction``): ``involved_resources`` / ``InvolvedResources``
      (IoT thing ARNs, as the start-incident function lists the thing as an INVOLVED_RESOURCE related item) and
      ``thing_names`` / ``ThingNames`` (names, when run by hand), with ``violation_id`` and
      ``incident_record_arn``;
    - a direct invocation: one violation object (``thingName``, ``violationId``, ``violationEventType``...) or
      ``{"violations": [...]}``.

    A record that cannot be read comes back as ``{"_error": reason}`` so the caller can report it.
    """
    event = _as_json(event)
    if not isinstance(event, Mapping):
        return [{"_error": "event is not a JSON object"}]
    found: List[Dict[str, Any]] = []
    if isinstance(event.get("Records"), list):
        for record in event["Records"]:
            sns = record.get("Sns") if isinstance(record, Mapping) else None
            message = _as_json((sns or {}).get("Message"))
            if not isinstance(message, Mapping):
                found.append({"_error": "SNS record without a JSON violation message"})
                continue
            found.append(dict(message, _sns_message_id=(sns or {}).get("MessageId")))
        return found
    if isinstance(event.get("violations"), list):
        return [
            dict(v) if isinstance(v, Mapping) else {"_error": "violation is not an object"} for v in event["violations"]
        ]
    common = {
        "violationEventType": "in-alarm",
        "violationId": event.get("violation_id") or event.get("ViolationId") or event.get("violationId") or None,
        "incidentRecordArn": event.get("incident_record_arn") or event.get("IncidentRecordArn") or None,
    }
    common = {k: v for k, v in common.items() if v}
    involved = _string_list(event.get("involved_resources") or event.get("InvolvedResources"))
    names = _string_list(event.get("thing_names") or event.get("ThingNames"))
    if involved or names:
        for arn in involved:
            match = _THING_ARN_RE.match(arn)
            if match:
                found.append(dict(common, thingName=match.group(4)))
        found.extend(dict(common, thingName=name) for name in names)
        return found or [{"_error": "the involved resources hold no IoT thing ARN"}]
    if event.get("thingName") or event.get("ThingName"):
        return [dict(event, thingName=event.get("thingName") or event.get("ThingName"))]
    if "source" in event or "incident_record_arn" in event or "InvolvedResources" in event:
        return []  # a runbook run with nothing to contain (e.g. no involved thing): nothing to do
    return [{"_error": "no violation, SNS record or involved IoT thing in the event"}]


def violation_row(message: Mapping[str, Any]) -> Dict[str, str]:
    """A violation message flattened into a result-row-like mapping for templates and rawData."""
    row: Dict[str, str] = {}
    for key, value in message.items():
        if str(key).startswith("_") or value is None:
            continue
        row[str(key)] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    behavior = message.get("behavior") if isinstance(message.get("behavior"), Mapping) else {}
    row["thing_name"] = str(message.get("thingName") or "")
    row["behavior_name"] = str(behavior.get("name") or "")
    row["metric"] = str(behavior.get("metric") or "")
    row["security_profile"] = str(message.get("securityProfileName") or "")
    return row


def environment_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A Lambda's boolean environment variable (the add-on's spellings; an unknown one is a ParameterError)."""
    return boolean(env.get(name), name, default)


def lambda_responder(env: Mapping[str, str], context: Any = None, **kw: Any) -> Responder:
    """A Responder for a Lambda: the function's own role (default credential chain) in its own region."""
    from .aws import Account, ClientSettings

    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    account = Account(
        name="lambda",
        credential_source="default_chain",
        partition=partition_of_region(region),
        default_region=region,
    )
    account.check()
    session = AwsSession(account, ClientSettings(retry_mode="standard", max_attempts=8, timeout_seconds=10))
    arn = parse_arn(str(getattr(context, "invoked_function_arn", "") or ""))
    account_id = arn.get("account") or ""
    if not account_id:
        from .aws import caller_identity

        account_id = caller_identity(session)["account"]
    return Responder(session, account_id=account_id, partition=account.partition, **kw)


def lambda_report(results: Sequence[ActionResult], skipped: Sequence[Dict[str, Any]], when: Any) -> Dict[str, Any]:
    """What a response Lambda returns (and logs): one ``aws:iot:defender:action`` event body per result."""
    from .events import action_event

    events = [action_event(r, when=when).data for r in results]
    counts: Dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return {
        "ok": all(r.ok for r in results),
        "counts": counts,
        "skipped": list(skipped),
        "events": events,
    }
