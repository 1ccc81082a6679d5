"""House rules (issue 16) for the model and the mock's validation: no private reach-across, short
functions. A line added against them fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "apnskit"
MODULES = sorted(
    [
        *(SRC / "_model").glob("*.py"),
        SRC / "testing" / "_validation.py",
        SRC / "testing" / "_application.py",
    ]
)


def is_submodule(package: str, name: str) -> bool:
    """Whether ``from package import name`` imports a module (private modules are how the
    package is laid out) rather than a name defined in one."""
    folder = SRC.joinpath(*package.split(".")[1:])
    return (folder / f"{name}.py").is_file() or (folder / name).is_dir()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_underscore_names_imported_from_other_modules(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    private = [
        f"line {node.lineno}: from {node.module} import {alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("apnskit")
        for alias in node.names
        if alias.name.startswith("_") and not is_submodule(node.module or "", alias.name)
    ]
    assert private == []


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
