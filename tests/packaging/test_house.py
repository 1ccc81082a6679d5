"""The house rules of issue 16, checked over the whole of ``src/`` so they cannot rot.

- No module imports another module's underscore names: what two modules share has a public
  name in a named module (a private *package* such as ``apnskit._model`` is the layout; a
  private *name* such as ``_epoch`` taken from outside its module is a reach-across).
- No function in ``src/`` is 80 lines or longer.
- The layering: the core and the engine do no I/O and read no clock; the model knows no
  connection; transports never import the clients or the engine; and the library never
  imports its CLI or its test fakes (only ``python -m apnskit`` reaches the CLI).

The per-layer tests (tests/core, tests/engine, tests/models) say more about their own layer.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

from support.imports import (
    FORBIDDEN_IO,
    imported_modules,
    long_functions,
    private_imports,
)

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "apnskit"
MODULES = sorted(SRC.rglob("*.py"))


def _name(path: pathlib.Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def test_the_tree_has_the_architectures_folders() -> None:
    folders = {p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders >= {
        "_model",
        "_credentials",
        "_core",
        "_engine",
        "_transports",
        "_clients",
        "testing",
        "cli",
    }


def test_no_module_imports_another_modules_underscore_names() -> None:
    offences = {_name(p): found for p in MODULES if (found := private_imports(_tree(p)))}
    assert offences == {}


def test_no_function_in_src_reaches_80_lines() -> None:
    offences = {_name(p): found for p in MODULES if (found := long_functions(_tree(p)))}
    assert offences == {}


_PURE = tuple(FORBIDDEN_IO)
_ABOVE_THE_LIBRARY = ("apnskit.cli", "apnskit.testing", "apnskit.contrib")
# What each layer may not import, beyond the CLI, the test fakes and the integrations.
_LAYERS = {
    "apnskit._core": (
        *_PURE,
        "apnskit._model",
        "apnskit._engine",
        "apnskit._transports",
        "apnskit._clients",
    ),
    "apnskit._engine": (*_PURE, "apnskit._transports", "apnskit._clients"),
    "apnskit._model": (
        "socket",
        "ssl",
        "anyio",
        "apnskit._core",
        "apnskit._engine",
        "apnskit._transports",
        "apnskit._clients",
    ),
    "apnskit._transports": ("apnskit._engine", "apnskit._clients"),
}


def _forbidden(module: str) -> tuple[str, ...]:
    if module == "apnskit.__main__" or module.startswith(_ABOVE_THE_LIBRARY):
        return ()
    layer = next((v for k, v in _LAYERS.items() if module == k or module.startswith(k + ".")), ())
    return _ABOVE_THE_LIBRARY + layer


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_layering(path: pathlib.Path) -> None:
    module = _name(path)
    bad = sorted(
        name
        for name in imported_modules(_tree(path))
        for root in _forbidden(module)
        if name == root or name.startswith(root + ".")
    )
    assert bad == [], module


def test_the_checks_catch_what_they_forbid() -> None:
    source = (
        "from apnskit._model.rules import _epoch\n"
        "import apnskit._engine.dispatcher as dispatcher\n"
        "dispatcher._private_helper()\n"
        "self._mine = 1\n"
        "def f():\n" + "    x = 1\n" * 80
    )
    tree = ast.parse(source)
    assert private_imports(tree) == [
        "from apnskit._model.rules import _epoch",
        "line 3: dispatcher._private_helper",
    ]
    assert long_functions(tree) == ["f: 81 lines"]
    assert "apnskit._core" in _forbidden("apnskit._model.payload")
    assert _forbidden("apnskit.cli._send") == ()
