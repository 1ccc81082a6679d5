"""The pure decisions both clients share: which connection, retry or not, and when.

Theory of operation
-------------------
A :class:`Dispatcher` owns every notification a client was handed, as a :class:`Ticket`,
until it ends in exactly one :class:`~apnskit.PushResult`. It knows no sockets and no clock:
the client tells it the time and what the network did, and asks it what to do next.

A ticket's life::

    submit() -> waiting --schedule()--> sent on a pooled connection --response--> done
                  ^                        |  429/500/503, REFUSED_STREAM, GOAWAY-unprocessed,
                  |                        |  connection lost, ExpiredProviderToken
                  +---- retry heap <-------+  (backoff with jitter, per the RetryPolicy)
    and at any point: deadline passed -> done (DeadlineExceededError)

Connections (:class:`PooledConnection`) are opened lazily: only when tickets wait and every
open connection is saturated, never beyond ``Limits.max_connections``, and after a failed
connect only once the reconnect backoff has passed. An idle connection is checked with an
HTTP/2 PING before it is used again; one that does not answer is replaced.

The client's part is small: open the connections :meth:`Dispatcher.connections_to_open` asks
for, write what each core has to send, feed what it reads to :meth:`Dispatcher.receive`, call
:meth:`Dispatcher.tick` when :meth:`Dispatcher.next_wakeup` comes, and hand each finished
ticket's result to whoever waits for it (the ``on_done`` callback).
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from apnskit._config import Limits, RetryPolicy, Timeout
from apnskit._core.connection import ApnsConnection, RequestHandle
from apnskit._core.events import (
    ConnectionTerminated,
    PingAcknowledged,
    ResponseReceived,
    SettingsReceived,
    StreamReset,
)
from apnskit._errors import (
    ApnsError,
    ClientClosedError,
    ConnectError,
    ConnectionLostError,
    DeadlineExceededError,
    InvalidNotificationError,
)
from apnskit._model.results import PushResult, Reason, parse_reason

__all__ = [
    "ClientEvent",
    "ConnectionClosed",
    "ConnectionFailed",
    "ConnectionOpened",
    "Dispatcher",
    "NotificationSent",
    "NotificationSubmitted",
    "PooledConnection",
    "ResultReady",
    "RetryScheduled",
    "SendableRequest",
    "Ticket",
]

logger = logging.getLogger("apnskit")


class SendableRequest(Protocol):
    """What a client can send: a Notification, or a broadcast request."""

    @property
    def path(self) -> str:
        """The request path."""

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The request headers, without authorization or pseudo-headers."""

    @property
    def body(self) -> bytes:
        """The request body."""


class AuthorizationSource(Protocol):
    """The part of the credentials the dispatcher uses.

    The dispatcher never asks for a token itself (that would read the credentials' clock from
    inside the core): the client hands it the current header with
    :meth:`Dispatcher.set_authorization` before each step.
    """

    def token_rejected(self, generation: int) -> None:
        """APNs answered ExpiredProviderToken to a token of this generation."""


