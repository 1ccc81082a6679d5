"""Fixtures for the client tests; the helpers they use live in client_support.py.

Test helpers are imported from a uniquely named module, not from ``conftest``: several test
folders have a conftest.py, and a plain ``import conftest`` would find whichever came first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from client_support import FAST_RETRY, Client, token_credentials

import apnskit
from support.flavors import anyio_backend, flavor  # noqa: F401 (fixtures)


@pytest.fixture
async def make_client(flavor: str) -> AsyncIterator[Callable[..., Client]]:
    """Build clients of the test's flavour; each is closed afterwards (closing twice is fine)."""
    made: list[Client] = []

    def factory(transport: Any = None, credentials: Any = None, **kwargs: Any) -> Client:
        cls = apnskit.AsyncPushClient if flavor != "sync" else apnskit.PushClient
        if transport is not None:
            kwargs["transport"] = transport
        kwargs.setdefault("environment", "sandbox")
        kwargs.setdefault("retry", FAST_RETRY)
        client = Client(flavor, cls(credentials or token_credentials(), **kwargs))
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()
