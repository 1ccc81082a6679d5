"""Fixtures for the command-line tests: mock servers, their credentials, and a runner."""

from __future__ import annotations

import io
import secrets
import sys
from collections.abc import Iterator

import pytest
from cli_support import TOPIC, Run, TokenServer

from apnskit.cli import main
from apnskit.testing import MockApnsServer


@pytest.fixture(scope="module")
def _token_server() -> Iterator[TokenServer]:
    with MockApnsServer(strict=True) as server:
        key = server.new_token_key()
        registered = [secrets.token_hex(32) for _ in range(5)]
        for token in registered:
            server.register(token, TOPIC)
        gone = secrets.token_hex(32)
        server.register(gone, TOPIC)
        server.unregister(gone)
        yield TokenServer(server, key, registered, gone)


@pytest.fixture
def apns(_token_server: TokenServer) -> TokenServer:
    """A strict token-auth mock server (shared by a module) with 5 registered tokens."""
    _token_server.server.clear_received()
    _token_server.server.faults.clear()
    return _token_server


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run ``apnskit`` in-process: ``cli(*argv, stdin="...")`` -> Run(code, out, err)."""

    def run(*argv: str, stdin: str | None = None) -> Run:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
