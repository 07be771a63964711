"""A thing as an ES asset (iot_defender.assets): owner, priority, business unit and location of one inventory row."""

from __future__ import annotations

import json

import pytest

from iot_defender import assets
from iot_defender.assets import AssetConfigError, AttributeMap, MalformedInventoryRow, PriorityRules


def _row(name="pump-station-001", thing_type="PumpStation", groups="line-a", **attributes):
    return {
        "thing_name": name,
        "thing_type": thing_type,
        "thing_groups": groups,
        "attributes": json.dumps(attributes),
        "account_id": "111122223333",
        "region": "eu-west-1",
    }


RULES = PriorityRules.from_rows(
    [
        {"scope": "default", "priority": "low"},
        {"scope": "thing_group:protected-critical", "priority": "critical"},
        {"scope": "thing_type:RtuGateway", "priority": "medium"},
        {"scope": "attribute:criticality=high", "priority": "high"},
    ]
)


def test_owner_bunit_category_from_the_default_mapping():
    asset = assets.asset_of(_row(owner="ot-team-north", site="line-a"), RULES)
    assert (asset.nt_host, asset.owner, asset.bunit) == ("pump-station-001", "ot-team-north", "line-a")
    assert asset.category == ("iot", "PumpStation") and asset.priority == "low" and asset.is_expected == "false"
    row = asset.es_row()
    assert list(row) == list(assets.ES_ASSET_FIELDS)
    assert row["category"] == "iot|PumpStation" and row["ip"] == "" and row["pci_domain"] == ""


def test_highest_matching_rule_wins_and_no_rule_is_unknown():
    assert assets.asset_of(_row(groups="line-a,protected-critical"), RULES).priority == "critical"
    assert assets.asset_of(_row(thing_type="RtuGateway"), RULES).priority == "medium"
    mapping = AttributeMap(priority_attributes=("criticality",))
    high = assets.asset_of(_row(thing_type="RtuGateway", criticality="high"), RULES, mapping)
    assert high.priority == "high" and high.is_expected == "true"
    assert assets.asset_of(_row(criticality="high"), RULES).priority == "low"  # attribute not mapped by default
    assert assets.asset_of(_row(), PriorityRules()).priority == "unknown"


def test_mapping_picks_the_first_attribute_present_and_checks_coordinates():
    mapping = AttributeMap(owner=("team", "owner"), city=("city",), country=("country",), lat=("lat",), long=("lon",))
    asset = assets.asset_of(
        _row(owner="a", team="b", city="Lyon", country="FR", lat="45.76", lon="4.83"), RULES, mapping
    )
    assert (asset.owner, asset.city, asset.country, asset.lat, asset.long) == ("b", "Lyon", "FR", "45.76", "4.83")
    for lat, lon, kept in (("91", "4", ("", "4")), ("north", "east", ("", "")), ("nan", "inf", ("", ""))):
        bad = assets.asset_of(_row(lat=lat, lon=lon), RULES, mapping)
        assert (bad.lat, bad.long) == kept, (lat, lon)
    assert assets.asset_of(_row(lat="-90", lon="-181"), RULES, mapping).long == ""


def test_hostile_attribute_values_cannot_add_es_values():
    asset = assets.asset_of(_row(owner="ot|admin\nroot", site="a|b"), RULES)
    assert asset.owner == "otadminroot" and asset.bunit == "ab"
    assert all("|" not in v for k, v in asset.es_row().items() if k not in assets.ES_MULTIVALUE)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"scope": "default", "priority": "urgent"}], "row 2: priority must be one of"),
        ([{"scope": "default", "priority": "unknown"}], "row 2: priority must be one of"),
        ([{"scope": "default", "priority": "low"}, {"scope": "group:x", "priority": "high"}], "row 3: scope"),
        ([{"scope": "thing_type:", "priority": "high"}], "row 2: scope"),
    ],
)
def test_a_bad_rule_is_refused_with_its_row(rows, message):
    with pytest.raises(AssetConfigError, match=message):
        PriorityRules.from_rows(rows)


def test_malformed_rows_are_refused_clearly():
    with pytest.raises(MalformedInventoryRow, match="thing_name"):
        assets.asset_of({"thing_name": ""}, RULES)
    with pytest.raises(MalformedInventoryRow, match="not JSON"):
        assets.asset_of({"thing_name": "t", "attributes": "{oops"}, RULES)
    with pytest.raises(MalformedInventoryRow, match="JSON object"):
        assets.asset_of({"thing_name": "t", "attributes": "[1]"}, RULES)
    assert assets.asset_of({"thing_name": "t", "attributes": {"owner": "x"}}, RULES).owner == "x"


def test_response_fields_of_a_known_and_an_unknown_thing():
    asset = assets.asset_of(_row(owner="ot-team-south", site="line-b"), RULES)
    assert assets.response_fields(asset) == {"owner": "ot-team-south", "priority": "low", "bunit": "line-b"}
    assert assets.response_fields(None) == {"owner": "", "priority": "unknown", "bunit": ""}


def test_a_kv_asset_row_reads_back_and_a_pruned_one_is_none():
    asset = assets.asset_of(_row(groups="protected-critical", owner="ot-team-east", site="line-c"), RULES)
    row = {**asset.es_row(), "published": 1, "last_seen": 1796083200, "_key": assets.asset_key("1", "r", "t")}
    assert assets.from_kv_row(row) == asset
    assert row["_key"] == "1:r:t"
    assert assets.from_kv_row({**row, "published": 0}) is None
    assert assets.from_kv_row({**row, "priority": "urgent"}) is None
    assert assets.from_kv_row(None) is None and assets.from_kv_row({}) is None
