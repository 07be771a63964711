"""The inventory source at fleet scale, against the loopback registry (requests checked against botocore's model):
fleet indexing vs the per-thing path, incremental link refresh, pacing, run budget, things and certificates
deleted mid-run, stale rows."""

from __future__ import annotations

import json

import pytest

from iot_defender import inventory
from iot_defender.aws import Account, AwsSession, ClientSettings
from iot_defender.checkpoint import InputState, MemoryJournal
from iot_defender.pipeline import RunStats, deliver
from tests.harness.aws import LoopbackAWS

NOW = 1_763_900_000.0
REGION = "us-east-1"


@pytest.fixture(scope="module")
def server():
    with LoopbackAWS(seed=3) as aws:
        yield aws


@pytest.fixture()
def aws(server, monkeypatch):
    server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield server
    assert not server.internal_errors, server.internal_errors


def session_for(aws) -> AwsSession:
    account = Account(name="t", access_key_id=aws.access_key, secret_access_key=aws.secret_key)
    # As the input builds it: raw timestamps, plain JSON answers as sent (a malformed record reaches the library).
    return AwsSession(account, ClientSettings(max_attempts=2, retry_mode="standard"), raw_timestamps=True)


class Rows:
    """An in-memory lookup, as the KV adapter keeps it: rows written per page, read per page."""

    def __init__(self):
        self.docs = {}
        self.reads = 0

    def known(self, keys):
        self.reads += 1
        return {k: dict(self.docs[k]) for k in keys if k in self.docs}


class Sink:
    def __init__(self):
        self.events = []

    def write(self, event):
        self.events.append(event)


class FakeClock:
    """A pacer clock that advances only when the pacer sleeps (no real waiting)."""

    def __init__(self):
        self.t = 0.0
        self.slept = 0.0

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds
        self.slept += seconds


def run(aws, rows, now=NOW, options=None, pacer=None):
    result = inventory.InventoryResult()
    sink, stats = Sink(), RunStats(input="i", stanza="s", account="a", region=REGION)
    pages = inventory.inventory_pages(
        session_for(aws),
        REGION,
        options or inventory.InventoryOptions(),
        result,
        account_id=aws.account_id,
        now=now,
        state=rows,
        pacer=pacer or inventory.Pacer(quotas={}),
    )

    def writing():
        for page in pages:
            for row in result.rows:
                rows.docs[row["_key"]] = row
            result.rows = []
            yield page

    deliver(
        writing(),
        state=InputState(),
        sink=sink,
        journal=MemoryJournal(),
        save=lambda s: None,
        stats=stats,
        keep_after=lambda s: float("-inf"),
    )
    return result, sink.events, stats


def calls(aws, operation):
    return aws.requests.count(operation=operation)


@pytest.mark.parametrize("indexed", [True, False], ids=["fleet-indexing", "per-thing"])
def test_a_thing_and_a_certificate_deleted_mid_run_are_skipped_and_counted(aws, indexed):
    registry = aws.registry
    registry.seed(aws.account_id, REGION, 12)
    if indexed:
        registry.set_indexing(aws.account_id, REGION, "REGISTRY", connectivity_mode="STATUS")
    # thing-0000003 is deleted between the listing of its page and the read of its links (404);
    # thing-0000007 gets a certificate after the bulk certificate read, deleted before it can be described (404).
    late = "f" * 64
    gone = {"thing": "thing-0000003"}

    def race(operation, params):
        if operation in ("SearchIndex", "ListThings") and not params.get("nextToken"):
            arn = registry.put_certificate(aws.account_id, REGION, late, "ACTIVE", created=2e9)
            registry.attach(aws.account_id, REGION, "thing-0000007", arn)
        if operation in ("ListThingPrincipals", "ListThingGroupsForThing") and params["thingName"] == gone["thing"]:
            registry.delete_thing(aws.account_id, REGION, gone["thing"])
        if operation == "DescribeCertificate" and params["certificateId"] == late:
            registry.delete_certificate(aws.account_id, REGION, late)

    registry.before_answer = race
    rows = Rows()
    result, events, stats = run(aws, rows)
    assert result.complete and stats.status == "ok"
    assert result.things_gone == 1 and result.certificates_gone == 1
    names = [e.data["thingName"] for e in events]
    assert len(names) == 11 and "thing-0000003" not in names
    seven = next(e for e in events if e.data["thingName"] == "thing-0000007")
    assert [c["certificateId"] for c in seven.data["certificates"]] != [] and late not in json.dumps(seven.data)
    assert result.path == ("fleet_indexing" if indexed else "registry")
    assert calls(aws, "SearchIndex" if indexed else "ListThings") == 1
    assert calls(aws, "DescribeCertificate") == 1


