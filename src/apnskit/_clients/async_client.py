"""AsyncPushClient: the anyio client (asyncio and trio), twin of :class:`apnskit.PushClient`.

How it waits: the calling task that finds nobody doing I/O becomes the *driver*. For as
long as its own notification is pending it runs one reader task per pooled connection inside
its own task group, writes what the cores produce, opens connections and keeps time; then it
hands over to another waiting task. No background task outlives a call, so the client needs
no task group of its own and works with or without ``async with``.

Each waiting task sleeps on its own event, set when one of its notifications ends or when the
driver role is handed to it (as the sync client's threads do): a read wakes only the tasks it
concerns. A task cancelled while it waits cancels its notification (RST_STREAM if it was
sent) and passes on the driver role if it was just handed to it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from apnskit._clients.common import ClientBase, check_broadcast, closed_by_server
from apnskit._engine.pool import PooledConnection
from apnskit._engine.tickets import Ticket
from apnskit._errors import ApnsError, ClientClosedError, ConfigurationError
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
from apnskit._transports.anyio_transport import AnyioTransport

__all__ = ["AsyncPushClient"]

# How long close() waits for the task doing I/O to step down before writing GOAWAY itself;
# if it is still writing then, close() closes the streams without GOAWAY (one writer only).
_STEP_DOWN_WAIT = 5.0
# How often a send_many() caller that may pull more input looks at the free room even when
# none of its own notifications ended (room also frees when other callers' ones end).
_ROOM_RECHECK = 0.05


class _AsyncWakeup:
    """A waiting task's mailbox: the dispatcher appends its finished tickets and wakes it."""

    __slots__ = ("event", "tickets")

    def __init__(self) -> None:
        self.event: anyio.Event | None = None
        self.tickets: deque[Ticket] = deque()

    def append(self, ticket: Ticket) -> None:
        self.tickets.append(ticket)
        self.set()

    def set(self) -> None:
        if self.event is not None:
            self.event.set()


