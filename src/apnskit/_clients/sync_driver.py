"""The threaded driver under PushClient: how its blocking calls wait, thread-safe.

The public methods are in ``sync_client.py``, generated from ``async_client.py`` (written once).
This module is what stays different from the async twin by design: threads and one poller
instead of tasks, pipelining on its sockets without threads of its own.

How it waits: whichever calling thread finds nobody doing I/O becomes the *driver*. It
multiplexes every pooled connection with one poller, feeds what it reads to the shared
:class:`~apnskit._engine.dispatcher.Dispatcher` and wakes the threads whose notifications ended.
When its own notification is done it hands the role over. Other threads only queue their
notifications and wake the driver, so no socket is ever touched by two threads at once (an
``ssl.SSLSocket`` must not be).

Many callers (issue 13): only one thread runs Python at a time, so what a send costs beyond
the bulk path is mostly the kernel's: futex calls and context switches. The driver wakes the
callers its reads finished one after the other (:class:`WakeBatch`), each woken caller waking
the next as soon as it runs, and writes their next notifications in one go when the last is
back (one poller wake-up per batch, not per send).

Connecting (DNS, TCP, TLS: up to ``Timeout.connect``) runs in a short-lived thread per
connection, so the driver keeps reading and writing the other connections meanwhile; the
finished socket is handed to the driver, which alone registers and uses it.

A caller interrupted while it waits (KeyboardInterrupt, an exception from a signal handler)
leaves cleanly: its notification is cancelled (RST_STREAM if it was sent) and, if it was
driving or had just been handed the driver role, the role passes to another waiting thread.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import sys
import threading
import time
import weakref
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

    ``count``: sleeping callers woken that have not yet taken the client's lock again (those
    held back included). While any are on their way the driver holds its writes back: their
    next submits come in a moment, and the last of them wakes the driver, so their
    notifications leave in one TLS write instead of one write (and one poller wake-up) per
    thread.

    ``held``: while the driver works (``holding``), the callers its reads finish are not woken
    at once: each would take the GIL from the driver at its next system call (a TLS read per
    response) and the driver would wait behind 50 threads for it back. They are woken one
    after the other (:meth:`pass_on`): the first when the driver is about to sleep in the
    poller, each next one by the previous as soon as it runs. Woken all at once they fight
    for the GIL: each wakes, finds it taken and sleeps again on it, and preempts whoever
    holds it (measured: 2.5 voluntary + 0.9 involuntary context switches per send, against
    1.9 + 0.65 in turn, and the driver preempted 0.56 times per send against 0.14).
    """

    __slots__ = ("count", "held", "holding")

    def __init__(self) -> None:
        self.count = 0
        self.holding = False
        self.held: deque[SyncWakeup] = deque()

    def pass_on(self) -> SyncWakeup | None:
        """Under the client's lock: the next caller held back, unless one is on its way.

        The caller of this wakes it (:meth:`SyncWakeup.wake`) once it let go of the lock, as
        late as it can: just before it sleeps, or leaves. The one woken passes the turn on in
        the same way, so one woken caller at a time is on its way.
        """
        held = self.held
        if held and self.count == len(held):
            return held.popleft().unhold()
        return None

    def release(self) -> None:
        """Under the client's lock: wake every caller held back (the driver steps down)."""
        held, self.held = self.held, deque()
        for wakeup in held:
            wakeup.release_held()


#: How long the driver sleeps in the poller at most while callers are held back: a woken
#: caller that leaves without going to sleep again does not pass the turn on.
HELD_RECHECK = 0.01


