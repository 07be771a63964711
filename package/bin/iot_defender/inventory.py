"""Thing inventory source: things with type, attributes, groups, connectivity and certificate status.

Produces ``aws:iot:thing`` snapshot events and the rows of the ``iot_thing_inventory`` KV lookup, at fleet scale:

- **Things in bulk.** With fleet indexing (``GetIndexingConfiguration`` says the thing index is on) one
  ``SearchIndex`` page brings 500 things with type, attributes, groups and, when indexed, connectivity and Device
  Defender violation state. Without it, ``ListThings`` (250 a page) and one ``ListThingGroupsForThing`` per thing
  whose groups are due (below).
- **Certificate statuses in bulk**: ``ListCertificates`` (250 a page) once per run, kept as a compact index
  (8 bytes a certificate: a 61-bit fingerprint of the id and the status), not as objects.
- **Links refreshed incrementally.** Thing ↔ certificate links (and, without fleet indexing, groups) are read per
  thing (``ListThingPrincipals``), so only for things that are new, changed, or due: each thing is due once per
  ``link_sweep_hours`` (24 h by default), its first due time spread over the period by a hash of its name, so a
  full sweep is spread evenly over the day. Links of the other things come from the row the lookup already holds.
- **Paced under each API's quota** (:class:`Pacer`, a token bucket per API) and within a run budget: once a run has
  used ``run_budget_seconds``, due link refreshes wait for the next run (new things first in line), so a run
  always ends before the next starts.
- **Deleted mid-run**: a thing or certificate that answers 404 is skipped and counted, never a failed region.
- **Memory flat**: pages are streamed; the run keeps 8 bytes per certificate and per thing seen (for stale-row
  deletion and for dropping a document the index returns twice, :class:`SeenKeys`), never the fleet. Prior rows are
  read per page through a :class:`RowStore` the adapter provides.
- **Bad records skipped and counted**: a listed thing with an invalid name or a field of the wrong type is reported
  (reason ``invalid_name`` / ``wrong_type``) and skipped; the rest of the page and the run go on.
- **One change digest for both paths** (:func:`registry_digest`: type and attributes, what fleet indexing and
  ListThings both carry), so falling back from one path to the other does not make every thing "changed".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Protocol, Tuple

from botocore.exceptions import ClientError

from . import certificate_index, events, keysets
from .aws import AwsSession, error_code
from .events import MalformedRecord
from .keysets import CertificateIndex as CertificateIndex
from .keysets import SeenKeys as SeenKeys
from .keysets import contains as contains
from .keysets import fingerprint as fingerprint
from .params import boolean, choice, integer
from .pipeline import Page

SEARCH_PAGE = 500  # SearchIndex maxResults [verify the AWS maximum; the docs say 500]
LIST_PAGE = 250
# Registry read quotas (TPS) the add-on paces itself under [verify: no published figure was found for most of these;
# 10 TPS, the usual IoT Core list quota, is assumed; ListThingGroupsForThing 100 from a Service Quotas dump].
QUOTAS_TPS = {
    "SearchIndex": 10.0,
    "ListCertificates": 10.0,
    "ListThings": 10.0,
    "ListThingPrincipals": 10.0,
    "ListThingGroupsForThing": 100.0,
    "DescribeCertificate": 10.0,
    "GetIndexingConfiguration": 10.0,
}
QUOTA_SHARE = 0.9  # of each quota: leaves room for the alert actions and other tools sharing the account
NOT_FOUND = "ResourceNotFoundException"
ACCESS_DENIED = frozenset({"AccessDeniedException", "UnauthorizedException"})
INDEX_UNAVAILABLE = frozenset({NOT_FOUND, "IndexNotReadyException", "InvalidRequestException"})
STATUS_CODES = keysets.STATUS_CODES
LOOKUP_FIELDS = (
    "thing_name",
    "thing_arn",
    "thing_type",
    "account_id",
    "region",
    "thing_groups",
    "certificate_ids",
    "certificate_statuses",
    "active_certificates",
    "owner",
    "site",
    "attributes",
    "connected",
    "violations",
    "registry_digest",
    "links_checked_at",
    "links_due_at",
    "updated_at",
    "digest",
)


@dataclass(frozen=True)
class InventoryOptions:
    include_certificates: bool = True
    fleet_indexing: str = "auto"  # auto: use it where the account has it; off: always the per-thing path
    link_sweep_hours: int = 24
    run_budget_seconds: int = 3000

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> InventoryOptions:
        return cls(
            include_certificates=boolean(params.get("include_certificates"), "include_certificates", True),
            fleet_indexing=choice(params.get("fleet_indexing"), "fleet_indexing", ("auto", "off"), "auto"),
            link_sweep_hours=integer(params.get("link_sweep_hours"), "link_sweep_hours", 24, 1, 24 * 30),
            run_budget_seconds=integer(params.get("run_budget_seconds"), "run_budget_seconds", 3000, 60, 7 * 86400),
        )


class Pacer:
    """One token bucket per API at ``share`` of its quota: calls wait for a token instead of being throttled."""

    def __init__(
        self,
        quotas: Optional[Dict[str, float]] = None,
        *,
        share: float = QUOTA_SHARE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rates = {api: tps * share for api, tps in (QUOTAS_TPS if quotas is None else quotas).items()}
        self.clock = clock
        self._sleep = sleep
        self._next: Dict[str, float] = {}
        self.started = clock()
        self.calls: Dict[str, int] = {}

    def wait(self, api: str) -> None:
        self.calls[api] = self.calls.get(api, 0) + 1
        rate = self.rates.get(api)
        if not rate:
            return
        now = self.clock()
        at = max(now, self._next.get(api, now))
        if at > now:
            self._sleep(at - now)
        self._next[api] = at + 1.0 / rate

    def elapsed(self) -> float:
        return self.clock() - self.started


class RowStore(Protocol):
    """The lookup's prior rows, read a page at a time (the adapter's KV store; a dict in tests)."""

    def known(self, keys: List[str]) -> Dict[str, Dict[str, Any]]: ...


@dataclass
class InventoryResult:
    """What the run learnt: rows to write (per page, drained by the adapter), counts, and the keys seen."""

    path: str = ""
    rows: List[Dict[str, Any]] = field(default_factory=list)  # changed rows of the current page, drained by the adapter
    # certificate -> thing link rows (certificate_index) of the page's changed rows, and the keys of links gone:
    # drained by the adapter with ``rows``, written before them
    link_rows: List[Dict[str, Any]] = field(default_factory=list)
    link_removed: List[str] = field(default_factory=list)
    things: int = 0
    things_gone: int = 0
    certificates_gone: int = 0
    links_refreshed: int = 0
    links_deferred: int = 0
    rows_unchanged: int = 0
    complete: bool = False
    bulk_certificates: bool = True
    duplicates: int = 0  # documents listed twice in one run (the index moving under the pages), dropped
    seen: SeenKeys = field(default_factory=lambda: SeenKeys())

    def seen_sorted(self) -> array:
        return self.seen.sorted()

    def counts(self) -> Dict[str, Any]:
        return {
            "path": self.path,
            "things": self.things,
            "things_gone": self.things_gone,
            "certificates_gone": self.certificates_gone,
            "links_refreshed": self.links_refreshed,
            "links_deferred": self.links_deferred,
            "rows_unchanged": self.rows_unchanged,
            "duplicates": self.duplicates,
            "bulk_certificates": self.bulk_certificates,
        }


def lookup_key(account_id: str, region: str, thing_name: str) -> str:
    return f"{account_id}:{region}:{thing_name}"


def _csv(values: Iterable[Any]) -> str:
    return ",".join(str(v) for v in values)


def _digest(content: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def lookup_row(
    event: events.Event, *, when: Any, links: Optional[Tuple[str, float]] = None, registry: str = ""
) -> Dict[str, Any]:
    """The KV lookup row of one thing event (flat strings, as lookups want).

    ``links``: (checked_at, due_at) of the thing's link refresh; ``registry``: :func:`registry_digest` of the
    thing as its source listed it (what the next run compares to tell a changed thing).
    """
    data = event.data
    certificates = data.get("certificates") or []
    attributes = data.get("attributes") or {}
    connectivity: Dict[str, Any] = data["connectivity"] if isinstance(data.get("connectivity"), dict) else {}
    defender = data.get("deviceDefender") if isinstance(data.get("deviceDefender"), dict) else {}
    row: Dict[str, Any] = {
        "_key": lookup_key(data["account_id"], data["region"], data["thingName"]),
        "thing_name": data["thingName"],
        "thing_arn": data.get("thingArn") or "",
        "thing_type": data.get("thingTypeName") or "",
        "account_id": data["account_id"],
        "region": data["region"],
        "thing_groups": _csv(data.get("thingGroups") or []),
        "certificate_ids": _csv(c.get("certificateId", "") for c in certificates),
        "certificate_statuses": _csv(c.get("status", "") for c in certificates),
        "active_certificates": sum(1 for c in certificates if c.get("status") == "ACTIVE"),
        "owner": str(attributes.get("owner", "")),
        "site": str(attributes.get("site", "")),
        "attributes": json.dumps(attributes, sort_keys=True, separators=(",", ":")),
        "connected": "" if "connected" not in connectivity else str(bool(connectivity["connected"])).lower(),
        "violations": defender.get("violationCount", "") if defender else "",
        "registry_digest": registry,
        "links_checked_at": links[0] if links else "",
        "links_due_at": links[1] if links else "",
    }
    # The digest also covers the link index's format: a row written before the certificate index existed (or in an
    # older format) differs once, so its thing's link rows are written with it.
    row["digest"] = _digest({**row, "_certificate_index": certificate_index.FORMAT})
    row["updated_at"] = events.to_iso(when)
    return row


def registry_digest(thing: Dict[str, Any]) -> str:
    """What makes a listed thing "changed" for the link refresh: its type and attributes, which both paths list
    alike (a SearchIndex document has no ``version``, a ListThings entry no groups): a run that falls back from
    fleet indexing to ListThings, or back, finds the same digest. Never connectivity or violation state."""
    content = {"type": thing.get("thingTypeName") or "", "attributes": thing.get("attributes") or {}}
    return _digest(content)[:16]


def legacy_registry_digest(thing: Dict[str, Any]) -> str:
    """The digest rows written before one digest served both paths hold (version and groups included, as the path
    that wrote them listed them): a thing that matches it has not changed, so an upgrade re-reads no links."""
    content = {
        "type": thing.get("thingTypeName") or "",
        "attributes": thing.get("attributes") or {},
        "version": thing.get("version"),
        "groups": sorted(str(g) for g in thing.get("thingGroupNames") or []),
    }
    return _digest(content)[:16]


# The fields of a listed thing the input reads, with the JSON types AWS gives them; anything else is malformed.
_THING_FIELD_TYPES: Dict[str, Tuple[type, ...]] = {
    "thingName": (str,),
    "thingId": (str,),
    "thingArn": (str,),
    "thingTypeName": (str,),
    "version": (int,),
    "attributes": (dict,),
    "thingGroupNames": (list,),
    "connectivity": (dict,),
    "deviceDefender": (str, dict),
}


def check_thing(thing: Any) -> None:
    """Raise :class:`MalformedRecord` (reason ``invalid_name`` or ``wrong_type``) for a listed thing the input
    cannot use: not an object, a name AWS would not give a thing, a field of the wrong type, attributes that are
    not a map of strings, groups that are not a list of group names."""
    if not isinstance(thing, dict):
        raise MalformedRecord(f"thing: expected an object, got {type(thing).__name__}", reason="wrong_type")
    if "thingName" not in thing or thing["thingName"] in (None, ""):
        raise MalformedRecord("thing: required field 'thingName' is missing", reason="missing_field")
    for name, kinds in _THING_FIELD_TYPES.items():
        value = thing.get(name)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise MalformedRecord(f"thing: field '{name}' is a {type(value).__name__}", reason="wrong_type")
    if not events.valid_thing_name(thing["thingName"]):
        raise MalformedRecord(
            f"thing: thingName {events.neutral_thing_name(thing['thingName'])} is not a thing name",
            reason="invalid_name",
        )
    attributes = thing.get("attributes") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
        raise MalformedRecord("thing: attributes must map names to strings", reason="wrong_type")
    for group in thing.get("thingGroupNames") or []:
        if not events.valid_thing_name(group):
            raise MalformedRecord("thing: thingGroupNames holds a value that is not a group name", reason="wrong_type")


def first_due(thing_name: str, now: float, period: float) -> float:
    """A new thing's first sweep time, spread evenly over the period by its name's fingerprint."""
    return now + period * (fingerprint("sweep:" + thing_name) / 2.0**64)


@dataclass
class _Run:
    """Shared state of one region's run."""

    session: AwsSession
    client: Any
    region: str
    account_id: str
    partition: str
    options: InventoryOptions
    result: InventoryResult
    state: RowStore
    pacer: Pacer
    now: float
    certificates: CertificateIndex = field(default_factory=CertificateIndex)
    described: Dict[str, Optional[str]] = field(default_factory=dict)

    def call(self, api: str, operation: str, **params: Any) -> Dict[str, Any]:
        self.pacer.wait(api)
        return self.session.call(self.client, operation, **params)

    def thing_arn(self, name: str) -> str:
        return f"arn:{self.partition}:iot:{self.region}:{self.account_id}:thing/{name}"


