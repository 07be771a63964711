"""The README's IAM block is generated from infra/addon-role/template.yaml (scripts/iam_policy.py) and kept equal."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import iam_policy  # noqa: E402


def readme_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(iam_policy.BEGIN), readme.index(iam_policy.END) + len(iam_policy.END)
    return readme[start:end]


def test_readme_iam_block_is_the_template_s_policies() -> None:
    assert readme_block() == iam_policy.readme_block(iam_policy.load_template()), "run make iam-docs"


def test_readme_iam_block_lists_every_granted_action_as_valid_iam_json() -> None:
    documents = [json.loads(text) for text in re.findall(r"```json\n(.*?)\n```", readme_block(), re.S)]
    shown = {a for d in documents for s in d["Statement"] for a in iam_policy.as_list(s["Action"])}
    assert shown == set(iam_policy.granted_actions(iam_policy.load_template()))
    assert all(d["Version"] == "2012-10-17" for d in documents) and len(documents) == 2


def test_a_grant_removed_from_the_template_shows_in_the_block(tmp_path: Path) -> None:
    text = iam_policy.TEMPLATE.read_text(encoding="utf-8")
    assert "              - iot:ListThingPrincipals\n" in text
    changed = tmp_path / "template.yaml"
    changed.write_text(text.replace("              - iot:ListThingPrincipals\n", ""), encoding="utf-8")
    block = iam_policy.readme_block(iam_policy.load_template(changed))
    assert "iot:ListThingPrincipals" not in block and block != readme_block()
