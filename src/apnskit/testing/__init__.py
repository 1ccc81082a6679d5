"""Test helpers for code that sends push notifications with apnskit.

- :class:`MockApnsServer`: a local APNs server over HTTP/2 + TLS that validates like Apple,
  records what it receives and injects faults; sync and async context manager.
- :class:`ServerConnection`, :class:`ReceivedRequest`, :class:`Reply`, :class:`Fault`: the
  sans-I/O server side it is built on, reusable by in-memory transports.
- The pytest plugin :mod:`apnskit.testing.pytest_plugin` (fixtures ``apns_server`` and
  ``apns_credentials``), registered through the ``pytest11`` entry point.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apnskit.testing._application import ApnsApplication, FaultPlan, ReceivedNotification
    from apnskit.testing._fake import FakeTransport
    from apnskit.testing._mock_server import MockApnsServer, TokenKey
    from apnskit.testing._server_connection import (
        ConnectionContext,
        Fault,
        ReceivedRequest,
        Reply,
        ServerConnection,
    )

# Imported on first use (PEP 562): the pytest plugin, loaded in every project where apnskit is
# installed, imports this package, and h2 plus the server's logging filter must not come with
# it until a test uses them.
_WHERE = {
    "ApnsApplication": "_application",
    "FaultPlan": "_application",
    "ReceivedNotification": "_application",
    "FakeTransport": "_fake",
    "MockApnsServer": "_mock_server",
    "TokenKey": "_mock_server",
    "ConnectionContext": "_server_connection",
    "Fault": "_server_connection",
    "ReceivedRequest": "_server_connection",
    "Reply": "_server_connection",
    "ServerConnection": "_server_connection",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "ApnsApplication",
    "ConnectionContext",
    "FakeTransport",
    "Fault",
    "FaultPlan",
    "MockApnsServer",
    "ReceivedNotification",
    "ReceivedRequest",
    "Reply",
    "ServerConnection",
    "TokenKey",
]
