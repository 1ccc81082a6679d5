"""The anyio driver under AsyncPushClient (asyncio and trio): how its calls wait.

The public methods are in ``async_client.py`` (written once; ``sync_client.py`` is generated
from it). This module is what stays different from the sync twin by design: tasks instead of
threads.

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

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import Any

import anyio
import anyio.abc

from apnskit._clients.common import ClientBase, closed_by_server
from apnskit._engine.pool import PooledConnection
from apnskit._engine.tickets import Ticket
from apnskit._errors import ApnsError, ClientClosedError, ConfigurationError
from apnskit._transports.anyio_transport import AnyioTransport

__all__ = ["AsyncDriver", "AsyncSource", "AsyncWakeup"]

# How long close() waits for the task doing I/O to step down before writing GOAWAY itself;
# if it is still writing then, close() closes the streams without GOAWAY (one writer only).
_STEP_DOWN_WAIT = 5.0


class AsyncWakeup:
    """A waiting task's mailbox: the dispatcher appends its finished tickets and wakes it."""

    __slots__ = ("event", "future", "tickets")

    def __init__(self, collect: bool = False) -> None:
        # What the task sleeps on, made when it sleeps (they need a running event loop): a
        # bare future under asyncio, an anyio event otherwise (trio).
        self.event: anyio.Event | None = None
        self.future: asyncio.Future[None] | None = None
        # send_many() collects its finished tickets here; send() only needs waking (its one
        # ticket says when it is done): no deque per call.
        self.tickets: deque[Ticket] | None = deque() if collect else None

    def append(self, ticket: Ticket | None) -> None:
        """Take a finished ticket in (None: none) and wake the task (the dispatcher's ``on_done``).

        The wake-up is written out here rather than a call to :meth:`set`: this runs once
        per notification.
        """
        tickets = self.tickets
        if tickets is not None and ticket is not None:
            tickets.append(ticket)
        future = self.future
        if future is not None:
            if not future.done():  # cancelled (the task left), or set already
                future.set_result(None)
        elif self.event is not None:
            self.event.set()

    def set(self) -> None:
        """Wake the task if it sleeps."""
        self.append(None)

    async def sleep(self, timeout: float | None) -> None:
        """Sleep until :meth:`set` or ``timeout`` seconds (None: no limit)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio, through anyio
            loop = None
        if loop is not None:
            # Under asyncio a bare future does what anyio.Event does for a fraction of the
            # cost (one object, no wrapper, no waiter list), and a timer that sets it what a
            # cancel scope does (no task cancellation to deliver and uncancel): the driver
            # sleeps like this once per read of responses. anyio's cancel scopes cancel the
            # future as they cancel any awaited one.
            future = self.future = loop.create_future()
            timer = None if timeout is None else loop.call_later(timeout, _wake_future, future)
            try:
                await future
            finally:
                self.future = None
                if timer is not None:
                    timer.cancel()
            return
        event = self.event = anyio.Event()
        try:
            if timeout is None:
                await event.wait()
            else:
                with anyio.move_on_after(timeout):
                    await event.wait()
        finally:
            self.event = None


def _wake_future(future: asyncio.Future[None]) -> None:
    # A sleep's time limit: its future may have been set (woken) or cancelled meanwhile.
    if not future.done():
        future.set_result(None)


class AsyncSource:
    """What ``send_many()`` reads: a plain or an async iterable, a batch at a time.

    ``exhausted`` once it ended or must not be read any more; ``cut`` when ``close()`` stopped
    the reading before the end.
    """

    __slots__ = ("_async_items", "_items", "cut", "exhausted")

    def __init__(self, notifications: Iterable[Any] | AsyncIterable[Any]) -> None:
        self._items: Iterator[Any] | None = None
        self._async_items: AsyncIterator[Any] | None = None
        if isinstance(notifications, AsyncIterable):
            self._async_items = notifications.__aiter__()
        else:
            self._items = iter(notifications)
        self.exhausted = False
        self.cut = False

    async def take(self, count: int) -> list[Any]:
        """Up to ``count`` more items; fewer, and ``exhausted`` set, at the end."""
        pulled: list[Any] = []
        try:
            if self._items is not None:
                # A plain iterable is read without an await per item.
                items = self._items
                while len(pulled) < count:
                    pulled.append(next(items))
            else:
                assert self._async_items is not None
                async_items = self._async_items
                while len(pulled) < count:
                    pulled.append(await async_items.__anext__())
        except (StopIteration, StopAsyncIteration):
            self.exhausted = True
        return pulled


class AsyncDriver(ClientBase):
    """The I/O of :class:`apnskit.AsyncPushClient`: tasks, anyio streams, no lock.

    What the public layer uses: ``_guard`` (no lock is needed: one event loop), ``_note_work``
    and ``_wake_driver`` after a submit or a cancel, ``_wait`` and ``_shutdown``.
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
        # One event loop runs every task of the client: nothing to lock.
        self._guard: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        self._driving = False
        self._clock: Callable[[], float] = time.monotonic
        # anyio events need a running event loop, so they are made on first use.
        self._stepped_down: anyio.Event | None = None  # close() waits for the driver
        # What the driver sleeps on between steps (one per turn of driving).
        self._wake: AsyncWakeup | None = None
        # True once the driver was woken during this step (until its next step): further
        # kicks, one per submit with 1,000 tasks calling send(), cost a flag test instead of
        # a call into asyncio, and a kick while it is not asleep is not lost.
        self._kicked = False
        self._waiters: set[AsyncWakeup] = set()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._management: AsyncDriver | None = None
        self._opening = 0  # connects in progress in the driver's task group

    async def _shutdown(self) -> None:
        """``close()``: end every ticket, then say GOAWAY on every connection; idempotent."""
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
                await management._shutdown()
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

    # ------------------------------------------------------------------ driving

    def _submit_waiting(self, notification: Any) -> Ticket:
        """Submit a ``send()``'s notification, its waiter set; wake the driver.

        The client layer's submit with what one event loop makes needless left out (the
        guard, the calls to ask whether to wake the driver): 1,000 tasks calling ``send()``
        pay it once per notification (issue 13).
        """
        if self._closed:
            self._check_open()  # raises
        ticket = self._dispatcher.submit(notification, self._clock())
        ticket.waiter = AsyncWakeup()
        if not self._kicked:
            self._kick()
        return ticket

    def _settled(self, ticket: Ticket) -> bool:
        """After a ``send()``'s submit or wake-up: True once its ticket ended, its wait tidied."""
        wakeup = ticket.waiter
        if wakeup.future is not None:  # back from a bare future (_wait_step): leave the waiters
            wakeup.future = None
            self._waiters.discard(wakeup)
        if not (ticket.done or self._closed):
            return False
        # A task handed the driver role whose own work ended meanwhile passes it on (see
        # _wait); the waiter holds the finished ticket and the ticket its waiter: a cycle that
        # only the garbage collector would free, one per call, broken here. (_hand_over()'s
        # test written out: this runs once per send() and rarely has anything to hand over.)
        if not self._driving and self._waiters:
            self._hand_over()
        ticket.waiter = None
        return True

    def _wait_step(self, ticket: Ticket) -> Awaitable[None]:
        """What a ``send()`` awaits for its ticket, once: drive while nobody does, else sleep.

        Under asyncio, while another task drives, the sleep is a bare future returned as it
        is: no coroutine frame between the caller and it (:meth:`_settled` tidies up after).
        """
        if not self._driving:
            return self._drive_turn(ticket)
        wakeup: AsyncWakeup = ticket.waiter
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio, through anyio
            return self._sleep_step(wakeup)
        self._waiters.add(wakeup)
        future = wakeup.future = loop.create_future()
        return future

    async def _sleep_step(self, wakeup: AsyncWakeup) -> None:
        self._waiters.add(wakeup)
        try:
            await wakeup.sleep(None)
        finally:
            self._waiters.discard(wakeup)

    def _abandon(self, ticket: Ticket) -> None:
        """A ``send()`` left while it waited (cancelled): leave the waiters, withdraw it."""
        wakeup = ticket.waiter
        if wakeup is not None:
            wakeup.future = None
            self._waiters.discard(wakeup)
        # If the driver role was just handed to it, pass it on, or nobody would drive.
        self._hand_over()
        self._withdraw([ticket], ClientClosedError("send() was cancelled"))

    def _note_work(self) -> bool:
        """After a submit or a cancel: wake the driver now (one loop: no lock to leave first).

        Returns False: nothing is left for :meth:`_wake_driver` to do.
        """
        if not self._kicked:
            self._kick()
        return False

    def _wake_driver(self) -> None:
        """Wake the task doing the I/O, if any, to take new work in."""
        self._kick()

    def _kick(self) -> None:
        wake = self._wake
        if wake is not None:
            self._kicked = True
            wake.set()

    def _hand_over(self) -> None:
        # If nobody drives, wake one waiting task to take over.
        if not self._driving and self._waiters:
            next(iter(self._waiters)).set()

    async def _wait(
        self, done: Callable[[], bool], wakeup: AsyncWakeup, recheck: float | None = None
    ) -> None:
        """Wait until ``done()``; drive the I/O while nobody else does (``send_many()``).

        ``send()`` waits with :meth:`_settled` and :meth:`_wait_step` instead.
        """
        while True:
            # close() ended every ticket already; a predicate that is still false (a
            # send_many waiting for room) has nothing more to wait for.
            if done() or self._closed:
                # A task handed the driver role whose own work ended meanwhile (a driver that
                # steps down after a tick or a lost connection ended several tickets at once
                # picks any waiter, maybe one of those) passes the role on: otherwise the
                # tasks still waiting sleep with nobody reading and no deadline timer running.
                # The sync twin does the same.
                self._hand_over()
                return
            if not self._driving:
                await self._drive_turn(done)
                continue
            self._waiters.add(wakeup)
            try:
                await wakeup.sleep(recheck)
            except BaseException:
                # Cancelled while waiting: if the driver role was just handed to us, pass it
                # on, or nobody would drive and every other task would wait forever.
                self._waiters.discard(wakeup)
                self._hand_over()
                raise
            self._waiters.discard(wakeup)

    async def _drive_turn(self, done: Callable[[], bool]) -> None:
        """Drive the I/O until ``done()``, then step down and hand the role on."""
        self._driving = True
        try:
            await self._drive(done)
        finally:
            self._driving = False
            if self._stepped_down is not None:
                self._stepped_down.set()
                self._stepped_down = None
            self._hand_over()

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
                wake = self._wake = AsyncWakeup()
                while not self._closed:
                    self._kicked = False
                    now = clock()
                    # The token is read here, outside the core (it may renew it: a signature).
                    dispatcher.set_authorization(credentials.authorization())
                    dispatcher.tick(now)
                    if done() and not self._opening:
                        break
                    for conn in dispatcher.connections_to_open(now):
                        # Counted here, not when its task first runs: the checks below must
                        # not step down (and cancel the connect) before it has started.
                        self._opening += 1
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
                    if self._kicked:  # woken meanwhile: new work or responses came in
                        continue
                    wakeup = dispatcher.next_wakeup(now)
                    timeout = None if wakeup is None else max(0.0, wakeup - clock())
                    if not any(c.stream is not None for c in dispatcher.connections):
                        # Waiting for a connect (or its backoff) to finish.
                        timeout = 0.05 if timeout is None else min(timeout, 0.05)
                    await wake.sleep(timeout)
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
        # The driver counted this connect in _opening when it started the task.
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
