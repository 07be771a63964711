"""splunkd's KV store limits in the stand-in (a query answers at most 50,000 rows, a batch save takes at most
1,000 documents), and the inventory's KV adapter reading, writing and deleting within them over HTTP."""

from __future__ import annotations

import json

import iot_defender_kv
import pytest
from splunklib import binding, client

from iot_defender import inventory
from tests.harness.splunkd import APP_ID, SplunkdStandIn
from tests.harness.splunkd.kvstore import KVError, KVStore

APP = "TA-test"


def _filled(n: int) -> KVStore:
    kv = KVStore()
    kv.create_collection(APP, "rows")
    for start in range(0, n, 1000):
        kv.batch_save(APP, "rows", [{"_key": f"k{i:06d}", "n": i} for i in range(start, min(n, start + 1000))])
    return kv


def test_a_query_answers_at_most_50000_rows_whatever_the_limit():
    kv = _filled(50_500)
    assert len(kv.query(APP, "rows")) == 50_000
    assert len(kv.query(APP, "rows", limit=60_000)) == 50_000
    assert len(kv.query(APP, "rows", limit=10)) == 10
    assert len(kv.query(APP, "rows", sort="_key", skip=50_000)) == 500
    page = kv.query(APP, "rows", {"_key": {"$gt": "k049999"}}, sort="_key", fields="_key")
    assert [d["_key"] for d in page[:2]] == ["k050000", "k050001"] and len(page) == 500


def test_batch_save_refuses_more_than_1000_documents():
    kv = _filled(0)
    with pytest.raises(KVError) as too_many:
        kv.batch_save(APP, "rows", [{"_key": str(i)} for i in range(1001)])
    assert too_many.value.status == 400 and "max_documents_per_batch_save=1000" in too_many.value.text


def test_key_queries_answer_as_the_general_matcher_does():
    kv = _filled(30)
    keys = ["k000003", "k000029", "missing", "k000003"]
    fast = kv.query(APP, "rows", {"$or": [{"_key": k} for k in keys]})
    assert [d["_key"] for d in fast] == ["k000003", "k000029"]
    slow = kv.query(APP, "rows", {"$or": [{"_key": k} for k in keys], "n": {"$gte": 0}})
    assert sorted(d["_key"] for d in slow) == ["k000003", "k000029"]
    assert kv.delete_where(APP, "rows", {"$or": [{"_key": k} for k in keys]}) == 2


@pytest.fixture
def splunkd():
    with SplunkdStandIn() as standin:
        yield standin


def test_inventory_rows_read_written_and_deleted_in_pages_over_http(splunkd):
    service = client.connect(
        scheme="http", host="127.0.0.1", port=splunkd.port, app=APP_ID, owner="nobody", token=splunkd.session_key
    )
    service.kvstore.create("iot_thing_inventory")
    data = service.kvstore["iot_thing_inventory"].data
    calls = []

    def retry(operation, what):
        calls.append(what)
        return operation()

    rows = iot_defender_kv.KvRows(data, retry)
    docs = [{"_key": f"a:r:t{i:05d}", "account_id": "a", "region": "r", "digest": str(i)} for i in range(2500)]
    rows.write([*docs, {"_key": "b:r:x", "account_id": "b", "region": "r"}])
    assert calls.count("an inventory write") == 3  # 2,501 rows in batches of 1,000
    known = rows.known(["a:r:t00007", "a:r:t02499", "a:r:nope"])
    assert {k: v["digest"] for k, v in known.items()} == {"a:r:t00007": "7", "a:r:t02499": "2499"}
    iot_defender_kv.KEY_PAGE, saved = 1000, iot_defender_kv.KEY_PAGE
    try:
        keys = list(rows.keys("a", "r"))
    finally:
        iot_defender_kv.KEY_PAGE = saved
    assert keys == sorted(d["_key"] for d in docs) and calls.count("an inventory key read") == 4  # + the empty one
    splunkd.kv.max_rows_per_query = 300  # an admin's lower limit: still every key, in shorter pages
    assert list(rows.keys("a", "r")) == keys
    result = inventory.InventoryResult()
    for i in range(0, 2500, 2):
        result.seen.append(inventory.fingerprint(f"a:r:t{i:05d}"))
    assert iot_defender_kv.delete_stale(rows, result, account_id="a", region="r") == 1250
    left = splunkd.kv_collection("iot_thing_inventory")
    assert len(left) == 1251 and {"b:r:x", "a:r:t00000"} <= {d["_key"] for d in left}
    with pytest.raises(binding.HTTPError):
        data.batch_save(*[{"_key": str(i)} for i in range(1001)])
    assert json.loads(json.dumps(known))  # rows come back as plain JSON
