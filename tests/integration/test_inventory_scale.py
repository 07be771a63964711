"""The built inventory input against a KV store that enforces splunkd's limits (50,000 rows a query, 1,000
documents a batch save) and a registry whose things and certificates change between runs."""

from __future__ import annotations

import contextlib

from tests.harness import runner
from tests.harness.splunkd.kvstore import KVError

INVENTORY = "iot_defender_inventory"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
COLLECTION = "iot_thing_inventory"


def _rows(stack, account=ACCOUNT_ID):
    return [r for r in stack.splunkd.kv_collection(COLLECTION) if r.get("account_id") == account]


def _run(stack, params=None):
    result = runner.run_input(
        stack.home,
        INVENTORY,
        {"i": {"account": "prod", **(params or {})}},
        standin=stack.splunkd,
        env=stack.script_env(),
    )
    assert result.exit_code == 0, result.stderr
    return result


def test_stale_rows_beyond_the_50k_query_cap_are_all_deleted(stack):
    stack.aws.registry.seed(ACCOUNT_ID, REGION, 25)
    stack.aws.registry.set_indexing(ACCOUNT_ID, REGION, "REGISTRY")
    kv = stack.splunkd.kv
    app = stack.home.app_name
    with contextlib.suppress(KVError):  # already there
        kv.create_collection(app, COLLECTION)
    # 60,000 rows of things deleted long ago, plus rows of another region and account that must stay.
    for start in range(0, 60_000, 1000):
        kv.batch_save(
            app,
            COLLECTION,
            [
                {"_key": f"{ACCOUNT_ID}:{REGION}:old-{i:06d}", "account_id": ACCOUNT_ID, "region": REGION}
                for i in range(start, start + 1000)
            ],
        )
    kv.batch_save(
        app, COLLECTION, [{"_key": f"{ACCOUNT_ID}:eu-west-1:x", "account_id": ACCOUNT_ID, "region": "eu-west-1"}]
    )
    kv.batch_save(
        app, COLLECTION, [{"_key": f"999999999999:{REGION}:y", "account_id": "999999999999", "region": REGION}]
    )
    assert len(kv.query(app, COLLECTION)) == 50_000  # the cap the stand-in enforces, as splunkd does

    result = _run(stack)
    things = result.by_sourcetype("aws:iot:thing")
    assert len(things) == 25
    mine = [r for r in _rows(stack) if r["region"] == REGION]
    assert sorted(r["thing_name"] for r in mine) == [f"thing-{i:07d}" for i in range(25)]
    assert len(_rows(stack)) == 26 and len(_rows(stack, "999999999999")) == 1
    key_reads = stack.splunkd.requests_to(rf"storage/collections/data/{COLLECTION}$", method="GET")
    assert len(key_reads) >= 7  # 60,025 keys in pages of 10,000
    summary = [line for line in runner.collect_logs(stack.home) if "inventory lookup" in line]
    assert summary and "rows_deleted=60000" in summary[-1] and "path=fleet_indexing" in summary[-1]


def test_thing_deleted_between_runs_loses_its_row_and_unchanged_rows_are_not_rewritten(stack):
    stack.aws.registry.seed(ACCOUNT_ID, REGION, 30)
    _run(stack)
    assert len(_rows(stack)) == 30
    saves = len(stack.splunkd.requests_to(rf"storage/collections/data/{COLLECTION}/batch_save"))
    stack.aws.registry.delete_thing(ACCOUNT_ID, REGION, "thing-0000004")
    result = _run(stack)
    assert len(result.by_sourcetype("aws:iot:thing")) == 29
    assert "thing-0000004" not in {r["thing_name"] for r in _rows(stack)} and len(_rows(stack)) == 29
    assert len(stack.splunkd.requests_to(rf"storage/collections/data/{COLLECTION}/batch_save")) == saves
