"""The inventory input prunes the detections' baseline lookups (iot_defender.baselines): after a complete run, rows
of its account and region not seen for the retention macro's period (plus a day) are deleted by one KV query per
collection; fresher rows, other accounts' and regions' rows stay; an unreadable or unknown macro prunes nothing."""

from __future__ import annotations

import contextlib
import time

import pytest

from iot_defender import baselines
from tests.harness import runner
from tests.harness.splunkd.kvstore import KVError
from tests.integration.test_inventory_scale import _run

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
DAY = 86400


def _seed(stack, ages_days):
    kv, app = stack.splunkd.kv, stack.home.app_name
    now = time.time()
    for name in baselines.COLLECTIONS:
        with contextlib.suppress(KVError):
            kv.create_collection(app, name)
        rows = []
        for age in ages_days:
            for account, region in ((ACCOUNT_ID, REGION), (ACCOUNT_ID, "eu-west-1"), ("999999999999", REGION)):
                rows.append(
                    {
                        "_key": f"{account}:{region}:thing:{age}",
                        "account_id": account,
                        "region": region,
                        "last_seen": now - age * DAY,
                    }
                )
        kv.batch_save(app, name, rows)


def _ages(stack, name, account=ACCOUNT_ID, region=REGION):
    return sorted(
        int(r["_key"].rsplit(":", 1)[1])
        for r in stack.splunkd.kv_collection(name)
        if r["account_id"] == account and r["region"] == region
    )


def _summary(stack):
    return [line for line in runner.collect_logs(stack.home) if "inventory lookup" in line][-1]


def test_rows_past_the_retention_are_deleted_for_the_run_scope_only(stack):
    stack.aws.registry.seed(ACCOUNT_ID, REGION, 5)
    _seed(stack, [0, 1, 29, 30, 32, 45, 400])
    _run(stack)
    for name in baselines.COLLECTIONS:
        # 30 days by default (-30d@d) plus a day's margin: 32 days and older go, 30 stays (the detections still
        # count a row as seen back to the snapped cutoff).
        assert _ages(stack, name) == [0, 1, 29, 30], name
        assert _ages(stack, name, region="eu-west-1") == [0, 1, 29, 30, 32, 45, 400], name
        assert _ages(stack, name, account="999999999999") == [0, 1, 29, 30, 32, 45, 400], name
    assert "baselines_pruned=ok" in _summary(stack)


def test_a_local_macro_override_moves_the_pruning(stack):
    stack.aws.registry.seed(ACCOUNT_ID, REGION, 5)
    stack.splunkd.set_conf("macros", baselines.RETENTION_MACRO, {"definition": 'relative_time(now(), "-90d@d")'})
    _seed(stack, [0, 45, 89, 95, 400])
    _run(stack)
    for name in baselines.COLLECTIONS:
        assert _ages(stack, name) == [0, 45, 89], name


@pytest.mark.parametrize(
    "definition", ['relative_time(now(), "-30h")', "now() - 86400", "", 'relative_time(now(), "-0d")']
)
def test_a_macro_of_another_form_prunes_nothing_and_says_so(stack, definition):
    stack.aws.registry.seed(ACCOUNT_ID, REGION, 5)
    stack.splunkd.set_conf("macros", baselines.RETENTION_MACRO, {"definition": definition})
    _seed(stack, [0, 400])
    _run(stack)
    for name in baselines.COLLECTIONS:
        assert _ages(stack, name) == [0, 400], name
    assert "baselines_pruned=skipped" in _summary(stack)
    warnings = [line for line in runner.collect_logs(stack.home) if "baseline lookups not pruned" in line]
    assert warnings and all(definition not in line or not definition for line in warnings)
