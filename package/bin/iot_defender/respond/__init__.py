"""Response actions on AWS IoT: quarantine / release a thing, start an incident, set a violation's verification
state. Pure library: the Splunk alert actions (``iot_defender_alert``) and the response Lambdas
(``infra/response/functions/*``) are thin adapters around :class:`Responder`.

Safety rules every action follows:

- every input is untrusted: thing names, violation ids, ARNs and templates are validated against AWS's own
  patterns *before* any call, and a refused input never leads to an AWS write;
- each action reads the current state first and writes only the difference, so running it twice is harmless
  (outcome ``already-in-state``), and a dry run reports the exact plan without writing anything;
- only what the add-on created is changed: the quarantine group and the isolation policy carry its tag, the
  policy its own deny document, checked before any write (:mod:`.ownership`);
- quarantine isolates through the quarantine group *and* the thing's certificates, and records what it holds on
  the thing itself (one attribute, :class:`QuarantineRecord`, authenticated with keys configured at setup, bound
  to one quarantine, the thing's version and AWS's certificate dates) so that release restores exactly that and
  nothing else; a certificate shared by several quarantined things is released with the last of them;
- quarantine and release of one thing are serialised (record first, compare-and-set, lease): the loser reports
  a conflict and writes nothing;
- calls are paced per operation at the documented TPS quotas (:class:`RateLimiter`) and botocore retries what
  is still throttled; one target failing never stops the others (:func:`run_all`).

Shape: composition, no base classes and no import cycles (``make lint`` checks the layering with import-linter).
Services: ``calls`` (paced, counted AWS calls), ``registry`` (registry reads), ``ownership`` (what the add-on
created: tags and its own deny document), ``isolation`` (quarantine group and isolation policy), ``keys`` and
``record`` (the authenticated, versioned quarantine record) and ``store`` (reading and writing it
compare-and-set), ``outcomes`` (results). Actions, each handed the services: ``quarantine``, ``release``,
``incidents``, ``verification``; ``responder`` assembles them. ``common``, ``options`` and ``pacing`` hold names,
options and the thread pool. This package re-exports what the alert actions, the Lambdas, the tests and the
benchmarks use. The threat model is docs/security.md.
"""

from __future__ import annotations

from .common import (
    ACTION_INCIDENT,
    ACTION_QUARANTINE,
    ACTION_RELEASE,
    ACTION_VERIFICATION,
    VIOLATION_ID_RE,
    OptionError,
    RunContext,
    parse_arn,
    partition_of_region,
    show,
    valid_thing_name,
)
from .incidents import DEFAULT_TITLE, IncidentOptions, MemorySuppressionStore, SuppressionStore
from .isolation import BULK_MEMBERSHIP_MIN
from .keys import MIN_KEY_CHARACTERS, Keyring
from .options import DEFAULT_POLICY_NAME, DEFAULT_QUARANTINE_GROUP, QuarantineOptions
from .outcomes import CONFLICT, NOT_OWNED
from .ownership import MANAGED_TAG, isolation_policy
from .pacing import RateLimiter, run_all
from .record import RECORD_ATTRIBUTE, QuarantineRecord, RecordSigner
from .responder import Responder
from .verification import VERIFICATION_STATES

__all__ = [
    "ACTION_INCIDENT",
    "ACTION_QUARANTINE",
    "ACTION_RELEASE",
    "ACTION_VERIFICATION",
    "BULK_MEMBERSHIP_MIN",
    "CONFLICT",
    "DEFAULT_POLICY_NAME",
    "DEFAULT_QUARANTINE_GROUP",
    "DEFAULT_TITLE",
    "MANAGED_TAG",
    "MIN_KEY_CHARACTERS",
    "NOT_OWNED",
    "RECORD_ATTRIBUTE",
    "VERIFICATION_STATES",
    "VIOLATION_ID_RE",
    "IncidentOptions",
    "Keyring",
    "MemorySuppressionStore",
    "OptionError",
    "QuarantineOptions",
    "QuarantineRecord",
    "RateLimiter",
    "RecordSigner",
    "Responder",
    "RunContext",
    "SuppressionStore",
    "isolation_policy",
    "parse_arn",
    "partition_of_region",
    "run_all",
    "show",
    "valid_thing_name",
]