def test_fleet_indexing_reads_things_and_statuses_in_bulk_and_links_incrementally(aws):
    registry = aws.registry
    registry.seed(aws.account_id, REGION, 600)
    registry.set_indexing(aws.account_id, REGION, "REGISTRY", "VIOLATIONS", "STATUS")
    registry.put_thing(
        aws.account_id,
        REGION,
        "thing-0000005",
        thing_type="sensor",
        attributes={"site": "site-c", "owner": "team-5", "model": "m1"},
        groups=["site-c"],
        connected=True,
        violations={"DeviceRuleBaseline": ["AuthorizedTcpPorts"]},
    )
    registry.attach(aws.account_id, REGION, "thing-0000005", "arn:aws:iot:us-east-1:0:cert/" + "a" * 64)
    rows = Rows()
    result, events, _ = run(aws, rows)
    # First run: every thing is new, so every thing's links are read once; things and statuses come in bulk.
    assert result.things == 600 and len(rows.docs) == 600
    assert calls(aws, "SearchIndex") == 2 and calls(aws, "ListCertificates") == 3
    assert calls(aws, "ListThingPrincipals") == 600 and calls(aws, "ListThingGroupsForThing") == 0
    five = next(e for e in events if e.data["thingName"] == "thing-0000005")
    assert five.data["deviceDefender"]["violationCount"] == 1 and five.data["connectivity"]["connected"] is True
    assert five.source.endswith(":SearchIndex")
    row = rows.docs[inventory.lookup_key(aws.account_id, REGION, "thing-0000005")]
    assert row["violations"] == 1 and row["connected"] == "true" and row["thing_groups"] == "site-c"
    assert result.certificates_gone == 1  # the attached ARN names no certificate of the account
    revoked = rows.docs[inventory.lookup_key(aws.account_id, REGION, "thing-0000097")]
    assert revoked["certificate_statuses"] == "REVOKED" and revoked["active_certificates"] == 0

    # An hour later: only the things due in that hour (1/24 of the fleet, spread by name) and the changed one.
    registry.put_thing(aws.account_id, REGION, "thing-0000010", thing_type="gateway", attributes={"site": "x"})
    aws.requests.clear()
    result, events, _ = run(aws, rows, now=NOW + 3600)
    due = sum(1 for n in range(600) if inventory.first_due(f"thing-{n:07d}", NOW, 86400.0) <= NOW + 3600 and n != 10)
    assert calls(aws, "ListThingPrincipals") == due + 1 == result.links_refreshed
    assert 10 <= due <= 45  # 25 expected
    assert len(events) == 600 and result.rows_unchanged == 600 - due - 1
    changed = rows.docs[inventory.lookup_key(aws.account_id, REGION, "thing-0000010")]
    assert changed["thing_type"] == "gateway" and changed["certificate_ids"]

    # Through the rest of the day every other thing is swept exactly once, an hour's share per run.
    total = 0
    for hour in range(2, 25):
        aws.requests.clear()
        run(aws, rows, now=NOW + hour * 3600)
        assert calls(aws, "ListThingPrincipals") < 60
        total += calls(aws, "ListThingPrincipals")
    assert total == 600 - due - 1


def test_per_thing_path_reads_groups_and_links_only_for_new_changed_or_due_things(aws):
    registry = aws.registry
    registry.seed(aws.account_id, REGION, 300)
    rows = Rows()
    result, events, _ = run(aws, rows)
    assert result.path == "registry" and calls(aws, "SearchIndex") == 0
    assert calls(aws, "ListThingGroupsForThing") == 300 and calls(aws, "ListThingPrincipals") == 300
    assert events[0].data["thingGroups"] == ["site-a"] and events[0].source.endswith(":ListThings")
    registry.put_thing(aws.account_id, REGION, "thing-0000001", thing_type="sensor", groups=["site-b"])
    aws.requests.clear()
    result, events, _ = run(aws, rows, now=NOW + 60)
    assert calls(aws, "ListThingGroupsForThing") == calls(aws, "ListThingPrincipals") == result.links_refreshed
    assert result.links_refreshed == 1 + sum(
        1 for n in range(300) if inventory.first_due(f"thing-{n:07d}", NOW, 86400.0) <= NOW + 60 and n != 1
    )
    one = next(e for e in events if e.data["thingName"] == "thing-0000001")
    assert one.data["thingGroups"] == ["site-b"]


