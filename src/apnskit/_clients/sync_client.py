"""PushClient: the blocking client, thread-safe, pipelining on its sockets without threads.

How it waits: whichever calling thread finds nobody doing I/O becomes the *driver*. It
multiplexes every pooled connection with one poller, feeds what it reads to the shared
:class:`~apnskit._engine.dispatcher.Dispatcher` and wakes the threads whose notifications ended.
When its own notification is done it hands the role over. Other threads only queue their
notifications and wake the driver, so no socket is ever touched by two threads at once (an
``ssl.SSLSocket`` must not be).

Connecting (DNS, TCP, TLS: up to ``Timeout.connect``) runs in a short-lived thread per
connection, so the driver keeps reading and writing the other connections meanwhile; the
finished socket is handed to the driver, which alone registers and uses it.

A caller interrupted while it waits (KeyboardInterrupt, an exception from a signal handler)
leaves cleanly: its notification is cancelled (RST_STREAM if it was sent) and, if it was
driving or had just been handed the driver role, the role passes to another waiting thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from types import TracebackType
from typing import Any

from apnskit._clients.common import ClientBase, check_broadcast, closed_by_server
from apnskit._engine.pool import PooledConnection
from apnskit._engine.tickets import Ticket
from apnskit._errors import (
    ApnsError,
    ClientClosedError,
    ConfigurationError,
    ConnectError,
)
from apnskit._model.broadcast import (
    BroadcastNotification,
    Channel,
    ChannelList,
    ChannelRequest,
    MessageStoragePolicy,
    channel_from_result,
    channel_ids_from_result,
    check_deleted,
    create_channel_request,
    delete_channel_request,
    get_channel_request,
    list_channels_request,
)
from apnskit._model.results import PushResult
from apnskit._transports import SyncPoller, SyncStream
from apnskit._transports.socket_transport import SocketTransport

__all__ = ["PushClient"]

# How often a send_many() caller that may pull more input looks at the free room even when
# none of its own notifications ended (room also frees when other callers' ones end).
_ROOM_RECHECK = 0.05


class _Wakeup:
    """A waiting caller's mailbox: the dispatcher appends its finished tickets and wakes it."""

    __slots__ = ("event", "tickets")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.tickets: deque[Ticket] = deque()

    def append(self, ticket: Ticket) -> None:
        self.tickets.append(ticket)
        # Event.set() takes a lock; a bulk send finishes thousands of tickets per batch.
        if not self.event.is_set():
            self.event.set()


# How long close() waits for the thread doing I/O to step down (it does at its next step; a
# connect or a write in progress is bounded by the connect timeout and the write timeout).
_STEP_DOWN_WAIT = 35.0


