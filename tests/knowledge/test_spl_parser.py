"""Self-test of the SPL model (splkit) on SPL whose answer is known, so the field checks built on it stay honest."""

from __future__ import annotations

import pytest

from tests.knowledge import splkit
from tests.knowledge.model import flatten_json, kv_auto

LOOKUPS = {
    "ports": splkit.Lookup("ports", ["port", "protocol", "service", "risk"]),
    "inv": splkit.Lookup("inv", ["thing_name", "owner", "certificate_ids"]),
}
MACROS = {"idx": ("(index=a OR index=b)", []), "thr(1)": ("$n$ * 2", ["n"])}


def analyze(spl: str) -> splkit.Analysis:
    return splkit.Analyzer(MACROS, LOOKUPS).analyze(spl)


# ------------------------------------------------------------------------------------------ expressions


def test_expression_fields_skip_functions_strings_and_keywords():
    node = splkit.parse_expression(
        """if(match('value.ports{}', "^2[0-9]$") AND NOT isnull(thing), lower(name) . "-x", coalesce(a, b, "c"))"""
    )
    assert splkit.expression_fields(node) == {"value.ports{}", "thing", "name", "a", "b"}


def test_expression_precedence_and_null_rules():
    fields = {"a": "2", "b": "3", "s": "x", "mv": ["1", "2"]}
    assert splkit.evaluate("a + b * 2", fields) == 8
    assert splkit.evaluate("(a + b) * 2", fields) == 10
    assert splkit.evaluate('s . "-" . a', fields) == "x-2"
    assert splkit.evaluate('s . "-" . missing', fields) is None  # concatenating null gives null
    assert splkit.evaluate("a < b AND b > 1 OR missing == 1", fields) is True
    assert splkit.evaluate('if(missing == 1, "y", "n")', fields) == "n"  # null condition is false
    assert splkit.evaluate('case(a == 1, "one", a == 2, "two")', fields) == "two"
    assert splkit.evaluate('case(a == 9, "nine")', fields) is None
    assert splkit.evaluate("mvmap(mv, mv * 10)", fields) == [10.0, 20.0]
    assert splkit.evaluate('replace("203.0.113.7/32", "/[0-9]+$", "")', fields) == "203.0.113.7"
    assert splkit.evaluate('a = "2"', fields) is True  # = and == are the same comparison in eval


def test_unknown_function_is_an_error_not_a_pass():
    with pytest.raises(splkit.SplError, match="not modelled"):
        splkit.evaluate("cidrmatch(a, b)", {"a": "1", "b": "2"})


# -------------------------------------------------------------------------------------------- base search


def test_base_search_terms_or_not_parentheses():
    node = splkit.parse_base_search('(index=a OR index=b) sourcetype="x:y" (name="p q" OR name=r*) NOT status=ok')
    terms = list(splkit.base_terms(node))
    assert ("name", "=", "p q", False) in terms and ("status", "=", "ok", True) in terms
    fields = {"sourcetype": "x:y", "name": "R2", "status": "error"}
    assert splkit.matches(node, fields, raw="...")
    assert not splkit.matches(node, {**fields, "status": "OK"}, raw="...")  # values match case-insensitively
    assert not splkit.matches(node, {**fields, "name": "s"}, raw="...")


def test_base_search_in_operator_and_free_text():
    node = splkit.parse_base_search("severity IN (CRITICAL, HIGH) run_summary")
    assert splkit.matches(node, {"severity": "high"}, raw="a run_summary line")
    assert not splkit.matches(node, {"severity": "low"}, raw="a run_summary line")
    assert not splkit.matches(node, {"severity": "high"}, raw="something else")


def test_not_equal_needs_the_field():
    node = splkit.parse_base_search('status!="ok"')
    assert not splkit.matches(node, {}, raw="")
    assert splkit.matches(node, {"status": "error"}, raw="")


# -------------------------------------------------------------------------------------------- pipelines


def test_blog_query_fields():
    a = analyze(
        '`idx` sourcetype=m name="aws:num-listening-tcp-ports" | chart max(port_count) as tcp_count over _time by thing'
    )
    assert a.event_fields == {"name", "port_count", "thing"}
    assert a.output_fields is None  # series names are data


def test_fields_after_stats_are_the_stats_outputs():
    a = analyze("sourcetype=m | stats max(_time) as last_seen by thing port | where last_seen > 0 AND bytes > 1")
    assert a.event_fields == {"port", "thing"}
    assert any("'bytes' does not exist" in e for e in a.errors)


def test_eval_where_lookup_table_chain():
    a = analyze(
        'sourcetype=m (name=a OR name=b) | eval proto=if(name == "a", "tcp", "udp"), label=proto . ":" . port'
        " | lookup ports port protocol AS proto OUTPUT service risk AS level"
        " | where isnotnull(level) | stats values(label) as labels by thing | table thing labels"
    )
    assert a.event_fields == {"name", "port", "thing"}
    assert a.lookups == {"ports"}
    assert a.output_fields == ["labels", "thing"]
    assert not a.errors


def test_lookup_field_that_the_lookup_lacks_is_reported():
    a = analyze("sourcetype=m | lookup ports port OUTPUT colour")
    assert any("no field 'colour'" in e for e in a.errors)
    b = analyze("sourcetype=m | lookup nosuch port OUTPUT x")
    assert any("not defined" in e for e in b.errors)


def test_join_inputlookup_subsearch_and_rename():
    a = analyze(
        "sourcetype=f | stats values(cert) as certificate_id by dest"
        ' | join type=left max=1 certificate_id [| inputlookup inv | makemv delim="," certificate_ids'
        " | mvexpand certificate_ids | rename certificate_ids AS certificate_id, thing_name AS certificate_thing"
        " | fields certificate_id certificate_thing]"
        " | eval thing=coalesce(certificate_thing, dest) | table thing dest"
    )
    assert a.event_fields == {"cert", "dest"}
    assert not a.errors, a.errors
    assert a.output_fields == ["dest", "thing"]


def test_eventstats_keeps_events_and_macros_with_arguments_expand():
    a = analyze("sourcetype=m | eventstats max(_time) as newest by thing | where _time = newest AND n > `thr(3)`")
    assert a.event_fields == {"thing", "n"}
    assert not a.errors


def test_unknown_command_is_an_error():
    with pytest.raises(splkit.SplError, match="not modelled"):
        analyze("sourcetype=m | transaction thing")


def test_split_pipeline_respects_quotes_and_subsearches():
    parts = splkit.split_pipeline('a="x|y" | join k [search b | stats count by k] | eval c="|"')
    assert parts == ['a="x|y"', "join k [search b | stats count by k]", 'eval c="|"']


# --------------------------------------------------------------------------------------- field extraction


def test_json_flattening_matches_splunk_names():
    fields = flatten_json(
        '{"value":{"ports":[21,22]},"behavior":{"name":"P"},"rel":[{"id":{"c":"a"}},{"id":{"c":"b"}}],'
        '"ok":true,"n":null,"one":[5]}'
    )
    assert fields == {
        "value.ports{}": ["21", "22"],
        "behavior.name": "P",
        "rel{}.id.c": ["a", "b"],
        "ok": "true",
        "one{}": "5",
    }


def test_kv_auto_reads_the_run_summary_line():
    fields = kv_auto("2025 log_level=INFO | iot_defender_run_summary input=a events=3 lag_seconds=1.5 status=ok")
    assert fields["input"] == "a" and fields["events"] == "3" and fields["lag_seconds"] == "1.5"
