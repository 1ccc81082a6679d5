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

Connections (:class:`~apnskit._engine.pool.PooledConnection`) come from the
:class:`~apnskit._engine.pool.Pool`: opened lazily, only when tickets wait and every open
connection is full, never beyond ``Limits.max_connections``, and after a failed connect only
once the reconnect backoff has passed; several at once only after a connection proved the
server works (see the pool's docstring). An idle connection is checked with an HTTP/2 PING
before it is used again; one that does not answer is replaced. Which answers allow a resend
is written down in :mod:`apnskit._engine.tickets`.

The client's part is small: open the connections :meth:`Dispatcher.connections_to_open` asks
for, write what each core has to send, feed what it reads to :meth:`Dispatcher.receive`, call
:meth:`Dispatcher.tick` when :meth:`Dispatcher.next_wakeup` comes, and hand each finished
ticket's result to whoever waits for it (the ``on_done`` callback).
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from apnskit._config import Limits, RetryPolicy, Timeout
from apnskit._core.events import (
    ConnectionTerminated,
    PingAcknowledged,
    ResponseReceived,
    SettingsReceived,
    StreamReset,
)
from apnskit._engine.client_events import (
    ClientEvent,
    NotificationSent,
    NotificationSubmitted,
    ResultReady,
    RetryCause,
    RetryScheduled,
)
from apnskit._engine.pool import Pool, PooledConnection
from apnskit._engine.tickets import (
    FREE_RESENDS,
    Ticket,
    answer_retry_cause,
    failure_result,
    is_sendable,
    may_resend_lost,
    response_result,
)
from apnskit._errors import (
    ApnsError,
    ClientClosedError,
    ConnectError,
    ConnectionLostError,
    DeadlineExceededError,
    InvalidNotificationError,
)
from apnskit._model.notification import Notification
from apnskit._model.results import PushResult, Reason, parse_reason

__all__ = ["AuthorizationSource", "Dispatcher"]

logger = logging.getLogger("apnskit")


class AuthorizationSource(Protocol):
    """The part of the credentials the dispatcher uses.

    The dispatcher never asks for a token itself (that would read the credentials' clock from
    inside the engine): the client hands it the current header with
    :meth:`Dispatcher.set_authorization` before each step.
    """

    def token_rejected(self, generation: int) -> None:
        """APNs answered ExpiredProviderToken to a token of this generation."""


class Dispatcher:
    """Owns every ticket, and the pool that carries them; see the module docstring.

    Args:
        authority: ``host`` or ``host:port`` for the ``:authority`` header.
        credentials: Told when APNs rejects a token as expired (token auth).
        limits: Pool size and in-flight bound.
        retry: The retry policy.
        timeout: Timeouts (deadline, ping interval, ping timeout).
        random: A source of floats in [0, 1) for jitter.
        on_done: Called with each ticket as soon as it has its result.
        event_hook: Receives each :class:`~apnskit.ClientEvent`; its exceptions are logged
            and ignored.
        hold_until_success: One stream per connection until a first success (token auth).
        host: The host reported in :class:`~apnskit.ConnectionOpened`.
        port: The port reported in :class:`~apnskit.ConnectionOpened`.
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
        self._credentials = credentials
        self._limits = limits
        self._retry = retry
        self._timeout = timeout
        self._random = random
        self._on_done = on_done
        self._hook = event_hook
        self._pool = Pool(
            authority=authority,
            host=host,
            port=port,
            limits=limits,
            retry=retry,
            timeout=timeout,
            random=random,
            hold_until_success=hold_until_success,
            emit=self._emit,
        )
        self._waiting: deque[Ticket] = deque()
        self._retry_heap: list[tuple[float, int, Ticket]] = []
        self._retry_seq = 0
        # Deadlines all use the same timeout, so submission order is deadline order.
        self._deadlines: deque[Ticket] = deque()
        self._assigned = 0  # tickets sitting in some connection's core
        self._outstanding = 0  # tickets not done
        # Set by schedule(): fewer live connections than Limits.max_connections.
        self._pool_can_grow = True
        # The authorization header and its generation, set by the client (token auth).
        self._authorization: tuple[str, int] | None = None
        # Generation APNs rejected as expired: nothing is sent with it or an older one until
        # the client hands in a newer header.
        self._rejected_generation = 0
        self.closed = False
        # Read once per notification: plain attributes rather than a walk through the
        # frozen config objects.
        self._deadline = timeout.deadline
        self._max_in_flight = limits.max_in_flight

    # ------------------------------------------------------------------ accounting

    @property
    def connections(self) -> list[PooledConnection]:
        """The pool's connections (connecting, open, or closed with a transport to release)."""
        return self._pool.connections

    @property
    def outstanding(self) -> int:
        """Tickets handed in and not yet done."""
        return self._outstanding

    @property
    def has_room(self) -> bool:
        """True while fewer than ``Limits.max_in_flight`` tickets are outstanding."""
        return self._outstanding < self._max_in_flight

    def set_authorization(self, authorization: tuple[str, int] | None) -> None:
        """The ``authorization`` header value and its generation to send with, or None.

        The client calls this before each step with ``credentials.authorization()``, so the
        engine never reads a clock through the credentials.
        """
        self._authorization = authorization

    # ------------------------------------------------------------------ submitting

    def submit(self, item: Any, now: float, waiter: Any = None) -> Ticket:
        """Take a notification in; it is sent by the next :meth:`schedule`.

        ``waiter`` is set as the ticket's before it can end (see :meth:`submit_many`).
        """
        deadline = self._deadline
        ticket = Ticket(item, None if deadline is None else now + deadline)
        ticket.waiter = waiter
        self._outstanding += 1
        if self._hook is not None:
            self._emit(NotificationSubmitted(notification=item))
        if self.closed:
            # A client closed while a send_many() was pulling input: what it pulled still
            # gets its one result.
            self._finish(ticket, failure_result(ticket, ClientClosedError("the client was closed")))
            return ticket
        # A Notification is checked when it is built: only other objects need a look here.
        if type(item) is not Notification and not is_sendable(item):
            error = InvalidNotificationError(
                "notification",
                f"{type(item).__name__} is not an apnskit.Notification or broadcast request",
            )
            self._finish(ticket, PushResult(notification=item, status=None, error=error))
            return ticket
        if deadline is not None:
            self._deadlines.append(ticket)
        self._waiting.append(ticket)
        return ticket

    def submit_many(self, items: Iterable[Any], now: float, waiter: Any) -> list[Ticket]:
        """:meth:`submit` each of ``items`` with ``waiter``, in one call (``send_many``).

        A ticket that ends at once (a closed client, something that is not a notification)
        reaches ``on_done`` with its waiter already set, like any other.

        Returns:
            The tickets that have not ended yet.
        """
        open_tickets: list[Ticket] = []
        for item in items:
            ticket = self.submit(item, now, waiter)
            if not ticket.done:
                open_tickets.append(ticket)
        return open_tickets

    def cancel(self, ticket: Ticket, error: BaseException) -> None:
        """Give up on ``ticket`` (its caller left): RST_STREAM it if sent, end it with ``error``.

        A queued or retrying ticket is skipped lazily where it waits.
        """
        if ticket.done:
            return
        if ticket.handle is not None and ticket.conn is not None:
            ticket.conn.core.cancel(ticket.handle)
        self._detach(ticket)
        self._finish(ticket, failure_result(ticket, error))

    # ------------------------------------------------------------------ connections

    def connections_to_open(self, now: float) -> list[PooledConnection]:
        """New connection slots the client should connect now (possibly none)."""
        if self.closed or not self._waiting:
            return []
        # The waiting tickets are what schedule() could not place: the backlog the pool
        # sizes a burst of connects by (once a connection has proved the server works).
        return self._pool.grant(now, len(self._waiting))

    def connection_established(self, conn: PooledConnection, now: float) -> None:
        """The client connected ``conn``'s transport: start HTTP/2 on it."""
        self._pool.established(conn, now)

    def connect_failed(self, conn: PooledConnection, error: BaseException, now: float) -> None:
        """Connecting ``conn`` failed: back off, and fail tickets that ran out of attempts."""
        self._pool.connect_failed(conn, error, now)
        if self._pool.any_open:
            # Other connections still carry the waiting tickets, or are still connecting:
            # connections opened together that all fail cost the tickets one attempt (the
            # last to fail), not one each.
            return
        # Nothing can carry the waiting tickets: each connect failure costs them an attempt.
        still: deque[Ticket] = deque()
        for ticket in self._waiting:
            if ticket.done:
                continue
            ticket.attempts += 1
            ticket.connect_failures += 1
            ticket.connect_error = error
            if ticket.attempts >= self._retry.max_attempts:
                wrapped = error if isinstance(error, ApnsError) else ConnectError(str(error))
                self._finish(ticket, failure_result(ticket, wrapped))
            else:
                still.append(ticket)
        self._waiting = still

    def connect_abandoned(self, conn: PooledConnection) -> None:
        """A connect was cancelled (not failed): free the slot without any backoff."""
        self._pool.abandoned(conn)

    def connection_lost(self, conn: PooledConnection, error: BaseException, now: float) -> None:
        """The transport under ``conn`` broke (EOF, reset, TLS error)."""
        if conn.state == PooledConnection.CLOSED:
            return
        event = conn.core.connection_lost()
        self._pool.close(conn, f"lost: {error}")
        self._pool.died_early(conn, now)
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
        to_close, ended = self._pool.close_all()
        for event in ended:
            tickets.extend(event.unprocessed)
            tickets.extend(event.abandoned)
        for ticket in tickets:
            if not ticket.done:
                self._detach(ticket)
                self._finish(ticket, failure_result(ticket, error))
        return to_close

    def closing_connections(self) -> Iterator[PooledConnection]:
        """Connections the dispatcher closed whose transports the client must release."""
        return self._pool.closing_connections()

    def forget(self, conn: PooledConnection) -> None:
        """The client released ``conn``'s transport; drop the slot."""
        self._pool.forget(conn)

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
        pool = self._pool
        self._pool_can_grow = pool.can_grow
        for conn in pool.connections:
            if conn.state != PooledConnection.READY or conn.retiring:
                continue
            if pool.retire_if_worn(conn) or pool.check_if_idle(conn, now):
                continue
            self._fill(conn, now)
            if not self._waiting:
                return

    def _fill(self, conn: PooledConnection, now: float) -> None:
        core = conn.core
        waiting = self._waiting
        room = min(core.capacity, self._max_in_flight - self._assigned)
        if room <= 0:
            return
        can_grow = self._pool_can_grow
        if can_grow and core.window_blocked:
            return
        auth = self._authorization
        if auth is None:
            authorization, generation = None, -1
        else:
            authorization, generation = auth
            if generation <= self._rejected_generation:
                return  # APNs called this token expired: wait for the renewed one
        hook = self._hook
        sent = 0
        try:
            while room > 0 and waiting:
                ticket = waiting.popleft()
                if ticket.done:
                    continue
                ticket.generation = generation
                item = ticket.item
                # A Notification is always a POST; other requests (channel management) say.
                method = "POST" if type(item) is Notification else getattr(item, "method", "POST")
                ticket.handle = core.send_request(
                    item.path,
                    item.headers,
                    item.body,
                    ticket,
                    method=method,
                    authorization=authorization,
                )
                ticket.conn = conn
                ticket.sends += 1
                ticket.attempts += 1
                sent += 1
                room -= 1
                if can_grow and core.window_blocked:
                    room = 0  # the rest waits for another connection (see schedule)
                if hook is not None:
                    self._emit(
                        NotificationSent(
                            notification=item, attempt=ticket.sends, connection_id=conn.id
                        )
                    )
        finally:
            # Counted once per batch; also when a send raised, for those already in a core.
            self._assigned += sent
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
                    self._pool.answered(conn)
                self._on_response(event, now)
            elif type(event) is StreamReset:
                self._on_reset(event, now)
            elif type(event) is ConnectionTerminated:
                self._on_terminated(conn, event, now)
            elif type(event) is PingAcknowledged:
                self._pool.ping_acknowledged(conn)
            elif type(event) is SettingsReceived:
                pass  # capacity is read from the core when scheduling
        if conn.state != PooledConnection.CLOSED and conn.core.finished:
            self._pool.close(conn, "drained after GOAWAY")
        self._pool.close_if_drained(conn)
        self.schedule(now)

    def _on_response(self, event: ResponseReceived, now: float) -> None:
        ticket: Ticket = event.context
        if ticket.handle is not None:  # _detach, inline: this runs once per notification
            ticket.handle = None
            ticket.conn = None
            self._assigned -= 1
        if ticket.done:
            return
        status = event.status
        reason = None if event.reason is None else parse_reason(event.reason)
        if 200 <= status < 300:
            self._finish(ticket, response_result(ticket, event, reason))
            return
        if reason is Reason.EXPIRED_PROVIDER_TOKEN and not ticket.expired_token_retried:
            # Apple: make a new token and retry. Renewal is keyed on the rejected token's
            # generation so a burst of these causes one renewal (issue 3).
            ticket.expired_token_retried = True
            try:
                self._credentials.token_rejected(ticket.generation)
            except ApnsError as error:
                self._finish(ticket, response_result(ticket, event, reason, error=error))
                return
            # Nothing more goes out with that token; the client hands in the renewed one.
            self._rejected_generation = max(self._rejected_generation, ticket.generation)
            ticket.attempts -= 1  # the fresh-token resend is free
            why = "403 ExpiredProviderToken"
            self._requeue(ticket, 0.0, now, why, RetryCause.EXPIRED_PROVIDER_TOKEN, event, reason)
            return
        cause = answer_retry_cause(ticket, status, self._retry)
        if cause is None:
            self._finish(ticket, response_result(ticket, event, reason))
            return
        if cause is RetryCause.SERVER_ERROR:
            # A 500 may have been processed: the resend may be a duplicate (README).
            ticket.unknown_fate = True
        delay = self._retry.delay(ticket.attempts, self._random())
        # Without a reason, the server's own words (a non-JSON body) say more than nothing.
        why = f"{status} {reason or event.detail or ''}".strip()
        self._requeue(ticket, delay, now, why, cause, event, reason)

    def _on_reset(self, event: StreamReset, now: float) -> None:
        ticket: Ticket = event.context
        self._detach(ticket)
        if ticket.done:
            return
        # REFUSED_STREAM: not processed (RFC 9113 section 8.7), safe to resend, and at once:
        # nginx refuses streams sent before its first SETTINGS (http2_body_preread_size 0),
        # which is no reason to wait for a backoff (issue 10). Still bounded by max_attempts.
        if event.retry_safe and ticket.attempts < self._retry.max_attempts:
            self._requeue(ticket, 0.0, now, "stream refused", RetryCause.STREAM_REFUSED)
            return
        error = ConnectionLostError(
            f"APNs reset the stream (HTTP/2 error code {event.error_code:#x})"
        )
        self._finish(ticket, failure_result(ticket, error))

    def _on_terminated(
        self, conn: PooledConnection, event: ConnectionTerminated, now: float
    ) -> None:
        # Without a JSON reason, the debug data's own words (event.detail) say more than the
        # error code alone.
        reason = (
            event.reason
            or event.detail
            or (f"error code {event.error_code:#x}" if event.error_code else "")
        )
        self._pool.died_early(conn, now)
        if event.error is not None:
            self._pool.close(conn, f"protocol error: {event.error}")
            self._requeue_terminated(event, event.error, now)
            return
        if conn.state != PooledConnection.CLOSED:
            conn.state = PooledConnection.READY  # draining; the core refuses new streams
        self._pool.report_closed(conn, f"GOAWAY {reason}".strip())
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
            if ticket.sends > self._retry.max_attempts + FREE_RESENDS:
                self._finish(ticket, failure_result(ticket, error))
            else:
                why = "not processed before GOAWAY"
                self._requeue(ticket, 0.0, now, why, RetryCause.GOAWAY)
        for ticket in event.abandoned:
            self._detach(ticket)
            if ticket.done:
                continue
            if may_resend_lost(ticket, self._retry):
                ticket.unknown_fate = True
                delay = self._retry.delay(ticket.attempts, self._random())
                self._requeue(ticket, delay, now, "connection lost", RetryCause.CONNECTION_LOST)
            else:
                self._finish(ticket, failure_result(ticket, error))

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
        times.extend(self._pool.health_wakeups(now))
        if self._waiting:
            # Times that let connections_to_open() grant a connection.
            times.extend(self._pool.opening_wakeups(now))
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
        pool = self._pool
        for conn in list(pool.connections):
            if pool.ping_overdue(conn, now):
                lost = ConnectionLostError("no answer to an HTTP/2 PING health check")
                self.connection_lost(conn, lost, now)
            else:
                pool.check_if_stalled(conn, now)
            # Deadlines and cancellations end streams without any read.
            pool.close_if_drained(conn)
        self.schedule(now)

    def _expire(self, ticket: Ticket, now: float) -> None:
        conn = ticket.conn
        if ticket.handle is not None and conn is not None:
            conn.core.cancel(ticket.handle)
            # No answer in time may mean the connection is dead: check before reusing it.
            self._pool.check(conn, now)
        self._detach(ticket)
        # Drop it from the waiting queue or retry heap lazily: done tickets are skipped.
        last = ticket.connect_error
        error: BaseException
        if ticket.sends == 0 and isinstance(last, ConnectError):
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
        self._finish(ticket, failure_result(ticket, error))

    # ------------------------------------------------------------------ helpers

    def _detach(self, ticket: Ticket) -> None:
        if ticket.handle is not None:
            ticket.handle = None
            ticket.conn = None
            self._assigned -= 1

    def _requeue(
        self,
        ticket: Ticket,
        delay: float,
        now: float,
        why: str,
        cause: RetryCause,
        answer: ResponseReceived | None = None,
        apns_reason: Reason | str | None = None,
    ) -> None:
        self._emit(
            RetryScheduled(
                notification=ticket.item,
                attempt=ticket.sends + 1,
                delay=delay,
                reason=why,
                cause=cause,
                status=None if answer is None else answer.status,
                apns_reason=apns_reason,
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

    def _emit(self, event: ClientEvent) -> None:
        if self._hook is None:
            return
        try:
            self._hook(event)
        except Exception:
            # A metrics hook must never break sending.
            logger.exception("apnskit event hook raised; ignoring")