class AsyncPushClient(ClientBase):
    """Send notifications to APNs from async code (asyncio or trio, through anyio).

    Example:
        ```python
        async with apnskit.AsyncPushClient(credentials, environment="sandbox") as client:
            result = await client.send(notification)
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
            closed or failed), e.g. for metrics. It runs synchronously in the task doing the I/O:
            keep it quick and do not call the client from it. Its exceptions are logged and
            ignored.
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
            return AnyioTransport(self._proxy)
        if not callable(getattr(transport, "connect_async", None)):
            raise ConfigurationError(
                "transport: AsyncPushClient needs an async transport (connect_async())"
            )
        return transport

    def _init_io(self) -> None:
        self._driving = False
        self._closed = False
        self._clock: Callable[[], float] = time.monotonic
        # anyio events need a running event loop, so they are made on first use.
        self._stepped_down: anyio.Event | None = None  # close() waits for the driver
        self._wake: anyio.Event | None = None
        self._waiters: set[_AsyncWakeup] = set()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._management: AsyncPushClient | None = None
        self._opening = 0  # connects in progress in the driver's task group

    # ------------------------------------------------------------------ public API

    async def send(self, notification: Any) -> PushResult:
        """Send one notification and wait for its result.

        Rejections are returned, not raised; call ``result.raise_for_status()`` to raise.
        Cancelling the call (a timeout around it) withdraws the notification: it is not sent
        if it was still queued, and its stream is reset if it was written (APNs may have it
        already).

        Raises:
            ClientClosedError: The client was closed.
        """
        ticket = await self._send_ticket(notification)
        assert ticket.result is not None
        return ticket.result

    async def _send_ticket(self, notification: Any) -> Ticket:
        """Like :meth:`send`, but returns the finished ticket (for channel management)."""
        self._check_open()
        ticket = self._dispatcher.submit(notification, self._clock())
        wakeup = _AsyncWakeup()
        ticket.waiter = wakeup
        self._kick()
        try:
            await self._wait(lambda: ticket.done, wakeup)
        except BaseException:
            # Cancelled (a timeout around send(), a request handler cancelled): the caller
            # will never see the result, so the notification is withdrawn rather than sent
            # later behind its back. One already written may still reach APNs (README).
            if not ticket.done:
                self._dispatcher.cancel(ticket, ClientClosedError("send() was cancelled"))
                self._kick()
            raise
        return ticket

    async def send_many(
        self, notifications: Iterable[Any] | AsyncIterable[Any]
    ) -> AsyncIterator[PushResult]:
        """Send many notifications, pipelined, yielding each result as it completes.

        ``notifications`` may be any iterable or async iterable, a generator of millions
        included: it is read only as fast as in-flight room frees up
        (``Limits.max_in_flight``), so memory stays flat. Every notification yields exactly
        one result; order follows completion. Leaving the loop early cancels what is still
        pending (close the iterator, e.g. with ``contextlib.aclosing``, for that to happen at
        once).

        Raises:
            ClientClosedError: The client was closed: before the first item, or meanwhile (then
                after a result for every notification already taken from the iterable).
        """
        self._check_open()
        if isinstance(notifications, AsyncIterable):
            async_source: AsyncIterator[Any] | None = notifications.__aiter__()
            sync_source = None
        else:
            async_source = None
            sync_source = iter(notifications)
        exhausted = [False]  # a cell, so the wait predicate sees updates
        wakeup = _AsyncWakeup()
        finished = wakeup.tickets
        pending: set[Ticket] = set()
        mine = 0
        cut = False
        limit = self._setup.limits.max_in_flight
        batch = max(1, min(1000, limit))
        dispatcher = self._dispatcher
        try:
            while True:
                if not exhausted[0]:
                    room = min(limit - dispatcher.outstanding, batch)
                    if self._closed:
                        cut = exhausted[0] = True  # take nothing more from the caller
                        room = 0
                    pulled: list[Any] = []
                    while len(pulled) < room:
                        try:
                            if sync_source is not None:
                                pulled.append(next(sync_source))
                            else:
                                assert async_source is not None
                                pulled.append(await async_source.__anext__())
                        except (StopIteration, StopAsyncIteration):
                            exhausted[0] = True
                            break
                    if pulled:
                        # No _check_open() here: after close() each pulled item still gets
                        # its result (the closed dispatcher ends it with ClientClosedError).
                        now = self._clock()
                        for item in pulled:
                            ticket = dispatcher.submit(item, now)
                            if ticket.done:
                                finished.append(ticket)
                            else:
                                ticket.waiter = wakeup
                                pending.add(ticket)
                        mine += len(pulled)
                        self._kick()
                while finished:
                    ticket = finished.popleft()
                    pending.discard(ticket)
                    mine -= 1
                    assert ticket.result is not None
                    yield ticket.result
                if exhausted[0] and mine == 0:
                    break
                await self._wait(
                    lambda: (
                        bool(finished)
                        or (not exhausted[0] and dispatcher.outstanding < limit - batch // 2)
                    ),
                    wakeup,
                    recheck=None if exhausted[0] else _ROOM_RECHECK,
                )
            if cut:
                # Everything taken from the iterable has had its result; say why the rest
                # was not taken.
                raise ClientClosedError(
                    "the client was closed during send_many(); notifications not yet taken "
                    "from the iterable were not sent"
                )
        finally:
            if pending:
                # The caller left early (break, an exception, cancellation): stop what it
                # no longer waits for instead of sending it anyway.
                error = ClientClosedError("send_many() was closed before this was answered")
                for ticket in pending:
                    dispatcher.cancel(ticket, error)
                self._kick()

    async def send_broadcast(self, notification: BroadcastNotification) -> PushResult:
        """Send a Live Activity update or end to every device subscribed to a channel (iOS 18).

        The result carries ``request_id`` (``apns-request-id``); it is retried and validated
        like a device notification.

        Raises:
            InvalidNotificationError: ``notification`` is not a :class:`BroadcastNotification`.
            ClientClosedError: The client was closed.
        """
        check_broadcast(notification)
        return await self.send(notification)

    async def create_channel(
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
        return channel_from_result(request, await self._manage(request))

    async def get_channel(
        self, bundle_id: str, channel_id: str, *, request_id: str | None = None
    ) -> Channel:
        """Read one channel's configuration.

        Raises:
            ChannelError: APNs refused (e.g. ``ChannelNotRegistered``) or did not answer.
        """
        request = get_channel_request(bundle_id, channel_id, request_id=request_id)
        return channel_from_result(request, await self._manage(request))

    async def list_channels(self, bundle_id: str, *, request_id: str | None = None) -> ChannelList:
        """The ids of every channel of ``bundle_id`` in this environment (``.request_id`` too).

        Raises:
            ChannelError: APNs refused or did not answer.
        """
        request = list_channels_request(bundle_id, request_id=request_id)
        return channel_ids_from_result(request, await self._manage(request))

    async def delete_channel(
        self, bundle_id: str, channel_id: str, *, request_id: str | None = None
    ) -> Channel:
        """Delete a channel; returns it with the answer's ``request_id``.

        Raises:
            ChannelError: APNs refused (e.g. ``ChannelNotRegistered``) or did not answer.
        """
        request = delete_channel_request(bundle_id, channel_id, request_id=request_id)
        ticket = await self._manage_ticket(request)
        assert ticket.result is not None
        return check_deleted(request, ticket.result, earlier_send_may_have_run=ticket.unknown_fate)

    async def _manage(self, request: ChannelRequest) -> PushResult:
        ticket = await self._manage_ticket(request)
        assert ticket.result is not None
        return ticket.result

    async def _manage_ticket(self, request: ChannelRequest) -> Ticket:
        # Channel management lives on its own host: a small client of our own kind, made on
        # first use, sharing credentials, TLS and transport.
        self._check_open()
        if self._management is None:
            self._management = AsyncPushClient(self._credentials, **self._management_options())
        return await self._management._send_ticket(request)

    async def close(self) -> None:
        """Close every connection (GOAWAY) and fail what is still in flight.

        Safe to call more than once.
        """
        if self._closed:
            return
        self._closed = True
        # End every ticket before the first await, so no waiting task wakes to find its
        # notification without a result.
        conns = self._dispatcher.close_all(ClientClosedError("the client was closed"))
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
        for waiter in list(self._waiters):
            waiter.set()
        management, self._management = self._management, None
        with anyio.CancelScope(shield=True):
            if management is not None:
                await management.close()
            # Let the driving task leave (its shielded write may still be finishing) before
            # writing GOAWAY ourselves: one writer per stream.
            with anyio.move_on_after(_STEP_DOWN_WAIT):
                while self._driving:
                    if self._stepped_down is None:
                        self._stepped_down = anyio.Event()
                    await self._stepped_down.wait()
            # A driver still inside a long write: writing too would make two writers on one
            # stream (anyio raises BusyResourceError). Close without GOAWAY instead; the
            # closed stream ends that write.
            may_write = not self._driving
            for conn in conns:
                stream = conn.stream
                if stream is None:
                    continue
                try:
                    data = conn.core.data_to_send() if may_write else b""
                    if data:
                        with anyio.move_on_after(1.0):
                            await stream.write(data)
                except ApnsError:
                    pass
                finally:
                    await stream.aclose()

    async def __aenter__(self) -> AsyncPushClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ driving

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the client was closed")

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _hand_over(self) -> None:
        # If nobody drives, wake one waiting task to take over.
        if not self._driving and self._waiters:
            next(iter(self._waiters)).set()

    async def _wait(
        self, done: Callable[[], bool], wakeup: _AsyncWakeup, recheck: float | None = None
    ) -> None:
        """Wait until ``done()``; drive the I/O while nobody else does."""
        while True:
            if done():
                return
            if self._closed:
                # close() ended every ticket already; a predicate that is still false (a
                # send_many waiting for room) has nothing more to wait for.
                return
            if not self._driving:
                self._driving = True
                try:
                    await self._drive(done)
                finally:
                    self._driving = False
                    if self._stepped_down is not None:
                        self._stepped_down.set()
                        self._stepped_down = None
                    self._hand_over()
                continue
            wakeup.event = anyio.Event()
            self._waiters.add(wakeup)
            try:
                with anyio.move_on_after(recheck):
                    await wakeup.event.wait()
            except BaseException:
                # Cancelled while waiting: if the driver role was just handed to us, pass it
                # on, or nobody would drive and every other task would wait forever.
                self._waiters.discard(wakeup)
                wakeup.event = None
                self._hand_over()
                raise
            self._waiters.discard(wakeup)
            wakeup.event = None

    async def _drive(self, done: Callable[[], bool]) -> None:
        dispatcher = self._dispatcher
        clock = self._clock
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            try:
                for conn in dispatcher.connections:
                    if conn.stream is not None and conn.state != PooledConnection.CLOSED:
                        task_group.start_soon(self._reader, conn)
                credentials = self._credentials
                while not self._closed:
                    self._wake = anyio.Event()
                    now = clock()
                    # The token is read here, outside the core (it may renew it: a signature).
                    dispatcher.set_authorization(credentials.authorization())
                    dispatcher.tick(now)
                    if done() and not self._opening:
                        break
                    for conn in dispatcher.connections_to_open(now):
                        task_group.start_soon(self._open, conn, task_group)
                    for conn in list(dispatcher.closing_connections()):
                        await self._release(conn)
                    for conn in list(dispatcher.connections):
                        if conn.stream is None or conn.state == PooledConnection.CLOSED:
                            continue
                        data = conn.core.data_to_send()
                        if data:
                            try:
                                # The bytes were already taken from the core: a cancellation
                                # (a caller's timeout around send()) mid-write would leave a
                                # partial frame and corrupt the connection for everyone.
                                with anyio.CancelScope(shield=True):
                                    await conn.stream.write(data)
                            except ApnsError as error:
                                dispatcher.connection_lost(conn, error, clock())
                    # A connect in progress is finished before stepping down (as the sync
                    # client does): abandoning handshakes again and again each time a result
                    # arrives looks like a connection flood to APNs.
                    if done() and not self._opening:
                        break
                    if self._wake.is_set():
                        continue
                    wakeup = dispatcher.next_wakeup(now)
                    timeout = None if wakeup is None else max(0.0, wakeup - clock())
                    if not any(c.stream is not None for c in dispatcher.connections):
                        # Waiting for a connect (or its backoff) to finish.
                        timeout = 0.05 if timeout is None else min(timeout, 0.05)
                    with anyio.move_on_after(timeout):
                        await self._wake.wait()
            finally:
                self._task_group = None
                task_group.cancel_scope.cancel()

    async def _reader(self, conn: PooledConnection) -> None:
        stream = conn.stream
        dispatcher = self._dispatcher
        while conn.stream is stream and conn.state != PooledConnection.CLOSED:
            try:
                data = await stream.read()
            except ApnsError as error:
                dispatcher.connection_lost(
                    conn, closed_by_server(conn, self._setup, error), self._clock()
                )
                data = None
            else:
                if data:
                    dispatcher.receive(conn, data, self._clock())
                else:
                    dispatcher.connection_lost(
                        conn, closed_by_server(conn, self._setup), self._clock()
                    )
            self._kick()
            if not data:
                return

    async def _open(self, conn: PooledConnection, task_group: anyio.abc.TaskGroup) -> None:
        self._opening += 1
        try:
            await self._connect(conn, task_group)
        finally:
            self._opening -= 1
            self._kick()

    async def _connect(self, conn: PooledConnection, task_group: anyio.abc.TaskGroup) -> None:
        setup = self._setup
        try:
            stream = await self._transport.connect_async(
                setup.host,
                setup.port,
                ssl_context=setup.ssl_context,
                server_hostname=setup.host,
                timeout=setup.timeout.connect,
            )
        except ApnsError as error:
            self._dispatcher.connect_failed(conn, error, self._clock())
            self._kick()
            return
        except anyio.get_cancelled_exc_class():
            # The client is closing (the driver waits for connects otherwise): give the
            # slot back.
            self._dispatcher.connect_abandoned(conn)
            raise
        if self._closed:
            await stream.aclose()
            return
        conn.stream = stream
        self._dispatcher.connection_established(conn, self._clock())
        task_group.start_soon(self._reader, conn)
        self._kick()

    async def _release(self, conn: PooledConnection) -> None:
        stream = conn.stream
        if stream is None:
            return
        self._dispatcher.forget(conn)
        # Shielded: the slot is already forgotten, so a cancellation here (the caller's
        # timeout) would leak the socket.
        with anyio.CancelScope(shield=True):
            try:
                data = conn.core.data_to_send()
                if data:
                    with anyio.move_on_after(1.0):
                        await stream.write(data)  # our GOAWAY, best effort
            except ApnsError:
                pass
            finally:
                await stream.aclose()