def _is_not_found(exc: ClientError) -> bool:
    return error_code(exc) == NOT_FOUND


def _load_certificates(run: _Run) -> None:
    marker: Optional[str] = None
    while True:
        params: Dict[str, Any] = {"pageSize": LIST_PAGE}
        if marker:
            params["marker"] = marker
        answer = run.call("ListCertificates", "list_certificates", **params)
        for cert in answer.get("certificates") or []:
            if isinstance(cert, dict) and cert.get("certificateId"):
                run.certificates.add(str(cert["certificateId"]), str(cert.get("status") or "UNKNOWN"))
        marker = answer.get("nextMarker")
        if not marker:
            break
    run.certificates.freeze()


def _certificate_status(run: _Run, certificate_id: str) -> Optional[str]:
    """Status from the bulk index; a certificate created since the bulk read is described once (404: gone)."""
    status = run.certificates.status(certificate_id)
    if status is not None:
        return status
    if certificate_id not in run.described:
        try:
            answer = run.call("DescribeCertificate", "describe_certificate", certificateId=certificate_id)
            run.described[certificate_id] = str(answer.get("certificateDescription", {}).get("status", "UNKNOWN"))
        except ClientError as exc:
            if not _is_not_found(exc):
                raise
            run.described[certificate_id] = None
    return run.described[certificate_id]


