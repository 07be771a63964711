"""The BUILT alert_actions.conf (what UCC generates from globalConfig into output/) makes every response action an
Enterprise Security adaptive response action that analysts can run ad hoc from a finding."""

from __future__ import annotations

import json

from ksconf.conf.parser import parse_conf


def test_every_built_response_action_supports_adhoc(built_app):
    conf = parse_conf(str(built_app / "default" / "alert_actions.conf"))
    actions = {name: dict(values) for name, values in conf.items() if isinstance(name, str) and name != "default"}
    assert set(actions) == {
        "iot_quarantine_thing",
        "iot_release_thing",
        "iot_start_incident",
        "iot_set_verification_state",
    }
    for name, values in actions.items():
        cam = json.loads(values["param._cam"])
        assert cam["supports_adhoc"] is True, name
        assert cam["supports_cloud"] is True, name
        assert cam["task"] and cam["subject"] and cam["category"], name
        assert cam["technology"] == [{"vendor": "AWS", "product": "IoT Device Defender", "version": ["1.0"]}], name
        assert values["is_custom"] == "1", name
