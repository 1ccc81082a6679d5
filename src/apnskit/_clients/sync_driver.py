"""The threaded driver under PushClient: how its blocking calls wait, thread-safe.

The public methods are in ``sync_client.py``, generated from ``async_client.py`` (written once).
This module is what stays different from the async twin by design: threads and one poller
instead of tasks, pipelining on its sockets without threads of its own.

How it waits: whichever calling thread finds nobody doing I/O becomes the *driver*. It
multiplexes every pooled connection with one poller, feeds what it reads to the shared
:class:`~apnskit._engine.dispatcher.Dispatcher` and wakes the threads whose notifications ended.
When its own notification is done it hands the role over. Other threads only queue their
notifications and wake the driver, so no socket is ever touched by two threads at once (a
TLS session, ``ssl.SSLObject`` or ``ssl.SSLSocket``, must not be).

Connecting (DNS, TCP, TLS: up to ``Timeout.connect``) runs in a short-lived thread per
connection, so the driver keeps reading and writing the other connections meanwhile; the
finished socket is handed to the driver, which alone registers and uses it.

A caller interrupted while it waits (KeyboardInterrupt, an exception from a signal handler)
leaves cleanly: its notification is cancelled (RST_STREAM if it was sent) and, if it was
driving or had just been handed the driver role, the role passes to another waiting thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from apnskit._clients.common import ClientBase, closed_by_server
from apnskit._engine.pool import PooledConnection
from apnskit._engine.tickets import Ticket
from apnskit._errors import (
    ApnsError,
    ClientClosedError,
    ConfigurationError,
    ConnectError,
)
from apnskit._transports import SyncPoller, SyncStream
from apnskit._transports.socket_transport import SocketTransport

__all__ = ["SyncDriver", "SyncSource", "SyncWakeup", "WakeBatch"]


class WakeBatch:
    """The callers the driver woke: how many are on their way, whose wake-up is held back.

    ``count``: sleeping callers woken that have not yet taken the client's lock again. While
    any are on their way the driver holds its writes back: their next submits come in a
    moment, and the last of them wakes the driver, so their notifications leave in one TLS
    write instead of one write (and one poller wake-up) per thread.

    ``held``: while the driver works (``holding``), the callers its reads finish are woken
    only when it is about to sleep in the poller (:meth:`release`). Woken at once, each would
    take the GIL from the driver at its next system call (a TLS read per response) and the
    driver would wait behind 50 threads for it back; batched, they run while it sleeps.
    """

    __slots__ = ("count", "held", "holding")

    def __init__(self) -> None:
        self.count = 0
        self.holding = False
        self.held: list[SyncWakeup] = []

    def release(self) -> None:
        """Under the client's lock: wake every caller held back."""
        held, self.held = self.held, []
        for wakeup in held:
            wakeup.release_held()


class SyncWakeup:
    """A waiting caller's mailbox: the dispatcher appends its finished tickets and wakes it.

    Every method but :meth:`sleep` runs under the client's lock. The wake-up itself is a bare
    lock (held while nothing is signalled, released by :meth:`set`): far cheaper than a
    ``threading.Event``, a Python-level condition variable that allocates a lock per wait.
    Invariant: the gate is open only while ``signalled``.
    """

    __slots__ = ("_gate", "_held", "batch", "signalled", "tickets")

    def __init__(self, collect: bool = False) -> None:
        self._gate = threading.Lock()
        self._gate.acquire()
        self.signalled = False
        self._held = False  # signalled, the gate still shut: a WakeBatch opens it later
        # send_many() collects its finished tickets here; send() only needs waking (its one
        # ticket says when it is done): no deque per call.
        self.tickets: deque[Ticket] | None = deque() if collect else None
        # The driver's batch while our thread sleeps in _wait (None otherwise).
        self.batch: WakeBatch | None = None

    def append(self, ticket: Ticket) -> None:
        """Take a finished ticket in and wake the caller (the dispatcher's ``on_done``)."""
        tickets = self.tickets
        if tickets is not None:
            tickets.append(ticket)
        # A bulk send finishes thousands of tickets per batch: one release for them all.
        if not self.signalled:
            self.set()

    def set(self) -> None:
        """Wake the caller (it stays signalled until it sleeps again)."""
        if self.signalled:
            return
        self.signalled = True
        batch = self.batch
        if batch is None:
            self._gate.release()
            return
        batch.count += 1
        if batch.holding:
            self._held = True
            batch.held.append(self)
        else:
            self._gate.release()

    def release_held(self) -> None:
        """Open the gate if :meth:`set` held it shut (:meth:`WakeBatch.release`)."""
        if self._held:
            self._held = False
            self._gate.release()

    def prepare(self, batch: WakeBatch) -> None:
        """Before sleeping: forget an earlier signal, and count in ``batch`` when woken."""
        self.signalled = self._held = False
        self._gate.acquire(False)  # take back a signal never slept on
        self.batch = batch

    def sleep(self, timeout: float | None) -> bool:
        """Block (without the client's lock) until :meth:`set` or ``timeout``; True if set."""
        return self._gate.acquire(True, -1 if timeout is None else timeout)

    def awake(self) -> bool:
        """After sleeping: True if it was woken (then no longer counted as on its way)."""
        batch, self.batch = self.batch, None
        if batch is not None and self.signalled:
            batch.count -= 1
            return True
        return False


