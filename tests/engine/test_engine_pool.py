"""The pool on its own: when it grants a connection, connect backoff, closing, health checks.

Driven directly with real cores and the time passed in; nothing waits and nothing connects.
"""

from __future__ import annotations

import apnskit
from apnskit._config import Limits, RetryPolicy, Timeout
from apnskit._engine.pool import Pool, PooledConnection

RETRY = RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=30.0, jitter=0.0)
TIMEOUT = Timeout(deadline=60.0, ping_interval=10.0, ping_timeout=2.0)
GOAWAY = 0x7  # RFC 9113 section 6.8


def _pool(events: list[apnskit.ClientEvent], max_connections: int = 2) -> Pool:
    return Pool(
        authority="api.push.apple.com",
        host="api.push.apple.com",
        port=443,
        limits=Limits(max_connections=max_connections, max_in_flight=100),
        retry=RETRY,
        timeout=TIMEOUT,
        random=lambda: 0.5,
        hold_until_success=False,
        emit=events.append,
    )


def _frame_types(data: bytes) -> list[int]:
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length :]
    return types


def test_one_connect_at_a_time_then_none_before_settings() -> None:
    events: list[apnskit.ClientEvent] = []
    pool = _pool(events)
    (conn,) = pool.grant(0.0, 1)
    assert conn.state == PooledConnection.CONNECTING
    assert pool.grant(0.0, 1) == []  # one connect at a time
    pool.established(conn, 0.0)
    assert isinstance(events[-1], apnskit.ConnectionOpened)
    assert (events[-1].connection_id, events[-1].port) == (conn.id, 443)
    # Up, but no SETTINGS yet: it may soon allow many streams, so no second connection.
    assert pool.grant(0.0, 1) == []


def test_failed_connect_backs_off_before_the_next_grant() -> None:
    events: list[apnskit.ClientEvent] = []
    pool = _pool(events)
    (conn,) = pool.grant(0.0, 1)
    error = apnskit.ConnectError("refused")
    pool.connect_failed(conn, error, 0.0)
    (failed,) = [e for e in events if isinstance(e, apnskit.ConnectionFailed)]
    assert failed.error is error
    assert failed.retry_in > 0
    assert pool.connections == []
    assert not pool.any_open
    assert pool.grant(failed.retry_in / 2, 1) == []
    assert pool.opening_wakeups(0.0) == [failed.retry_in]
    assert pool.grant(failed.retry_in, 1) != []


def test_connection_that_dies_unanswered_counts_as_a_failed_connect() -> None:
    pool = _pool([])
    (conn,) = pool.grant(0.0, 1)
    pool.established(conn, 0.0)
    conn.core.connection_lost()
    pool.close(conn, "lost")
    pool.died_early(conn, 1.0)
    assert pool.opening_wakeups(1.0), "a backoff was set"
    (answered,) = pool.grant(100.0, 1)
    pool.established(answered, 100.0)
    pool.answered(answered)
    answered.core.connection_lost()
    pool.close(answered, "lost")
    pool.died_early(answered, 200.0)
    assert pool.opening_wakeups(200.0) == []  # an answering connection set no backoff


def test_a_drained_retiring_connection_closes_with_goaway_and_reports_once() -> None:
    events: list[apnskit.ClientEvent] = []
    pool = _pool(events)
    (conn,) = pool.grant(0.0, 1)
    pool.established(conn, 0.0)
    conn.core.data_to_send()
    conn.stream = object()  # the client still holds its transport
    conn.retiring = True
    pool.close_if_drained(conn)
    assert conn.state == PooledConnection.CLOSED
    assert GOAWAY in _frame_types(conn.core.data_to_send())
    assert list(pool.closing_connections()) == [conn]
    pool.close(conn, "again")
    pool.report_closed(conn, "again")
    closed = [e for e in events if isinstance(e, apnskit.ConnectionClosed)]
    assert [e.reason for e in closed] == ["retired: stream ids nearly used up"]
    pool.forget(conn)
    assert pool.connections == []


def test_idle_connection_is_pinged_and_lost_without_an_answer() -> None:
    pool = _pool([])
    (conn,) = pool.grant(0.0, 1)
    pool.established(conn, 0.0)
    assert not pool.check_if_idle(conn, 5.0)  # not idle long enough (ping_interval 10 s)
    assert pool.check_if_idle(conn, 10.0)
    assert conn.state == PooledConnection.CHECKING
    assert pool.health_wakeups(10.0) == [12.0]
    assert not pool.ping_overdue(conn, 11.0)
    assert pool.ping_overdue(conn, 12.0)
    assert not pool.ping_overdue(conn, 13.0)  # reported once


def test_ping_ack_makes_a_checked_connection_ready() -> None:
    pool = _pool([])
    (conn,) = pool.grant(0.0, 1)
    pool.established(conn, 0.0)
    assert pool.check_if_idle(conn, 10.0)
    pool.ping_acknowledged(conn)
    assert (conn.state, conn.ping_deadline) == (PooledConnection.READY, None)