def test_pacing_keeps_each_api_under_its_quota_and_the_budget_defers_links(aws):
    registry = aws.registry
    registry.seed(aws.account_id, REGION, 600)
    registry.set_indexing(aws.account_id, REGION, "REGISTRY")
    clock = FakeClock()
    pacer = inventory.Pacer(clock=clock, sleep=clock.sleep)
    options = inventory.InventoryOptions(run_budget_seconds=60)
    rows = Rows()
    result, events, _ = run(aws, rows, options=options, pacer=pacer)
    # 9 TPS for ListThingPrincipals (90 % of 10): within a 60 s budget about 60 * 9 links, the rest deferred.
    assert 500 <= result.links_refreshed <= 545 and result.links_refreshed + result.links_deferred == 600
    assert len(events) == 600  # every thing still has its event and row
    assert pacer.calls["ListThingPrincipals"] == result.links_refreshed
    assert clock.t == pytest.approx(max(result.links_refreshed - 1, 0) / 9.0, abs=1.0)
    pending = [r for r in rows.docs.values() if r["links_checked_at"] == ""]
    assert len(pending) == result.links_deferred
    # The next run picks up the deferred things first (they are new to the link schedule).
    clock2 = FakeClock()
    result2, _, _ = run(
        aws, rows, now=NOW + 3600, options=options, pacer=inventory.Pacer(clock=clock2, sleep=clock2.sleep)
    )
    assert result2.links_refreshed >= len(pending)


def test_a_role_without_list_certificates_falls_back_to_one_describe_per_certificate(aws):
    aws.registry.seed(aws.account_id, REGION, 40)
    aws.faults.fail_next("ListCertificates", "AccessDeniedException", 403, "not authorized: iot:ListCertificates")
    result, events, stats = run(aws, Rows())
    assert stats.status == "ok" and not result.bulk_certificates and len(events) == 40
    assert calls(aws, "DescribeCertificate") == 40
    statuses = {e.data["thingName"]: e.data["certificates"][0]["status"] for e in events}
    assert statuses["thing-0000000"] == "REVOKED" and statuses["thing-0000001"] == "ACTIVE"


def test_a_changed_thing_deferred_by_the_budget_is_refreshed_next_run(aws):
    registry = aws.registry
    registry.seed(aws.account_id, REGION, 20)
    rows = Rows()
    run(aws, rows)
    registry.put_thing(aws.account_id, REGION, "thing-0000002", thing_type="gateway", groups=["site-c"])
    arn = registry.put_certificate(aws.account_id, REGION, "c" * 64, "ACTIVE", created=2e9)
    registry.attach(aws.account_id, REGION, "thing-0000002", arn)
    clock = FakeClock()
    spent = inventory.Pacer(quotas={}, clock=clock, sleep=clock.sleep)
    clock.t = 61.0  # the budget is already used up: every refresh waits
    result, _, _ = run(aws, rows, now=NOW + 60, options=inventory.InventoryOptions(run_budget_seconds=60), pacer=spent)
    assert result.links_refreshed == 0 and result.links_deferred == 1
    aws.requests.clear()
    result, events, _ = run(aws, rows, now=NOW + 120)
    two = next(e for e in events if e.data["thingName"] == "thing-0000002")
    assert "c" * 64 in [c["certificateId"] for c in two.data["certificates"]] and two.data["thingGroups"] == ["site-c"]
    assert calls(aws, "ListThingPrincipals") == result.links_refreshed >= 1