class PushClient(ClientBase):
    """Send notifications to APNs from blocking code (scripts, Django, Flask, threads).

    Example:
        ```python
        with apnskit.PushClient(credentials, environment="sandbox") as client:
            result = client.send(notification)
        ```

    Args:
        credentials: :class:`apnskit.TokenCredentials` or :class:`apnskit.CertificateCredentials`.
        environment: ``"production"`` or ``"sandbox"``. Required with token credentials
            unless ``host`` is given; picked from a certificate when omitted.
        host: Override the APNs host (the mock server; for a proxy see ``proxy``).
        port: Override the port (default 443; APNs also listens on 2197).
        management_host: Override the channel-management host (default: Apple's, or ``host``
            when that is overridden, as the mock server serves both).
        management_port: Override the channel-management port (default 2195 sandbox,
            2196 production, or ``port`` when ``host`` is overridden).
        ca_file: An extra trust anchor (PEM) besides the system store.
        ssl_context: A ready TLS context to use as given, never changed: it must offer ALPN
            ``h2`` (else :class:`apnskit.ConfigurationError`) and, with certificate
            credentials, already hold the client certificate
            (``credentials.configure_ssl_context(context)`` loads it).
        transport: The network seam; :class:`apnskit.testing.FakeTransport` swaps in a fake.
        timeout: Connect timeout, per-notification deadline, PING health checks.
        limits: Connections in the pool and notifications in flight.
        retry: How often and how late notifications are retried.
        event_hook: Called with each client event (sent, result, retry, connection opened,
            closed or failed), e.g. for metrics. It runs synchronously in the thread doing
            the I/O, under the client's lock: keep it quick and do not call the client from
            it. Its exceptions are logged and ignored.
        proxy: Connect through this proxy: ``"http://[user:password@]host:port"`` (HTTP
            CONNECT, Basic auth) or ``"socks5://[user:password@]host:port"`` (remote DNS;
            ``socks5h://`` is the same; needs ``apnskit[socks]``). The TLS session to APNs
            runs inside the tunnel, its certificate checked as without a proxy. Applies to
            the channel-management connections too. Not with a custom ``transport``.
        trust_env: When ``proxy`` is not given, use ``HTTPS_PROXY`` or ``ALL_PROXY`` from the
            environment unless ``NO_PROXY`` lists the host (as httpx does). False ignores
            them.
    """

    def _check_transport(self, transport: Any) -> Any:
        if transport is None:
            return SocketTransport(self._proxy)
        if not callable(getattr(transport, "connect", None)) or not callable(
            getattr(transport, "poller", None)
        ):
            raise ConfigurationError(
                "transport: PushClient needs a sync transport (connect() and poller())"
            )
        return transport

    def _init_io(self) -> None:
        self._poller: SyncPoller = self._transport.poller()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._driving = False
        self._driver_thread: int | None = None
        self._waiters: set[_Wakeup] = set()
        self._polling = False  # the driver sleeps in the poller
        self._submitted = False  # notifications arrived since the driver last looked
        self._closed = False
        self._clock: Callable[[], float] = time.monotonic
        self._streams: dict[int, PooledConnection] = {}
        self._management: PushClient | None = None
        # Connects finished by their threads, for the driver to take in: (slot, stream, error).
        self._connected: deque[tuple[PooledConnection, SyncStream | None, ApnsError | None]] = (
            deque()
        )

    # ------------------------------------------------------------------ public API

    def send(self, notification: Any) -> PushResult:
        """Send one notification and wait for its result.

        Rejections are returned, not raised; call ``result.raise_for_status()`` to raise. If
        the wait is interrupted (KeyboardInterrupt, an exception from a signal handler), the
        notification is withdrawn: not sent if it was still queued, its stream reset if it
        was written (APNs may have it already).

        Raises:
            ClientClosedError: The client was closed.
        """
        ticket = self._send_ticket(notification)
        assert ticket.result is not None
        return ticket.result

    def _send_ticket(self, notification: Any) -> Ticket:
        """Like :meth:`send`, but returns the finished ticket (for channel management)."""
        wakeup = _Wakeup()
        with self._cond:
            self._check_open()
            ticket = self._dispatcher.submit(notification, self._clock())
            ticket.waiter = wakeup
            poke = self._note_submitted()
        if poke:
            self._poller.wake()
        try:
            self._wait(lambda: ticket.done, wakeup)
        except BaseException:
            # The caller was interrupted (KeyboardInterrupt, a signal handler's exception):
            # it will never see this result, so stop the notification rather than deliver
            # it behind its back. One already written may still reach APNs.
            with self._cond:
                self._dispatcher.cancel(ticket, ClientClosedError("send() was interrupted"))
            raise
        return ticket

    def send_many(self, notifications: Iterable[Any]) -> Iterator[PushResult]:
        """Send many notifications, pipelined, yielding each result as it completes.

        ``notifications`` may be any iterable, a generator of millions included: it is read
        only as fast as in-flight room frees up (``Limits.max_in_flight``), so memory stays
        flat. Every notification yields exactly one result; order follows completion.
        Leaving the loop early (``break``, an exception) cancels what is still pending.

        Raises:
            ClientClosedError: The client was closed: before the first item, or meanwhile (then
                after a result for every notification already taken from the iterable).
        """
        with self._cond:
            self._check_open()
        source = iter(notifications)
        exhausted = [False]  # a cell, so the wait predicate sees updates
        wakeup = _Wakeup()
        pending: set[Ticket] = set()
        limit = self._setup.limits.max_in_flight
        batch = max(1, min(1000, limit))
        try:
            cut = yield from self._send_many(source, exhausted, wakeup, pending, limit, batch)
            if cut:
                # Everything taken from the iterable has had its result; say why the rest
                # was not taken.
                raise ClientClosedError(
                    "the client was closed during send_many(); notifications not yet taken "
                    "from the iterable were not sent"
                )
        finally:
            if pending:
                # The caller left early (break, an exception): stop what it no longer waits
                # for instead of sending it anyway.
                with self._cond:
                    error = ClientClosedError("send_many() was closed before this was answered")
                    for ticket in pending:
                        self._dispatcher.cancel(ticket, error)

    def _send_many(
        self,
        source: Iterator[Any],
        exhausted: list[bool],
        wakeup: _Wakeup,
        pending: set[Ticket],
        limit: int,
        batch: int,
    ) -> Generator[PushResult, None, bool]:
        # Returns True when close() cut the input short.
        finished = wakeup.tickets
        mine = 0
        cut = False
        while True:
            if not exhausted[0]:
                with self._cond:
                    room = limit - self._dispatcher.outstanding
                    if self._closed:
                        cut = exhausted[0] = True  # take nothing more from the caller
                        room = 0
                pulled: list[Any] = []
                while len(pulled) < min(room, batch):
                    try:
                        pulled.append(next(source))
                    except StopIteration:
                        exhausted[0] = True
                        break
                if pulled:
                    with self._cond:
                        # No _check_open() here: after close() each pulled item still gets its
                        # result (the closed dispatcher ends it with ClientClosedError at once).
                        now = self._clock()
                        submit = self._dispatcher.submit
                        for item in pulled:
                            ticket = submit(item, now)
                            if ticket.done:
                                finished.append(ticket)
                            else:
                                ticket.waiter = wakeup
                                pending.add(ticket)
                        mine += len(pulled)
                        poke = self._note_submitted()
                    if poke:
                        self._poller.wake()
            while finished:
                ticket = finished.popleft()
                pending.discard(ticket)
                mine -= 1
                assert ticket.result is not None
                yield ticket.result
            if exhausted[0] and mine == 0:
                return cut
            # Wait until something of ours ends, or there is room to pull more.
            # Room frees up when anyone's notifications end, not only ours: while we may
            # pull more, look again now and then even if none of ours ended.
            self._wait(
                lambda: (
                    bool(finished)
                    or (not exhausted[0] and self._dispatcher.outstanding < limit - batch // 2)
                ),
                wakeup,
                recheck=None if exhausted[0] else _ROOM_RECHECK,
            )

    def send_broadcast(self, notification: BroadcastNotification) -> PushResult:
        """Send a Live Activity update or end to every device subscribed to a channel (iOS 18).

        The result carries ``request_id`` (``apns-request-id``); it is retried and validated
        like a device notification.

        Raises:
            InvalidNotificationError: ``notification`` is not a :class:`BroadcastNotification`.
            ClientClosedError: The client was closed.
        """
        check_broadcast(notification)
        return self.send(notification)

    def create_channel(
        self,
        bundle_id: str,
        *,
        message_storage_policy: MessageStoragePolicy | int = MessageStoragePolicy.NO_MESSAGE_STORED,
        request_id: str | None = None,
    ) -> Channel:
        """Create a broadcast channel for ``bundle_id`` on the channel-management host.

        Creation is not idempotent, so a failed attempt is not retried blindly.

        Raises:
            ChannelError: APNs refused (e.g. the 10,000-channel limit) or did not answer.
        """
        request = create_channel_request(bundle_id, message_storage_policy, request_id=request_id)
        return channel_from_result(request, self._manage(request))

    def get_channel(
        self, bundle_id: str, channel_id: str, *, request_id: str | None = None
    ) -> Channel:
        """Read one channel's configuration.

        Raises:
            ChannelError: APNs refused (e.g. ``ChannelNotRegistered``) or did not answer.
        """
        request = get_channel_request(bundle_id, channel_id, request_id=request_id)
        return channel_from_result(request, self._manage(request))

    def list_channels(self, bundle_id: str, *, request_id: str | None = None) -> ChannelList:
        """The ids of every channel of ``bundle_id`` in this environment (``.request_id`` too).

        Raises:
            ChannelError: APNs refused or did not answer.
        """
        request = list_channels_request(bundle_id, request_id=request_id)
        return channel_ids_from_result(request, self._manage(request))

    def delete_channel(
        self, bundle_id: str, channel_id: str, *, request_id: str | None = None
    ) -> Channel:
        """Delete a channel; returns it with the answer's ``request_id``.

        Raises:
            ChannelError: APNs refused (e.g. ``ChannelNotRegistered``) or did not answer.
        """
        request = delete_channel_request(bundle_id, channel_id, request_id=request_id)
        ticket = self._manage_ticket(request)
        assert ticket.result is not None
        return check_deleted(request, ticket.result, earlier_send_may_have_run=ticket.unknown_fate)

    def _manage(self, request: ChannelRequest) -> PushResult:
        ticket = self._manage_ticket(request)
        assert ticket.result is not None
        return ticket.result

    def _manage_ticket(self, request: ChannelRequest) -> Ticket:
        # Channel management lives on its own host: a small client of our own kind, made on
        # first use, sharing credentials, TLS and transport.
        with self._cond:
            self._check_open()
            if self._management is None:
                self._management = PushClient(self._credentials, **self._management_options())
            management = self._management
        return management._send_ticket(request)

    def close(self) -> None:
        """Close every connection (GOAWAY) and fail what is still in flight.

        Safe to call more than once, and from any thread: a thread blocked in ``send()``
        returns with a failed result.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            management, self._management = self._management, None
            called_by_driver = self._driver_thread == threading.get_ident()
        self._poller.wake()
        if management is not None:
            management.close()
        with self._cond:
            if not called_by_driver:
                # Let the driving thread notice and step down first: an ssl.SSLSocket must
                # never be used by two threads at once. It leaves at its next step; a
                # connect or a write in progress is bounded by their timeouts.
                limit = time.monotonic() + _STEP_DOWN_WAIT
                while self._driving and (left := limit - time.monotonic()) > 0:
                    self._cond.wait(left)
            conns = self._dispatcher.close_all(ClientClosedError("the client was closed"))
            for waiter in self._waiters:
                waiter.event.set()
            leftover = [stream for _, stream, _ in self._connected if stream is not None]
            self._connected.clear()
        for stream in leftover:
            stream.close()
        for conn in conns:
            stream = conn.stream
            if stream is not None:
                try:
                    data = conn.core.data_to_send()
                    if data:
                        stream.write(data)
                except ApnsError:
                    pass
                self._poller.unregister(stream)
                stream.close()
        self._poller.close()

    def __enter__(self) -> PushClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ driving

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the client was closed")

    def _wait(
        self, done: Callable[[], bool], wakeup: _Wakeup, recheck: float | None = None
    ) -> None:
        """Block until ``done()``; drive the I/O while nobody else does.

        Callers that do not drive sleep on their own :class:`_Wakeup`, set when one of their
        notifications ends or when the driver steps down and hands the I/O to them. Waking
        only those concerned (not every thread on every batch) keeps many threads cheap.
        """
        while True:
            with self._lock:
                if done() or self._dispatcher.closed:
                    # After close() nobody drives; close() ended every ticket already, so a
                    # predicate still false (a send_many waiting for room) has nothing to wait
                    # for.
                    self._waiters.discard(wakeup)
                    self._hand_over()
                    return
                # Between close() starting and its ending every ticket, nobody drives either.
                drive = not self._driving and not self._closed
                if drive:
                    self._driving = True
                    self._driver_thread = threading.get_ident()
                    self._waiters.discard(wakeup)
                else:
                    self._waiters.add(wakeup)
                    wakeup.event.clear()
            if not drive:
                try:
                    wakeup.event.wait(recheck)
                except BaseException:
                    # Interrupted while waiting: leave the waiters, and pass on the driver
                    # role if it was just handed to us, or nobody would ever drive again and
                    # every other thread would sleep past its deadline.
                    with self._lock:
                        self._waiters.discard(wakeup)
                        self._hand_over()
                    raise
                continue
            try:
                self._drive(done)
            finally:
                with self._cond:
                    self._driving = False
                    self._driver_thread = None
                    self._hand_over()
                    self._cond.notify_all()  # close() may be waiting for the step-down

    def _note_submitted(self) -> bool:
        """Under the lock, after a submit: True when the driver sleeps and must be woken.

        A driver that is busy picks the new work up at its next step, so most submits cost
        no wake-up (a system call and a select() return) at all.
        """
        self._submitted = True
        return self._polling

    def _hand_over(self) -> None:
        # Called under the lock: if nobody drives, wake one waiting caller to take over.
        if not self._driving and self._waiters:
            next(iter(self._waiters)).event.set()

    def _drive(self, done: Callable[[], bool]) -> None:
        dispatcher = self._dispatcher
        clock = self._clock
        credentials = self._credentials
        while True:
            with self._cond:
                connected = list(self._connected)
                self._connected.clear()
            for conn, stream, error in connected:
                self._take_connected(conn, stream, error)
            # The token is read here, outside the core (it may renew it: a signature).
            authorization = credentials.authorization()
            with self._cond:
                if self._closed:
                    return
                now = clock()
                self._submitted = False
                dispatcher.set_authorization(authorization)
                dispatcher.tick(now)
                if done():
                    return
                to_open = dispatcher.connections_to_open(now)
                writes: list[tuple[PooledConnection, bytes]] = []
                for conn in dispatcher.connections:
                    if conn.stream is not None and conn.state != PooledConnection.CLOSED:
                        data = conn.core.data_to_send()
                        if data:
                            writes.append((conn, data))
                closing = list(dispatcher.closing_connections())
                wakeup = dispatcher.next_wakeup(now)
            for conn in closing:
                self._release(conn)
            for conn in to_open:
                self._open(conn)
            for conn, data in writes:
                try:
                    conn.stream.write(data)
                except ApnsError as error:
                    with self._cond:
                        dispatcher.connection_lost(conn, error, clock())
            if closing:
                continue
            with self._cond:
                if self._submitted or self._connected:
                    # Work (or a finished connect) arrived while we were writing: take it in
                    # before sleeping.
                    self._submitted = False
                    continue
                self._polling = True
            timeout = None if wakeup is None else max(0.0, wakeup - clock())
            if not self._streams and timeout is None:
                # Nothing to read and nothing scheduled: the waiting tickets need a connection
                # that connections_to_open() will grant on the next pass.
                timeout = 0.05
            try:
                ready = self._poller.wait(timeout)
            finally:
                with self._cond:
                    self._polling = False
            for stream in ready:
                self._read(stream)

    def _read(self, stream: SyncStream) -> None:
        conn = self._streams.get(id(stream))
        if conn is None:
            return
        chunks: list[bytes] = []
        eof = False
        error: ApnsError | None = None
        try:
            while True:
                data = stream.read()
                if data is None:
                    break
                if not data:
                    eof = True
                    break
                chunks.append(data)
                if len(chunks) >= 16:
                    break
        except ApnsError as exc:
            error = exc
        with self._cond:
            now = self._clock()
            if chunks:
                self._dispatcher.receive(conn, b"".join(chunks), now)
            if error is not None or eof:
                self._dispatcher.connection_lost(
                    conn, closed_by_server(conn, self._setup, error), now
                )

    def _open(self, conn: PooledConnection) -> None:
        # Connect in a thread of its own: DNS, TCP and TLS may take up to Timeout.connect,
        # and meanwhile the driver keeps the other connections flowing (issue 11).
        thread = threading.Thread(
            target=self._connect_in_thread,
            args=(conn,),
            name=f"apnskit-connect-{conn.id}",
            daemon=True,
        )
        thread.start()

    def _connect_in_thread(self, conn: PooledConnection) -> None:
        setup = self._setup
        stream: SyncStream | None = None
        error: ApnsError | None = None
        try:
            stream = self._transport.connect(
                setup.host,
                setup.port,
                ssl_context=setup.ssl_context,
                server_hostname=setup.host,
                timeout=setup.timeout.connect,
            )
        except ApnsError as exc:
            error = exc
        except Exception as exc:  # a custom transport that does not map its errors
            error = ConnectError(f"cannot connect to {setup.host}:{setup.port}: {exc!r}")
        with self._cond:
            closed = self._closed
            if not closed:
                self._connected.append((conn, stream, error))
        if closed:
            if stream is not None:
                stream.close()
            return
        self._poller.wake()

    def _take_connected(
        self, conn: PooledConnection, stream: SyncStream | None, error: ApnsError | None
    ) -> None:
        # Called by the driver only: it alone registers streams with the poller.
        if stream is None:
            with self._cond:
                assert error is not None
                self._dispatcher.connect_failed(conn, error, self._clock())
            return
        with self._cond:
            if self._closed:
                closed = True
            else:
                closed = False
                conn.stream = stream
                self._streams[id(stream)] = conn
                self._poller.register(stream)
                self._dispatcher.connection_established(conn, self._clock())
        if closed:
            stream.close()

    def _release(self, conn: PooledConnection) -> None:
        stream = conn.stream
        if stream is None:
            return
        try:
            data = conn.core.data_to_send()
            if data:
                stream.write(data)  # our GOAWAY, best effort
        except ApnsError:
            pass
        self._poller.unregister(stream)
        stream.close()
        with self._cond:
            self._streams.pop(id(stream), None)
            self._dispatcher.forget(conn)
