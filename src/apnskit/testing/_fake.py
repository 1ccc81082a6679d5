"""FakeTransport: the in-memory network for both clients, with a real HTTP/2 server behind it.

Every connection the client opens through a :class:`FakeTransport` is wired to a
:class:`~apnskit.testing.ServerConnection` (h2's server-side state machine) in the same
process. The client's real core writes real frames and real HPACK; the server side parses
them, asks ``handler`` what to answer, and its frames come back. No sockets, no threads: a
test gives the same result every run. Only ``Fault.delay`` waits on the clock, for as long as
the delay asks.

Example:
    ```python
    from apnskit.testing import FakeTransport, Reply, Fault

    def handler(request):
        if request.path.endswith("dead"):
            return Reply(410, reason="Unregistered", timestamp_ms=1_700_000_000_000)
        return Reply(200)

    transport = FakeTransport(handler)
    with apnskit.PushClient(credentials, environment="sandbox", transport=transport) as client:
        ...
    ```
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Callable

import anyio

from apnskit._errors import ConnectError, ConnectionLostError
from apnskit.testing._server_connection import Fault, ReceivedRequest, Reply, ServerConnection

__all__ = ["FakeTransport"]

Handler = Callable[[ReceivedRequest], "Reply | Fault"]


def accept_all(request: ReceivedRequest) -> Reply:
    """The default handler: 200 with the request's apns-id (or a new one)."""
    apns_id = request.headers.get("apns-id") or str(uuid.uuid4())
    return Reply(200, headers=(("apns-id", apns_id),))


class _FakeConnection:
    """One client connection's server end; shared by the sync and async stream wrappers."""

    def __init__(self, transport: FakeTransport, connection_id: int, app: Handler) -> None:
        self.transport = transport
        self.server = ServerConnection(
            app,
            connection_id=connection_id,
            max_concurrent_streams=transport.max_concurrent_streams,
            hold_streams_until_success=transport.hold_streams_until_success,
            goaway_linger=0.0,
        )
        self.server.initiate()
        self.inbox = bytearray(self.server.data_to_send())
        self.eof = False
        self.closed = False
        self.blackholed = False
        self.event: anyio.Event | None = None

    def deliver(self, data: bytes) -> None:
        if self.closed or self.eof:
            raise ConnectionLostError("the fake connection is closed")
        if self.blackholed:
            return  # a silently dead network path: bytes vanish, nothing comes back
        self.server.receive_data(data, time.monotonic())
        self.collect()
        if self.event is not None:
            # The request may have scheduled a delayed reply (Fault.delay) without producing
            # bytes: wake the async reader so it recomputes how long to wait. Without this a
            # reader already waiting with no timer sleeps past the reply forever.
            self.event.set()

    def collect(self) -> None:
        """Take what the server side has to send into the inbox, and wake a waiting reader."""
        out = self.server.data_to_send()
        if out:
            self.inbox += out
        if self.server.should_close:
            self.eof = True
        if (out or self.eof) and self.event is not None:
            self.event.set()

    def tick(self) -> None:
        timer = self.server.next_timer()
        if timer is not None and timer <= time.monotonic():
            self.server.tick(time.monotonic())
            self.collect()

    def take(self) -> bytes | None:
        if self.inbox:
            data = bytes(self.inbox)
            self.inbox.clear()
            return data
        if self.eof:
            return b""
        return None

    def readable(self) -> bool:
        return bool(self.inbox) or self.eof


class _FakeSyncStream:
    def __init__(self, conn: _FakeConnection) -> None:
        #: The connection's server end (the poller reads its state).
        self.conn = conn

    def write(self, data: bytes) -> None:
        self.conn.deliver(data)

    def read(self) -> bytes | None:
        self.conn.tick()
        return self.conn.take()

    def close(self) -> None:
        self.conn.closed = True


class _FakePoller:
    def __init__(self) -> None:
        self._streams: list[_FakeSyncStream] = []
        self._woken = threading.Event()

    def register(self, stream: _FakeSyncStream) -> None:
        self._streams.append(stream)

    def unregister(self, stream: _FakeSyncStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)

    def wait(self, timeout: float | None) -> list[_FakeSyncStream]:
        while True:
            for stream in self._streams:
                stream.conn.tick()
            ready = [s for s in self._streams if s.conn.readable()]
            if ready:
                return ready
            timers = [t for s in self._streams if (t := s.conn.server.next_timer()) is not None]
            wait_for = timeout
            if timers:
                until_timer = max(0.0, min(timers) - time.monotonic())
                wait_for = until_timer if wait_for is None else min(wait_for, until_timer)
            if wait_for is None:
                # Nothing will ever arrive on its own; only a wake-up can change that.
                self._woken.wait()
                self._woken.clear()
                return []
            if self._woken.wait(wait_for):
                self._woken.clear()
                return []
            if not timers or (timeout is not None and wait_for >= timeout):
                return []

    def wake(self) -> None:
        self._woken.set()

    def close(self) -> None:
        self._streams.clear()