def test_pacer_spaces_calls_per_api():
    clock = FakeClock()
    pacer = inventory.Pacer(quotas={"A": 10.0, "B": 100.0}, share=1.0, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        pacer.wait("A")
    assert clock.t == pytest.approx(1.0)
    for _ in range(100):
        pacer.wait("B")  # B has its own bucket: its calls were not delayed by A's
    assert clock.t == pytest.approx(1.99, abs=0.02)
    assert pacer.calls == {"A": 11, "B": 100}


def test_certificate_index_and_stale_keys():
    index = inventory.CertificateIndex()
    ids = [f"{i:064x}" for i in range(1000)]
    for i, cid in enumerate(ids):
        index.add(cid, inventory.STATUS_CODES[i % 3])
    index.freeze()
    assert [index.status(ids[i]) for i in (0, 1, 2, 999)] == ["ACTIVE", "INACTIVE", "REVOKED", "ACTIVE"]
    assert index.status("e" * 64) is None
    result = inventory.InventoryResult()
    for key in ("a:r:t1", "a:r:t2"):
        result.seen.append(inventory.fingerprint(key))
    assert inventory.plan_stale_deletes(["a:r:t0", "a:r:t1", "a:r:t2", "a:r:t3"], result.seen_sorted()) == [
        "a:r:t0",
        "a:r:t3",
    ]


def test_options_refuse_unknown_values():
    assert inventory.InventoryOptions.from_params({"fleet_indexing": "off"}).fleet_indexing == "off"
    with pytest.raises(ValueError, match="fleet_indexing"):
        inventory.InventoryOptions.from_params({"fleet_indexing": "sometimes"})
    with pytest.raises(ValueError, match="link_sweep_hours"):
        inventory.InventoryOptions.from_params({"link_sweep_hours": "0"})


# --- issue 17, class 7: one bad record never aborts the run; one digest for both paths; duplicates dropped.


def nested(depth):
    value = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


BAD_THINGS = {
    "invalid-name": ({"thingName": "bad/name"}, "invalid_name"),
    "long-name": ({"thingName": "n" * 129}, "invalid_name"),
    "bidi-name": ({"thingName": "evil\u202egnp"}, "invalid_name"),
    "name-not-a-string": ({"thingName": 42}, "wrong_type"),
    "attributes-a-list": ({"thingName": "odd-1", "attributes": ["owner"]}, "wrong_type"),
    "attribute-not-a-string": ({"thingName": "odd-2", "attributes": {"site": {"deep": 1}}}, "wrong_type"),
    "deep-attributes": ({"thingName": "odd-3", "attributes": nested(60)}, "wrong_type"),
    "groups-a-string": ({"thingName": "odd-4", "thingGroupNames": "site-a"}, "wrong_type"),
    "group-not-a-name": ({"thingName": "odd-5", "thingGroupNames": ["a b"]}, "wrong_type"),
    "version-a-string": ({"thingName": "odd-6", "version": "7"}, "wrong_type"),
    "not-an-object": (["thingName", "x"], "wrong_type"),
    "no-name": ({"thingTypeName": "sensor"}, "missing_field"),
}


@pytest.mark.parametrize("indexed", [True, False], ids=["fleet-indexing", "per-thing"])
@pytest.mark.parametrize("bad", sorted(BAD_THINGS))
def test_a_malformed_listed_thing_is_skipped_and_counted_the_run_goes_on(aws, bad, indexed):
    """Regression: one invalid name or wrong type in a page failed the whole run, every run."""
    registry = aws.registry
    registry.seed(aws.account_id, REGION, 7)
    if indexed:
        registry.set_indexing(aws.account_id, REGION, "REGISTRY")
    record, reason = BAD_THINGS[bad]
    aws.faults.malformed_next_page("SearchIndex" if indexed else "ListThings", record, "things")
    rows = Rows()
    result, events, stats = run(aws, rows)
    assert result.complete and stats.status == "ok" and result.things == 7 and len(rows.docs) == 7
    assert stats.summary()["skipped_records"] == 1 and stats.skipped_reasons == {reason: 1}
    assert f"skipped_reasons={reason}:1" in stats.summary_line()
    assert all(events_model_valid(e.data["thingName"]) for e in events)


def events_model_valid(name):
    from iot_defender import events

    return events.valid_thing_name(name)


@pytest.mark.parametrize("pair", [("invalid-name", "deep-attributes"), ("no-name", "groups-a-string")])
def test_bad_records_on_several_pages_are_each_counted(aws, pair):
    registry = aws.registry
    registry.seed(aws.account_id, REGION, 600)  # two SearchIndex pages: one bad record injected into each
    registry.set_indexing(aws.account_id, REGION, "REGISTRY")
    for bad in pair:
        aws.faults.malformed_next_page("SearchIndex", BAD_THINGS[bad][0], "things")
    rows = Rows()
    result, _events, stats = run(aws, rows)
    assert result.complete and result.things == 600 and stats.malformed == 2
    reasons = [BAD_THINGS[bad][1] for bad in pair]
    assert stats.skipped_reasons == {r: reasons.count(r) for r in reasons}


@pytest.mark.parametrize("first_indexed", [True, False], ids=["index-then-list", "list-then-index"])
def test_falling_back_between_paths_keeps_the_change_digest(aws, first_indexed):
    """Regression: SearchIndex documents carry groups and no version, ListThings entries the reverse; the digest
    mixed them, so every thing looked changed after a fallback and had its links (and groups) read again."""
    registry = aws.registry
    registry.seed(aws.account_id, REGION, 120)
    rows = Rows()
    mode = lambda indexed: registry.set_indexing(aws.account_id, REGION, "REGISTRY" if indexed else "OFF")  # noqa: E731
    mode(first_indexed)
    run(aws, rows)
    mode(not first_indexed)
    aws.requests.clear()
    later = NOW + 60
    result, events, _ = run(aws, rows, now=later)
    due = sum(1 for n in range(120) if inventory.first_due(f"thing-{n:07d}", NOW, 86400.0) <= later)
    assert result.links_refreshed == due
    assert calls(aws, "ListThingPrincipals") == due
    assert calls(aws, "ListThingGroupsForThing") == (due if first_indexed else 0)
    assert len(events) == 120


def test_a_document_listed_twice_is_delivered_once(aws):
    registry = aws.registry
    registry.seed(aws.account_id, REGION, 600)
    registry.set_indexing(aws.account_id, REGION, "REGISTRY")
    # The index moving under the pages: the first page's first thing comes back on the second page too, and a
    # thing is listed twice within one page.
    aws.faults.malformed_next_page("SearchIndex", {"thingName": "thing-0000599"}, "things")
    aws.faults.malformed_next_page("SearchIndex", {"thingName": "thing-0000000"}, "things")
    rows = Rows()
    result, events, stats = run(aws, rows)
    names = [e.data["thingName"] for e in events]
    assert len(names) == len(set(names)) == 600 and result.things == 600
    assert result.duplicates == 2 and stats.duplicates_skipped == 2


@pytest.mark.parametrize("size", [1, 5000, 9000, 30000])
def test_seen_keys_answer_like_a_set(size):
    import random

    rng = random.Random(size)
    seen, truth = inventory.SeenKeys(), set()
    for _ in range(size):
        value = rng.getrandbits(12 if size < 5000 else 64)
        assert seen.add(value) == (value not in truth)
        truth.add(value)
    gone = next(iter(truth))
    seen.discard(gone)
    truth.discard(gone)
    assert list(seen.sorted()) == sorted(truth) and len(seen) == len(truth)


def test_changed_rows_carry_their_certificate_index_rows_and_removed_links(aws):
    """The inventory input keeps iot_defender_certificate_things in step: the library hands the adapter the link rows
    of every row it writes and the keys of links that went away (certificate_index's contract)."""
    from iot_defender import certificate_index

    registry = aws.registry
    registry.seed(aws.account_id, REGION, 5)
    rows = Rows()
    first, _events, _ = run(aws, rows)
    assert len(first.link_rows) == 5 and not first.link_removed
    assert first.link_rows == [link for row in rows.docs.values() for link in certificate_index.rows(row)]
    rd = registry.region(aws.account_id, REGION)
    arn = rd.thing_principals["thing-0000003"][0]
    with registry.lock:
        rd.thing_principals["thing-0000003"].remove(arn)
        rd.things["thing-0000003"]["attributes"] = {"site": "moved"}
        rd.changed()
    result, _events, _ = run(aws, rows, now=NOW + 60)
    cid = arn.rsplit("/", 1)[-1]
    assert result.link_removed == [certificate_index.link_key(aws.account_id, REGION, cid, "thing-0000003")]
    assert not any(link["thing_name"] == "thing-0000003" for link in result.link_rows)
    assert len(result.rows) == 0  # drained by run(): every changed row was handed over


@pytest.mark.parametrize("indexed", [True, False], ids=["fleet-indexing", "per-thing"])
def test_rows_with_the_digest_of_the_previous_version_are_not_changed_things(aws, indexed):
    """After the upgrade to one digest, a row written by the previous version (its path's digest) is not a changed
    thing: its links are not all re-read at once."""
    registry = aws.registry
    registry.seed(aws.account_id, REGION, 50)
    if indexed:
        registry.set_indexing(aws.account_id, REGION, "REGISTRY")
    rows = Rows()
    run(aws, rows)
    rd = registry.region(aws.account_id, REGION)
    for row in rows.docs.values():
        thing = dict(rd.things[row["thing_name"]])
        listed = {"thingTypeName": thing.get("thingTypeName"), "attributes": thing["attributes"]}
        listed.update({"thingGroupNames": thing["groups"]} if indexed else {"version": thing["version"]})
        row["registry_digest"] = inventory.legacy_registry_digest(listed)
    aws.requests.clear()
    later = NOW + 60
    result, _events, _ = run(aws, rows, now=later)
    due = sum(1 for n in range(50) if inventory.first_due(f"thing-{n:07d}", NOW, 86400.0) <= later)
    assert result.links_refreshed == due == calls(aws, "ListThingPrincipals")