class LockGate:
    """A sleeping thread's gate as a bare lock: held while shut, released to wake the thread.

    Far cheaper than a ``threading.Event`` (a Python-level condition variable that allocates a
    lock per wait). Used where :class:`FdGate` is not available.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def open(self) -> None:
        """Wake the thread sleeping in :meth:`wait` (or let its next wait return at once)."""
        # A wake-up meant for an earlier wait may not have been taken yet: two make one.
        with contextlib.suppress(RuntimeError):
            self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        """Block until :meth:`open` or ``timeout``; True if opened (the gate shuts again)."""
        return self._lock.acquire(True, -1 if timeout is None else timeout)


class FdGate:
    """A sleeping thread's gate as a file descriptor (an eventfd, or a pipe): one per thread.

    What it buys over :class:`LockGate` is where the GIL is: ``os.write`` lets go of it before
    the system call that wakes the sleeper, so the woken thread finds it free instead of
    waking, finding it taken and sleeping again on it (a futex wait and two context switches
    more per send, with 50 threads calling send()). It is kept for the thread's lifetime
    (created on its first wait, closed when the thread ends) so a send costs no descriptor.

    A write may come after the sleeper stopped waiting (a timeout): the next wait then
    returns at once, which the caller's loop tolerates (it checks its predicate again).
    """

    __slots__ = ("__weakref__", "_poll", "_read", "_token", "_write")

    def __init__(self) -> None:
        eventfd = getattr(os, "eventfd", None)  # Linux, Python >= 3.10
        if eventfd is not None:
            self._read = self._write = eventfd(0, getattr(os, "EFD_CLOEXEC", 0))
            self._token = (1).to_bytes(8, sys.byteorder)
        else:
            self._read, self._write = os.pipe()
            self._token = b"\0"
        self._poll: Any = None  # a select.poll, made on the first timed wait
        weakref.finalize(self, _close_fds, self._read, self._write)

    def open(self) -> None:
        """Wake the thread sleeping in :meth:`wait` (or let its next wait return at once)."""
        os.write(self._write, self._token)

    def wait(self, timeout: float | None) -> bool:
        """Block until :meth:`open` or ``timeout``; True if opened (the gate shuts again)."""
        if timeout is not None:
            if self._poll is None:
                self._poll = select.poll()
                self._poll.register(self._read, select.POLLIN)
            if not self._poll.poll(max(0, math.ceil(timeout * 1000))):
                return False
        os.read(self._read, 64)  # every pending wake-up at once
        return True


def _close_fds(read: int, write: int) -> None:
    os.close(read)
    if write != read:
        os.close(write)


_gates = threading.local()


def _forget_gate_after_fork() -> None:
    # A forked child must not share its parent's descriptor (a wake-up for one process could
    # be read by the other): the thread that forked gets a gate of its own on its next wait.
    _gates.gate = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_gate_after_fork)


def thread_gate() -> FdGate | LockGate:
    """The calling thread's gate: an :class:`FdGate` kept for the thread where possible."""
    gate: FdGate | LockGate | None = getattr(_gates, "gate", None)
    if gate is None:
        gate = FdGate() if hasattr(select, "poll") else LockGate()
        _gates.gate = gate
    return gate