def _certificate_id(principal: str) -> Optional[str]:
    # Certificate principals are ARNs ending in ":cert/<64 hex>"; other principals (Cognito ids) are skipped.
    if ":cert/" in principal:
        return principal.rsplit("/", 1)[-1]
    return None


def _thing_answers(run: _Run, api: str, method: str, name: str) -> Iterator[Dict[str, Any]]:
    """Every page of a per-thing list call (ListThingPrincipals, ListThingGroupsForThing), paced by ``run``."""
    token: Optional[str] = None
    while True:
        params: Dict[str, Any] = {"thingName": name, "maxResults": LIST_PAGE}
        if token:
            params["nextToken"] = token
        answer = run.call(api, method, **params)
        yield answer
        token = answer.get("nextToken")
        if not token:
            return


def _thing_principals(run: _Run, name: str) -> List[str]:
    answers = _thing_answers(run, "ListThingPrincipals", "list_thing_principals", name)
    principals = (str(p) for answer in answers for p in answer.get("principals") or [])
    return [cid for cid in (_certificate_id(p) for p in principals) if cid]


def _thing_groups(run: _Run, name: str) -> List[str]:
    answers = _thing_answers(run, "ListThingGroupsForThing", "list_thing_groups_for_thing", name)
    return [str(g["groupName"]) for answer in answers for g in answer.get("thingGroups") or [] if g.get("groupName")]


