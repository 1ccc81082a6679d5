"""The pool opens connections while the open ones are full (issue 13).

Full means at the server's MAX_CONCURRENT_STREAMS or with request bodies waiting for the
server's connection flow-control window (RFC 9113 section 6.9): far from the server, one
connection carries at most one window of bodies per round trip. The dispatcher is driven
directly with the real core and the scripted ``Peer``; time is passed in, nothing waits.
"""

from __future__ import annotations

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


def _dispatcher(max_connections: int, done: list[Ticket]) -> Dispatcher:
    return Dispatcher(
        authority="api.push.apple.com",
        credentials=_CertificateAuth(),
        limits=Limits(max_connections=max_connections, max_in_flight=5000),
        retry=RetryPolicy(),
        timeout=TIMEOUT,
        random=lambda: 0.5,
        on_done=done.append,
    )


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


def _submit(dispatcher: Dispatcher, count: int) -> None:
    for i in range(count):
        dispatcher.submit(
            apnskit.Notification(f"{i % 256:02x}" * 32, PAYLOAD, topic="com.example.app"), 0.0
        )


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
