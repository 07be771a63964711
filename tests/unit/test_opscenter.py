"""OpsItem shaping: every request fits botocore's ssm model and OpsCenter's documented rules, whatever the row."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from iot_defender import opscenter
from tests.harness.aws import models
from tests.harness.aws.opsitems import check_operational_data

ACCOUNT = "123456789012"
THING_ARN = f"arn:aws:iot:us-east-1:{ACCOUNT}:thing/pump-station-001"
CREATE = models.service_model("ssm").operation_model("CreateOpsItem")


def request(**overrides):
    kwargs = {
        "title": "IoT Device Defender: pump-station-001 AuthorizedTcpPorts",
        "impact": 2,
        "source": opscenter.SOURCE,
        "partition": "aws",
        "account_id": ACCOUNT,
        "region": "us-east-1",
        "thing_name": "pump-station-001",
        "thing_arn": THING_ARN,
        "violation_id": "37e18651d207bbc74236c13faf146127",
        "search_name": "IoT - unauthorized listening port",
        "sid": "scheduler__admin__search__RMD5abc_at_1_1",
        "results_link": "https://splunk.example:8000/app/search/search?q=%7Cloadjob%20x",
        "row": {"thing_name": "pump-station-001", "port": "21"},
    }
    kwargs.update(overrides)
    options = {k: kwargs.pop(k) for k in ("title", "impact", "source", "notification_topic") if k in kwargs}
    return opscenter.create_request(opscenter.Subject(**kwargs), **options)


def assert_valid(req):
    models.validate_params(CREATE, req, "ValidationException")  # raises RequestError when invalid
    assert check_operational_data(req["OperationalData"]) == opscenter.dedup_of(req)
    assert opscenter.check_source(req["Source"]) is None


def test_request_carries_what_the_issue_asks_for():
    req = request(notification_topic=f"arn:aws:sns:us-east-1:{ACCOUNT}:iot-incidents")
    assert_valid(req)
    assert (req["Category"], req["Severity"], req["Priority"]) == ("Security", "2", 2)
    data = {k: v["Value"] for k, v in req["OperationalData"].items()}
    assert json.loads(data["/aws/resources"]) == [{"arn": THING_ARN}]
    assert data["iot_thing_name"] == "pump-station-001" and data["iot_account_id"] == ACCOUNT
    assert data["iot_region"] == "us-east-1" and data["iot_violation_id"] == "37e18651d207bbc74236c13faf146127"
    assert data["splunk_search_name"] == "IoT - unauthorized listening port"
    assert data["splunk_sid"].startswith("scheduler__admin")
    assert data["splunk_thing_dashboard"] == (
        "https://splunk.example:8000/app/TA-aws-iot-defender/iot_defender_thing?form.thing=pump-station-001"
    )
    assert json.loads(data["splunk_result"]) == {"thing_name": "pump-station-001", "port": "21"}
    assert req["OperationalData"]["splunk_result"]["Type"] == "String"
    assert req["Notifications"] == [{"Arn": f"arn:aws:sns:us-east-1:{ACCOUNT}:iot-incidents"}]
    assert "pump-station-001" in req["Description"] and req["Title"].startswith("IoT Device Defender")


def test_dedup_is_stable_per_thing_and_violation_not_per_run():
    first = opscenter.dedup_of(request(sid="run-1"))
    assert opscenter.dedup_of(request(sid="run-2")) == first  # the alert firing again: same open OpsItem
    assert opscenter.dedup_of(request(violation_id="ffff")) != first
    assert opscenter.dedup_of(request(thing_name="other", thing_arn=THING_ARN + "x")) != first
    assert opscenter.dedup_of(request(region="eu-west-1")) != first
    # without a violation id the search scopes it
    a = opscenter.dedup_of(request(violation_id="", search_name="A"))
    assert a == opscenter.dedup_of(request(violation_id="", search_name="A", sid="x"))
    assert a != opscenter.dedup_of(request(violation_id="", search_name="B"))


def test_impact_maps_to_severity_and_priority():
    assert [opscenter.severity_priority(i) for i in (1, 2, 3, 4, 5, None)] == [
        ("1", 1),
        ("2", 2),
        ("3", 3),
        ("4", 4),
        ("4", 5),
        ("3", 3),
    ]


def test_sources_aws_refuses():
    assert opscenter.check_source("splunk.ta-aws-iot-defender") is not None
    assert opscenter.check_source("Amazon things") is not None
    assert opscenter.check_source("x" * 129) is not None
    assert opscenter.check_source(opscenter.SOURCE) is None


def test_links_only_from_plain_http_results_links():
    assert opscenter.thing_dashboard_url("javascript:alert(1)", "t") is None
    assert opscenter.thing_dashboard_url(None, "t") is None
    assert "form.thing=a%3Ab" in opscenter.thing_dashboard_url("http://h:8000/x", "a:b")
    data = request(results_link="file:///etc/passwd")["OperationalData"]
    assert "splunk_thing_dashboard" not in data and "splunk_results_link" not in data


hostile = st.text(st.characters(codec="utf-8"), max_size=3000)


@settings(max_examples=60, deadline=None)
@given(
    title=hostile,
    search=hostile,
    sid=hostile,
    row=st.dictionaries(st.text(max_size=40), hostile, max_size=30),
    big=st.integers(0, 60000),
)
def test_any_row_makes_a_valid_request(title, search, sid, row, big):
    row = dict(row, blob="\u00e9" * big)
    req = request(title=title, search_name=search, sid=sid, row=row)
    assert_valid(req)
    assert len(req["Description"]) <= opscenter.DESCRIPTION_MAX


# ------------------------------------------------------------------ OpsItem text without control, bidi or links

HOSTILE = [
    "pump \u202eexe.tnuocca\u202c [click](https://evil.example/phish)",
    "a\u2066b\u2069c\u200bd <script>alert(1)</script> `code` | table",
    "ok\x00\x1b[31mred\x7f ![img](http://x/y.png) www ftp://files.example/a",
]
UNSEEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _clean(text: str) -> bool:
    """No hidden character, no link or embed syntax (the event model's neutraliser's contract)."""
    import unicodedata

    return (
        not any(unicodedata.category(ch) in UNSEEN for ch in text)
        and not any(ch in text for ch in "[]<>`")
        and "://" not in text
        and "www." not in text.lower()
    )


def test_titles_and_descriptions_carry_no_control_bidi_or_link_characters():
    """Seen failing on the code before the fix: bidi overrides, zero-width characters, markdown links and angle
    brackets from the row reached the OpsItem's title and description."""
    for text in HOSTILE:
        req = request(title=text, search_name=text, sid=text)
        assert _clean(req["Title"]), req["Title"]
        for line in req["Description"].split("\n"):  # markdown: escaped row text, never a raw link
            # the description's own markup: backticks around the thing and violation id, which are AWS names
            assert _clean(line.replace("`pump-station-001`", "").replace("`37e18651d207bbc74236c13faf146127`", "")), (
                line
            )


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_any_row_text_becomes_inert_title_text(text):
    req = request(title=text)
    assert _clean(req["Title"]) and len(req["Title"]) <= opscenter.TITLE_MAX
