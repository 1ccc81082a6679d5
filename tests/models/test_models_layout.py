"""House rules (issue 16) for the model and the mock's validation: no private reach-across, short
functions. A line added against them fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support.imports import private_reaches

SRC = Path(__file__).resolve().parents[2] / "src" / "apnskit"
MODULES = sorted(
    [
        *(SRC / "_model").glob("*.py"),
        SRC / "testing" / "_validation.py",
        SRC / "testing" / "_application.py",
    ]
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_private_reach_across(path: Path) -> None:
    reaches = private_reaches(ast.parse(path.read_text(encoding="utf-8")))
    # Importing a private module is how the package is laid out, not a reach into one.
    assert [r for r in reaches if r != "from apnskit import _errors"] == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_function_is_80_lines_or_longer(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 >= 80
    ]
    assert long == []
