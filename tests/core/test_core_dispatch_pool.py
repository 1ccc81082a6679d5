"""The pool opens connections while the open ones are full (issue 13).

Full means at the server's MAX_CONCURRENT_STREAMS or with request bodies waiting for the
server's connection flow-control window (RFC 9113 section 6.9): far from the server, one
connection carries at most one window of bodies per round trip. Once a connection has proved
the server works (it answered), the pool opens as many at once as the backlog needs; before
that, and after a failed connect, one at a time. The dispatcher is driven directly with the
real core and the scripted ``Peer``; time is passed in, nothing waits.
"""

from __future__ import annotations

import math

from hyperframe.frame import DataFrame, HeadersFrame
from peer import Peer, settings, window_update

import apnskit
from apnskit._config import Limits, RetryPolicy, Timeout
from apnskit._engine.dispatcher import Dispatcher
from apnskit._engine.pool import PooledConnection
from apnskit._engine.tickets import Ticket

TIMEOUT = Timeout(deadline=60.0, ping_interval=None, ping_timeout=2.0)
# About 200 bytes of JSON: 327 bodies fill the default 65,535-byte connection window.
PAYLOAD = {"aps": {"alert": "x" * 180}}


class _CertificateAuth:
    def authorization(self) -> tuple[str, int] | None:
        return None

    def token_rejected(self, generation: int) -> None:
        raise AssertionError("not used")


class _TokenAuth:
    def token_rejected(self, generation: int) -> None:
        raise AssertionError("not used")


# No jitter: each backoff step is exactly 1, 2, 4... seconds.
RETRY = RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=30.0, jitter=0.0)


def _dispatcher(
    max_connections: int,
    done: list[Ticket],
    events: list[apnskit.ClientEvent] | None = None,
    *,
    token: bool = False,
) -> Dispatcher:
    dispatcher = Dispatcher(
        authority="api.push.apple.com",
        credentials=_TokenAuth() if token else _CertificateAuth(),
        limits=Limits(max_connections=max_connections, max_in_flight=5000),
        retry=RETRY,
        timeout=TIMEOUT,
        random=lambda: 0.5,
        on_done=done.append,
        event_hook=None if events is None else events.append,
        hold_until_success=token,
    )
    if token:
        dispatcher.set_authorization(("bearer test-token", 1))
    return dispatcher


def _connect(dispatcher: Dispatcher, now: float) -> tuple[PooledConnection, Peer]:
    (conn,) = dispatcher.connections_to_open(now)
    dispatcher.connection_established(conn, now)
    peer = Peer()
    peer.parse(conn.core.data_to_send())
    # 1000 streams: the stream limit is never what makes these connections full.
    dispatcher.receive(conn, settings(MAX_CONCURRENT_STREAMS=1000), now)
    return conn, peer


def _sent(peer: Peer, conn: PooledConnection) -> tuple[int, int]:
    frames = peer.parse(conn.core.data_to_send())
    return (
        sum(isinstance(f, HeadersFrame) for f in frames),
        sum(isinstance(f, DataFrame) for f in frames),
    )


def _submit(dispatcher: Dispatcher, count: int) -> list[Ticket]:
    return [
        dispatcher.submit(
            apnskit.Notification(f"{i % 256:02x}" * 32, PAYLOAD, topic="com.example.app"), 0.0
        )
        for i in range(count)
    ]


def _answer_first(dispatcher: Dispatcher, conn: PooledConnection, peer: Peer, now: float) -> None:
    """The server answers the lowest open stream on ``conn`` with a 200."""
    stream_id = min(sid for sid, r in peer.requests.items() if r.ended or r.headers)
    peer.requests.pop(stream_id)
    dispatcher.receive(conn, peer.respond(stream_id, 200, apns_id="a" * 32), now)


def _proven_window_bound(
    dispatcher: Dispatcher, count: int
) -> tuple[list[Ticket], PooledConnection, Peer]:
    """``count`` tickets; one connection that answered once and waits on its window."""
    tickets = _submit(dispatcher, count)
    conn, peer = _connect(dispatcher, 0.0)
    _sent(peer, conn)
    _answer_first(dispatcher, conn, peer, 0.1)
    _sent(peer, conn)
    assert conn.answered
    assert conn.core.window_blocked  # no WINDOW_UPDATE yet: still full
    return tickets, conn, peer


