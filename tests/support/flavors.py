"""The three client flavours (``sync``, ``asyncio``, ``trio``) as pytest fixtures.

A test folder that runs each test once per flavour imports both fixtures into its conftest (or
test module): ``from support.flavors import anyio_backend, flavor``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sync", "asyncio", "trio"])
def flavor(request: pytest.FixtureRequest) -> str:
    """The client under test: ``PushClient`` ("sync") or ``AsyncPushClient`` on a backend."""
    return str(request.param)


@pytest.fixture
def anyio_backend(flavor: str) -> str:
    """The event loop of the test body: the sync client needs none, so it runs on asyncio."""
    return "asyncio" if flavor == "sync" else flavor
