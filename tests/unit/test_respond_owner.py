"""Issue 18, owner on every response: OpsItems, Incident Manager incidents and SNS messages carry the thing's owner,
asset priority and business unit (hostile attribute text neutralised), an owner -> SNS topic route tells the owning
team once per incident (deduplicated like the SNS destination), and the Splunk adapter's owner look-up falls back
from the asset row to the inventory row. Loopback AWS (tests/harness/aws); every call's parameters observed."""

from __future__ import annotations

import inspect
import json
from typing import Any, Dict, List, Optional, Tuple

import pytest

from iot_defender import assets
from iot_defender.aws import Account, AwsSession
from iot_defender.respond import IncidentOptions, MemorySuppressionStore, RateLimiter, Responder
from iot_defender_respond_splunk import OwnerLookup, owner_fields, owner_topics
from tests.harness.aws import LoopbackAWS
from tests.unit import test_respond_concurrency as concurrency
from tests.unit.test_respond_support import run_context

aws = concurrency.aws  # the fixture: a loopback AWS with thing sensor-7
DownStore = concurrency.DownStore
VIOLATION = "8a1b0c2d3e4f56789a0b1c2d3e4f5a6b"
ROW = {"thing_name": "sensor-7", "violationId": VIOLATION, "behavior_name": "AuthFailures"}
OWNER = {"owner": "ot-team-north", "priority": "critical", "bunit": "line-a"}
# what a device's owner could write into the attributes the owner comes from
HOSTILE = {"owner": "[click](https://evil.example)\u202e\n# pwned", "priority": "high", "bunit": "`a`|<b>"}


def responder(aws: LoopbackAWS, calls: List[Tuple[str, str, Dict[str, Any]]], **kw: Any) -> Responder:
    session = AwsSession(Account(name="t", access_key_id=aws.access_key, secret_access_key=aws.secret_key))
    accepted = inspect.signature(Responder.__init__).parameters
    made = Responder(
        session,
        account_id=aws.account_id,
        limiter=RateLimiter({}),
        **{k: v for k, v in kw.items() if k in accepted},
    )
    made.calls.observers.append(lambda service, region, op, params: calls.append((service, op, dict(params))))
    return made


def start(aws, options, owner=OWNER, sid="alert-1", **kw):
    calls: List[Tuple[str, str, Dict[str, Any]]] = []
    result = responder(aws, calls, owner_of=lambda region, thing: dict(owner), **kw).start_incident(
        "sensor-7", aws.region, ROW, options, run_context(sid), violation_id=VIOLATION
    )
    return result, calls


def sent(calls, op: str) -> List[Dict[str, Any]]:
    return [params for _service, name, params in calls if name == op]


def test_an_ops_item_carries_the_owner_searchable_and_in_its_description(aws):
    result, calls = start(aws, IncidentOptions(destination="opscenter"))
    assert result.outcome == "done", result.message
    (request,) = sent(calls, "CreateOpsItem")
    data = request["OperationalData"]
    assert {k: data[k] for k in ("iot_owner", "iot_asset_priority", "iot_business_unit")} == {
        "iot_owner": {"Value": "ot-team-north", "Type": "SearchableString"},
        "iot_asset_priority": {"Value": "critical", "Type": "SearchableString"},
        "iot_business_unit": {"Value": "line-a", "Type": "SearchableString"},
    }
    assert "- Owner: owner ot\\-team\\-north, asset priority critical, business unit line\\-a" in request["Description"]
    stored = aws.opsitems.ops_items(aws.account_id, aws.region)[0]
    assert stored["OperationalData"]["iot_owner"]["Value"] == "ot-team-north"


def test_an_unknown_owner_adds_no_empty_keys(aws):
    result, calls = start(aws, IncidentOptions(destination="opscenter"), owner=assets.response_fields(None))
    assert result.outcome == "done", result.message
    (request,) = sent(calls, "CreateOpsItem")
    assert not {"iot_owner", "iot_asset_priority", "iot_business_unit"} & set(request["OperationalData"])
    assert "Owner:" not in request["Description"]