def _due(run: _Run, thing: Dict[str, Any], prior: Optional[Dict[str, Any]]) -> Optional[str]:
    """Why this thing's links (and, on the per-thing path, groups) are read this run, or None."""
    if prior is None or prior.get("links_checked_at") in (None, ""):
        return "new"
    if prior.get("registry_digest") not in (registry_digest(thing), legacy_registry_digest(thing)):
        return "changed"
    due: Any = prior.get("links_due_at")  # None or not a number: read the links again
    try:
        due_at = float(due)
    except (TypeError, ValueError):
        return "new"
    return "due" if due_at <= run.now else None


def _budget_left(run: _Run) -> bool:
    return run.pacer.elapsed() < run.options.run_budget_seconds


def _prior_links(prior: Optional[Dict[str, Any]]) -> Tuple[List[str], Optional[Tuple[str, float]]]:
    if not prior or prior.get("links_checked_at") in (None, ""):
        return [], None
    ids = [c for c in str(prior.get("certificate_ids") or "").split(",") if c]
    due: Any = prior.get("links_due_at")
    try:
        return ids, (str(prior["links_checked_at"]), float(due))
    except (TypeError, ValueError):
        return ids, None


def _links(
    run: _Run, thing: Dict[str, Any], prior: Optional[Dict[str, Any]], refresh_groups: bool
) -> Optional[Tuple[List[str], Optional[List[str]], Optional[Tuple[str, float]], bool]]:
    """(certificate ids, groups or None when not read, (checked_at, due_at), deferred); None when the thing is
    gone. Deferred: due but past the run budget, so it is due again next run."""
    ids, schedule = _prior_links(prior)
    reason = _due(run, thing, prior) if run.options.include_certificates or refresh_groups else None
    if reason is None:
        return ids, None, schedule, False
    if not _budget_left(run):
        run.result.links_deferred += 1
        return ids, None, schedule, True
    name = str(thing["thingName"])
    try:
        groups = _thing_groups(run, name) if refresh_groups else None
        ids = _thing_principals(run, name) if run.options.include_certificates else []
    except ClientError as exc:
        if _is_not_found(exc):
            return None
        raise
    run.result.links_refreshed += 1
    period = run.options.link_sweep_hours * 3600.0
    due = first_due(name, run.now, period) if reason == "new" else run.now + period
    return ids, groups, (events.to_iso(run.now), round(due, 3)), False


