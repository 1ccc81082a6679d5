"""The fixtures the mock-server and broadcast tests share: a server trusting the test key,
and factories of TLS HTTP/2 test clients. conftest.py files import them by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apnskit.testing import MockApnsServer
from support.h2client import KEY_ID, SIGNING_KEY, TEAM_ID, H2Client, bearer


@pytest.fixture
def server() -> Iterator[MockApnsServer]:
    with MockApnsServer() as srv:
        srv.trust_key(KEY_ID, TEAM_ID, SIGNING_KEY.public_key())
        yield srv


@pytest.fixture
def connect(server: MockApnsServer) -> Iterator[Callable[..., H2Client]]:
    clients: list[H2Client] = []

    def factory(srv: MockApnsServer | None = None, **kwargs: Any) -> H2Client:
        target = srv or server
        if "authorization" not in kwargs and target.auth == "token":
            kwargs["authorization"] = bearer(int(target.now()))
        client = H2Client(target.host, target.port, str(target.ca_file), **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def client(connect: Callable[..., H2Client]) -> H2Client:
    return connect()