# ---------------------------------------------------------------------------- hook events


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientEvent:
    """Base class of the events a client reports to its ``event_hook`` (for metrics)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationSubmitted(ClientEvent):
    """A notification was handed to the client; exactly one :class:`ResultReady` follows.

    It is reported from the caller's own thread or task (inside ``send``/``send_many``), so
    a hook sees the caller's context here, e.g. its tracing span.
    """

    notification: Any
    """The notification (or broadcast request), as handed to the client."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationSent(ClientEvent):
    """A notification was written to a connection."""

    notification: Any
    """The notification (or broadcast request)."""
    attempt: int
    """1 for the first send, 2 for the first retry..."""
    connection_id: int
    """Which pooled connection carries it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultReady(ClientEvent):
    """A notification ended."""

    result: PushResult
    """Its one and only result."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(ClientEvent):
    """A notification will be sent again."""

    notification: Any
    """The notification."""
    attempt: int
    """The attempt number it will be sent as."""
    delay: float
    """Seconds until it is sent again."""
    reason: str
    """Why (e.g. ``"503 ServiceUnavailable"``, ``"GOAWAY"``, ``"connection lost"``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened(ClientEvent):
    """A pooled connection is up."""

    connection_id: int
    """The connection's id within the client."""
    host: str
    """The host it is connected to."""
    port: int
    """The port it is connected to."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(ClientEvent):
    """A pooled connection ended."""

    connection_id: int
    """The connection's id within the client."""
    reason: str
    """Why: GOAWAY reason, lost, idle health check failed, client closed..."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionFailed(ClientEvent):
    """A connection could not be opened."""

    connection_id: int
    """The id the connection would have had."""
    error: BaseException
    """What went wrong."""
    retry_in: float
    """Seconds before the next attempt to connect."""


# ---------------------------------------------------------------------------- state


class Ticket:
    """One notification's journey through the client; the client may attach a waiter."""

    __slots__ = (
        "attempts",
        "conn",
        "connect_failures",
        "deadline",
        "done",
        "expired_token_retried",
        "generation",
        "handle",
        "item",
        "result",
        "sends",
        "unknown_fate",
        "waiter",
    )

    def __init__(self, item: Any, deadline: float | None) -> None:
        self.item = item
        self.deadline = deadline
        #: Sends that count against RetryPolicy.max_attempts.
        self.attempts = 0
        #: Every send, including free resends of requests a server never processed.
        self.sends = 0
        self.expired_token_retried = False
        #: Failed connects while it waited for a connection (reported in its attempts).
        self.connect_failures = 0
        #: True once a send of it may have been processed without us learning the answer
        #: (connection lost with it in flight, a 500): a resend may then be a duplicate.
        self.unknown_fate = False
        self.generation = -1
        self.conn: PooledConnection | None = None
        self.handle: RequestHandle | None = None
        self.result: PushResult | None = None
        self.done = False
        #: Whatever the client uses to wake the caller waiting for this ticket.
        self.waiter: Any = None


