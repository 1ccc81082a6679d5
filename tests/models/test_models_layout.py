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
    assert reaches == []


# Function length is checked over the whole tree in tests/packaging/test_house.py.