def test_window_bound_connection_makes_the_pool_open_another() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(4, done)
    _submit(dispatcher, 800)  # below the stream limit, above one window of bodies
    conn1, peer1 = _connect(dispatcher, 0.0)
    headers1, _ = _sent(peer1, conn1)
    assert conn1.core.window_blocked
    # It took only what its window could carry (plus the one body that did not fit); the
    # rest waits for a second connection rather than queueing behind the window.
    assert headers1 == 65_535 // len(conn1.core._streams[1]._body) + 1
    assert dispatcher.connections_to_open(0.0) != []
    conn2 = dispatcher.connections[-1]
    dispatcher.connection_established(conn2, 0.0)
    peer2 = Peer()
    peer2.parse(conn2.core.data_to_send())
    dispatcher.receive(conn2, settings(MAX_CONCURRENT_STREAMS=1000), 0.0)
    headers2, _ = _sent(peer2, conn2)
    assert headers2 > 0
    assert conn2.core.window_blocked  # 800 bodies need three windows
    (conn3,) = dispatcher.connections_to_open(0.0)
    assert conn3 is dispatcher.connections[-1]
    assert len(dispatcher.connections) == 3


def test_pool_at_max_connections_queues_on_window_bound_connections() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(1, done)
    _submit(dispatcher, 800)
    conn, peer = _connect(dispatcher, 0.0)
    headers, _ = _sent(peer, conn)
    # No other connection may open: everything goes on this one and waits for its window.
    assert headers == 800
    assert conn.core.window_blocked
    assert dispatcher.connections_to_open(0.0) == []
    dispatcher.receive(conn, window_update(0, 1 << 20), 0.1)
    peer.parse(conn.core.data_to_send())
    assert not conn.core.window_blocked
    assert all(r.ended for r in peer.requests.values())


def test_connection_with_window_and_streams_left_is_not_full() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(4, done)
    _submit(dispatcher, 100)  # 20 KB of bodies: one window is plenty
    conn, peer = _connect(dispatcher, 0.0)
    headers, _ = _sent(peer, conn)
    assert headers == 100
    assert not conn.core.window_blocked
    _submit(dispatcher, 100)
    dispatcher.schedule(0.0)
    assert dispatcher.connections_to_open(0.0) == []
    assert len(dispatcher.connections) == 1


def test_proven_full_connection_makes_the_pool_open_what_the_backlog_needs_at_once() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(8, done)
    tickets, conn1, _ = _proven_window_bound(dispatcher, 800)
    carried = conn1.core.in_flight  # one window of bodies, per round trip
    backlog = sum(1 for t in tickets if t.sends == 0)
    needed = math.ceil(backlog / carried)
    assert needed == 2  # 800 bodies: a bit under three windows in all
    opened = dispatcher.connections_to_open(0.1)
    assert len(opened) == needed
    assert all(c.state == PooledConnection.CONNECTING for c in opened)
    # They will each carry a window: no more until they settle (SETTINGS) and prove full.
    assert dispatcher.connections_to_open(0.1) == []
    assert len(dispatcher.connections) == 3


def test_a_large_backlog_opens_up_to_max_connections_at_once_and_no_more() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(8, done)
    _proven_window_bound(dispatcher, 4000)  # about 12 windows waiting
    opened = dispatcher.connections_to_open(0.1)
    assert len(opened) == 7  # the first plus 7 is Limits.max_connections
    assert dispatcher.connections_to_open(0.1) == []
    assert len(dispatcher.connections) == 8


def test_one_connection_carrying_everything_opens_nothing_more() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(8, done)
    _submit(dispatcher, 300)  # 60 KB of bodies: within one window, below the stream limit
    conn, peer = _connect(dispatcher, 0.0)
    assert _sent(peer, conn)[0] == 300
    _answer_first(dispatcher, conn, peer, 0.1)  # proved
    _submit(dispatcher, 20)
    dispatcher.schedule(0.1)
    assert not conn.core.window_blocked
    assert dispatcher.connections_to_open(0.1) == []
    assert len(dispatcher.connections) == 1


