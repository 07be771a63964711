"""The certificate → thing index rows the inventory input writes and the detections look up."""

from __future__ import annotations

from iot_defender import certificate_index


def _inventory_row(thing: str, certificates: str, statuses: str) -> dict:
    return {
        "account_id": "111122223333",
        "region": "eu-west-1",
        "thing_name": thing,
        "certificate_ids": certificates,
        "certificate_statuses": statuses,
        "updated_at": "2026-12-01T00:00:00.000+00:00",
    }


def test_one_row_per_link_with_its_status() -> None:
    rows = certificate_index.rows(_inventory_row("pump-1", "aaa,bbb", "ACTIVE,REVOKED"))
    assert [(r["certificate_id"], r["certificate_status"], r["thing_name"]) for r in rows] == [
        ("aaa", "ACTIVE", "pump-1"),
        ("bbb", "REVOKED", "pump-1"),
    ]
    assert rows[0]["_key"] == "111122223333:eu-west-1:aaa:pump-1"


def test_shared_certificate_gives_one_row_per_thing() -> None:
    keys = {
        r["_key"]
        for thing in ("clone-a", "clone-b")
        for r in certificate_index.rows(_inventory_row(thing, "aaa", "ACTIVE"))
    }
    assert keys == {"111122223333:eu-west-1:aaa:clone-a", "111122223333:eu-west-1:aaa:clone-b"}


def test_thing_without_certificates_has_no_rows() -> None:
    assert certificate_index.rows(_inventory_row("bare", "", "")) == []


def test_removed_keys_are_the_links_that_went_away() -> None:
    before = _inventory_row("pump-1", "aaa,bbb", "ACTIVE,ACTIVE")
    after = _inventory_row("pump-1", "bbb,ccc", "ACTIVE,ACTIVE")
    assert certificate_index.removed_keys(before, after) == ["111122223333:eu-west-1:aaa:pump-1"]
    assert sorted(certificate_index.removed_keys(before, None)) == [
        "111122223333:eu-west-1:aaa:pump-1",
        "111122223333:eu-west-1:bbb:pump-1",
    ]
