"""Fixtures for the proxy tests: one mock APNs server and real proxies in front of it.

The servers are shared by the whole session (starting them is what costs); every test gets
the mock server with its record cleared. Helpers live in proxy_servers.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from proxy_servers import PASSWORD, USER, ProxyServer, danted, free_port, pproxy, tinyproxy
from proxy_support import FAST_RETRY, Client

import apnskit
from apnskit.testing import MockApnsServer
from support.flavors import anyio_backend, flavor  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def _mock() -> Iterator[MockApnsServer]:
    with MockApnsServer() as server:
        yield server


@pytest.fixture
def apns(_mock: MockApnsServer) -> MockApnsServer:
    """The mock APNs server behind every proxy, its record cleared."""
    _mock.clear_received()
    _mock.faults.clear()
    return _mock


@pytest.fixture(scope="session")
def blocked_port() -> int:
    """A port the proxies refuse to tunnel to (tinyproxy: not a ConnectPort; dante: a rule)."""
    return free_port()


@pytest.fixture(scope="session")
def proxy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxies")


@pytest.fixture(scope="session")
def tinyproxy_open(_mock: MockApnsServer, proxy_dir: Path) -> Iterator[ProxyServer]:
    """tinyproxy without authentication, tunnelling to the mock server's port only."""
    with tinyproxy(proxy_dir, [_mock.port]) as server:
        yield server


@pytest.fixture(scope="session")
def tinyproxy_auth(_mock: MockApnsServer, proxy_dir: Path) -> Iterator[ProxyServer]:
    """tinyproxy with Basic authentication (USER, PASSWORD)."""
    with tinyproxy(proxy_dir, [_mock.port], auth=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture(scope="session")
def dante(proxy_dir: Path, blocked_port: int) -> Iterator[ProxyServer]:
    """dante's SOCKS5 server without authentication."""
    with danted(proxy_dir, blocked_port) as server:
        yield server


@pytest.fixture(scope="session")
def pproxy_auth(proxy_dir: Path) -> Iterator[ProxyServer]:
    """pproxy's SOCKS5 server with username/password authentication (USER, PASSWORD)."""
    with pproxy(proxy_dir, "socks5", (USER, PASSWORD)) as server:
        yield server


@pytest.fixture
async def make_client(flavor: str, apns: MockApnsServer) -> AsyncIterator[Callable[..., Client]]:
    """Clients of the test's flavour for the mock server; closed afterwards."""
    made: list[Client] = []

    def factory(**kwargs: Any) -> Client:
        cls = apnskit.PushClient if flavor == "sync" else apnskit.AsyncPushClient
        kwargs.setdefault("host", apns.host)
        kwargs.setdefault("port", apns.port)
        kwargs.setdefault("ca_file", apns.ca_file)
        kwargs.setdefault("retry", FAST_RETRY)
        client = Client(flavor, cls(apns.apns_token_credentials(), **kwargs))
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()
