"""The responder's plumbing shared by every action: paced and counted AWS calls, pagination, results, and the
registry reads (thing, groups, certificates) that quarantine, release and incidents build on."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple

from botocore import xform_name
from botocore.exceptions import ClientError

from ..aws import AwsSession, error_code, error_message
from ..events import ActionResult
from .common import show, valid_thing_name
from .pacing import CallStats, RateLimiter
from .record import RecordSigner

if TYPE_CHECKING:
    from .incidents import SuppressionStore


class ResponderCore:
    """What every action of the :class:`~.responder.Responder` builds on: one account, one AWS session, paced and
    counted calls; safe to use from many threads."""

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
        record_key: Optional[bytes] = None,
        keyless_recovery: Optional[str] = None,
    ):
        """``run_size``: how many targets the caller is about to act on. From BULK_MEMBERSHIP_MIN targets on,
        quarantine reads the quarantine group's members once instead of each thing's groups (one call per
        thing fewer), unless protected groups need each thing's groups anyway.

        ``record_key``: the key that authenticates quarantine records (Splunk's credential store). Without it,
        records are written unauthenticated and release will not undo certificate changes from them, so a quarantine
        that changed certificates ends as ``warning`` - unless ``keyless_recovery`` names what undoes them instead
        (the response stack's runbook, for its containment Lambda)."""
        self.session = session
        self.run_size = run_size
        self.account_id = account_id
        self.partition = partition or session.account.partition
        self.dry_run = dry_run
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.stats = stats or CallStats()
        self.store = store
        self.record_key = record_key
        self.keyless_recovery = keyless_recovery
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
        self, action: str, thing: Optional[str], region: str, exc: BaseException, changes: List[str], what: str
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

    def certificate_arns(self, region: str, thing_name: str) -> List[str]:
        """The ARNs of the X.509 certificates attached to the thing (no status lookup)."""
        principals = self._pages("iot", region, "ListThingPrincipals", "principals", thingName=thing_name)
        return [arn for arn in principals if ":cert/" in arn]

    def signer(self, region: str, thing_name: str) -> Optional[RecordSigner]:
        """What authenticates this thing's quarantine record, or None without a record key."""
        if not self.record_key:
            return None
        return RecordSigner(self.record_key, self.account_id, region, thing_name)

    def missing_groups(self, region: str, names: Sequence[str]) -> List[str]:
        """The thing groups among ``names`` that do not exist in the region (names are case-sensitive)."""
        missing = []
        for name in names:
            try:
                self.call("iot", region, "DescribeThingGroup", thingGroupName=name)
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                missing.append(name)
        return missing

    def thing_arn(self, region: str, thing_name: str) -> str:
        return f"arn:{self.partition}:iot:{region}:{self.account_id}:thing/{thing_name}"

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