class _FakeAsyncStream:
    def __init__(self, conn: _FakeConnection) -> None:
        self._conn = conn

    async def write(self, data: bytes) -> None:
        self._conn.deliver(data)
        await anyio.lowlevel.checkpoint()

    async def read(self) -> bytes:
        conn = self._conn
        # Yield before taking, never after: a cancellation at a checkpoint between take() and
        # return would lose the bytes taken (a reader cancelled when the client's driver hands
        # over), and the client would wait forever for those responses.
        await anyio.lowlevel.checkpoint()
        while True:
            conn.tick()
            data = conn.take()
            if data is not None:
                return data
            if conn.closed:
                raise ConnectionLostError("the fake connection is closed")
            conn.event = anyio.Event()
            timer = conn.server.next_timer()
            delay = None if timer is None else max(0.0, timer - time.monotonic())
            with anyio.move_on_after(delay):
                await conn.event.wait()
            conn.event = None

    async def aclose(self) -> None:
        self._conn.closed = True
        if self._conn.event is not None:
            self._conn.event.set()
        await anyio.lowlevel.checkpoint()


class FakeTransport:
    """An in-memory transport for :class:`apnskit.PushClient` and :class:`apnskit.AsyncPushClient`.

    Args:
        handler: Decides each request's answer: return a :class:`Reply` (status, reason,
            410 timestamp, headers) or a :class:`Fault` (GOAWAY, RST_STREAM, dropped
            connection, delayed or missing reply). Defaults to accepting everything.
        max_concurrent_streams: The SETTINGS_MAX_CONCURRENT_STREAMS the fake server announces.
        hold_streams_until_success: Announce one stream until a first 2xx, as APNs does for
            token authentication.
        fail_connects: Make this many connection attempts fail with ``ConnectError`` first.

    Attributes:
        requests: Every request the fake server received, in order.
        connections: How many connections were opened.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        max_concurrent_streams: int = 1000,
        hold_streams_until_success: bool = False,
        fail_connects: int = 0,
    ) -> None:
        self._handler: Handler = handler or accept_all
        self.max_concurrent_streams = max_concurrent_streams
        self.hold_streams_until_success = hold_streams_until_success
        self.fail_connects = fail_connects
        self.requests: list[ReceivedRequest] = []
        self.connections = 0
        self.connect_attempts = 0
        self._live: list[_FakeConnection] = []

    def _dispatch(self, request: ReceivedRequest) -> Reply | Fault:
        self.requests.append(request)
        return self._handler(request)

    def _new_connection(self, host: str, port: int) -> _FakeConnection:
        self.connect_attempts += 1
        if self.fail_connects > 0:
            self.fail_connects -= 1
            raise ConnectError(f"cannot connect to {host}:{port}: refused (FakeTransport)")
        self.connections += 1
        # The server side answers through _dispatch, which records each request first.
        conn = _FakeConnection(self, self.connections, self._dispatch)
        self._live.append(conn)
        return conn

    def blackhole(self) -> None:
        """Make every open connection silently dead, as a NAT that forgot it would.

        Writes still succeed, nothing is answered (not even PING), and the connection is not
        closed: only a health check can tell. New connections work normally.
        """
        for conn in self._live:
            conn.blackholed = True

    def set_max_concurrent_streams(self, value: int) -> None:
        """Announce a new stream limit on every open connection (SETTINGS mid-connection)."""
        self.max_concurrent_streams = value
        for conn in self._live:
            if not conn.closed and not conn.eof:
                conn.server.set_max_concurrent_streams(value)
                conn.collect()

    def connect(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        server_hostname: str,
        timeout: float | None,
    ) -> _FakeSyncStream:
        """Open a fake connection for the sync client."""
        return _FakeSyncStream(self._new_connection(host, port))

    def poller(self) -> _FakePoller:
        """A poller over fake streams."""
        return _FakePoller()

    async def connect_async(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        server_hostname: str,
        timeout: float | None,
    ) -> _FakeAsyncStream:
        """Open a fake connection for the async client."""
        await anyio.lowlevel.checkpoint()
        return _FakeAsyncStream(self._new_connection(host, port))
