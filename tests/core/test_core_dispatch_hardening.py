"""Issue 10, items 6 and 7: the dispatcher's side of a server that misbehaves.

The dispatcher is driven directly, with the real core and the scripted ``Peer``, and time is
passed in, so nothing here waits.
"""

from __future__ import annotations

from hyperframe.frame import HeadersFrame, PingFrame
from peer import Peer, goaway, ping, rst_stream, settings

import apnskit
from apnskit._config import Limits, RetryPolicy, Timeout
from apnskit._engine.dispatcher import Dispatcher
from apnskit._engine.pool import PooledConnection
from apnskit._engine.tickets import Ticket

TIMEOUT = Timeout(deadline=60.0, ping_interval=None, ping_timeout=2.0)
# Long backoffs: a resend that waited for one would not happen at the same ``now``.
SLOW_RETRY = RetryPolicy(max_attempts=3, backoff_base=5.0, backoff_max=30.0, jitter=0.0)


class _CertificateAuth:
    def authorization(self) -> tuple[str, int] | None:
        return None

    def token_rejected(self, generation: int) -> None:
        raise AssertionError("not used")


def _dispatcher(done: list[Ticket]) -> Dispatcher:
    return Dispatcher(
        authority="api.push.apple.com",
        credentials=_CertificateAuth(),
        limits=Limits(max_connections=2, max_in_flight=100),
        retry=SLOW_RETRY,
        timeout=TIMEOUT,
        random=lambda: 0.5,
        on_done=done.append,
    )


def _notification(i: int) -> apnskit.Notification:
    return apnskit.Notification(f"{i:02x}" * 32, {"aps": {"alert": "hi"}}, topic="com.example.app")


def _connect(dispatcher: Dispatcher, now: float) -> tuple[PooledConnection, Peer]:
    (conn,) = dispatcher.connections_to_open(now)
    dispatcher.connection_established(conn, now)
    peer = Peer()
    peer.parse(conn.core.data_to_send())
    return conn, peer


def _headers(peer: Peer, conn: PooledConnection) -> list[int]:
    return [
        f.stream_id for f in peer.parse(conn.core.data_to_send()) if isinstance(f, HeadersFrame)
    ]


def test_refused_stream_is_resent_at_once_without_backoff() -> None:
    # nginx with http2_body_preread_size 0 refuses a stream sent before its first SETTINGS.
    done: list[Ticket] = []
    dispatcher = _dispatcher(done)
    ticket = dispatcher.submit(_notification(1), now=0.0)
    conn, peer = _connect(dispatcher, 0.0)
    dispatcher.schedule(0.0)
    assert _headers(peer, conn) == [1]
    dispatcher.receive(conn, settings(MAX_CONCURRENT_STREAMS=10) + rst_stream(1, 7), now=0.1)
    # Sent again in the same turn, on the same connection (the old code waited >= 2.5 s).
    assert _headers(peer, conn) == [3]
    assert dispatcher.next_wakeup(0.1) is None or dispatcher.next_wakeup(0.1) > 0.1
    dispatcher.receive(conn, peer.respond(3, 200, apns_id="x"), now=0.2)
    assert done == [ticket]
    assert ticket.result is not None
    assert ticket.result.accepted
    assert ticket.result.attempts == 2


def test_refused_stream_forever_is_still_bounded_by_max_attempts() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(done)
    ticket = dispatcher.submit(_notification(1), now=0.0)
    conn, peer = _connect(dispatcher, 0.0)
    dispatcher.schedule(0.0)
    stream_ids = _headers(peer, conn)
    dispatcher.receive(conn, settings(), now=0.0)
    for turn in range(10):
        if done:
            break
        dispatcher.receive(conn, rst_stream(stream_ids[-1], 7), now=0.0)
        stream_ids += _headers(peer, conn)
        assert turn < SLOW_RETRY.max_attempts
    assert stream_ids == [1, 3, 5]
    assert ticket.result is not None
    assert isinstance(ticket.result.error, apnskit.ConnectionLostError)