def _certificates(run: _Run, ids: List[str]) -> List[Mapping[str, Any]]:
    out: List[Mapping[str, Any]] = []
    for certificate_id in ids:
        status = _certificate_status(run, certificate_id)
        if status is None:
            run.result.certificates_gone += 1
            continue
        out.append({"certificateId": certificate_id, "status": status})
    return out


def _thing_fields(run: _Run, thing: Dict[str, Any]) -> Dict[str, Any]:
    """The event's thing fields from a SearchIndex document or a ListThings entry."""
    out = {k: v for k, v in thing.items() if k not in ("thingGroupNames", "shadow", "deviceDefender")}
    out.setdefault("thingArn", run.thing_arn(str(thing["thingName"])))
    defender = thing.get("deviceDefender")
    if isinstance(defender, str) and defender:
        try:
            out["deviceDefender"] = json.loads(defender)
        except ValueError:
            out["deviceDefender"] = {"unparsed": defender[:1024]}
    return out


def _thing_item(
    run: _Run, thing: Dict[str, Any], prior: Optional[Dict[str, Any]], api: str
) -> Optional[Tuple[events.Event, Dict[str, Any]]]:
    """One thing's event and row; None when it was deleted mid-run."""
    indexed_groups = thing.get("thingGroupNames")
    links = _links(run, thing, prior, refresh_groups=indexed_groups is None)
    if links is None:
        run.result.things_gone += 1
        return None
    ids, groups, schedule, deferred = links
    # A changed thing whose refresh was deferred keeps its old registry digest: it is still "changed" next run.
    registry = str(prior.get("registry_digest") or "") if deferred and prior else registry_digest(thing)
    if groups is None:
        groups = list(indexed_groups) if indexed_groups is not None else _prior_groups(prior)
    event = events.thing_event(
        _thing_fields(run, thing),
        account_id=run.account_id,
        region=run.region,
        snapshot_time=run.now,
        groups=groups,
        certificates=_certificates(run, ids),
    )
    event = dataclasses.replace(event, source=events.source_for(run.account_id, run.region, api))
    return event, lookup_row(event, when=run.now, links=schedule, registry=registry)


def _prior_groups(prior: Optional[Dict[str, Any]]) -> List[str]:
    return [g for g in str((prior or {}).get("thing_groups") or "").split(",") if g]


def _valid_things(run: _Run, things: List[Any], malformed: List[Any]) -> List[Tuple[Dict[str, Any], str]]:
    """The page's usable things with their keys, each listed once per run; the others reported in ``malformed``."""
    valid: List[Tuple[Dict[str, Any], str]] = []
    for thing in things:
        try:
            check_thing(thing)
        except MalformedRecord as exc:
            malformed.append(exc)
            continue
        key = lookup_key(run.account_id, run.region, thing["thingName"])
        if not run.result.seen.add(fingerprint(key)):
            run.result.duplicates += 1
            continue
        valid.append((thing, key))
    return valid