class SyncWakeup:
    """A waiting caller's mailbox: the dispatcher appends its finished tickets and wakes it.

    Every method but :meth:`sleep` and :meth:`wake` runs under the client's lock. The wake-up
    itself opens the gate of the thread that sleeps (:func:`thread_gate`, taken in
    :meth:`prepare`: a ``send_many()`` generator may be resumed by another thread), and only
    while it sleeps in the client (between :meth:`prepare` and :meth:`awake`): it checks its
    predicate under the lock before sleeping, so a signal meanwhile is seen without one.
    """

    __slots__ = ("_fixed", "_gate", "_held", "batch", "signalled", "tickets")

    def __init__(self, gate: FdGate | LockGate | None = None) -> None:
        self._fixed = gate  # a gate of its own (tests), else its sleeping thread's
        self._gate = thread_gate() if gate is None else gate
        self.signalled = False
        self._held = False  # signalled, the gate still shut: a WakeBatch opens it later
        self.tickets: deque[Ticket] = deque()
        # The driver's batch while our thread sleeps in _wait (None otherwise).
        self.batch: WakeBatch | None = None

    def append(self, ticket: Ticket) -> None:
        """Take a finished ticket in and wake the caller (the dispatcher's ``on_done``)."""
        self.tickets.append(ticket)
        # A bulk send finishes thousands of tickets per batch: one wake-up for them all.
        if not self.signalled:
            self.set()

    def set(self) -> None:
        """Wake the caller (it stays signalled until it sleeps again)."""
        if self.signalled:
            return
        self.signalled = True
        batch = self.batch
        if batch is None:
            return  # not sleeping: it sees ``signalled`` before it would
        batch.count += 1
        if batch.holding:
            self._held = True
            batch.held.append(self)
        else:
            self._gate.open()

    def release_held(self) -> None:
        """Open the gate if :meth:`set` held it shut (:meth:`WakeBatch.release`)."""
        if self._held:
            self._held = False
            self._gate.open()

    def unhold(self) -> SyncWakeup:
        """Under the lock: no longer held back (:meth:`WakeBatch.pass_on` took it)."""
        self._held = False
        return self

    def wake(self) -> None:
        """Open the gate of a caller :meth:`WakeBatch.pass_on` took (outside the lock)."""
        self._gate.open()

    def prepare(self, batch: WakeBatch) -> None:
        """Before sleeping: forget an earlier signal, and count in ``batch`` when woken."""
        self.signalled = self._held = False
        self.batch = batch
        if self._fixed is None:
            self._gate = thread_gate()

    def sleep(self, timeout: float | None) -> bool:
        """Block (without the client's lock) until woken or ``timeout``; True if woken.

        It may return True without a signal (one meant for an earlier wait): callers check
        their predicate again.
        """
        return self._gate.wait(timeout)

    def awake(self) -> bool:
        """After sleeping: True if it was woken (then no longer counted as on its way)."""
        batch, self.batch = self.batch, None
        if batch is not None and self.signalled:
            if self._held:  # woke on its own (a timeout, an interrupt) while held back
                self._held = False
                batch.held.remove(self)
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
        self._cond = threading.Condition(self._lock)
        # For the public layer: the bare lock (the condition shares it), as a condition's
        # __enter__ and __exit__ are Python calls, two more per submit.
        self._guard: contextlib.AbstractContextManager[Any] = self._lock
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
        with self._lock:
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
                # Let the driving thread notice and step down first: an ssl.SSLSocket must
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
        turn: SyncWakeup | None = None  # the next caller held back, ours to wake
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
                    turn = self._batch.pass_on()
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
                    turn = self._batch.pass_on()
            if poke:
                poke = False
                self._poller.wake()
            if not drive:
                if turn is not None:
                    # Wake the next caller held back as late as we can, just before we sleep:
                    # it finds the GIL free (FdGate) instead of sleeping again on it.
                    turn.wake()
                    turn = None
                try:
                    wakeup.sleep(recheck)
                except BaseException:
                    # Interrupted while waiting: leave the waiters, and pass on the driver
                    # role if it was just handed to us, or nobody would ever drive again and
                    # every other thread would sleep past its deadline.
                    with self._lock:
                        self._waiters.discard(wakeup)
                        poke = wakeup.awake() and self._caller_back()
                        turn = self._batch.pass_on()  # it may have been our turn to
                        self._hand_over()
                    if poke:
                        self._poller.wake()
                    if turn is not None:
                        turn.wake()
                    raise
                continue
            try:
                self._drive(done)
            finally:
                with self._cond:
                    self._driving = False
                    self._driver_thread = None
                    self._batch.holding = False
                    # The callers held back go on waking one another without a driver.
                    turn = self._batch.pass_on()
                    self._hand_over()
                    self._cond.notify_all()  # close() may be waiting for the step-down
                if turn is not None:
                    turn.wake()
                    turn = None
        if poke:
            self._poller.wake()
        if turn is not None:
            turn.wake()

    def _caller_back(self) -> bool:
        """Under the lock, when a woken caller is back: True if the driver must be woken now.

        The driver held its writes back while woken callers were on their way (their submits
        come in a moment); the last one back lets it write them all at once.
        """
        if self._batch.count == 0 and self._submitted and self._polling:
            self._polling = False  # one wake-up is enough
            return True
        return False

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
        # Called under the lock: if nobody drives, wake one waiting caller to take over. One
        # woken already and on its way (a turn, an earlier hand-over) looks when it is back;
        # one held back waits for its turn (whoever passes it on hands over again if needed).
        batch = self._batch
        if not self._driving and batch.count == len(batch.held):
            for waiter in self._waiters:
                if not waiter.signalled:
                    waiter.set()
                    return

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
                turn = self._batch.pass_on()  # they run, one after the other, while we sleep
                held = bool(self._batch.held)
            if turn is not None:
                turn.wake()
            timeout = None if wakeup is None else max(0.0, wakeup - clock())
            if held and (timeout is None or timeout > HELD_RECHECK):
                timeout = HELD_RECHECK
            if not self._streams and timeout is None:
                # Nothing to read and nothing scheduled: the waiting tickets need a connection
                # that connections_to_open() will grant on the next pass.
                timeout = 0.05
            try:
                ready = self._poller.wait(timeout)
            finally:
                with self._lock:
                    self._polling = False
                    if held and not ready:
                        # The turn was not passed on in time (a caller interrupted between
                        # its wake-up and its return under the lock): wake all the rest.
                        self._batch.release()
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
        with self._lock:
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