def test_draining_connection_that_goes_silent_is_pinged_and_closed() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(done)
    tickets = [dispatcher.submit(_notification(i), now=0.0) for i in range(2)]
    conn, peer = _connect(dispatcher, 0.0)
    dispatcher.schedule(0.0)
    dispatcher.receive(conn, settings(MAX_CONCURRENT_STREAMS=10), now=0.0)
    assert _headers(peer, conn) == [1, 3]
    # GOAWAY: both streams are at or below last-stream-id, so their answers may still come...
    dispatcher.receive(conn, goaway(3), now=1.0)
    assert not done
    assert conn.core.open_streams == 2
    # ... but the server goes silent. A draining connection is checked like any other.
    wake = dispatcher.next_wakeup(1.0)
    assert wake is not None
    assert wake <= 1.0 + 2 * TIMEOUT.ping_timeout
    dispatcher.tick(wake)
    pings = [f for f in peer.parse(conn.core.data_to_send()) if isinstance(f, PingFrame)]
    assert len(pings) == 1
    assert conn.ping_deadline is not None  # waiting for the ack
    # No ack within the PING timeout: the connection is closed and its tickets handled
    # (resent, as these notifications are idempotent), long before the 60 s deadline.
    wake = dispatcher.next_wakeup(wake)
    assert wake is not None
    assert wake <= 1.0 + 3 * TIMEOUT.ping_timeout
    dispatcher.tick(wake)
    assert conn.state == PooledConnection.CLOSED
    assert all(t.conn is None and not t.done for t in tickets)
    later = wake + SLOW_RETRY.backoff_max
    dispatcher.tick(later)
    (fresh,) = dispatcher.connections_to_open(later)
    assert fresh is not conn


def test_draining_connection_that_answers_the_ping_keeps_its_streams() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(done)
    ticket = dispatcher.submit(_notification(1), now=0.0)
    conn, peer = _connect(dispatcher, 0.0)
    dispatcher.schedule(0.0)
    dispatcher.receive(conn, settings(MAX_CONCURRENT_STREAMS=10), now=0.0)
    assert _headers(peer, conn) == [1]
    dispatcher.receive(conn, goaway(1), now=1.0)
    wake = dispatcher.next_wakeup(1.0)
    assert wake is not None
    dispatcher.tick(wake)
    (sent,) = [f for f in peer.parse(conn.core.data_to_send()) if isinstance(f, PingFrame)]
    dispatcher.receive(conn, ping(sent.opaque_data, ack=True), now=wake + 0.1)
    assert conn.state == PooledConnection.READY
    dispatcher.receive(conn, peer.respond(1, 200), now=wake + 0.2)
    assert done == [ticket]
    assert ticket.result is not None
    assert ticket.result.accepted
    assert conn.state == PooledConnection.CLOSED  # drained


def test_checking_a_draining_connection_does_not_block_a_new_one() -> None:
    done: list[Ticket] = []
    dispatcher = _dispatcher(done)
    dispatcher.submit(_notification(1), now=0.0)
    conn, _ = _connect(dispatcher, 0.0)
    dispatcher.schedule(0.0)
    dispatcher.receive(conn, settings(MAX_CONCURRENT_STREAMS=10), now=0.0)
    conn.answered = True  # no reconnect backoff: this test is about the pool slot
    dispatcher.receive(conn, goaway(1), now=1.0)
    wake = dispatcher.next_wakeup(1.0)
    assert wake is not None
    dispatcher.tick(wake)
    assert conn.ping_deadline is not None  # PINGed, waiting for the ack
    dispatcher.submit(_notification(2), now=wake)
    assert len(dispatcher.connections_to_open(wake)) == 1


def test_submit_many_sets_each_waiter_before_a_ticket_can_end() -> None:
    # send_many() hands its whole batch in with one call (issue 13): a ticket that ends at
    # once must reach on_done with its waiter already set, or its caller never sees it.
    done: list[Ticket] = []
    dispatcher = _dispatcher(done)
    mailbox = object()
    items = [_notification(1), "not a notification", _notification(2)]
    open_tickets = dispatcher.submit_many(items, 0.0, mailbox)
    assert [t.item for t in open_tickets] == [items[0], items[2]]
    assert [t.item for t in done] == [items[1]]
    assert done[0].result is not None
    assert done[0].result.failed
    assert all(t.waiter is mailbox for t in [*open_tickets, *done])
    assert dispatcher.outstanding == 2
    conn, peer = _connect(dispatcher, 0.0)
    dispatcher.receive(conn, settings(MAX_CONCURRENT_STREAMS=10), now=0.0)
    assert _headers(peer, conn) == [1, 3]
    dispatcher.receive(conn, peer.respond(1, 200, apns_id="a") + peer.respond(3, 200), now=0.1)
    assert done[1:] == open_tickets
    assert all(t.result is not None and t.result.accepted for t in open_tickets)
    # Once closed, a batch still pulled from the caller ends at once, each with its waiter.
    dispatcher.close_all(apnskit.ClientClosedError("closed"))
    assert dispatcher.submit_many([_notification(3)], 1.0, mailbox) == []
    assert done[-1].waiter is mailbox
    assert isinstance(done[-1].result.error, apnskit.ClientClosedError)  # type: ignore[union-attr]
    assert dispatcher.outstanding == 0
