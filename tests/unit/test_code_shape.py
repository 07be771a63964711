"""The code-shape rule of DEVELOPERS.md, kept by a test: no function or method in the add-on's product code
(``package/bin``) or the Lambda code (``infra/*/functions``) is longer than 60 lines, and no module longer than
700 lines. Vendored libraries (``package/lib``) and build output are not product code and are not walked."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
FUNCTION_MAX = 60
MODULE_MAX = 700
# Directories that hold someone else's code or generated output, wherever they appear under the walked roots.
SKIPPED_DIRS = {"__pycache__", "lib", "build", ".aws-sam", "node_modules", "output", "dist"}


def product_modules() -> Iterator[Path]:
    roots = [REPO / "package" / "bin", *sorted((REPO / "infra").glob("*/functions"))]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if not SKIPPED_DIRS.intersection(path.relative_to(root).parts[:-1]):
                yield path


def long_functions(path: Path, limit: int = FUNCTION_MAX) -> List[Tuple[int, str, int]]:
    """``(line, name, length)`` of every function or method of ``path`` longer than ``limit`` lines, counted from
    its ``def`` line to its last line (decorators excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                found.append((node.lineno, node.name, length))
    return found


def test_the_walk_covers_the_library_the_adapters_and_the_lambdas():
    walked = {str(p.relative_to(REPO)) for p in product_modules()}
    assert "package/bin/iot_defender_alert.py" in walked
    assert "package/bin/iot_defender/respond/quarantine.py" in walked
    assert "infra/response/functions/containment/app.py" in walked
    assert "infra/ingestion/functions/transform/app.py" in walked
    assert not [p for p in walked if p.startswith("package/lib/")]


def test_no_product_function_is_longer_than_60_lines():
    offenders = [
        f"{path.relative_to(REPO)}:{line} {name} ({length} lines)"
        for path in product_modules()
        for line, name, length in long_functions(path)
    ]
    assert not offenders, f"functions over {FUNCTION_MAX} lines (split them):\n" + "\n".join(offenders)


def test_no_product_module_is_longer_than_700_lines():
    offenders = []
    for path in product_modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MODULE_MAX:
            offenders.append(f"{path.relative_to(REPO)} ({lines} lines)")
    assert not offenders, f"modules over {MODULE_MAX} lines (split them):\n" + "\n".join(offenders)


@pytest.mark.parametrize(("body_lines", "expected"), [(59, []), (60, [(2, "f", 61)])])
def test_the_length_rule_counts_from_def_to_the_last_line(tmp_path, body_lines, expected):
    """A def line and 59 body lines (60 lines) pass; one more fails. The decorator line does not count."""
    module = tmp_path / "module.py"
    module.write_text("@decorator\nasync def f():\n" + "    x = 1\n" * body_lines)
    assert long_functions(module) == expected