def test_hostile_owner_text_is_neutralised_everywhere(aws):
    topic = aws.client("sns").create_topic(Name="iot-incidents.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    _, ops = start(aws, IncidentOptions(destination="opscenter"), owner=HOSTILE)
    _, sns = start(aws, IncidentOptions(destination="sns", sns_topic_arn=topic), owner=HOSTILE)
    (request,) = sent(ops, "CreateOpsItem")
    (publish,) = sent(sns, "Publish")
    owner_texts = [
        request["OperationalData"]["iot_owner"]["Value"],
        request["Description"].split("- Owner: ")[1].split("\n")[0],
        json.loads(publish["Message"])["owner"],
        publish["MessageAttributes"]["owner"]["StringValue"],
    ]
    for text in owner_texts:
        assert "\u202e" not in text and "\n" not in text and "](" not in text and "https://" not in text, text
    assert "<" not in request["OperationalData"]["iot_business_unit"]["Value"]
    assert "\n#" not in request["Description"]  # no heading injected into the markdown


def test_an_sns_message_carries_the_owner_and_an_owner_attribute_for_filter_policies(aws):
    topic = aws.client("sns").create_topic(Name="iot-incidents")["TopicArn"]
    options = IncidentOptions(destination="sns", sns_topic_arn=topic)
    result, calls = start(aws, options, store=MemorySuppressionStore(), dedup_required=True)
    assert result.outcome == "done", result.message
    (publish,) = sent(calls, "Publish")
    message = json.loads(publish["Message"])
    assert (message["owner"], message["asset_priority"], message["business_unit"]) == (
        "ot-team-north",
        "critical",
        "line-a",
    )
    assert publish["MessageAttributes"]["owner"] == {"DataType": "String", "StringValue": "ot-team-north"}


def test_an_incident_manager_incident_carries_the_owner_in_its_raw_data(aws):
    plan = aws.incidents.add_response_plan("iot-plan", account_id=aws.account_id)
    result, calls = start(aws, IncidentOptions(destination="incident_manager", response_plan_arn=plan))
    assert result.outcome == "done", result.message
    (request,) = sent(calls, "StartIncident")
    raw = json.loads(request["triggerDetails"]["rawData"])
    assert (raw["iot_owner"], raw["iot_asset_priority"], raw["iot_business_unit"]) == (
        "ot-team-north",
        "critical",
        "line-a",
    )
    assert raw["behavior_name"] == "AuthFailures"  # the row is still there


def test_a_failing_owner_lookup_never_stops_the_incident(aws):
    def broken(region, thing):
        raise ConnectionError("kvstore down")

    calls: List[Tuple[str, str, Dict[str, Any]]] = []
    result = responder(aws, calls, owner_of=broken).start_incident(
        "sensor-7", aws.region, ROW, IncidentOptions(destination="opscenter"), run_context(), violation_id=VIOLATION
    )
    assert result.outcome == "done" and "failed" in result.details["owner_lookup"], result.details


# ------------------------------------------------------------------ owner -> topic routing


def owner_topic(aws, name="ot-team-north-alerts") -> str:
    return aws.client("sns").create_topic(Name=name)["TopicArn"]


def test_the_owning_team_is_told_once_per_ops_item(aws):
    team = owner_topic(aws)
    store = MemorySuppressionStore()
    routes = {"ot-team-north": team}
    options = IncidentOptions(destination="opscenter")
    first, calls = start(aws, options, store=store, dedup_required=True, owner_topics=routes)
    again, calls_again = start(aws, options, sid="alert-2", store=store, dedup_required=True, owner_topics=routes)
    assert (first.outcome, again.outcome) == ("done", "already-in-state")
    (publish,) = sent(calls, "Publish")
    assert publish["TopicArn"] == team and json.loads(publish["Message"])["owner"] == "ot-team-north"
    assert sent(calls_again, "Publish") == []  # the OpsItem existed: no second message
    assert first.details["owner_notification"] == f"published to {team}"


def test_a_replayed_alert_tells_the_owning_team_once(aws):
    team = owner_topic(aws)
    plan = aws.incidents.add_response_plan("iot-plan", account_id=aws.account_id)
    options = IncidentOptions(destination="incident_manager", response_plan_arn=plan)
    store = MemorySuppressionStore()
    publishes = 0
    for _ in range(2):  # the same alert run twice: Incident Manager's client token makes it one incident
        _, calls = start(aws, options, store=store, dedup_required=True, owner_topics={"ot-team-north": team})
        publishes += len(sent(calls, "Publish"))
    assert publishes == 1


def test_without_the_kv_store_a_standard_owner_topic_is_not_published_to(aws):
    team = owner_topic(aws)
    result, calls = start(
        aws,
        IncidentOptions(destination="opscenter"),
        store=DownStore(),
        dedup_required=True,
        owner_topics={"ot-team-north": team},
    )
    assert result.outcome == "done", result.message  # the OpsItem deduplicates itself
    assert sent(calls, "Publish") == [] and "not published" in result.details["owner_notification"]


def test_an_owner_without_a_route_and_the_alerts_own_topic_get_no_extra_message(aws):
    team = owner_topic(aws)
    _, calls = start(aws, IncidentOptions(destination="opscenter"), owner_topics={"someone-else": team})
    assert sent(calls, "Publish") == []
    options = IncidentOptions(destination="sns", sns_topic_arn=team)
    _, calls = start(aws, options, store=MemorySuppressionStore(), owner_topics={"ot-team-north": team})
    assert len(sent(calls, "Publish")) == 1  # the alert's topic is the team's: one message, not two


def test_the_route_lookup_refuses_what_is_not_a_topic_and_owners_listed_twice():
    good = "arn:aws:sns:eu-west-1:123456789012:ot-north"
    routes, problems = owner_topics(
        [
            {"owner": "ot-team-north", "sns_topic_arn": good},
            {"owner": "it", "sns_topic_arn": "arn:aws:sqs:eu-west-1:123456789012:q"},
            {"owner": "twice", "sns_topic_arn": good},
            {"owner": "twice", "sns_topic_arn": good + "2"},
            {"owner": "", "sns_topic_arn": good},
        ]
    )
    assert routes == {"ot-team-north": good}
    assert problems == [
        "iot_defender_owner_topics.csv row 3: sns_topic_arn is not an SNS topic ARN",
        "iot_defender_owner_topics.csv row 5: owner listed twice (no route for it)",
    ]


def test_the_shipped_route_lookup_is_header_only():
    from iot_defender_respond_splunk import owner_topic_routes

    assert owner_topic_routes() == ({}, [])


# ------------------------------------------------------------------ the adapter's look-up and its fallback

ACCOUNT = "123456789012"
KEY = assets.asset_key(ACCOUNT, "eu-west-1", "pump-7")
ASSET_ROW = {
    "_key": KEY,
    "nt_host": "pump-7",
    "owner": "ot-team-north",
    "priority": "critical",
    "bunit": "line-a",
    "published": "1",
}
INVENTORY_ROW = {
    "_key": KEY,
    "thing_name": "pump-7",
    "thing_type": "Pump",
    "thing_groups": "protected-critical",
    "attributes": json.dumps({"owner": "inventory-owner", "site": "plant-2"}),
}
RULES = assets.PriorityRules((("default", "low"), ("thing_group:protected-critical", "critical")))


class Kv:
    def __init__(self, rows: Dict[Tuple[str, str], Dict[str, Any]]):
        self.rows, self.gets = rows, []

    def __call__(self, collection: str, key: str) -> Optional[Dict[str, Any]]:
        self.gets.append((collection, key))
        return self.rows.get((collection, key))


def test_the_asset_row_wins_read_by_key_only():
    kv = Kv({(assets.COLLECTION, KEY): ASSET_ROW, ("iot_thing_inventory", KEY): INVENTORY_ROW})
    assert OwnerLookup(kv, ACCOUNT, RULES)("eu-west-1", "pump-7") == OWNER
    assert kv.gets == [(assets.COLLECTION, KEY)]  # one GET by key; the inventory is not read


@pytest.mark.parametrize("asset_row", [None, dict(ASSET_ROW, published="0")], ids=["no-asset-row", "pruned"])
def test_without_an_asset_row_the_inventory_row_gives_the_owner(asset_row):
    rows = {("iot_thing_inventory", KEY): INVENTORY_ROW}
    if asset_row:
        rows[(assets.COLLECTION, KEY)] = asset_row
    kv = Kv(rows)
    assert OwnerLookup(kv, ACCOUNT, RULES)("eu-west-1", "pump-7") == {
        "owner": "inventory-owner",
        "priority": "critical",
        "bunit": "plant-2",
    }
    assert kv.gets == [(assets.COLLECTION, KEY), ("iot_thing_inventory", KEY)]


def test_an_unknown_thing_has_an_unknown_owner():
    assert OwnerLookup(Kv({}), ACCOUNT, RULES)("eu-west-1", "pump-7") == {
        "owner": "",
        "priority": "unknown",
        "bunit": "",
    }
    broken = dict(INVENTORY_ROW, attributes="not json")
    assert owner_fields(None, broken, RULES) == {"owner": "", "priority": "unknown", "bunit": ""}


def test_the_shipped_priority_rules_are_read_when_none_are_given():
    lookup = OwnerLookup(Kv({("iot_thing_inventory", KEY): INVENTORY_ROW}), ACCOUNT)
    assert lookup("eu-west-1", "pump-7")["priority"] == "critical"  # thing_group:protected-critical in the CSV
