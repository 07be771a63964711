"""Start an incident for one thing: a Systems Manager OpsCenter OpsItem, an Incident Manager incident, or the same
incident published to an SNS topic.

Idempotent: Incident Manager and SNS take a client token from the alert's sid, the thing and the violation id;
OpsCenter deduplicates on ``/aws/dedup`` (per account, region, thing and violation, see
:mod:`iot_defender.opscenter`) while the OpsItem is open, so neither a retried alert nor the alert firing again
opens a second one. An optional per-thing suppression window is kept in a :class:`SuppressionStore` (the KV store
in Splunk, memory in tests and Lambdas). The text comes from the untrusted row through
:mod:`iot_defender.incident` / :mod:`iot_defender.opscenter`, cut to the API limits; the API calls are
:mod:`.destinations`'.
"""

from __future__ import annotations

import datetime as _dt
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from botocore.exceptions import BotoCoreError, ClientError

from .. import incident as inc
from ..aws import error_code
from ..events import ActionResult, plain_text, to_epoch
from .calls import AwsCalls
from .common import (
    ACTION_INCIDENT,
    VIOLATION_ID_RE,
    RunContext,
    show,
)
from .destinations import Destinations, Incident
from .options import DEFAULT_TITLE, DESTINATIONS, IncidentOptions
from .outcomes import Outcomes
from .registry import Registry

# (region, thing name) -> {"owner", "priority", "bunit"} (iot_defender.assets.response_fields)
OwnerOf = Callable[[str, str], Mapping[str, str]]

__all__ = [
    "DEFAULT_TITLE",
    "DESTINATIONS",
    "IncidentOptions",
    "Incidents",
    "MemorySuppressionStore",
    "SuppressionStore",
]


class SuppressionStore:
    """Where the per-thing incident suppression state lives (KV store in Splunk, memory in tests/Lambda)."""

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        raise NotImplementedError

    def put(self, key: str, value: Dict[str, Any]) -> None:
        raise NotImplementedError

    def claim(self, key: str, value: Dict[str, Any]) -> bool:
        """Create ``key`` only if absent (atomically): True when this call created it."""
        raise NotImplementedError

    def forget(self, key: str) -> None:
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

    def claim(self, key: str, value: Dict[str, Any]) -> bool:
        with self._lock:
            if key in self.data:
                return False
            self.data[key] = dict(value)
            return True

    def forget(self, key: str) -> None:
        with self._lock:
            self.data.pop(key, None)


def _trigger_time(row: Mapping[str, Any], trigger_time: Any, now: _dt.datetime) -> _dt.datetime:
    """When the incident was triggered: ``trigger_time``, else the row's time, else ``now``."""
    when = now
    if trigger_time in (None, ""):
        trigger_time = row.get("_time") or row.get("violationEventTime")
    if trigger_time not in (None, ""):
        try:
            when = _dt.datetime.fromtimestamp(to_epoch(trigger_time), _dt.timezone.utc)
        except (TypeError, ValueError, OverflowError, OSError):
            when = now
    return when