class PooledConnection:
    """A connection slot in the pool: the core, plus what the client attaches to it."""

    __slots__ = (
        "answered",
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

    CONNECTING = "connecting"
    READY = "ready"
    CHECKING = "checking"
    CLOSED = "closed"

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
        #: True once any response arrived on it (see connections_to_open).
        self.answered = False
        #: When connection_established() ran.
        self.opened_at = 0.0
        #: True once ConnectionClosed was emitted: a GOAWAY reports it, the later drain or
        #: loss of the same connection must not report it a second time.
        self.closed_reported = False
        #: True once its stream ids are nearly used up: it takes no new notifications and
        #: closes when its open streams are answered, while a new connection takes over.
        self.retiring = False

    def __repr__(self) -> str:
        return f"<PooledConnection {self.id} {self.state} in_flight={self.core.in_flight}>"


_RETRY_STATUSES = frozenset({429, 500, 503})
# Answers saying the request was turned away before any work (throttled, unavailable): safe
# to resend even when the request is not idempotent. A 500 may have done part of the work.
_NOT_PROCESSED_STATUSES = frozenset({429, 503})
# A connection is retired (no new streams; closed once drained, a new one takes over) when
# fewer stream ids than this are left. Ids are never reused and end at 2**31-1 (RFC 9113
# section 5.1.1); at 20,000 notifications/s this leaves about 50 s to drain and reconnect.
_RETIRE_STREAMS_LEFT = 1 << 20
# How many free resends (GOAWAY-unprocessed) a ticket may get on top of its attempts, so a
# server that keeps refusing with GOAWAY cannot keep a notification alive forever.
_FREE_RESENDS = 5


class Dispatcher:
    """Owns the pool state and every ticket; see the module docstring.

    Args:
        authority: ``host`` or ``host:port`` for the ``:authority`` header.
        credentials: Gives the authorization header value (token auth) per send.
        limits: Pool size and in-flight bound.
        retry: The retry policy.
        timeout: Timeouts (deadline, ping interval, ping timeout).
        random: A source of floats in [0, 1) for jitter.
        on_done: Called with each ticket as soon as it has its result.
        event_hook: Receives each :class:`ClientEvent`; its exceptions are logged and ignored.
        hold_until_success: One stream per connection until a first success (token auth).
    """

    def __init__(
        self,
        *,
        authority: str,
        credentials: AuthorizationSource,
        limits: Limits,
        retry: RetryPolicy,
        timeout: Timeout,
        random: Callable[[], float],
        on_done: Callable[[Ticket], None],
        event_hook: Callable[[ClientEvent], None] | None = None,
        hold_until_success: bool = False,
        host: str = "",
        port: int = 443,
    ) -> None:
        self._authority = authority
        self._host = host
        self._port = port
        self._credentials = credentials
        self._limits = limits
        self._retry = retry
        self._timeout = timeout
        self._random = random
        self._on_done = on_done
        self._hook = event_hook
        self._hold = hold_until_success
        self.connections: list[PooledConnection] = []
        self._next_connection_id = 1
        self._waiting: deque[Ticket] = deque()
        self._retry_heap: list[tuple[float, int, Ticket]] = []
        self._retry_seq = 0
        # Deadlines all use the same timeout, so submission order is deadline order.
        self._deadlines: deque[Ticket] = deque()
        self._assigned = 0  # tickets sitting in some connection's core
        self._outstanding = 0  # tickets not done
        self._connect_failures = 0
        self._reconnect_at = 0.0
        self._last_connect_error: BaseException | None = None
        # Set by schedule(): fewer live connections than Limits.max_connections.
        self._pool_can_grow = True
        # The authorization header and its generation, set by the client (token auth).
        self._authorization: tuple[str, int] | None = None
        # Generation APNs rejected as expired: nothing is sent with it or an older one until
        # the client hands in a newer header.
        self._rejected_generation = 0
        self.closed = False

    # ------------------------------------------------------------------ accounting

    @property
    def outstanding(self) -> int:
        """Tickets handed in and not yet done."""
        return self._outstanding

    @property
    def has_room(self) -> bool:
        """True while fewer than ``Limits.max_in_flight`` tickets are outstanding."""
        return self._outstanding < self._limits.max_in_flight

    def set_authorization(self, authorization: tuple[str, int] | None) -> None:
        """The ``authorization`` header value and its generation to send with, or None.

        The client calls this before each step with ``credentials.authorization()``, so the
        core never reads a clock through the credentials.
        """
        self._authorization = authorization

    # ------------------------------------------------------------------ submitting

    def submit(self, item: Any, now: float) -> Ticket:
        """Take a notification in; it is sent by the next :meth:`schedule`."""
        deadline = None if self._timeout.deadline is None else now + self._timeout.deadline
        ticket = Ticket(item, deadline)
        self._outstanding += 1
        if self._hook is not None:
            self._emit(NotificationSubmitted(notification=item))
        if self.closed:
            # A client closed while a send_many() was pulling input: what it pulled still
            # gets its one result.
            self._finish(ticket, self._failure(ticket, ClientClosedError("the client was closed")))
            return ticket
        if not _is_sendable(item):
            error = InvalidNotificationError(
                "notification",
                f"{type(item).__name__} is not an apnskit.Notification or broadcast request",
            )
            self._finish(ticket, PushResult(notification=item, status=None, error=error))
            return ticket
        if ticket.deadline is not None:
            self._deadlines.append(ticket)
        self._waiting.append(ticket)
        return ticket

    def cancel(self, ticket: Ticket, error: BaseException) -> None:
        """Give up on ``ticket`` (its caller left): RST_STREAM it if sent, end it with ``error``.

        A queued or retrying ticket is skipped lazily where it waits.
        """
        if ticket.done:
            return
        if ticket.handle is not None and ticket.conn is not None:
            ticket.conn.core.cancel(ticket.handle)
        self._detach(ticket)
        self._finish(ticket, self._failure(ticket, error))

    # ------------------------------------------------------------------ connections

    def connections_to_open(self, now: float) -> list[PooledConnection]:
        """New connection slots the client should connect now (possibly none)."""
        if self.closed or not self._waiting or now < self._reconnect_at:
            return []
        # A connection that takes no new streams (draining after GOAWAY, or retiring because
        # its stream ids run out) does not hold a pool slot: the next one opens beside it
        # while it finishes what it carries. Otherwise, with max_connections=1, nothing could
        # be sent until it drained, or ever once its ids are gone.
        live = [
            c
            for c in self.connections
            if c.state != PooledConnection.CLOSED and c.core.accepting and not c.retiring
        ]
        if any(c.state == PooledConnection.CONNECTING for c in live):
            return []  # one connect at a time; it may bring all the capacity we need
        if len(live) >= self._limits.max_connections:
            return []
        # A connection is full at the server's MAX_CONCURRENT_STREAMS or while its bodies wait
        # for the server's connection window: far from the server (20 to 150 ms to APNs) one
        # connection carries at most one window (64 KiB by default, RFC 9113 section 6.9.2)
        # of bodies per round trip, so only more connections raise the rate.
        if any(
            (c.core.capacity > 0 and not c.core.window_blocked)
            or (c.state == PooledConnection.CHECKING and c.core.accepting)
            for c in live
        ):
            return []  # (a draining connection being checked brings no capacity back)
        # A connection that has not yet seen SETTINGS may soon allow many more streams.
        if any(not c.core.settings_received for c in live):
            return []
        # Likewise a token connection held at one stream until its first answer: APNs raises
        # the limit after a success, and a second connection would start held too, costing a
        # TLS handshake for nothing (it used to open as soon as the first request went out).
        # ... unless that first answer is overdue: a stuck first request must not hold every
        # other notification behind it until their deadlines (the grace is the PING timeout).
        grace = self._timeout.ping_timeout
        if self._hold and any(not c.answered and now - c.opened_at < grace for c in live):
            return []
        conn = PooledConnection(
            self._next_connection_id,
            ApnsConnection(self._authority, hold_until_success=self._hold),
        )
        self._next_connection_id += 1
        self.connections.append(conn)
        return [conn]

    def connection_established(self, conn: PooledConnection, now: float) -> None:
        """The client connected ``conn``'s transport: start HTTP/2 on it."""
        conn.core.initiate()
        conn.state = PooledConnection.READY
        conn.last_activity = now
        conn.last_read = now
        conn.opened_at = now
        self._reconnect_at = 0.0
        # _connect_failures is reset by the first answer, not here: a server that accepts
        # connections and drops them at once must still meet a growing backoff.
        self._emit(ConnectionOpened(connection_id=conn.id, host=self._host, port=self._port))

    def connect_failed(self, conn: PooledConnection, error: BaseException, now: float) -> None:
        """Connecting ``conn`` failed: back off, and fail tickets that ran out of attempts."""
        conn.state = PooledConnection.CLOSED
        self._discard(conn)
        self._connect_failures += 1
        self._last_connect_error = error
        delay = self._retry.delay(self._connect_failures, self._random())
        self._reconnect_at = now + delay
        self._emit(ConnectionFailed(connection_id=conn.id, error=error, retry_in=delay))
        if any(c.state != PooledConnection.CLOSED for c in self.connections):
            return  # other connections still carry the waiting tickets
        # Nothing can carry the waiting tickets: each connect failure costs them an attempt.
        still: deque[Ticket] = deque()
        for ticket in self._waiting:
            if ticket.done:
                continue
            ticket.attempts += 1
            ticket.connect_failures += 1
            if ticket.attempts >= self._retry.max_attempts:
                wrapped = error if isinstance(error, ApnsError) else ConnectError(str(error))
                self._finish(ticket, self._failure(ticket, wrapped))
            else:
                still.append(ticket)
        self._waiting = still

    def connect_abandoned(self, conn: PooledConnection) -> None:
        """A connect was cancelled (not failed): free the slot without any backoff."""
        conn.state = PooledConnection.CLOSED
        self._discard(conn)

    def connection_lost(self, conn: PooledConnection, error: BaseException, now: float) -> None:
        """The transport under ``conn`` broke (EOF, reset, TLS error)."""
        if conn.state == PooledConnection.CLOSED:
            return
        event = conn.core.connection_lost()
        self._close_conn(conn, f"lost: {error}", now)
        self._died_early(conn, now)
        lost = error if isinstance(error, ApnsError) else ConnectionLostError(str(error))
        self._requeue_terminated(event, lost, now)

    def close_all(self, error: BaseException) -> list[PooledConnection]:
        """Stop: every ticket not done ends with ``error``; GOAWAY is queued on each connection.

        Returns:
            The connections whose transports the client should flush and close.
        """
        self.closed = True
        tickets: list[Ticket] = list(self._waiting)
        self._waiting.clear()
        tickets.extend(t for _, _, t in self._retry_heap)
        self._retry_heap.clear()
        to_close = []
        for conn in self.connections:
            if conn.state != PooledConnection.CLOSED or conn.stream is not None:
                if conn.state != PooledConnection.CONNECTING:
                    event = conn.core.close()
                    tickets.extend(event.unprocessed)
                    tickets.extend(event.abandoned)
                conn.state = PooledConnection.CLOSED
                to_close.append(conn)
                self._report_closed(conn, "client closed")
        self.connections = []
        for ticket in tickets:
            if not ticket.done:
                self._detach(ticket)
                self._finish(ticket, self._failure(ticket, error))
        return to_close

    # ------------------------------------------------------------------ scheduling

    def schedule(self, now: float) -> None:
        """Move due retries to the front and put waiting tickets on connections with room."""
        heap = self._retry_heap
        if heap and heap[0][0] <= now:
            due: list[Ticket] = []
            while heap and heap[0][0] <= now:
                due.append(heapq.heappop(heap)[2])
            # Retries go first: they have waited longest.
            self._waiting.extendleft(reversed(due))
        if not self._waiting:
            return
        # While the pool may still grow, a connection waiting on its flow-control window takes
        # no more work: what waits here makes connections_to_open() add a connection for it.
        # (Counted as connections_to_open() counts them.)
        live = sum(
            1
            for c in self.connections
            if c.state != PooledConnection.CLOSED and c.core.accepting and not c.retiring
        )
        self._pool_can_grow = live < self._limits.max_connections
        for conn in self.connections:
            if conn.state != PooledConnection.READY or conn.retiring:
                continue
            if conn.core.streams_left < _RETIRE_STREAMS_LEFT:
                self._retire(conn, now)
                continue
            if (
                self._timeout.ping_interval is not None
                and conn.core.open_streams == 0
                and now - conn.last_activity >= self._timeout.ping_interval
            ):
                # Idle too long: a NAT may have dropped it silently. Check before use.
                conn.state = PooledConnection.CHECKING
                conn.core.send_ping(now)
                conn.ping_deadline = now + self._timeout.ping_timeout
                continue
            self._fill(conn, now)
            if not self._waiting:
                return

    def _fill(self, conn: PooledConnection, now: float) -> None:
        core = conn.core
        waiting = self._waiting
        room = min(core.capacity, self._limits.max_in_flight - self._assigned)
        if room <= 0:
            return
        if self._pool_can_grow and core.window_blocked:
            return
        auth = self._authorization
        if auth is None:
            authorization, generation = None, -1
        else:
            authorization, generation = auth
            if generation <= self._rejected_generation:
                return  # APNs called this token expired: wait for the renewed one
        hook = self._hook
        send = core.send_request
        while room > 0 and waiting:
            ticket = waiting.popleft()
            if ticket.done:
                continue
            ticket.generation = generation
            item = ticket.item
            ticket.handle = send(
                item.path,
                item.headers,
                item.body,
                ticket,
                method=getattr(item, "method", "POST"),
                authorization=authorization,
            )
            ticket.conn = conn
            ticket.sends += 1
            ticket.attempts += 1
            self._assigned += 1
            room -= 1
            if self._pool_can_grow and core.window_blocked:
                room = 0  # the rest waits for another connection (see schedule)
            if hook is not None:
                self._emit(
                    NotificationSent(notification=item, attempt=ticket.sends, connection_id=conn.id)
                )
        conn.last_activity = now

    # ------------------------------------------------------------------ receiving

    def receive(self, conn: PooledConnection, data: bytes, now: float) -> None:
        """Feed bytes read from ``conn``; finishes or requeues the tickets they answer."""
        if conn.state == PooledConnection.CLOSED:
            return
        conn.last_activity = now
        conn.last_read = now
        for event in conn.core.receive_data(data, now):
            if type(event) is ResponseReceived:
                if not conn.answered:
                    conn.answered = True
                    self._connect_failures = 0  # a working connection ends the backoff
                self._on_response(event, now)
            elif type(event) is StreamReset:
                self._on_reset(event, now)
            elif type(event) is ConnectionTerminated:
                self._on_terminated(conn, event, now)
            elif type(event) is PingAcknowledged:
                conn.ping_deadline = None
                if conn.state == PooledConnection.CHECKING:
                    conn.state = PooledConnection.READY
            elif type(event) is SettingsReceived:
                pass  # capacity is read from the core when scheduling
        if conn.state != PooledConnection.CLOSED and conn.core.finished:
            self._close_conn(conn, "drained after GOAWAY", now)
        self._close_if_drained(conn, now)
        self.schedule(now)

    def _on_response(self, event: ResponseReceived, now: float) -> None:
        ticket: Ticket = event.context
        self._detach(ticket)
        if ticket.done:
            return
        status = event.status
        reason = parse_reason(event.reason)
        if 200 <= status < 300:
            self._finish(ticket, self._result(ticket, event, reason))
            return
        if reason is Reason.EXPIRED_PROVIDER_TOKEN and not ticket.expired_token_retried:
            # Apple: make a new token and retry. Renewal is keyed on the rejected token's
            # generation so a burst of these causes one renewal (issue 3).
            ticket.expired_token_retried = True
            try:
                self._credentials.token_rejected(ticket.generation)
            except ApnsError as error:
                self._finish(ticket, self._result(ticket, event, reason, error=error))
                return
            # Nothing more goes out with that token; the client hands in the renewed one.
            self._rejected_generation = max(self._rejected_generation, ticket.generation)
            ticket.attempts -= 1  # the fresh-token resend is free
            self._requeue(ticket, 0.0, now, "403 ExpiredProviderToken")
            return
        if (
            status in _RETRY_STATUSES
            and ticket.attempts < self._retry.max_attempts
            and (status in _NOT_PROCESSED_STATUSES or getattr(ticket.item, "idempotent", True))
            and (status != 500 or self._retry.retry_500)
        ):
            if status not in _NOT_PROCESSED_STATUSES:
                # A 500 may have been processed: the resend may be a duplicate (README).
                ticket.unknown_fate = True
            delay = self._retry.delay(ticket.attempts, self._random())
            self._requeue(ticket, delay, now, f"{status} {reason or ''}".strip())
            return
        self._finish(ticket, self._result(ticket, event, reason))

    def _on_reset(self, event: StreamReset, now: float) -> None:
        ticket: Ticket = event.context
        self._detach(ticket)
        if ticket.done:
            return
        # REFUSED_STREAM: not processed (RFC 9113 section 8.7), safe to resend, and at once:
        # nginx refuses streams sent before its first SETTINGS (http2_body_preread_size 0),
        # which is no reason to wait for a backoff (issue 10). Still bounded by max_attempts.
        if event.retry_safe and ticket.attempts < self._retry.max_attempts:
            self._requeue(ticket, 0.0, now, "stream refused")
            return
        error = ConnectionLostError(
            f"APNs reset the stream (HTTP/2 error code {event.error_code:#x})"
        )
        self._finish(ticket, self._failure(ticket, error))

    def _on_terminated(
        self, conn: PooledConnection, event: ConnectionTerminated, now: float
    ) -> None:
        reason = event.reason or (f"error code {event.error_code:#x}" if event.error_code else "")
        self._died_early(conn, now)
        if event.error is not None:
            self._close_conn(conn, f"protocol error: {event.error}", now)
            self._requeue_terminated(event, event.error, now)
            return
        if conn.state != PooledConnection.CLOSED:
            conn.state = PooledConnection.READY  # draining; the core refuses new streams
        self._report_closed(conn, f"GOAWAY {reason}".strip())
        error = ConnectionLostError(f"APNs closed the connection (GOAWAY {reason})".strip())
        self._requeue_terminated(event, error, now)

    def _requeue_terminated(
        self, event: ConnectionTerminated, error: BaseException, now: float
    ) -> None:
        for ticket in event.unprocessed:
            self._detach(ticket)
            if ticket.done:
                continue
            # Never processed by APNs (above GOAWAY's last-stream-id, or never sent): resend
            # at once on another connection; this costs no attempt.
            ticket.attempts -= 1 if ticket.sends else 0
            if ticket.sends > self._retry.max_attempts + _FREE_RESENDS:
                self._finish(ticket, self._failure(ticket, error))
            else:
                self._requeue(ticket, 0.0, now, "not processed before GOAWAY")
        for ticket in event.abandoned:
            self._detach(ticket)
            if ticket.done:
                continue
            # Fate unknown: resend only what may safely arrive twice.
            if ticket.attempts < self._retry.max_attempts and getattr(
                ticket.item, "idempotent", True
            ):
                ticket.unknown_fate = True
                delay = self._retry.delay(ticket.attempts, self._random())
                self._requeue(ticket, delay, now, "connection lost")
            else:
                self._finish(ticket, self._failure(ticket, error))

    # ------------------------------------------------------------------ time

    def next_wakeup(self, now: float) -> float | None:
        """The earliest time after ``now`` that :meth:`tick` has something to do, or None."""
        times: list[float] = []
        if self._retry_heap:
            times.append(self._retry_heap[0][0])
        deadlines = self._deadlines
        while deadlines and deadlines[0].done:
            deadlines.popleft()
        if deadlines and deadlines[0].deadline is not None:
            times.append(deadlines[0].deadline)
        stall = self._stall_after
        for conn in self.connections:
            if conn.ping_deadline is not None:
                times.append(conn.ping_deadline)
            elif conn.core.open_streams and conn.state == PooledConnection.READY:
                checked_at = conn.last_read + stall
                if checked_at > now:
                    times.append(checked_at)
        if self._waiting:
            # Times that let connections_to_open() grant a connection. Only future ones: a
            # past one has been acted on, or is blocked by something else that will wake us.
            if self._reconnect_at > now:
                times.append(self._reconnect_at)
            if self._hold:
                grace = self._timeout.ping_timeout
                for conn in self.connections:
                    if not conn.answered and conn.state == PooledConnection.READY:
                        overdue_at = conn.opened_at + grace
                        if overdue_at > now:
                            times.append(overdue_at)
        return min(times) if times else None

    def tick(self, now: float) -> None:
        """Expire deadlines and dead PINGs, then schedule."""
        deadlines = self._deadlines
        while deadlines:
            ticket = deadlines[0]
            if ticket.done:
                deadlines.popleft()
                continue
            if ticket.deadline is None or ticket.deadline > now:
                break
            deadlines.popleft()
            self._expire(ticket, now)
        stall = self._stall_after
        for conn in list(self.connections):
            if conn.ping_deadline is not None and now >= conn.ping_deadline:
                conn.ping_deadline = None
                self.connection_lost(
                    conn, ConnectionLostError("no answer to an HTTP/2 PING health check"), now
                )
            elif conn.core.open_streams and now - conn.last_read >= stall:
                # Streams open and nothing read for a while: a NAT may have dropped the
                # connection silently (apns-reference.md, "Idle connections"). Ask.
                self._check(conn, now)
            # Deadlines and cancellations end streams without any read.
            self._close_if_drained(conn, now)
        self.schedule(now)

    @property
    def _stall_after(self) -> float:
        return 2 * self._timeout.ping_timeout

    def _check(self, conn: PooledConnection, now: float) -> None:
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

    def _retire(self, conn: PooledConnection, now: float) -> None:
        """Stop using ``conn`` for new streams; close it once what it carries is answered."""
        conn.retiring = True
        logger.debug("retiring connection %d: %d stream ids left", conn.id, conn.core.streams_left)
        self._close_if_drained(conn, now)

    def _close_if_drained(self, conn: PooledConnection, now: float) -> None:
        if conn.retiring and conn.state != PooledConnection.CLOSED and not conn.core.in_flight:
            self._close_conn(conn, "retired: stream ids nearly used up", now)

    def _died_early(self, conn: PooledConnection, now: float) -> None:
        # A connection that ends before answering anything counts as a failed connect, so
        # a server that accepts and drops (or GOAWAYs) at once meets exponential backoff:
        # Apple treats rapid reconnects as denial of service (apns-reference.md).
        if conn.answered:
            return
        self._connect_failures += 1
        delay = self._retry.delay(self._connect_failures, self._random())
        self._reconnect_at = max(self._reconnect_at, now + delay)

    def _expire(self, ticket: Ticket, now: float) -> None:
        conn = ticket.conn
        if ticket.handle is not None and conn is not None:
            conn.core.cancel(ticket.handle)
            # No answer in time may mean the connection is dead: check before reusing it.
            self._check(conn, now)
        self._detach(ticket)
        # Drop it from the waiting queue or retry heap lazily: done tickets are skipped.
        last = self._last_connect_error
        error: BaseException
        if ticket.sends == 0 and ticket.connect_failures and isinstance(last, ConnectError):
            # It never left because connecting kept failing: say that, with the same error
            # whichever client (and whichever of deadline or attempts ran out first).
            error = type(last)(
                f"{last} (gave up at the {self._timeout.deadline} s deadline after "
                f"{ticket.connect_failures} failed connection attempt"
                f"{'s' if ticket.connect_failures > 1 else ''})"
            )
        else:
            error = DeadlineExceededError(
                f"no answer from APNs within the {self._timeout.deadline} s deadline"
            )
        self._finish(ticket, self._failure(ticket, error))

    # ------------------------------------------------------------------ helpers

    def closing_connections(self) -> Iterator[PooledConnection]:
        """Connections the dispatcher closed whose transports the client must release."""
        for conn in self.connections:
            if conn.state == PooledConnection.CLOSED and conn.stream is not None:
                yield conn

    def _discard(self, conn: PooledConnection) -> None:
        if conn in self.connections and conn.stream is None:
            self.connections.remove(conn)

    def forget(self, conn: PooledConnection) -> None:
        """The client released ``conn``'s transport; drop the slot."""
        conn.stream = None
        if conn in self.connections:
            self.connections.remove(conn)

    def _close_conn(self, conn: PooledConnection, reason: str, now: float) -> None:
        if conn.state == PooledConnection.CLOSED:
            return
        conn.state = PooledConnection.CLOSED
        conn.ping_deadline = None
        if not conn.core.finished:
            event = conn.core.close()
            self._requeue_terminated(event, ConnectionLostError(reason), now)
        self._report_closed(conn, reason)
        self._discard(conn)

    def _detach(self, ticket: Ticket) -> None:
        if ticket.handle is not None:
            ticket.handle = None
            ticket.conn = None
            self._assigned -= 1

    def _requeue(self, ticket: Ticket, delay: float, now: float, why: str) -> None:
        self._emit(
            RetryScheduled(
                notification=ticket.item, attempt=ticket.sends + 1, delay=delay, reason=why
            )
        )
        if delay <= 0:
            self._waiting.appendleft(ticket)
        else:
            self._retry_seq += 1
            heapq.heappush(self._retry_heap, (now + delay, self._retry_seq, ticket))

    def _finish(self, ticket: Ticket, result: PushResult) -> None:
        if ticket.done:
            return
        ticket.done = True
        ticket.result = result
        self._outstanding -= 1
        self._on_done(ticket)
        if self._hook is not None:
            self._emit(ResultReady(result=result))

    def _result(
        self,
        ticket: Ticket,
        event: ResponseReceived,
        reason: Reason | str | None,
        error: BaseException | None = None,
    ) -> PushResult:
        timestamp = None
        if event.timestamp_ms is not None:
            timestamp = PushResult.timestamp_from_ms(event.timestamp_ms)
        return PushResult(
            notification=ticket.item,
            status=event.status,
            apns_id=event.apns_id or getattr(ticket.item, "apns_id", None),
            apns_unique_id=event.apns_unique_id,
            reason=reason,
            timestamp=timestamp,
            error=error,
            attempts=ticket.sends + ticket.connect_failures,
            headers=dict(event.headers),
            body=event.body,
        )

    def _failure(self, ticket: Ticket, error: BaseException) -> PushResult:
        return PushResult(
            notification=ticket.item,
            status=None,
            apns_id=getattr(ticket.item, "apns_id", None),
            error=error,
            # Failed connects count: a notification that never left after three failed
            # connects was tried three times, not zero.
            attempts=ticket.sends + ticket.connect_failures,
        )

    def _report_closed(self, conn: PooledConnection, reason: str) -> None:
        if not conn.closed_reported:
            conn.closed_reported = True
            self._emit(ConnectionClosed(connection_id=conn.id, reason=reason))

    def _emit(self, event: ClientEvent) -> None:
        if self._hook is None:
            return
        try:
            self._hook(event)
        except Exception:
            # A metrics hook must never break sending.
            logger.exception("apnskit event hook raised; ignoring")


def _is_sendable(item: object) -> bool:
    return (
        isinstance(getattr(item, "path", None), str)
        and isinstance(getattr(item, "body", None), bytes)
        and isinstance(getattr(item, "headers", None), tuple)
    )
