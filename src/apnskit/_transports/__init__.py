"""The network seam: how clients get byte streams, and the contract a fake must meet.

A transport gives the sync client :class:`SyncStream` objects (``connect``) plus a
:class:`SyncPoller` to wait on many of them at once (``poller``), and the async client
:class:`AsyncStream` objects (``connect_async``). One object may implement both, as
:class:`apnskit.testing.FakeTransport` does. Native errors (``OSError``, ``ssl.SSLError``,
anyio's) are mapped to apnskit's own at this seam and never leak past it; a failed connect
is mapped once for every transport by :mod:`apnskit._transports.connecting`.
"""

from __future__ import annotations

import ssl
from typing import Protocol, runtime_checkable

__all__ = ["AsyncStream", "AsyncTransport", "SyncPoller", "SyncStream", "SyncTransport"]


class SyncStream(Protocol):
    """A connected, TLS-wrapped byte stream for the sync client."""

    def write(self, data: bytes) -> None:
        """Write all of ``data`` (blocking); raises ``ConnectionLostError`` when broken."""

    def read(self) -> bytes | None:
        """Read what is available without blocking: ``None`` for nothing yet, ``b""`` at EOF."""

    def close(self) -> None:
        """Close the stream; never raises."""


class SyncPoller(Protocol):
    """Waits until one of several :class:`SyncStream` objects may be read, or a wake-up."""

    def register(self, stream: SyncStream) -> None:
        """Watch ``stream``."""

    def unregister(self, stream: SyncStream) -> None:
        """Stop watching ``stream``."""

    def wait(self, timeout: float | None) -> list[SyncStream]:
        """Block until a stream may be readable, :meth:`wake` is called, or the timeout."""

    def wake(self) -> None:
        """Make a concurrent :meth:`wait` return now; safe to call from any thread."""

    def close(self) -> None:
        """Release the poller's resources."""


@runtime_checkable
class SyncTransport(Protocol):
    """Opens connections for :class:`apnskit.PushClient`."""

    def connect(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        server_hostname: str,
        timeout: float | None,
    ) -> SyncStream:
        """Connect, handshake TLS with ALPN ``h2``, and return the stream."""

    def poller(self) -> SyncPoller:
        """A new poller for streams from this transport."""


class AsyncStream(Protocol):
    """A connected, TLS-wrapped byte stream for the async client."""

    async def write(self, data: bytes) -> None:
        """Write all of ``data``; raises ``ConnectionLostError`` when broken."""

    async def read(self) -> bytes:
        """Wait for data; ``b""`` at EOF."""

    async def aclose(self) -> None:
        """Close the stream; never raises."""


@runtime_checkable
class AsyncTransport(Protocol):
    """Opens connections for :class:`apnskit.AsyncPushClient`."""

    async def connect_async(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        server_hostname: str,
        timeout: float | None,
    ) -> AsyncStream:
        """Connect, handshake TLS with ALPN ``h2``, and return the stream."""
