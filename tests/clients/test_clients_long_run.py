"""Issue 11: a simulated day, on an injected clock, through the pure dispatcher.

The dispatcher reads no clock and asks the credentials for nothing but ``token_rejected``:
the test plays the client's part (connect, write, read) against the mock server's HTTP/2
state machine, and moves time itself.
"""

from __future__ import annotations

from typing import Any

from client_support import echo, notification

import apnskit
from apnskit._engine.dispatcher import Dispatcher
from apnskit._engine.pool import PooledConnection
from apnskit._engine.tickets import Ticket
from apnskit.testing import ReceivedRequest, Reply
from apnskit.testing._server_connection import ServerConnection

DAY = 24 * 3600.0


class _TokenRejectedOnly:
    """Credentials as the dispatcher sees them: it must never ask for a token itself."""

    def token_rejected(self, generation: int) -> None:
        raise AssertionError("not expected here")


def _dispatcher(done: list[Ticket], **kwargs: Any) -> Dispatcher:
    kwargs.setdefault("limits", apnskit.Limits(max_connections=1))
    return Dispatcher(
        authority="api.sandbox.push.apple.com",
        credentials=_TokenRejectedOnly(),
        retry=apnskit.RetryPolicy(max_attempts=3, backoff_base=0.5, backoff_max=30.0),
        timeout=apnskit.Timeout(deadline=600.0),
        random=lambda: 0.5,
        on_done=done.append,
        hold_until_success=True,
        **kwargs,
    )


def _exchange(dispatcher: Dispatcher, conn: PooledConnection, server: Any, now: float) -> None:
    """Carry bytes both ways until neither side has anything more to say."""
    while True:
        out = conn.core.data_to_send()
        if out:
            server.receive_data(out, now)
        back = server.data_to_send()
        if not out and not back:
            return
        if back:
            dispatcher.receive(conn, back, now)


def test_a_day_of_failed_connects_then_recovery() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(done)
    dispatcher.set_authorization(("bearer token-1", 1))
    now = 0.0
    failures = 0
    delays: list[float] = []
    # 24 hours in which every connect fails (an expired certificate nobody renewed): new
    # notifications keep arriving, each fails after its attempts, and the backoff holds.
    while now < DAY:
        if dispatcher.outstanding == 0:
            dispatcher.submit(notification(), now)
        for conn in dispatcher.connections_to_open(now):
            dispatcher.connect_failed(conn, apnskit.ConnectError("connection refused"), now)
            failures += 1
        wakeup = dispatcher.next_wakeup(now)
        if wakeup is None:  # every notification has its result: the next one comes
            assert dispatcher.outstanding == 0
            continue
        assert wakeup > now
        delays.append(wakeup - now)
        now = wakeup
        dispatcher.tick(now)
    assert failures > 2000  # past the ~1,025 where 2.0 ** n overflowed
    assert max(delays) <= 30.0  # backoff_max still holds after hours
    results = [t.result for t in done]
    assert all(r is not None and isinstance(r.error, apnskit.ConnectError) for r in results)
    assert all(r is not None and r.attempts == 3 for r in results)

    # The network is back: the next connect works and the notification is delivered.
    done.clear()
    ticket = dispatcher.submit(notification(), now)
    server = ServerConnection(echo, hold_streams_until_success=True, goaway_linger=0.0)
    server.initiate()
    while not ticket.done:
        for conn in dispatcher.connections_to_open(now):
            dispatcher.connection_established(conn, now)
        for conn in list(dispatcher.connections):
            if conn.state != PooledConnection.CONNECTING:
                _exchange(dispatcher, conn, server, now)
        wakeup = dispatcher.next_wakeup(now)
        now = max(now, wakeup or now) + 0.001
        dispatcher.tick(now)
    # The new one and any left from the outage are delivered.
    assert ticket in done
    assert dispatcher.outstanding == 0
    assert all(t.result is not None and t.result.accepted for t in done)


def test_retry_delay_never_overflows() -> None:
    policy = apnskit.RetryPolicy(backoff_base=1e300, backoff_max=60.0, jitter=0.5)
    for n in (1, 64, 1025, 10**6):
        assert 30.0 <= policy.delay(n, 0.999) <= 60.0


def test_dispatcher_sends_the_header_it_was_handed() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(done)
    seen: list[str] = []

    def app(request: ReceivedRequest) -> Reply:
        seen.append(request.headers["authorization"])
        return echo(request)

    server = ServerConnection(app, goaway_linger=0.0)
    server.initiate()
    dispatcher.submit(notification(), 0.0)
    dispatcher.set_authorization(("bearer first", 1))
    (conn,) = dispatcher.connections_to_open(0.0)
    dispatcher.connection_established(conn, 0.0)
    dispatcher.tick(0.0)
    _exchange(dispatcher, conn, server, 0.0)
    dispatcher.set_authorization(("bearer second", 2))
    dispatcher.submit(notification(), 1.0)
    dispatcher.tick(1.0)
    _exchange(dispatcher, conn, server, 1.0)
    assert seen == ["bearer first", "bearer second"]
    assert len(done) == 2
