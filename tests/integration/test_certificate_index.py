"""The inventory input keeps the certificate -> thing index (``iot_defender_certificate_things``) in step with the
registry, through the splunkd stand-in's KV store (which enforces max_rows_per_query and
max_documents_per_batch_save as splunkd does): links written with their thing's row, links that went away deleted,
a deleted thing's links deleted, a row written before the index existed given its links."""

from __future__ import annotations

from iot_defender import certificate_index
from tests.harness import runner
from tests.integration.test_inventory_scale import _run

INVENTORY = "iot_defender_inventory"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
LINKS = certificate_index.COLLECTION


def _links(stack):
    return {
        (r["certificate_id"], r["thing_name"]): r
        for r in stack.splunkd.kv_collection(LINKS)
        if r.get("account_id") == ACCOUNT_ID and r.get("region") == REGION
    }


def _truth(stack):
    """(certificate id, thing) of every link the registry holds to a certificate of the account."""
    registry = stack.aws.registry
    rd = registry.region(ACCOUNT_ID, REGION)
    with registry.lock:
        pairs = set()
        for thing, principals in rd.thing_principals.items():
            if thing not in rd.things:
                continue
            for arn in principals:
                cid = arn.rsplit("/", 1)[-1]
                if ":cert/" in arn and cid in rd.certs:
                    pairs.add((cid, thing))
        return pairs


def _detach(stack, thing, arn):
    registry = stack.aws.registry
    rd = registry.region(ACCOUNT_ID, REGION)
    with registry.lock:
        rd.thing_principals[thing].remove(arn)
        rd.principal_things[arn].remove(thing)
        rd.things[thing]["attributes"] = dict(rd.things[thing]["attributes"], changed="1")  # makes its links due
        rd.changed()


def test_links_follow_the_registry_through_changes_and_deletes(stack):
    registry = stack.aws.registry
    registry.seed(ACCOUNT_ID, REGION, 30)
    # A certificate shared by two things (cloned devices): one row per thing.
    shared = registry.region(ACCOUNT_ID, REGION).thing_principals["thing-0000001"][0]
    registry.attach(ACCOUNT_ID, REGION, "thing-0000002", shared)
    _run(stack)
    links = _links(stack)
    assert set(links) == _truth(stack) and len(links) >= 31
    cid = shared.rsplit("/", 1)[-1]
    assert {(cid, "thing-0000001"), (cid, "thing-0000002")} <= set(links)
    row = links[(cid, "thing-0000002")]
    assert row["_key"] == certificate_index.link_key(ACCOUNT_ID, REGION, cid, "thing-0000002")
    assert row["certificate_status"] in ("ACTIVE", "INACTIVE", "REVOKED")

    # thing-0000002 loses the shared certificate; thing-0000004 is deleted; nothing else changes.
    saves = len(stack.splunkd.requests_to(rf"storage/collections/data/{LINKS}/batch_save"))
    _detach(stack, "thing-0000002", shared)
    registry.delete_thing(ACCOUNT_ID, REGION, "thing-0000004")
    result = _run(stack)
    links = _links(stack)
    assert set(links) == _truth(stack)
    assert (cid, "thing-0000002") not in links and (cid, "thing-0000001") in links
    assert not any(thing == "thing-0000004" for _c, thing in links)
    summary = [line for line in runner.collect_logs(stack.home) if "inventory lookup" in line][-1]
    assert "links_deleted=1" in summary and "link_things_deleted=1" in summary, summary
    # Only the changed thing's links were saved again (one batch), not the fleet's.
    assert len(stack.splunkd.requests_to(rf"storage/collections/data/{LINKS}/batch_save")) == saves + 1
    assert result.by_sourcetype("aws:iot:thing")


def test_a_page_with_more_links_than_one_batch_save_is_split(stack):
    """500 things a SearchIndex page, 3 certificates each: 1,500 link rows, above max_documents_per_batch_save."""
    registry = stack.aws.registry
    registry.seed(ACCOUNT_ID, REGION, 500, start=100)
    registry.set_indexing(ACCOUNT_ID, REGION, "REGISTRY")
    for i in range(100, 600):
        for extra in range(2):
            cid = f"{i:060d}{extra:04d}"
            arn = registry.put_certificate(ACCOUNT_ID, REGION, cid, "ACTIVE", created=1.7e9)
            registry.attach(ACCOUNT_ID, REGION, f"thing-{i:07d}", arn)
    _run(stack)
    links = _links(stack)
    assert set(links) == _truth(stack) and len(links) >= 1500


def test_rows_written_before_the_index_existed_get_their_links(stack):
    """An upgrade: inventory rows in place, no link rows. The row digest covers the index format, so each row is
    written once more, with its links; the run after that writes nothing."""
    registry = stack.aws.registry
    registry.seed(ACCOUNT_ID, REGION, 20)
    _run(stack)
    kv = stack.splunkd.kv
    app = stack.home.app_name
    kv.delete_where(app, LINKS, None)
    for row in stack.splunkd.kv_collection("iot_thing_inventory"):
        kv.update(app, "iot_thing_inventory", row["_key"], dict(row, digest="written-by-an-older-version"))
    assert not _links(stack)
    _run(stack)
    assert set(_links(stack)) == _truth(stack)
    saves = len(stack.splunkd.requests_to(rf"storage/collections/data/{LINKS}/batch_save"))
    _run(stack)
    assert len(stack.splunkd.requests_to(rf"storage/collections/data/{LINKS}/batch_save")) == saves
