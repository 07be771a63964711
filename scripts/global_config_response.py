"""The *Response actions* configuration tab of globalConfig.json (see make_global_config.py): the quarantine record
keys, the only place they are created (docs/security.md). UCC stores the field encrypted in Splunk's credential
store (``ta_aws_iot_defender_settings`` stanza ``response``); ``iot_defender_respond_splunk.record_keyring`` reads
it. The lead's hook in make_global_config.py: add ``response_tab()`` to the configuration's ``tabs`` after
``advanced_tab()``."""

from __future__ import annotations

MIN_KEY_CHARACTERS = 32  # iot_defender.respond.keys.MIN_KEY_CHARACTERS (a test keeps them equal)
KEY_CHARACTERS = r"[A-Za-z0-9_.:@+/=-]"
KEYS_PATTERN = rf"^\s*{KEY_CHARACTERS}{{{MIN_KEY_CHARACTERS},}}(\s*,\s*{KEY_CHARACTERS}{{{MIN_KEY_CHARACTERS},}})*\s*$"


def response_tab() -> dict:
    return {
        "name": "response",
        "title": "Response actions",
        "entity": [
            {
                "type": "text",
                "label": "Quarantine record keys",
                "field": "record_keys",
                "encrypted": True,
                "required": False,
                "help": (
                    "Keys that authenticate quarantine records, newest first, separated by commas; each at least "
                    f"{MIN_KEY_CHARACTERS} characters (letters, digits, _ . : @ + / = -). The newest signs, all "
                    "verify: to rotate, put a new key first and keep the old ones until no quarantined thing uses "
                    "them. Without a key, release cannot undo certificate changes."
                ),
                "validators": [
                    {
                        "type": "regex",
                        "pattern": KEYS_PATTERN,
                        "errorMsg": (
                            f"Each key must be at least {MIN_KEY_CHARACTERS} characters of letters, digits and "
                            "_ . : @ + / = -, keys separated by commas."
                        ),
                    }
                ],
            }
        ],
    }
