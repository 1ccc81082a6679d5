"""Fixtures for the mock APNs server tests: a server, a trusted signing key, TLS h2 clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from apns_h2client import KEY_ID, SIGNING_KEY, TEAM_ID, H2TestClient, bearer

from apnskit.testing import MockApnsServer


@pytest.fixture
def server() -> Iterator[MockApnsServer]:
    with MockApnsServer() as srv:
        srv.trust_key(KEY_ID, TEAM_ID, SIGNING_KEY.public_key())
        yield srv


@pytest.fixture
def connect(server: MockApnsServer) -> Iterator[Callable[..., H2TestClient]]:
    clients: list[H2TestClient] = []

    def factory(srv: MockApnsServer | None = None, **kwargs: Any) -> H2TestClient:
        target = srv or server
        if "authorization" not in kwargs and target.auth == "token":
            kwargs["authorization"] = bearer(int(target.now()))
        client = H2TestClient(target.host, target.port, target.ca_file, **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def client(connect: Callable[..., H2TestClient]) -> H2TestClient:
    return connect()
