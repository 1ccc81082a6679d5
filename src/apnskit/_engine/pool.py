"""The connection pool: when to open a connection, backoff after failed connects, health checks.

A :class:`Pool` holds a client's :class:`PooledConnection` slots and makes every decision
about connections themselves; which notification goes on which connection is the
dispatcher's. Like the rest of the engine it knows no sockets and no clock: the time is
passed in, and the client opens and closes the transports the pool asks for.

A connection's life::

    grant() -> connecting --established()--> ready <--PING ack-- checking
                   |                          |  idle for Timeout.ping_interval, or streams
                   |                          |  open and nothing read: PING ("checking")
                   +--connect_failed()        +--> retiring (stream ids nearly used up)
                      (backoff)               +--> closed (GOAWAY drained, lost, no PING ack)

Connections are opened lazily: only when tickets wait and every open connection is full (at the
server's MAX_CONCURRENT_STREAMS, or waiting on its connection flow-control window), never
beyond ``Limits.max_connections``, and after a failed connect only once the reconnect backoff
has passed. Until a connection has proved the server works (it answered, past APNs' one-stream
hold for token auth) and again after any failed connect, they open one at a time, each only
once the previous one has its SETTINGS (and, under token auth, its first answer). Once proved,
as many open at once as the waiting tickets need, judged from what the fullest open connection
carries: far from the server each connect costs several round trips, and opening eight one
after another would take seconds at 150 ms. Connections opened together are one connect
attempt: when they fail, the backoff grows one step and the waiting tickets are charged one
attempt (by the last to fail), not one per connection. An idle connection is checked with an
HTTP/2 PING before it is used again; one that does not answer is replaced. The pool reports
:class:`~apnskit.ConnectionOpened`, :class:`~apnskit.ConnectionFailed` and
:class:`~apnskit.ConnectionClosed`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Final

from apnskit._config import Limits, RetryPolicy, Timeout
from apnskit._core.connection import ApnsConnection
from apnskit._core.events import ConnectionTerminated
from apnskit._engine.client_events import (
    ClientEvent,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionOpened,
)

__all__ = ["RETIRE_STREAMS_LEFT", "Pool", "PooledConnection"]

logger = logging.getLogger("apnskit")

RETIRE_STREAMS_LEFT = 1 << 20
"""A connection is retired (no new streams; closed once drained, a new one takes over) when
fewer stream ids than this are left. Ids are never reused and end at 2**31-1 (RFC 9113
section 5.1.1); at 20,000 notifications/s this leaves about 50 s to drain and reconnect."""


class PooledConnection:
    """A connection slot in the pool: the core, plus what the client attaches to it."""

    __slots__ = (
        "answered",
        "burst",
        "closed_reported",
        "core",
        "id",
        "last_activity",
        "last_read",
        "opened_at",
        "ping_deadline",
        "retiring",
        "state",
        "stream",
    )

    CONNECTING: Final = "connecting"
    READY: Final = "ready"
    CHECKING: Final = "checking"
    CLOSED: Final = "closed"

    def __init__(self, connection_id: int, core: ApnsConnection) -> None:
        self.id = connection_id
        self.core = core
        self.state = PooledConnection.CONNECTING
        #: The transport stream, set by the client once connected.
        self.stream: Any = None
        self.last_activity = 0.0
        #: When bytes last arrived (a connection with streams open and nothing read is suspect).
        self.last_read = 0.0
        self.ping_deadline: float | None = None
        #: True once any response arrived on it (see Pool.grant).
        self.answered = False
        #: The grant() call that made it: connections opened together count as one connect
        #: attempt when they fail (one backoff step, not one per connection).
        self.burst = 0
        #: When established() ran.
        self.opened_at = 0.0
        #: True once ConnectionClosed was emitted: a GOAWAY reports it, the later drain or
        #: loss of the same connection must not report it a second time.
        self.closed_reported = False
        #: True once its stream ids are nearly used up: it takes no new notifications and
        #: closes when its open streams are answered, while a new connection takes over.
        self.retiring = False

    def __repr__(self) -> str:
        return f"<PooledConnection {self.id} {self.state} in_flight={self.core.in_flight}>"

    @property
    def holds_slot(self) -> bool:
        """True while it counts against ``Limits.max_connections``.

        A connection that takes no new streams (draining after GOAWAY, or retiring because
        its stream ids run out) holds no slot: the next one opens beside it while it finishes
        what it carries. Otherwise, with max_connections=1, nothing could be sent until it
        drained, or ever once its ids are gone.
        """
        return self.state != PooledConnection.CLOSED and self.core.accepting and not self.retiring


class Pool:
    """A client's connection slots; see the module docstring.

    Args:
        authority: ``host`` or ``host:port`` for each core's ``:authority`` header.
        host: The host reported in :class:`~apnskit.ConnectionOpened`.
        port: The port reported in :class:`~apnskit.ConnectionOpened`.
        limits: Pool size.
        retry: Its delays pace reconnects after failed connects.
        timeout: PING interval and timeout.
        random: A source of floats in [0, 1) for jitter.
        hold_until_success: One stream per connection until a first success (token auth).
        emit: Reports the connection events.
    """

    def __init__(
        self,
        *,
        authority: str,
        host: str,
        port: int,
        limits: Limits,
        retry: RetryPolicy,
        timeout: Timeout,
        random: Callable[[], float],
        hold_until_success: bool,
        emit: Callable[[ClientEvent], None],
    ) -> None:
        self._authority = authority
        self._host = host
        self._port = port
        self._limits = limits
        self._retry = retry
        self._timeout = timeout
        self._random = random
        self._hold = hold_until_success
        self._emit = emit
        self.connections: list[PooledConnection] = []
        self._next_connection_id = 1
        self._connect_failures = 0
        self._reconnect_at = 0.0
        self._burst = 0  # grant() calls that opened something
        self._failed_burst = 0  # the latest burst a failure was counted for

    # ------------------------------------------------------------------ opening

    @property
    def can_grow(self) -> bool:
        """True while fewer connections hold a slot than ``Limits.max_connections``."""
        live = sum(1 for c in self.connections if c.holds_slot)
        return live < self._limits.max_connections

    def grant(self, now: float, backlog: int) -> list[PooledConnection]:
        """New connection slots to connect now for ``backlog`` waiting tickets (maybe none).

        One at a time until a connection has proved the server works; then, while every
        open connection is full, as many at once as the backlog needs (see the module
        docstring).
        """
        if now < self._reconnect_at:
            return []
        live = [c for c in self.connections if c.holds_slot]
        room = self._limits.max_connections - len(live)
        if room <= 0:
            return []
        settling, carried, proven = self._survey(live, now)
        if carried < 0:
            return []  # some connection still has room
        if not proven:
            # Nothing has proved the server works yet (or a connect failed since): one
            # connect at a time. Apple treats rapid reconnects as denial of service
            # (apns-reference.md), and a connect that fails must not have siblings failing
            # with it.
            count = 0 if settling else 1
        else:
            # Far from the server a connect costs several round trips (TCP, TLS, SETTINGS,
            # and under token auth the first answer that lifts APNs' one-stream hold), so
            # opening one after another takes seconds at 150 ms. Each full connection
            # carries about what the fullest one carries now (a window of bodies, or its
            # stream limit, per round trip): open what the backlog needs beyond the
            # connections still settling, at once.
            count = min(room, -(-backlog // max(carried, 1)) - settling)
        if count <= 0:
            return []
        self._burst += 1
        granted = []
        for _ in range(count):
            conn = PooledConnection(
                self._next_connection_id,
                ApnsConnection(self._authority, hold_until_success=self._hold),
            )
            conn.burst = self._burst
            self._next_connection_id += 1
            self.connections.append(conn)
            granted.append(conn)
        return granted

    def _survey(self, live: list[PooledConnection], now: float) -> tuple[int, int, bool]:
        """Look at the open connections before granting more.

        Returns:
            How many of ``live`` are still settling (connecting, before SETTINGS, held);
            the most any full one carries (-1 when one still has room); and whether the
            server has proved it works.
        """
        settling = 0
        carried = 0
        proven = False
        grace = self._timeout.ping_timeout
        for conn in live:
            core = conn.core
            # A connection that has not yet seen SETTINGS may soon allow many more streams;
            # likewise a token connection held at one stream until its first answer: APNs
            # raises the limit after a success ... unless that first answer is overdue: a
            # stuck first request must not hold every other notification behind it until
            # their deadlines (the grace is the PING timeout).
            if (
                conn.state == PooledConnection.CONNECTING
                or not core.settings_received
                or (self._hold and not conn.answered and now - conn.opened_at < grace)
            ):
                settling += 1
                continue
            # A connection is full at the server's MAX_CONCURRENT_STREAMS or while its bodies
            # wait for the server's connection window: far from the server (20 to 150 ms to
            # APNs) one connection carries at most one window (64 KiB by default, RFC 9113
            # section 6.9.2) of bodies per round trip, so only more connections raise the
            # rate. One being checked (PING) may be fine and brings its capacity back.
            if (core.capacity > 0 and not core.window_blocked) or (
                conn.state == PooledConnection.CHECKING
            ):
                return settling, -1, False
            carried = max(carried, core.in_flight)
            # Proof: an answer on a connection past APNs' one-stream hold (an error answer
            # to a bad token leaves it held), and no failed connect since the last answer.
            if conn.answered and (not self._hold or core.max_concurrent_streams > 1):
                proven = True
        return settling, carried, proven and self._connect_failures == 0

    def established(self, conn: PooledConnection, now: float) -> None:
        """The client connected ``conn``'s transport: start HTTP/2 on it."""
        conn.core.initiate()
        conn.state = PooledConnection.READY
        conn.last_activity = now
        conn.last_read = now
        conn.opened_at = now
        if conn.burst > self._failed_burst:
            # A connect that works ends the backoff; not one whose sibling (opened with it)
            # failed, which set the backoff once for both.
            self._reconnect_at = 0.0
        # _connect_failures is reset by the first answer, not here: a server that accepts
        # connections and drops them at once must still meet a growing backoff.
        self._emit(ConnectionOpened(connection_id=conn.id, host=self._host, port=self._port))

    def connect_failed(self, conn: PooledConnection, error: BaseException, now: float) -> None:
        """Connecting ``conn`` failed: free its slot and back off before the next connect."""
        conn.state = PooledConnection.CLOSED
        self.discard(conn)
        self._count_failure(conn, now)
        delay = max(0.0, self._reconnect_at - now)
        self._emit(ConnectionFailed(connection_id=conn.id, error=error, retry_in=delay))

    def _count_failure(self, conn: PooledConnection, now: float) -> None:
        # Connections opened together (one grant()) are one attempt: when several of them
        # fail, the backoff grows one step, not one per connection.
        if conn.burst <= self._failed_burst:
            return
        self._failed_burst = conn.burst
        self._connect_failures += 1
        delay = self._retry.delay(self._connect_failures, self._random())
        self._reconnect_at = max(self._reconnect_at, now + delay)

    def abandoned(self, conn: PooledConnection) -> None:
        """A connect was cancelled (not failed): free the slot without any backoff."""
        conn.state = PooledConnection.CLOSED
        self.discard(conn)

    @property
    def any_open(self) -> bool:
        """True while some connection is connecting or open."""
        return any(c.state != PooledConnection.CLOSED for c in self.connections)

    def answered(self, conn: PooledConnection) -> None:
        """A response arrived on ``conn``: a working connection ends the connect backoff."""
        if not conn.answered:
            conn.answered = True
            self._connect_failures = 0

    def died_early(self, conn: PooledConnection, now: float) -> None:
        """``conn`` ended; if it never answered anything, that counts as a failed connect."""
        # A server that accepts and drops (or GOAWAYs) at once meets exponential backoff:
        # Apple treats rapid reconnects as denial of service (apns-reference.md).
        if conn.answered:
            return
        self._count_failure(conn, now)

    def opening_wakeups(self, now: float) -> list[float]:
        """Future times at which :meth:`grant` may grant a connection it refuses now."""
        # Only future ones: a past one has been acted on, or is blocked by something else
        # that will wake us.
        times: list[float] = []
        if self._reconnect_at > now:
            times.append(self._reconnect_at)
        if self._hold:
            grace = self._timeout.ping_timeout
            for conn in self.connections:
                if not conn.answered and conn.state == PooledConnection.READY:
                    overdue_at = conn.opened_at + grace
                    if overdue_at > now:
                        times.append(overdue_at)
        return times

    # ------------------------------------------------------------------ health

    @property
    def _stall_after(self) -> float:
        return 2 * self._timeout.ping_timeout

    def health_wakeups(self, now: float) -> list[float]:
        """Times at which a PING goes unanswered or an open connection becomes suspect."""
        times: list[float] = []
        stall = self._stall_after
        for conn in self.connections:
            if conn.ping_deadline is not None:
                times.append(conn.ping_deadline)
            elif conn.core.open_streams and conn.state == PooledConnection.READY:
                checked_at = conn.last_read + stall
                if checked_at > now:
                    times.append(checked_at)
        return times

    def ping_overdue(self, conn: PooledConnection, now: float) -> bool:
        """True (once) when ``conn`` left a health-check PING unanswered: it is lost."""
        if conn.ping_deadline is not None and now >= conn.ping_deadline:
            conn.ping_deadline = None
            return True
        return False

    def check_if_stalled(self, conn: PooledConnection, now: float) -> None:
        """PING ``conn`` if it has streams open and read nothing for a while."""
        if conn.core.open_streams and now - conn.last_read >= self._stall_after:
            # A NAT may have dropped the connection silently (apns-reference.md, "Idle
            # connections"). Ask.
            self.check(conn, now)

    def check_if_idle(self, conn: PooledConnection, now: float) -> bool:
        """PING ``conn`` before reuse if it sat idle too long; True if it was PINGed."""
        interval = self._timeout.ping_interval
        if interval is None or conn.core.open_streams or now - conn.last_activity < interval:
            return False
        # Idle too long: a NAT may have dropped it silently. Check before use.
        conn.state = PooledConnection.CHECKING
        conn.core.send_ping(now)
        conn.ping_deadline = now + self._timeout.ping_timeout
        return True

    def check(self, conn: PooledConnection, now: float) -> None:
        """PING ``conn``; until the ack it takes no new notifications, without one it is lost."""
        if conn.state != PooledConnection.READY or conn.ping_deadline is not None:
            return
        if conn.core.finished:
            return
        if conn.core.accepting and not conn.retiring:
            conn.state = PooledConnection.CHECKING
        # A draining or retiring connection is PINGed too (it takes no new work anyway): one
        # that stopped answering would otherwise hold its streams until their deadlines, or
        # forever without one. RFC 9113 section 6.8 allows PING after GOAWAY.
        conn.core.send_ping(now)
        conn.ping_deadline = now + self._timeout.ping_timeout

    def ping_acknowledged(self, conn: PooledConnection) -> None:
        """``conn`` answered its PING: it is healthy."""
        conn.ping_deadline = None
        if conn.state == PooledConnection.CHECKING:
            conn.state = PooledConnection.READY

    # ------------------------------------------------------------------ closing

    def retire_if_worn(self, conn: PooledConnection) -> bool:
        """Retire ``conn`` if its stream ids are nearly used up; True if it is retired."""
        if conn.core.streams_left >= RETIRE_STREAMS_LEFT:
            return False
        conn.retiring = True
        logger.debug("retiring connection %d: %d stream ids left", conn.id, conn.core.streams_left)
        self.close_if_drained(conn)
        return True

    def close_if_drained(self, conn: PooledConnection) -> None:
        """Close a retiring ``conn`` once what it carries is answered."""
        if conn.retiring and conn.state != PooledConnection.CLOSED and not conn.core.in_flight:
            self.close(conn, "retired: stream ids nearly used up")

    def close(self, conn: PooledConnection, reason: str) -> None:
        """Close ``conn`` for ``reason``: after its core ended, or once it carries nothing.

        It never holds a request then: every caller has had the core end first (lost,
        protocol error, drained after GOAWAY), whose ``ConnectionTerminated`` handed back what
        it carried, or closes a retiring connection with nothing in flight
        (:meth:`close_if_drained`). So the core's ``close()`` here only queues a GOAWAY.
        """
        if conn.state == PooledConnection.CLOSED:
            return
        conn.state = PooledConnection.CLOSED
        conn.ping_deadline = None
        if not conn.core.finished:
            conn.core.close()
        self.report_closed(conn, reason)
        self.discard(conn)

    def report_closed(self, conn: PooledConnection, reason: str) -> None:
        """Emit :class:`~apnskit.ConnectionClosed` for ``conn``, once."""
        if not conn.closed_reported:
            conn.closed_reported = True
            self._emit(ConnectionClosed(connection_id=conn.id, reason=reason))

    def close_all(self) -> tuple[list[PooledConnection], list[ConnectionTerminated]]:
        """Close every connection (GOAWAY queued on each open one).

        Returns:
            The connections whose transports the client should flush and close, and the
            cores' ``ConnectionTerminated`` events (what each still carried).
        """
        to_close = []
        ended = []
        for conn in self.connections:
            if conn.state != PooledConnection.CLOSED or conn.stream is not None:
                if conn.state != PooledConnection.CONNECTING:
                    ended.append(conn.core.close())
                conn.state = PooledConnection.CLOSED
                to_close.append(conn)
                self.report_closed(conn, "client closed")
        self.connections = []
        return to_close, ended

    def closing_connections(self) -> Iterator[PooledConnection]:
        """Connections the pool closed whose transports the client must release."""
        for conn in self.connections:
            if conn.state == PooledConnection.CLOSED and conn.stream is not None:
                yield conn

    def discard(self, conn: PooledConnection) -> None:
        """Drop ``conn``'s slot unless the client still holds its transport."""
        if conn in self.connections and conn.stream is None:
            self.connections.remove(conn)

    def forget(self, conn: PooledConnection) -> None:
        """The client released ``conn``'s transport; drop the slot."""
        conn.stream = None
        if conn in self.connections:
            self.connections.remove(conn)
