"""iot_defender.params: the one parser per kind of parameter, shared by inputs, alert actions and Lambdas."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iot_defender import audit, detect, inventory
from iot_defender.params import (
    FALSE_SPELLINGS,
    TRUE_SPELLINGS,
    ParameterError,
    aws_name,
    boolean,
    choice,
    integer,
    text,
)


@pytest.mark.parametrize("spelling", (*TRUE_SPELLINGS, "TRUE", " Yes ", "T", "Y", "On"))
def test_true_spellings(spelling):
    assert boolean(spelling, "p", False) is True


@pytest.mark.parametrize("spelling", (*FALSE_SPELLINGS, "FALSE", " No ", "F", "N", "Off"))
def test_false_spellings(spelling):
    assert boolean(spelling, "p", True) is False


@pytest.mark.parametrize("absent", [None, "", "   "])
def test_absent_is_the_default(absent):
    assert boolean(absent, "p", True) is True and boolean(absent, "p", False) is False
    assert integer(absent, "p", 7, 0, 9) == 7
    assert choice(absent, "p", ("A", "B"), "B") == "B"
    assert text(absent, "d") == "d"


@pytest.mark.parametrize("value", ["dry", "garbage", "2", "enabled", "-1", "truee", "0.0", "none"])
def test_unknown_boolean_is_an_error_naming_parameter_and_value(value):
    with pytest.raises(ParameterError) as caught:
        boolean(value, "dry_run", False)
    assert f"parameter dry_run: {value!r} is not a boolean" in str(caught.value)


@given(st.text(max_size=20))
def test_boolean_is_true_false_or_refused_never_guessed(value):
    try:
        result = boolean(value, "p", False)
    except ParameterError:
        assert value.strip().lower() not in TRUE_SPELLINGS + FALSE_SPELLINGS and value.strip()
    else:
        stripped = value.strip().lower()
        assert (stripped in TRUE_SPELLINGS and result) or (stripped in (*FALSE_SPELLINGS, "") and not result)


def test_integers_are_bounded_and_named():
    assert integer(" 42 ", "n", 0, 0, 100) == 42
    with pytest.raises(ParameterError, match=r"parameter n: 'lots' is not a whole number"):
        integer("lots", "n", 0, 0, 100)
    with pytest.raises(ParameterError, match=r"parameter n: '101' is not between 0 and 100"):
        integer("101", "n", 0, 0, 100)
    with pytest.raises(ParameterError):
        integer(True, "n", 0, 0, 100)


@given(
    st.one_of(
        st.builds(lambda a, b: f"{a}_{b}", st.integers(0, 99), st.integers(0, 99)),
        st.text(alphabet="٠١٢٣٤٥٦٧٨٩۰۱۲३४५０１２", min_size=1, max_size=4),
        st.builds(lambda n: f"+{n}", st.integers(0, 99)),
        st.builds(lambda n: f"{n}.0", st.integers(0, 99)),
        st.just("1" * 40),
    )
)
def test_integers_are_ascii_digits_only(value):
    """Regression (issue 17, class 5): int() accepted '1_0' and non-ASCII digits."""
    with pytest.raises(ParameterError, match="whole number"):
        integer(value, "n", 0, -(10**50), 10**50)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_ascii_integers_round_trip(number):
    assert integer(f" {number} ", "n", 0, -(10**12), 10**12) == number


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("thing_name", "sensor-1:a_b", ["a b", "a/b", "é", "x" * 129, "a\nb"]),
        ("thing_group_name", "Quarantine", ["g#1", "g@x", ""]),
        ("policy_name", "deny.all+v=1,@x", ["a b", "a/b", "x" * 129]),
        ("account_id", "123456789012", ["12345678901", "1234567890123", "١٢٣٤٥٦٧٨٩٠١٢"]),
        ("region", "ap-southeast-7", ["us-east-1\nx", "US-EAST-1", "useast1"]),
        (
            "role_arn",
            "arn:aws:iam::123456789012:role/a/b",
            ["arn:aws:iam::12:role/a", "arn:aws:iam::123456789012:role/é"],
        ),
        ("proxy_host", "proxy.corp", ["a@b", "a#b", "a:1", "a/b", "-a", "a b"]),
    ],
)
def test_aws_names_with_their_patterns(kind, good, bad):
    assert aws_name(good, "f", kind) == good
    for value in bad:
        if not value:
            assert aws_name(value, "f", kind, "dflt") == "dflt"
            continue
        with pytest.raises(ParameterError) as info:
            aws_name(value, "f", kind)
        assert value.strip() not in info.value.without_value()


def test_choices_match_case_insensitively_and_refuse_the_rest():
    assert choice("static", "c", ("ANY", "STATIC")) == "STATIC"
    with pytest.raises(ParameterError, match=r"parameter c: 'STATICAL' is not one of ANY, STATIC"):
        choice("STATICAL", "c", ("ANY", "STATIC"))


def test_refused_values_are_clipped_and_escaped():
    with pytest.raises(ParameterError) as caught:
        boolean("x\n" * 200, "p", False)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_inputs_parse_their_options_with_the_same_parsers():
    assert detect.ViolationOptions.from_params({"include_suppressed": "f"}).include_suppressed is False
    assert detect.ViolationOptions.from_params({"behavior_criteria_type": "any"}).behavior_criteria_type is None
    assert audit.AuditOptions.from_params({"include_suppressed": "n"}).include_suppressed is False
    assert inventory.InventoryOptions.from_params({"include_certificates": "0"}).include_certificates is False
    for parse, key in [
        (detect.ViolationOptions.from_params, "collect_active_violations"),
        (detect.ViolationOptions.from_params, "behavior_criteria_type"),
        (audit.AuditOptions.from_params, "include_suppressed"),
        (inventory.InventoryOptions.from_params, "include_certificates"),
        (inventory.InventoryOptions.from_params, "fleet_indexing"),
        (inventory.InventoryOptions.from_params, "link_sweep_hours"),
        (inventory.InventoryOptions.from_params, "run_budget_seconds"),
    ]:
        with pytest.raises(ParameterError, match=key):
            parse({key: "sometimes"})
    for name in ("a b", "profile/x", "prof\u202eile", "p" * 129):
        with pytest.raises(ParameterError, match="security_profile_name"):
            detect.ViolationOptions.from_params({"security_profile_name": name})
    assert detect.ViolationOptions.from_params({"security_profile_name": " p-1 "}).security_profile_name == "p-1"
