"""The emulator's fleet-scale registry through real boto3 clients: SearchIndex / ListCertificates paging and
ordering, fleet indexing on and off, query terms, per-thing reads and 404s, quotas; every answer checked against
botocore's ``iot`` model (validate_responses is on)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.harness.aws import REGISTRY_OPERATIONS, REGISTRY_QUOTAS_TPS, LoopbackAWS

REGION = "us-east-1"
ONE_SHOT = {"total_max_attempts": 1, "mode": "standard"}


@pytest.fixture(scope="module")
def server():
    with LoopbackAWS(seed=5) as aws:
        yield aws


@pytest.fixture()
def aws(server):
    server.reset()
    yield server
    assert not server.internal_errors, server.internal_errors


def _code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def test_search_index_pages_of_500_only_where_the_index_is_on(aws):
    aws.registry.seed(aws.account_id, REGION, 1203)
    iot = aws.client("iot", retries=ONE_SHOT)
    with pytest.raises(ClientError) as off:
        iot.search_index(queryString="thingName:*")
    assert _code(off.value) == "ResourceNotFoundException"
    assert iot.get_indexing_configuration()["thingIndexingConfiguration"]["thingIndexingMode"] == "OFF"
    aws.registry.set_indexing(aws.account_id, REGION, "REGISTRY", "VIOLATIONS", "STATUS")
    names, token, pages = [], None, 0
    while True:
        answer = iot.search_index(queryString="thingName:*", maxResults=500, **({"nextToken": token} if token else {}))
        names += [t["thingName"] for t in answer["things"]]
        pages += 1
        token = answer.get("nextToken")
        if not token:
            break
    assert pages == 3 and names == sorted(names) and len(set(names)) == 1203
    doc = iot.search_index(queryString="thingName:thing-0000006")["things"][0]
    assert doc["thingGroupNames"] == ["site-a"] and doc["connectivity"]["connected"] is True
    assert json.loads(doc["deviceDefender"])["violationCount"] == 0
    with pytest.raises(ClientError) as big:
        iot.search_index(queryString="thingName:*", maxResults=501)
    assert _code(big.value) == "InvalidRequestException"
    with pytest.raises(ClientError) as bad:
        iot.search_index(queryString="shadow.reported.x:1")
    assert _code(bad.value) == "InvalidQueryException"
    gateways = iot.search_index(queryString="thingTypeName:gateway AND attributes.site:site-a", maxResults=500)
    assert {t["thingTypeName"] for t in gateways["things"]} == {"gateway"}
    assert {t["attributes"]["site"] for t in gateways["things"]} == {"site-a"}


@pytest.mark.parametrize("ascending", [True, False])
def test_list_certificates_pages_every_certificate_once_in_creation_order(aws, ascending):
    aws.registry.seed(aws.account_id, REGION, 620)
    iot = aws.client("iot")
    pages = list(
        iot.get_paginator("list_certificates").paginate(ascendingOrder=ascending, PaginationConfig={"PageSize": 250})
    )
    certs = [c for p in pages for c in p["certificates"]]
    assert len(pages) == 3 and len({c["certificateId"] for c in certs}) == 620
    created = [c["creationDate"] for c in certs]
    assert created == sorted(created, reverse=not ascending)
    assert {c["status"] for c in certs} == {"ACTIVE", "INACTIVE", "REVOKED"}


def test_per_thing_reads_and_404s(aws):
    aws.registry.seed(aws.account_id, REGION, 3)
    iot = aws.client("iot", retries=ONE_SHOT)
    principal = iot.list_thing_principals(thingName="thing-0000001")["principals"][0]
    assert iot.list_principal_things(principal=principal)["things"] == ["thing-0000001"]
    groups = iot.list_thing_groups_for_thing(thingName="thing-0000001")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["site-b"]
    cid = principal.rsplit("/", 1)[-1]
    assert iot.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "ACTIVE"
    listed = [t["thingName"] for p in iot.get_paginator("list_things").paginate() for t in p["things"]]
    assert listed == ["thing-0000000", "thing-0000001", "thing-0000002"]
    aws.registry.delete_thing(aws.account_id, REGION, "thing-0000001")
    aws.registry.delete_certificate(aws.account_id, REGION, cid)
    for call in (
        lambda: iot.list_thing_principals(thingName="thing-0000001"),
        lambda: iot.list_thing_groups_for_thing(thingName="thing-0000001"),
        lambda: iot.describe_certificate(certificateId=cid),
    ):
        with pytest.raises(ClientError) as gone:
            call()
        assert _code(gone.value) == "ResourceNotFoundException"


def test_accounts_and_regions_the_store_does_not_hold_stay_with_moto(aws):
    aws.registry.seed(aws.account_id, "eu-west-1", 2)
    iot = aws.client("iot")
    iot.create_thing(thingName="moto-thing")
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["moto-thing"]
    records = aws.requests.filter(operation="ListThings")
    assert records and not records[-1].emulated
    eu = aws.client("iot", region="eu-west-1")
    assert len(eu.list_things()["things"]) == 2 and aws.requests.filter(operation="ListThings")[-1].emulated


def test_registry_quotas_throttle_a_client_that_does_not_pace_itself(aws):
    from iot_defender import inventory

    assert set(REGISTRY_QUOTAS_TPS) <= REGISTRY_OPERATIONS | {"ListThings"}
    # the add-on paces itself by the same table the emulator enforces
    assert {op: float(tps) for op, tps in REGISTRY_QUOTAS_TPS.items() if op in inventory.QUOTAS_TPS} == {
        op: tps for op, tps in inventory.QUOTAS_TPS.items()
    }
    aws.registry.seed(aws.account_id, REGION, 5)
    aws.faults.clock = lambda: 0.0  # time stands still: the bucket holds its burst (10) and never refills
    aws.faults.enable_registry_quotas()
    iot = aws.client("iot", retries=ONE_SHOT)
    codes = []
    for _ in range(25):
        try:
            iot.list_thing_principals(thingName="thing-0000002")
            codes.append("ok")
        except ClientError as exc:
            codes.append(_code(exc))
    assert codes == ["ok"] * 10 + ["ThrottlingException"] * 15