def _page(run: _Run, things: List[Any], api: str) -> Page:
    malformed: List[Any] = []
    duplicates = run.result.duplicates
    valid = _valid_things(run, things, malformed)
    duplicates = run.result.duplicates - duplicates
    prior = run.state.known([key for _thing, key in valid]) if valid else {}
    items: List[Tuple[Optional[str], events.Event]] = []
    for thing, key in valid:
        try:
            made = _thing_item(run, thing, prior.get(key), api)
        except MalformedRecord as exc:
            malformed.append(exc)
            continue
        if made is None:  # deleted mid-run: not seen, so a row it had is deleted as stale
            run.result.seen.discard(fingerprint(key))
            continue
        event, row = made
        run.result.things += 1
        items.append((None, event))
        before = prior.get(key)
        if (before or {}).get("digest") == row["digest"]:
            run.result.rows_unchanged += 1
        else:
            run.result.rows.append(row)
            run.result.link_rows.extend(certificate_index.rows(row))
            if before:
                run.result.link_removed.extend(certificate_index.removed_keys(before, row))
    return Page(items=items, malformed=malformed, duplicates=duplicates)


def _fleet_indexing(run: _Run) -> bool:
    if run.options.fleet_indexing == "off":
        return False
    try:
        answer = run.call("GetIndexingConfiguration", "get_indexing_configuration")
    except ClientError as exc:
        if error_code(exc) in ACCESS_DENIED:
            return False
        raise
    mode = (answer.get("thingIndexingConfiguration") or {}).get("thingIndexingMode") or "OFF"
    return mode != "OFF"


def _search_pages(run: _Run) -> Iterator[List[Any]]:
    token: Optional[str] = None
    while True:
        params: Dict[str, Any] = {"indexName": "AWS_Things", "queryString": "thingName:*", "maxResults": SEARCH_PAGE}
        if token:
            params["nextToken"] = token
        answer = run.call("SearchIndex", "search_index", **params)
        yield list(answer.get("things") or [])
        token = answer.get("nextToken")
        if not token:
            return


def _list_pages(run: _Run) -> Iterator[List[Any]]:
    token: Optional[str] = None
    while True:
        params: Dict[str, Any] = {"maxResults": LIST_PAGE}
        if token:
            params["nextToken"] = token
        answer = run.call("ListThings", "list_things", **params)
        yield list(answer.get("things") or [])
        token = answer.get("nextToken")
        if not token:
            return


def inventory_pages(
    session: AwsSession,
    region: str,
    options: InventoryOptions,
    result: InventoryResult,
    *,
    account_id: str,
    now: float,
    state: RowStore,
    pacer: Optional[Pacer] = None,
) -> Iterator[Page]:
    """Pages of thing events; each page's changed rows are in ``result.rows`` when the page is yielded."""
    run = _Run(
        session=session,
        client=session.client("iot", region),
        region=region,
        account_id=account_id,
        partition=session.account.partition,
        options=options,
        result=result,
        state=state,
        pacer=pacer or Pacer(),
        now=now,
    )
    if options.include_certificates:
        try:
            _load_certificates(run)
        except ClientError as exc:
            if error_code(exc) not in ACCESS_DENIED:
                raise
            # A role without iot:ListCertificates (granted since fleet scale): statuses one DescribeCertificate
            # per certificate, as before, until the role is updated.
            result.bulk_certificates = False
    indexed = _fleet_indexing(run)
    pages = _search_pages(run) if indexed else _list_pages(run)
    api = "SearchIndex" if indexed else "ListThings"
    result.path = "fleet_indexing" if indexed else "registry"
    try:
        for things in pages:
            yield _page(run, things, api)
    except ClientError as exc:
        if not (indexed and result.things == 0 and error_code(exc) in INDEX_UNAVAILABLE):
            raise
        # The index is configured but not answering (being rebuilt, or just turned on): the per-thing path.
        result.path = "registry"
        result.seen = SeenKeys()  # nothing was delivered: the listing starts over
        for things in _list_pages(run):
            yield _page(run, things, "ListThings")
    result.complete = True


def plan_stale_deletes(keys: Iterable[str], seen_sorted: array) -> List[str]:
    """Keys of the lookup (one account and region) whose thing was not seen by a complete run."""
    return [key for key in keys if not contains(seen_sorted, fingerprint(key))]
