"""Issue 16 items 1 and 5: the engine's modules, what they import, and one source per fact."""

from __future__ import annotations

import ast
import importlib.metadata
import pathlib
import re

import pytest

import apnskit
import apnskit._core
import apnskit._engine
import apnskit._transports
from apnskit._engine import client_events
from apnskit._transports import anyio_transport, connecting, proxy, socket_transport
from support.imports import FORBIDDEN_IO, imported_modules, imported_roots, private_reaches

SRC = pathlib.Path(apnskit.__file__).parent


def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def test_engine_imports_no_io_or_clock() -> None:
    modules = sorted(pathlib.Path(apnskit._engine.__file__).parent.rglob("*.py"))
    names = {m.name for m in modules}
    assert names >= {"dispatcher.py", "tickets.py", "pool.py", "client_events.py"}
    assert "dispatch.py" not in names  # split along its seams (issue 16 item 1)
    for module in modules:
        tree = _tree(module)
        roots = imported_roots(tree)
        assert not roots & (FORBIDDEN_IO | {"__import__", "importlib"}), (module.name, roots)
        # The engine sits on the core and the model, never on the layers above it.
        above = {
            m
            for m in imported_modules(tree)
            if m.startswith(
                (
                    "apnskit._clients",
                    "apnskit._transports",
                    "apnskit.testing",
                    "apnskit.cli",
                    "apnskit.contrib",
                )
            )
        }
        assert not above, (module.name, above)


def test_core_knows_nothing_of_the_engine() -> None:
    # The core is HTTP/2 for APNs: no pool, retries or client events live or are used there.
    engine_names = {"Dispatcher", "Ticket", "Pool", "PooledConnection", "ClientEvent"}
    for module in pathlib.Path(apnskit._core.__file__).parent.rglob("*.py"):
        tree = _tree(module)
        imported = imported_modules(tree)
        assert not {m for m in imported if m.startswith("apnskit._engine")}, module.name
        assert "apnskit._config" not in imported, module.name  # RetryPolicy, Limits, Timeout
        defined = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        }
        assert not defined & engine_names, (module.name, defined & engine_names)


def test_every_engine_and_transport_module_says_its_job() -> None:
    for package in (apnskit._engine, apnskit._transports):
        for module in pathlib.Path(package.__file__).parent.glob("*.py"):
            docstring = ast.get_docstring(_tree(module))
            assert docstring, module
            assert len(docstring.splitlines()[0]) > 20, module


def test_the_theory_of_operation_lives_with_the_dispatcher() -> None:
    from apnskit._engine import dispatcher

    # Read from the source: the compiled build's module (mypyc) has no __doc__, and its .py
    # file is installed beside it.
    assert dispatcher.__file__ is not None
    source = pathlib.Path(dispatcher.__file__).parent / "dispatcher.py"
    doc = ast.get_docstring(ast.parse(source.read_text(encoding="utf-8")))
    assert doc is not None
    assert "Theory of operation" in doc
    assert "A ticket's life" in doc


@pytest.mark.parametrize("name", client_events.__all__)
def test_client_events_are_the_classes_apnskit_exports(name: str) -> None:
    assert name in apnskit.__all__
    assert getattr(apnskit, name) is getattr(client_events, name)
    assert getattr(apnskit, name).__module__ == "apnskit._engine.client_events"


def test_client_events_module_holds_every_event() -> None:
    expected = {
        "ClientEvent",
        "NotificationSubmitted",
        "NotificationSent",
        "ResultReady",
        "RetryScheduled",
        "ConnectionOpened",
        "ConnectionFailed",
        "ConnectionClosed",
    }
    assert expected <= set(client_events.__all__)
    for name in expected - {"ClientEvent"}:
        assert issubclass(getattr(client_events, name), client_events.ClientEvent)


def test_version_comes_from_the_package_metadata() -> None:
    assert apnskit.__version__ == importlib.metadata.version("apnskit")
    # One source: pyproject.toml. The package holds no copy of the number.
    # The checkout's pyproject.toml, also when apnskit is installed as a wheel (compiled run).
    pyproject = (pathlib.Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert match is not None
    assert apnskit.__version__ == match.group(1)
    init = (SRC / "__init__.py").read_text(encoding="utf-8")
    assert f'"{match.group(1)}"' not in init


def test_both_transports_and_the_proxy_share_one_connect_error_mapping() -> None:
    assert socket_transport.connect_failure is connecting.connect_failure
    assert anyio_transport.connect_failure is connecting.connect_failure
    assert proxy.map_connect_error is connecting.map_connect_error
    # The async side no longer leans on the sync side for it.
    imported = imported_modules(_tree(pathlib.Path(anyio_transport.__file__)))
    assert "apnskit._transports.socket_transport" not in imported
    assert not hasattr(socket_transport, "map_connect_error")


@pytest.mark.parametrize(
    "relative",
    [
        *(f"_engine/{p.name}" for p in sorted((SRC / "_engine").glob("*.py"))),
        *(f"_transports/{p.name}" for p in sorted((SRC / "_transports").glob("*.py"))),
        "testing/_fake.py",
    ],
)
def test_no_private_reach_across(relative: str) -> None:
    assert private_reaches(_tree(SRC / relative)) == []


def test_reach_checker_sees_each_spelling() -> None:
    for source in ("from x import _y", "other._name", "a.b._c()"):
        assert private_reaches(ast.parse(source)), source
    for source in ("self._x", "cls._y", "obj.__name__", "from x import y"):
        assert private_reaches(ast.parse(source)) == [], source
