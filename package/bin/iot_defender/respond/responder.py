"""The :class:`Responder`: every response action for one account, assembled from small services.

No base classes: the services (paced AWS calls, registry reads, isolation with its ownership checks, the record
store, the results) are built once here and handed to each action object (:class:`~.quarantine.Quarantine`,
:class:`~.release.Release`, :class:`~.incidents.Incidents`, :class:`~.verification.Verification`).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ..aws import AwsSession
from ..events import ActionResult
from .calls import AwsCalls
from .common import OptionError
from .incidents import Incidents, OwnerOf, SuppressionStore
from .isolation import Isolation
from .keys import Keyring
from .options import QuarantineOptions
from .outcomes import Outcomes
from .ownership import Ownership
from .pacing import CallStats, RateLimiter
from .quarantine import Quarantine
from .registry import Registry
from .release import Release
from .services import Services
from .store import RecordStore
from .verification import Verification


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
        keyring: Optional[Keyring] = None,
        keyless_recovery: Optional[str] = None,
        dedup_required: bool = False,
        owner_of: Optional[OwnerOf] = None,
        owner_topics: Optional[Mapping[str, str]] = None,
    ):
        """``keyring``: the record keys (:mod:`.keys`); without a usable key, records are written unauthenticated
        and release will not undo certificate changes from them, so a quarantine that changed certificates ends
        as ``warning`` - unless ``keyless_recovery`` names what undoes them instead (the response stack's
        runbook, for its containment Lambda). ``run_size``: how many targets the caller is about to act on (big
        runs read the quarantine group's members once). ``dedup_required``: refuse an SNS standard-topic
        publication that the store cannot deduplicate (Splunk). ``owner_of``: (region, thing name) -> the thing's
        owner, priority and business unit, carried by every incident destination (:mod:`.incidents`);
        ``owner_topics``: owner -> the owning team's SNS topic, told of each incident a run starts."""
        self.calls = AwsCalls(session, account_id=account_id, partition=partition, limiter=limiter, stats=stats)
        self.session = session
        self.dry_run = dry_run
        registry = Registry(self.calls)
        isolation = Isolation(self.calls, registry, Ownership(registry), dry_run=dry_run, run_size=run_size)
        self.outcomes = Outcomes(account_id)
        self.keyring = keyring or Keyring()
        self.services = Services(
            calls=self.calls,
            outcomes=self.outcomes,
            registry=registry,
            isolation=isolation,
            records=RecordStore(self.calls, registry, self.keyring),
            dry_run=dry_run,
            keyless_recovery=keyless_recovery,
        )
        self.quarantine = Quarantine(self.services)
        self.release = Release(self.services)
        self.incidents = Incidents(
            self.calls,
            self.outcomes,
            registry,
            dry_run=dry_run,
            store=store,
            dedup_required=dedup_required,
            owner_of=owner_of,
            owner_topics=owner_topics,
        )
        self.verification = Verification(self.calls, self.outcomes, registry, dry_run=dry_run)
        self.start_incident = self.incidents.start_incident
        self.set_verification_state = self.verification.set_verification_state

    @property
    def stats(self) -> CallStats:
        return self.calls.stats

    @property
    def limiter(self) -> RateLimiter:
        return self.calls.limiter

    def call(self, service: str, region: str, operation: str, **params: Any) -> Dict[str, Any]:
        return self.calls.call(service, region, operation, **params)

    def crashed(self, action: str, thing_name: Optional[str], region: str, exc: BaseException) -> ActionResult:
        return self.outcomes.crashed(action, thing_name, region, exc)

    def check_protected_groups(self, region: str, options: QuarantineOptions) -> None:
        """Refuse (OptionError) protected group names that do not exist: a misspelt or wrongly cased name would
        otherwise protect nothing."""
        missing = self.services.registry.missing_groups(region, options.protected_groups)
        if missing:
            raise OptionError(
                f"protected thing group(s) {', '.join(missing)} do not exist in {region} (thing group names are "
                "case-sensitive); nothing was changed"
            )
