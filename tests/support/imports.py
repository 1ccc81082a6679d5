"""Reading a module's imports from its source, for the layering tests (core, engine).

Parsing, rather than importing, sees every spelling of an import (``import a.b``,
``from a import b``, ``__import__``) without running the module.
"""

from __future__ import annotations

import ast

FORBIDDEN_IO = frozenset(
    {"socket", "ssl", "anyio", "time", "threading", "asyncio", "trio", "select", "selectors"}
)
"""Modules that do I/O or read a clock: the pure layers (core, engine) import none of them."""


def imported_roots(tree: ast.AST) -> set[str]:
    """The top-level package of every absolute import in ``tree`` (``"__import__"`` for calls)."""
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            roots.add("__import__")
    return roots


def imported_modules(tree: ast.AST) -> set[str]:
    """The full dotted name of every module ``tree`` imports from."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def private_reaches(tree: ast.AST) -> list[str]:
    """Where ``tree`` uses another module's or object's underscore names.

    ``from x import _name``, and ``obj._name`` on anything but ``self`` or ``cls`` (dunder
    names such as ``__name__`` are public protocol and not counted).
    """

    def private(name: str) -> bool:
        return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))

    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.extend(
                f"from {node.module} import {a.name}" for a in node.names if private(a.name)
            )
        elif isinstance(node, ast.Attribute) and private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in {"self", "cls"}):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def private_imports(tree: ast.AST) -> list[str]:
    """Every underscore name ``tree`` takes from another *module* (the issue 16 house rule).

    ``from x import _name``, and ``mod._name`` where ``mod`` was bound by an import. Unlike
    :func:`private_reaches` it leaves objects alone (``handle._body`` on a class of the same
    module is that module's business), so it can run over the whole tree.
    """

    def private(name: str) -> bool:
        return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))

    found: list[str] = []
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found.extend(
                f"from {node.module} import {a.name}" for a in node.names if private(a.name)
            )
            aliases.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            aliases.update(a.asname or a.name.split(".")[0] for a in node.names)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def long_functions(tree: ast.AST, limit: int = 79) -> list[str]:
    """``"name: N lines"`` for every function longer than ``limit`` lines (def to last line)."""
    return [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]