class Incidents:
    """The start-incident action, handed the account's AWS calls, results and registry reads."""

    def __init__(
        self,
        calls: AwsCalls,
        outcomes: Outcomes,
        registry: Registry,
        *,
        dry_run: bool = False,
        store: Optional[SuppressionStore] = None,
        dedup_required: bool = False,
        owner_of: Optional[OwnerOf] = None,
        owner_topics: Optional[Mapping[str, str]] = None,
    ):
        self.calls = calls
        self.outcomes = outcomes
        self.registry = registry
        self.dry_run = dry_run
        self.store = store
        self.destinations = Destinations(calls)
        # True in Splunk: a destination that cannot deduplicate (an SNS standard topic) refuses when the KV store
        # is unavailable rather than publish a replayed alert twice.
        self.dedup_required = dedup_required
        # (region, thing name) -> the thing's owner, priority and business unit (iot_defender.assets.response_fields);
        # the adapter reads them (Splunk: the asset row, else the inventory row), none here
        self.owner_of = owner_of
        # owner -> SNS topic ARN of the owning team (validated by the adapter): told of each incident this run starts
        self.owner_topics = dict(owner_topics or {})

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
        incident = self._render_incident(thing_name, region, row, options, context, violation_id)
        if isinstance(incident, ActionResult):
            return incident
        try:
            return self._open_incident(incident, context, trigger_time, verify_thing)
        except (ClientError, BotoCoreError) as exc:
            return self.outcomes.failed(ACTION_INCIDENT, thing_name, region, exc, [], "start incident")

    def _render_incident(
        self,
        thing_name: str,
        region: str,
        row: Mapping[str, Any],
        options: IncidentOptions,
        context: RunContext,
        violation_id: str,
    ) -> Union[Incident, ActionResult]:
        """The incident's title, impact and token from the row, or the refusal of an invalid request."""
        action = ACTION_INCIDENT
        refused = self.outcomes.refuse_invalid_name(action, thing_name, region)
        if refused is not None:
            return refused
        if violation_id and not VIOLATION_ID_RE.match(violation_id):
            return self.outcomes.result(
                action, "refused-invalid", thing_name, region, f"{show(violation_id)} is not a violation id"
            )
        self.calls.stats.reset_thread()
        fields = dict(row)
        fields.setdefault("thing_name", thing_name)
        title = inc.render_template(options.title, fields, inc.TITLE_MAX) or f"IoT incident: thing {thing_name}"
        try:
            # an empty impact leaves the response plan's own impact in force
            impact = inc.render_impact(options.impact, fields) if options.impact.strip() else None
        except inc.TemplateError as exc:
            return self.outcomes.result(action, "refused-invalid", thing_name, region, str(exc))
        token = inc.client_token(context.sid, thing_name, violation_id, context.origin)
        details: Dict[str, Any] = {"destination": options.destination, "title": title, "client_token": token}
        if impact is not None:
            details["impact"] = impact
        if violation_id:
            details["violation_id"] = violation_id
        owner = self._owner(thing_name, region, details)
        return Incident(thing_name, region, row, options, title, impact, token, details, owner)

    def _owner(self, thing_name: str, region: str, details: Dict[str, Any]) -> Dict[str, str]:
        """The thing's owner fields, neutralised (device-settable attributes); a failed look-up is noted."""
        if self.owner_of is None:
            return {}
        try:
            found = self.owner_of(region, thing_name) or {}
        except Exception as exc:  # the owner is an extra: the incident is started without it
            details["owner_lookup"] = f"failed ({type(exc).__name__}): sent without the owner"
            return {}
        owner = {k: plain_text(found.get(k) or "", 200) for k in ("owner", "priority", "bunit")}
        if any(v and v != "unknown" for v in owner.values()):
            details["owner"] = owner
        return owner

    def _open_incident(
        self, incident: Incident, context: RunContext, trigger_time: Any, verify_thing: bool
    ) -> ActionResult:
        action, name, region, details = ACTION_INCIDENT, incident.thing_name, incident.region, incident.details
        if verify_thing:  # rows are untrusted; a Device Defender message (Lambda) names a real thing
            thing = self.registry.describe_thing(region, name)
            if thing is None:
                return self.outcomes.result(
                    action, "refused-invalid", name, region, f"thing {name} does not exist in {region}"
                )
        else:
            thing = {"thingArn": self.calls.arn(region, "thing", name)}
        now = context.now()
        key = f"{self.calls.account_id or self.calls.session.account.name}.{region}.{name}"
        previous = self._store_get(key, details)
        suppressed = self._suppressed(incident, previous, now)
        if suppressed is not None:
            return suppressed
        when = _trigger_time(incident.row, trigger_time, now)
        items = inc.related_items(
            partition=self.calls.partition,
            region=region,
            thing_name=name,
            thing_arn=thing.get("thingArn"),
            results_link=context.results_link,
        )
        if self.dry_run:
            details["related_items"] = items
            if self.owner_topic(incident):
                details["owner_notification"] = f"would publish to {self.owner_topic(incident)}"
            return self.outcomes.result(
                action, "dry-run", name, region, f"dry run, would start incident {incident.title!r}", details=details
            )
        started = self._start(incident, items, when, previous, str(thing.get("thingArn") or ""), context)
        if isinstance(started, ActionResult):
            return started
        reference, repeat = started
        if not repeat:  # one message per incident: only for an incident this very run started
            self._notify_owner(incident, items, when)
        self._store_put(key, {"client_token": incident.token, "reference": reference, "time": now.timestamp()}, details)
        details["throttled_retries"] = self.calls.stats.thread_throttled()
        if repeat:
            message = f"incident already started: {reference}"
            if incident.options.destination == "opscenter":
                message = f"OpsItem already open for this thing and violation (not opened by this run): {reference}"
            return self.outcomes.result(action, "already-in-state", name, region, message, details=details)
        verb = "OpsItem opened" if incident.options.destination == "opscenter" else "incident started"
        return self.outcomes.result(action, "done", name, region, f"{verb}: {reference}", details=details)

    def _start(
        self,
        incident: Incident,
        items: List[Dict[str, Any]],
        when: _dt.datetime,
        previous: Optional[Dict[str, Any]],
        thing_arn: str,
        context: RunContext,
    ) -> Union[Tuple[str, bool], ActionResult]:
        """Open the incident at its destination: (reference, whether it existed before this run), or the result
        when nothing was sent."""
        repeat = bool(previous and previous.get("client_token") == incident.token)
        destination = incident.options.destination
        if destination == "opscenter":
            reference, existed = self.destinations.open_ops_item(incident, thing_arn, context)
            return reference, existed or bool(previous and previous.get("reference") == reference)
        if destination == "incident_manager":
            reference = self.destinations.start_in_incident_manager(incident, items, when)
            return reference, repeat or bool(previous and previous.get("reference") == reference)
        if repeat:
            incident.details["message_id"] = previous.get("reference") if previous else None
            message = f"incident for {incident.thing_name} already published to SNS by this alert"
            return self.outcomes.result(
                ACTION_INCIDENT,
                "already-in-state",
                incident.thing_name,
                incident.region,
                message,
                details=incident.details,
            )
        return self._publish_once(incident, items, when)

    def _publish_once(
        self, incident: Incident, items: List[Dict[str, Any]], when: _dt.datetime
    ) -> Union[Tuple[str, bool], ActionResult]:
        """Publish to SNS at most once per (alert, thing, violation): a standard topic cannot deduplicate, so the
        publication is claimed in the store first (create-only); without the store it is refused."""
        name, region, details = incident.thing_name, incident.region, incident.details
        fifo = (incident.options.sns_topic_arn or "").endswith(".fifo")
        claim_key = f"sns.{incident.token}"
        claimed = self._claim(claim_key, incident, "deduplication")
        if claimed is False:
            message = f"incident for {name} already published to SNS by an earlier run of this alert"
            return self.outcomes.result(ACTION_INCIDENT, "already-in-state", name, region, message, details=details)
        if claimed is None and self.dedup_required and not fifo:
            return self.outcomes.result(
                ACTION_INCIDENT,
                "failed",
                name,
                region,
                "not published: the KV store that remembers what this alert already published is unavailable, and "
                "an SNS standard topic cannot deduplicate a replayed alert (use a FIFO topic, or run it again once "
                "the KV store answers)",
                error_code="NoDeduplication",
                details=details,
            )
        try:
            reference = self.destinations.publish(incident, items, when)
        except Exception:
            if claimed:
                self._store_forget(claim_key, details)
            raise
        details["message_id"] = reference
        return reference, False

    def _claim(self, key: str, incident: Incident, note: str) -> Optional[bool]:
        """Claim a publication in the store (insert-only, atomic across runs): True when this run claimed it, False
        when an earlier run did, None without a usable store (``details[note]`` says why)."""
        if self.store is None:
            return None
        try:
            return self.store.claim(key, {"client_token": incident.token})
        except Exception as exc:
            incident.details[note] = f"unavailable ({type(exc).__name__})"
            return None

    def owner_topic(self, incident: Incident) -> Optional[str]:
        """The owning team's topic, when the lookup routes the thing's owner elsewhere than the alert's own topic."""
        topic = self.owner_topics.get(incident.owner.get("owner") or "")
        same = incident.options.destination == "sns" and topic == incident.options.sns_topic_arn
        return None if not topic or same else topic

    def _notify_owner(self, incident: Incident, items: List[Dict[str, Any]], when: _dt.datetime) -> None:
        """Publish the incident to the owning team's topic, deduplicated like the SNS destination (a claim in the
        store first; without the store a standard topic is not published to). Best effort: the incident is
        started whatever happens here, and ``details['owner_notification']`` says what did."""
        topic, details = self.owner_topic(incident), incident.details
        if topic is None:
            return
        claim_key = f"owner-sns.{incident.token}"
        claimed = self._claim(claim_key, incident, "owner_deduplication")
        if claimed is False:
            details["owner_notification"] = "already published by an earlier run of this alert"
            return
        if claimed is None and self.dedup_required and not topic.endswith(".fifo"):
            details["owner_notification"] = "not published: the KV store that deduplicates it is unavailable"
            return
        try:
            details["owner_message_id"] = self.destinations.publish(incident, items, when, topic=topic)
            details["owner_notification"] = f"published to {topic}"
        except Exception as exc:
            if claimed:
                self._store_forget(claim_key, details)
            details["owner_notification"] = f"failed: {error_code(exc)}"

    def _suppressed(
        self, incident: Incident, previous: Optional[Dict[str, Any]], now: _dt.datetime
    ) -> Optional[ActionResult]:
        """The result when another incident was started for the thing within the suppression window."""
        window = incident.options.suppression_minutes
        if not previous or previous.get("client_token") == incident.token or window <= 0:
            return None
        started = float(previous.get("time") or 0)
        age = now.timestamp() - started
        if not 0 <= age < window * 60:
            return None
        incident.details.update(suppressed=True, previous=previous)
        return self.outcomes.result(
            ACTION_INCIDENT,
            "already-in-state",
            incident.thing_name,
            incident.region,
            f"suppressed: an incident was started for {incident.thing_name} {int(age // 60)} min ago "
            f"({previous.get('reference')}), window {window} min",
            details=incident.details,
        )

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

    def _store_forget(self, key: str, details: Dict[str, Any]) -> None:
        """Undo a claim whose publication failed, so that a retry may publish (best effort)."""
        try:
            if self.store is not None:
                self.store.forget(key)
        except Exception as exc:
            details["deduplication"] = f"claim not withdrawn ({type(exc).__name__}): a retry reports already-in-state"
