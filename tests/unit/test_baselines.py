"""The baseline pruning's retention comes from the macro's own definition, strictly (iot_defender.baselines)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iot_defender import baselines
from iot_defender.params import ParameterError


@pytest.mark.parametrize(
    ("definition", "days"),
    [
        ('relative_time(now(), "-30d@d")', 30),
        ('relative_time(now(), "-7d")', 7),
        (' relative_time( now() , "-365d@d" ) ', 365),
    ],
)
def test_the_shipped_form_gives_its_days(definition, days):
    assert baselines.retention_seconds(definition) == days * 86400


@pytest.mark.parametrize(
    "definition",
    [
        'relative_time(now(), "-30h")',
        'relative_time(now(), "+30d")',
        'relative_time(now(), "-0d")',
        "2592000",
        'relative_time(now(), "-\uff13\uff10d")',
        'relative_time(now(), "-30d@w")',
        "",
    ],
)
def test_any_other_form_is_refused(definition):
    with pytest.raises(ParameterError):
        baselines.retention_seconds(definition)


@given(st.text(max_size=40))
def test_arbitrary_text_is_refused_or_a_whole_number_of_days(definition):
    try:
        seconds = baselines.retention_seconds(definition)
    except ParameterError:
        return
    assert seconds % 86400 == 0 and seconds > 0


def test_the_query_is_scoped_and_keeps_a_day_of_margin():
    query = baselines.prune_query("123456789012", "us-east-1", now=100 * 86400, retention=30 * 86400)
    assert query == {"account_id": "123456789012", "region": "us-east-1", "last_seen": {"$lt": 69 * 86400}}


def test_every_pruned_collection_is_a_baseline_with_last_seen():
    from tests import generators

    collections = (generators.ROOT / "package" / "default" / "collections.conf").read_text()
    for name in baselines.COLLECTIONS:
        stanza = collections.split(f"[{name}]", 1)[1].split("\n[", 1)[0]
        assert "field.last_seen = number" in stanza, name
