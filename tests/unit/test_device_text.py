"""Issue 17, class 4: one neutraliser for device-influenced text in the event model, and the text helpers every
other consumer (OpsItems, incidents, markdown) uses. Inputs vary: hostile names of every kind, random text."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iot_defender import events, names
from iot_defender.pipeline import Page, RunStats, deliver

HOSTILE = [
    'x" OR 1=1 | delete',
    "[click](javascript:alert(1))",
    "evil\u202etxt.exe",
    "a\nb",
    "sensor 7",
    "c" * 200,
    "dev.01",
    "$thing$",
    "<img src=x onerror=alert(1)>",
    "",
]
NOT_TEXT = [42, None, {"x": 1}, ["a"]]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(min_size=1, max_size=80).filter(lambda t: not events.valid_thing_name(t)),
)


def finding(client_id, related=()):
    record = {
        "findingId": "f-1",
        "taskId": "t-1",
        "checkName": "CONFLICTING_CLIENT_IDS_CHECK",
        "taskStartTime": 1763806200000,
        "findingTime": 1763806200000,
        "severity": "HIGH",
        "nonCompliantResource": {"resourceType": "CLIENT_ID", "resourceIdentifier": {"clientId": client_id}},
        "relatedResources": [{"resourceType": "CLIENT_ID", "resourceIdentifier": {"clientId": c}} for c in related],
    }
    return record


@given(client_id=st.one_of(hostile_text, st.sampled_from(NOT_TEXT)), related=st.lists(hostile_text, max_size=3))
def test_a_hostile_client_id_never_reaches_a_name_field(client_id, related):
    """Regression: the client id of an audit finding was indexed as sent, and props.conf makes it thing_name and
    dest, which notable drilldowns paste into searches."""
    event = events.audit_finding_event(finding(client_id, related), account_id="1", region="us-east-1")
    ids = [event.data["nonCompliantResource"]["resourceIdentifier"]["clientId"]]
    ids += [r["resourceIdentifier"]["clientId"] for r in event.data["relatedResources"]]
    for value in ids:
        assert events.valid_thing_name(value) and value.startswith(events.NEUTRAL_CLIENT_ID_PREFIX)
    assert len(event.data["rejected_client_ids"]) == 1 + len(related) and events.neutralised(event)
    assert ids[0] == events.neutral_value(client_id, events.NEUTRAL_CLIENT_ID_PREFIX)  # one device, one stand-in


@pytest.mark.parametrize("client_id", ["pump-017", "a:b_c-d", "x" * 128])
def test_a_valid_client_id_is_kept(client_id):
    event = events.audit_finding_event(finding(client_id, [client_id]), account_id="1", region="us-east-1")
    assert event.data["nonCompliantResource"]["resourceIdentifier"]["clientId"] == client_id
    assert "rejected_client_ids" not in event.data and not events.neutralised(event)


@given(
    name=hostile_text.filter(lambda t: not names.ATTRIBUTE_NAME.fullmatch(t)),
    value=hostile_text.filter(lambda t: not names.ATTRIBUTE_VALUE.fullmatch(t)),
    group=hostile_text,
)
def test_hostile_attributes_and_groups_are_replaced(name, value, group):
    thing = {"thingName": "pump-1", "attributes": {name: "ok", "site": value}}
    event = events.thing_event(thing, account_id="1", region="r", snapshot_time=1, groups=[group, "site-a"])
    attributes = event.data["attributes"]
    assert name not in attributes and attributes.get("site", value) != value
    assert all(names.ATTRIBUTE_NAME.fullmatch(k) and names.ATTRIBUTE_VALUE.fullmatch(v) for k, v in attributes.items())
    assert all(events.valid_thing_name(g) for g in event.data["thingGroups"]) and "site-a" in event.data["thingGroups"]
    assert event.data["rejected_attributes"] >= 2 and events.neutralised(event)


@given(name=hostile_text)
def test_an_action_row_thing_name_is_neutralised_in_thing_name_dest_and_host(name):
    result = events.ActionResult(action="iot_quarantine_thing", outcome="refused-invalid", thing_name=name)
    event = events.action_event(result, when=1763806200)
    assert event.data["thing_name"] == event.data["dest"] == event.host == events.neutral_thing_name(name)
    assert events.neutralised(event)


HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


@settings(max_examples=300)
@given(text=st.text(max_size=300), limit=st.integers(min_value=3, max_value=400))
def test_plain_text_has_no_control_bidi_or_link_characters(text, limit):
    out = events.plain_text(text, limit)
    assert len(out) <= limit
    assert not any(unicodedata.category(c) in HIDDEN for c in out)
    assert not any(c in out for c in "[]()<>`") and "://" not in out and "www." not in out.lower()
    assert out == out.strip() and "  " not in out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Thing [pump](https://evil.example) is \u202eevil", "Thing _pump__https:evil.example_ is evil"),
        ("line1\nline2\tend", "line1 line2 end"),
        ("see www.evil.example", "see www_evil.example"),
        (None, ""),
        (17, "17"),
    ],
)
def test_plain_text_examples(raw, expected):
    assert events.plain_text(raw) == expected


@given(st.text(max_size=200))
def test_markdown_text_escapes_every_special(text):
    out = events.markdown_text(text)
    unescaped = out.replace("\\\\", "")
    for char in "*_{}#+-.!|~&":
        assert (
            all(unescaped[i - 1] == "\\" for i, c in enumerate(unescaped) if c == char and i > 0)
            or char not in unescaped
        )
    assert not unescaped.startswith(tuple("*_{}#+-.!|~&"))


def test_title_text_is_one_short_line():
    assert events.title_text("a\n" * 100) == ("a " * 62).strip() + " a..." or len(events.title_text("a\n" * 100)) <= 128
    assert len(events.title_text("x" * 500)) == 128


class Sink:
    def __init__(self):
        self.events = []

    def write(self, event):
        self.events.append(event)


@pytest.mark.parametrize("hostile", HOSTILE[:5])
def test_run_summary_counts_neutralised_names(hostile):
    """Left-over of the last session: the inputs' run summaries did not count neutralised thing names."""
    from iot_defender.checkpoint import InputState, MemoryJournal

    violation = {
        "violationId": "v-1",
        "thingName": hostile,
        "violationEventType": "in-alarm",
        "violationEventTime": 1763806200000,
    }
    made = [
        events.violation_event(violation, account_id="1", region="r"),
        events.violation_event(dict(violation, violationId="v-2", thingName="fine"), account_id="1", region="r"),
        events.audit_finding_event(finding(hostile), account_id="1", region="r"),
    ]
    stats = RunStats(input="i", stanza="s", account="a", region="r")
    deliver(
        [Page(items=[(None, e) for e in made])],
        state=InputState(),
        sink=Sink(),
        journal=MemoryJournal(),
        save=lambda s: None,
        stats=stats,
        keep_after=lambda s: float("-inf"),
    )
    assert stats.neutralised_names == 2 and "neutralised_names=2" in stats.summary_line()