def test_before_any_answer_connections_open_one_at_a_time() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(8, done)
    _submit(dispatcher, 4000)
    conn1, peer1 = _connect(dispatcher, 0.0)
    _sent(peer1, conn1)
    assert conn1.core.window_blocked
    assert not conn1.answered
    # Full, a big backlog, but nothing proved the server answers: one connect only.
    assert len(dispatcher.connections_to_open(0.0)) == 1
    assert dispatcher.connections_to_open(0.0) == []


def test_token_connection_held_at_one_stream_is_no_proof() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(8, done, token=True)
    _submit(dispatcher, 4000)
    conn1, peer1 = _connect(dispatcher, 0.0)
    assert _sent(peer1, conn1)[0] == 1  # APNs' one-stream hold for token auth
    assert dispatcher.connections_to_open(0.1) == []  # held, its first answer not yet due
    # An error answer (a rejected token) leaves it held: still one connect at a time.
    dispatcher.receive(
        conn1, peer1.respond(1, 403, body=b'{"reason": "InvalidProviderToken"}'), 0.2
    )
    assert _sent(peer1, conn1)[0] == 1
    assert conn1.answered
    assert conn1.core.max_concurrent_streams == 1
    assert len(dispatcher.connections_to_open(0.2)) == 1
    # A success lifts the hold: now it is proof, and the rest may open together.
    dispatcher.receive(conn1, peer1.respond(3, 200, apns_id="a" * 32), 0.3)
    _sent(peer1, conn1)
    assert conn1.core.window_blocked
    assert len(dispatcher.connections_to_open(0.3)) == 6  # one was already connecting


def test_parallel_connects_that_all_fail_cost_one_attempt_and_one_backoff_step() -> None:
    done: list[Ticket] = []
    events: list[apnskit.ClientEvent] = []
    dispatcher = _dispatcher(8, done, events)
    tickets, conn1, _ = _proven_window_bound(dispatcher, 4000)
    opened = dispatcher.connections_to_open(0.1)
    assert len(opened) == 7
    # The server goes away: the proven connection is lost, and every connect fails.
    dispatcher.connection_lost(conn1, apnskit.ConnectionLostError("reset"), 0.2)
    for conn in opened:
        dispatcher.connect_failed(conn, apnskit.ConnectError("refused"), 0.3)
    never_sent = [t for t in tickets if t.sends == 0]
    assert never_sent
    # Seven failures at once are one failed attempt for the waiting tickets, not seven (with
    # max_attempts=3 they would all have failed).
    assert {t.attempts for t in never_sent} == {1}
    assert not any(t.done for t in never_sent)
    # And one backoff step (RETRY: 1 s), not seven (64 s).
    failed = [e for e in events if isinstance(e, apnskit.ConnectionFailed)]
    assert [e.retry_in for e in failed] == [1.0] * 7
    assert dispatcher.connections_to_open(1.0) == []
    # After the backoff: one connect, nothing in parallel until a connection answers again.
    assert len(dispatcher.connections_to_open(1.3)) == 1
    assert dispatcher.connections_to_open(1.3) == []


def test_parallel_connections_dropped_unanswered_back_off_once() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(8, done)
    _proven_window_bound(dispatcher, 4000)
    opened = dispatcher.connections_to_open(0.1)
    assert len(opened) == 7
    # A server that accepts connections and drops them before any answer: a failed connect
    # each, but one attempt together (the backoff grows one step: 1 s, not 64 s).
    for conn in opened:
        dispatcher.connection_established(conn, 0.2)
    for conn in opened:
        dispatcher.connection_lost(conn, apnskit.ConnectionLostError("reset"), 0.3)
    assert dispatcher.next_wakeup(0.3) == 1.3
    assert dispatcher.connections_to_open(1.0) == []
    # And no parallel opening until a new connection answers.
    assert len(dispatcher.connections_to_open(1.3)) == 1


def test_a_sibling_that_connects_does_not_end_the_backoff_another_one_set() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(8, done)
    _proven_window_bound(dispatcher, 800)
    first, second = dispatcher.connections_to_open(0.1)
    dispatcher.connect_failed(first, apnskit.ConnectError("refused"), 0.2)
    dispatcher.connection_established(second, 0.25)
    assert dispatcher.next_wakeup(0.25) == 1.2