class SyncSource:
    """What ``send_many()`` reads: an iterable, a batch at a time.

    ``exhausted`` once it ended or must not be read any more; ``cut`` when ``close()`` stopped
    the reading before the end.
    """

    __slots__ = ("_items", "cut", "exhausted")

    def __init__(self, notifications: Iterable[Any]) -> None:
        self._items = iter(notifications)
        self.exhausted = False
        self.cut = False

    def take(self, count: int) -> list[Any]:
        """Up to ``count`` more items; fewer, and ``exhausted`` set, at the end."""
        pulled: list[Any] = []
        items = self._items
        try:
            while len(pulled) < count:
                pulled.append(next(items))
        except StopIteration:
            self.exhausted = True
        return pulled


# How long close() waits for the thread doing I/O to step down (it does at its next step; a
# connect or a write in progress is bounded by the connect timeout and the write timeout).
_STEP_DOWN_WAIT = 35.0


class SyncDriver(ClientBase):
    """The I/O of :class:`apnskit.PushClient`: calling threads take turns driving one poller.

    What the public layer uses: ``_guard`` (the client's lock, around every dispatcher call),
    ``_note_work`` and ``_wake_driver`` after a submit or a cancel, ``_wait`` and ``_shutdown``.
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
        # The condition (over the same lock) only for close() waiting on the step-down;
        # everything else takes the bare lock: Condition's __enter__ and __exit__ are Python
        # calls, two more per use.
        self._cond = threading.Condition(self._lock)
        self._guard: contextlib.AbstractContextManager[Any] = self._lock  # for the public layer
        self._driving = False
        self._driver_thread: int | None = None
        self._waiters: set[SyncWakeup] = set()
        self._polling = False  # the driver sleeps in the poller
        self._submitted = False  # notifications arrived since the driver last looked
        self._batch = WakeBatch()  # callers woken, not yet back under the lock
        self._clock: Callable[[], float] = time.monotonic
        self._streams: dict[int, PooledConnection] = {}
        self._management: SyncDriver | None = None
        # Connects finished by their threads, for the driver to take in: (slot, stream, error).
        self._connected: deque[tuple[PooledConnection, SyncStream | None, ApnsError | None]] = (
            deque()
        )

    def _shutdown(self) -> None:
        """``close()``: step the driver down, end every ticket, GOAWAY; idempotent, any thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            management, self._management = self._management, None
            called_by_driver = self._driver_thread == threading.get_ident()
        self._poller.wake()
        if management is not None:
            management._shutdown()
        with self._cond:
            if not called_by_driver:
                # Let the driving thread notice and step down first: a TLS session must
                # never be used by two threads at once. It leaves at its next step; a
                # connect or a write in progress is bounded by their timeouts.
                limit = time.monotonic() + _STEP_DOWN_WAIT
                while self._driving and (left := limit - time.monotonic()) > 0:
                    self._cond.wait(left)
            conns = self._dispatcher.close_all(ClientClosedError("the client was closed"))
            # A driver that did not step down in time (inside a long write) would hold these
            # wake-ups until it leaves: every caller learns of the close now.
            self._batch.holding = False
            self._batch.release()
            for waiter in self._waiters:
                waiter.set()
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

    # ------------------------------------------------------------------ driving

    def _wait(
        self, done: Callable[[], bool], wakeup: SyncWakeup, recheck: float | None = None
    ) -> None:
        """Block until ``done()``; drive the I/O while nobody else does.

        Callers that do not drive sleep on their own :class:`SyncWakeup`, set when one of their
        notifications ends or when the driver steps down and hands the I/O to them. Waking
        only those concerned (not every thread on every batch) keeps many threads cheap.
        """
        poke = False
        while True:
            with self._lock:
                if wakeup.awake():
                    poke = self._caller_back()
                if done() or self._dispatcher.closed:
                    # After close() nobody drives; close() ended every ticket already, so a
                    # predicate still false (a send_many waiting for room) has nothing to wait
                    # for.
                    self._waiters.discard(wakeup)
                    self._hand_over()
                    break
                # Between close() starting and its ending every ticket, nobody drives either.
                drive = not self._driving and not self._closed
                if drive:
                    self._driving = True
                    self._driver_thread = threading.get_ident()
                    self._batch.holding = True
                    self._waiters.discard(wakeup)
                else:
                    self._waiters.add(wakeup)
                    wakeup.prepare(self._batch)
            if poke:
                poke = False
                self._poller.wake()
            if not drive:
                try:
                    wakeup.sleep(recheck)
                except BaseException:
                    # Interrupted while waiting: leave the waiters, and pass on the driver
                    # role if it was just handed to us, or nobody would ever drive again and
                    # every other thread would sleep past its deadline.
                    with self._lock:
                        self._waiters.discard(wakeup)
                        poke = wakeup.awake() and self._caller_back()
                        self._hand_over()
                    if poke:
                        self._poller.wake()
                    raise
                continue
            try:
                self._drive(done)
            finally:
                with self._cond:
                    self._driving = False
                    self._driver_thread = None
                    self._batch.holding = False
                    self._batch.release()
                    self._hand_over()
                    self._cond.notify_all()  # close() may be waiting for the step-down
        if poke:
            self._poller.wake()

    def _caller_back(self) -> bool:
        """Under the lock, when a woken caller is back: True if the driver must be woken now.

        The driver held its writes back while woken callers were on their way (their submits
        come in a moment); the last one back lets it write them all at once.
        """
        if self._batch.count == 0 and self._submitted and self._polling:
            self._polling = False  # one wake-up is enough
            return True
        return False

    def _submit_waiting(self, notification: Any) -> Ticket:
        """Submit a ``send()``'s notification, its waiter set; wake the driver if it sleeps."""
        wakeup = SyncWakeup()
        with self._lock:
            self._check_open()
            ticket = self._dispatcher.submit(notification, self._clock())
            ticket.waiter = wakeup
            poke = self._note_work()
        if poke:
            self._poller.wake()
        return ticket

    def _settled(self, ticket: Ticket) -> bool:
        """After a ``send()``'s submit or wait: True once its ticket ended (its waiter let go).

        ``done`` is read without the lock: a stale False only means one more :meth:`_wait`,
        which looks again under the lock.
        """
        if not (ticket.done or self._dispatcher.closed):
            return False
        # The waiter holds the finished ticket and the ticket its waiter: a cycle that only
        # the garbage collector would free, one per call (with 50 threads it ran a collection
        # every few dozen sends). Broken, both go with their last reference.
        ticket.waiter = None
        return True

    def _wait_step(self, ticket: Ticket) -> None:
        """A ``send()``'s wait: block until its ticket ended (driving meanwhile if need be)."""
        self._wait(ticket, ticket.waiter)

    def _abandon(self, ticket: Ticket) -> None:
        """A ``send()`` was interrupted while it waited: withdraw its notification."""
        self._withdraw([ticket], ClientClosedError("send() was interrupted"))

    def _note_work(self) -> bool:
        """Under the lock, after a submit or a cancel: True when the sleeping driver needs waking.

        A driver that is busy picks the new work up at its next step, so most submits cost
        no wake-up (a system call and a select() return) at all.
        """
        self._submitted = True
        if self._polling and self._batch.count == 0:
            self._polling = False  # one wake-up is enough
            return True
        # A driver that is busy picks the new work up at its next step. One sleeping while
        # woken callers are on their way is woken by the last of them (_caller_back).
        return False

    def _wake_driver(self) -> None:
        """Wake the thread doing the I/O from its poller (after :meth:`_note_work` said so)."""
        self._poller.wake()

    def _hand_over(self) -> None:
        # Called under the lock: if nobody drives, wake one waiting caller to take over.
        if not self._driving and self._waiters:
            next(iter(self._waiters)).set()

    def _drive(self, done: Callable[[], bool]) -> None:
        dispatcher = self._dispatcher
        clock = self._clock
        credentials = self._credentials
        while True:
            with self._lock:
                connected = list(self._connected)
                self._connected.clear()
            for conn, stream, error in connected:
                self._take_connected(conn, stream, error)
            # The token is read here, outside the core (it may renew it: a signature).
            authorization = credentials.authorization()
            with self._lock:
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
                    with self._lock:
                        dispatcher.connection_lost(conn, error, clock())
            if closing:
                continue
            with self._lock:
                if self._connected or (self._submitted and not self._batch.count):
                    # Work (or a finished connect) arrived while we were writing: take it in
                    # before sleeping. While callers woken by our last read are on their way
                    # (their next submits follow), sleep instead: the last one back wakes us
                    # and their notifications leave in one write.
                    continue
                self._polling = True
                self._batch.release()  # they run while we sleep
            timeout = None if wakeup is None else max(0.0, wakeup - clock())
            if not self._streams and timeout is None:
                # Nothing to read and nothing scheduled: the waiting tickets need a connection
                # that connections_to_open() will grant on the next pass.
                timeout = 0.05
            try:
                ready = self._poller.wait(timeout)
            finally:
                with self._lock:
                    self._polling = False
            for stream in ready:
                self._read(stream)

    def _read(self, stream: SyncStream) -> None:
        conn = self._streams.get(id(stream))
        if conn is None:
            return
        # One read a step: the socket transport returns up to 64 TLS records of what one
        # recv() brought and keeps the rest in memory, where the poller finds it at once
        # (pending()); between two such steps the driver writes what the last one freed.
        data: bytes | None = None
        error: ApnsError | None = None
        try:
            data = stream.read()
        except ApnsError as exc:
            error = exc
        eof = data == b""
        with self._lock:
            now = self._clock()
            if data:
                self._dispatcher.receive(conn, data, now)
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
        with self._lock:
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
            with self._lock:
                assert error is not None
                self._dispatcher.connect_failed(conn, error, self._clock())
            return
        with self._lock:
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
        with self._lock:
            self._streams.pop(id(stream), None)
            self._dispatcher.forget(conn)
