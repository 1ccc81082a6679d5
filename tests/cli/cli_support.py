"""Shared helpers of the command-line tests (not in conftest: every test folder has one)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from apnskit.testing import MockApnsServer, TokenKey

TOPIC = "com.example.app"


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class TokenServer:
    server: MockApnsServer
    key: TokenKey
    registered: list[str]
    gone: str

    @property
    def connection(self) -> list[str]:
        s = self.server
        return ["--host", s.host, "--port", str(s.port), "--ca-file", s.ca_file]

    @property
    def auth(self) -> list[str]:
        return ["--key", str(self.key.path), "--team-id", self.key.team_id]

    @property
    def args(self) -> list[str]:
        return [*self.auth, *self.connection]


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
