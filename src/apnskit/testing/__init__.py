"""Test helpers for code that sends push notifications with apnskit.

- :class:`MockApnsServer`: a local APNs server over HTTP/2 + TLS that validates like Apple,
  records what it receives and injects faults; sync and async context manager.
- :class:`ServerConnection`, :class:`ReceivedRequest`, :class:`Reply`, :class:`Fault`: the
  sans-I/O server side it is built on, reusable by in-memory transports.
- The pytest plugin :mod:`apnskit.testing.pytest_plugin` (fixtures ``apns_server`` and
  ``apns_credentials``), registered through the ``pytest11`` entry point.
"""

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
