"""MAX_CONCURRENT_STREAMS and flow control (RFC 9113 sections 5.1.2, 5.2, 6.9)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hyperframe.frame import RstStreamFrame, WindowUpdateFrame
from peer import (
    AUTHORITY,
    INITIAL_WINDOW_SIZE,
    PATH,
    Peer,
    data,
    raw_settings,
    send,
    settings,
    start,
    window_update,
)

from apnskit._core.connection import ApnsConnection, ErrorCode
from apnskit._core.events import ConnectionTerminated, ResponseReceived, SettingsReceived
from apnskit._errors import RemoteProtocolError


def _started_streams(peer: Peer) -> list[int]:
    return sorted(peer.requests)


def test_one_stream_before_first_settings() -> None:
    conn = ApnsConnection(AUTHORITY)
    peer = Peer()
    conn.initiate()
    assert conn.max_concurrent_streams == 1
    assert conn.capacity == 1
    send(conn, peer, 5)
    assert _started_streams(peer) == [1]
    assert conn.open_streams == 1
    assert conn.queued == 4
    assert conn.in_flight == 5
    assert conn.capacity == 0
    conn.receive_data(settings(MAX_CONCURRENT_STREAMS=3))
    peer.parse(conn.data_to_send())
    assert _started_streams(peer) == [1, 3, 5]
    assert conn.queued == 2
    conn.receive_data(peer.respond(1) + peer.respond(3))
    peer.parse(conn.data_to_send())
    assert _started_streams(peer) == [1, 3, 5, 7, 9]
    assert conn.queued == 0


def test_peer_limit_is_never_exceeded() -> None:
    conn, peer, _ = start(server_settings=settings(MAX_CONCURRENT_STREAMS=4))
    send(conn, peer, 10)
    assert conn.open_streams == 4
    done = 0
    while peer.requests.keys() - set(range(1, 2 * done, 2)):
        sid = 2 * done + 1
        events = conn.receive_data(peer.respond(sid))
        assert [e.context for e in events] == [done]
        peer.parse(conn.data_to_send())
        done += 1
        assert conn.open_streams <= 4
    assert done == 10


def test_no_limit_in_settings_means_unlimited() -> None:
    conn, peer, events = start(server_settings=settings(INITIAL_WINDOW_SIZE=1 << 20))
    assert isinstance(events[0], SettingsReceived)
    assert events[0].max_concurrent_streams == 2**31 - 1
    send(conn, peer, 200)
    assert len(peer.requests) == 200
    assert conn.queued == 0
    # A later SETTINGS without the limit leaves it unlimited.
    conn.receive_data(settings(MAX_FRAME_SIZE=16_384))
    assert conn.max_concurrent_streams == 2**31 - 1


def test_hold_until_success_keeps_one_stream_until_2xx() -> None:
    conn, peer, events = start(ApnsConnection(AUTHORITY, hold_until_success=True))
    assert events[0].max_concurrent_streams == 1
    assert conn.max_concurrent_streams == 1
    send(conn, peer, 6)
    assert _started_streams(peer) == [1]
    # A rejection does not open the gate.
    conn.receive_data(peer.respond(1, 403, body=b'{"reason":"InvalidProviderToken"}'))
    peer.parse(conn.data_to_send())
    assert _started_streams(peer) == [1, 3]
    assert conn.max_concurrent_streams == 1
    events = conn.receive_data(peer.respond(3, 200))
    assert isinstance(events[0], ResponseReceived)
    assert conn.max_concurrent_streams == 1000
    peer.parse(conn.data_to_send())
    assert _started_streams(peer) == [1, 3, 5, 7, 9, 11]


def test_hold_until_success_respects_peer_limit_of_zero() -> None:
    conn, peer, _ = start(
        ApnsConnection(AUTHORITY, hold_until_success=True),
        server_settings=settings(MAX_CONCURRENT_STREAMS=0),
    )
    assert conn.max_concurrent_streams == 0
    assert conn.capacity == 0
    send(conn, peer, 2)
    assert peer.requests == {}
    conn.receive_data(settings(MAX_CONCURRENT_STREAMS=5))
    peer.parse(conn.data_to_send())
    assert _started_streams(peer) == [1]


def test_limit_lowered_mid_connection_applies_to_new_streams() -> None:
    conn, peer, _ = start(server_settings=settings(MAX_CONCURRENT_STREAMS=5))
    send(conn, peer, 5)
    events = conn.receive_data(settings(MAX_CONCURRENT_STREAMS=2))
    assert events[0].max_concurrent_streams == 2
    send(conn, peer, 3, context="late")
    # Open streams stay open; nothing new starts until fewer than 2 are open.
    assert len(peer.requests) == 5
    for sid in (1, 3, 5):
        conn.receive_data(peer.respond(sid))
        peer.parse(conn.data_to_send())
        assert len(peer.requests) == 5
    conn.receive_data(peer.respond(7))
    peer.parse(conn.data_to_send())
    assert _started_streams(peer) == [1, 3, 5, 7, 9, 11]
    assert conn.open_streams == 2
    # Raised again: the rest opens.
    conn.receive_data(settings(MAX_CONCURRENT_STREAMS=10))
    peer.parse(conn.data_to_send())
    assert _started_streams(peer) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert conn.queued == 0


# ------------------------------------------------------------------- sending flow control


def test_body_larger_than_stream_window_stalls_and_resumes() -> None:
    conn, peer, _ = start(
        server_settings=settings(MAX_CONCURRENT_STREAMS=10, INITIAL_WINDOW_SIZE=1000)
    )
    body = bytes(range(256)) * 10  # 2560 bytes
    (handle,) = send(conn, peer, body=body)
    request = peer.requests[handle.stream_id]
    assert [len(f.data) for f in request.data_frames] == [1000]
    assert not request.ended
    assert conn.send_window == 65_535 - 1000
    # A connection-level update alone does not help a stream-blocked body.
    conn.receive_data(window_update(0, 5000))
    assert conn.data_to_send() == b""
    conn.receive_data(window_update(1, 1000))
    peer.parse(conn.data_to_send())
    assert [len(f.data) for f in request.data_frames] == [1000, 1000]
    conn.receive_data(window_update(1, 10_000))
    peer.parse(conn.data_to_send())
    assert [len(f.data) for f in request.data_frames] == [1000, 1000, 560]
    assert request.ended
    assert request.body == body
    assert [f.flags for f in request.data_frames] == [set(), set(), {"END_STREAM"}]


def test_body_larger_than_connection_window_stalls_and_resumes() -> None:
    conn, peer, _ = start(
        server_settings=settings(MAX_CONCURRENT_STREAMS=10, INITIAL_WINDOW_SIZE=1 << 20)
    )
    bodies = [bytes([i]) * 40_000 for i in range(3)]
    for i, body in enumerate(bodies):
        conn.send_request(PATH, (), body, i)
    peer.parse(conn.data_to_send())
    assert conn.send_window == 0
    sent = {sid: len(r.body) for sid, r in peer.requests.items()}
    assert sent == {1: 40_000, 3: 25_535, 5: 0}
    # Stream-level credit alone does not help: the connection window is empty.
    conn.receive_data(window_update(5, 100))
    assert conn.data_to_send() == b""
    conn.receive_data(window_update(0, 20_000))
    peer.parse(conn.data_to_send())
    assert {sid: len(r.body) for sid, r in peer.requests.items()} == {
        1: 40_000,
        3: 40_000,
        5: 5_535,
    }
    conn.receive_data(window_update(0, 1_000_000))
    peer.parse(conn.data_to_send())
    assert [peer.requests[s].body for s in (1, 3, 5)] == bodies
    assert all(peer.requests[s].ended for s in (1, 3, 5))
    assert conn.send_window == 1_000_000 + 20_000 - 54_465 - 100 + 100


def test_data_split_at_peer_max_frame_size() -> None:
    conn, peer, _ = start(
        server_settings=settings(
            MAX_CONCURRENT_STREAMS=10, MAX_FRAME_SIZE=20_000, INITIAL_WINDOW_SIZE=1 << 20
        )
    )
    conn.receive_data(window_update(0, 1 << 20))
    body = b"z" * 50_000
    send(conn, peer, body=body)
    frames = peer.requests[1].data_frames
    assert [len(f.data) for f in frames] == [20_000, 20_000, 10_000]
    assert peer.requests[1].body == body


def test_default_max_frame_size_splits_data() -> None:
    conn, peer, _ = start()
    send(conn, peer, body=b"q" * 40_000)
    assert [len(f.data) for f in peer.requests[1].data_frames] == [16_384, 16_384, 7_232]


def test_initial_window_size_change_adjusts_open_streams_including_negative() -> None:
    conn, peer, _ = start()
    body = b"w" * 60_000
    send(conn, peer, body=body)
    assert len(peer.requests[1].body) == 60_000
    (handle,) = send(conn, peer, body=body, context="second")
    # The connection window has 5,535 left; stream 3 sent that much.
    assert len(peer.requests[3].body) == 5_535
    conn.receive_data(window_update(0, 1_000_000))
    peer.parse(conn.data_to_send())
    assert peer.requests[3].body == body
    # A third request, bigger than its stream window of 65,535: it stalls.
    big = b"b" * 100_000
    send(conn, peer, body=big, context="third")
    assert len(peer.requests[5].body) == 65_535
    # Lowering INITIAL_WINDOW_SIZE by 40,000 makes stream 5's window negative (section 6.9.2).
    conn.receive_data(settings(INITIAL_WINDOW_SIZE=65_535 - 40_000))
    conn.receive_data(window_update(5, 30_000))
    assert conn.data_to_send().count(b"b") == 0  # still -10,000: nothing may be sent
    conn.receive_data(window_update(5, 10_000 + 500))
    peer.parse(conn.data_to_send())
    assert len(peer.requests[5].body) == 65_535 + 500
    # Raising it gives every open stream the difference.
    conn.receive_data(settings(INITIAL_WINDOW_SIZE=65_535 + 1_000_000))
    peer.parse(conn.data_to_send())
    assert peer.requests[5].body == big
    assert handle.stream_id == 3


def test_initial_window_change_applies_to_streams_opened_later() -> None:
    conn, peer, _ = start()
    conn.receive_data(window_update(0, 1 << 20))
    conn.receive_data(settings(INITIAL_WINDOW_SIZE=100))
    send(conn, peer, body=b"a" * 300)
    assert len(peer.requests[1].body) == 100


def test_cancelled_blocked_request_sends_no_more_data() -> None:
    conn, peer, _ = start(server_settings=settings(INITIAL_WINDOW_SIZE=10))
    (handle,) = send(conn, peer, body=b"c" * 100)
    conn.cancel(handle)
    frames = peer.parse(conn.data_to_send())
    assert len(frames) == 1
    assert isinstance(frames[0], RstStreamFrame)
    assert frames[0].error_code == ErrorCode.CANCEL
    conn.receive_data(window_update(1, 1000))
    assert conn.data_to_send() == b""


def test_response_before_body_finished_stops_sending() -> None:
    conn, peer, _ = start(server_settings=settings(INITIAL_WINDOW_SIZE=10))
    (handle,) = send(conn, peer, body=b"c" * 100)
    events = conn.receive_data(peer.respond(1, 413, body=b'{"reason":"PayloadTooLarge"}'))
    assert events[0].reason == "PayloadTooLarge"
    # Section 8.1: the unsent rest of the body is abandoned with RST_STREAM(NO_ERROR)
    # (test_core_hardening.py covers the stream count this keeps right).
    frames = peer.parse(conn.data_to_send())
    assert [(type(f), f.error_code) for f in frames if isinstance(f, RstStreamFrame)] == [
        (RstStreamFrame, ErrorCode.NO_ERROR)
    ]
    conn.receive_data(window_update(1, 1000))
    assert conn.data_to_send() == b""
    assert handle.done


def test_window_update_for_closed_stream_is_ignored() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    conn.receive_data(peer.respond(1))
    assert conn.receive_data(window_update(1, 100)) == []
    assert not conn.finished


# ------------------------------------------------------------------- receiving flow control


def test_connection_receive_window_is_replenished() -> None:
    conn, peer, _ = start()
    count = 0
    chunk = b"x" * 16_000
    updates: list[WindowUpdateFrame] = []
    total = 0
    while total < (1 << 24) + 700_000:
        (handle,) = send(conn, peer, context=count)
        sid = handle.stream_id
        blob = peer.headers(sid, [(":status", "400")])
        blob += b"".join(data(sid, chunk, end=False) for _ in range(20)) + data(sid, b"")
        total += 20 * len(chunk)
        events = conn.receive_data(blob)
        assert len(events) == 1
        assert len(events[0].body) == 320_000
        frames = peer.parse(conn.data_to_send())
        updates.extend(f for f in frames if isinstance(f, WindowUpdateFrame))
        count += 1
    connection_updates = [u for u in updates if u.stream_id == 0]
    # One update per half window (8 MiB) consumed, each giving back exactly what was used
    # (a stream's bytes are given back when it ends, so 16 MiB plus two bodies are needed).
    assert len(connection_updates) == 2
    assert all(u.window_increment >= 1 << 23 for u in connection_updates)
    assert sum(u.window_increment for u in connection_updates) <= total
    assert not conn.finished


def test_window_update_overflowing_connection_window_is_flow_control_error() -> None:
    conn, peer, _ = start()
    send(conn, peer, 2)
    events = conn.receive_data(window_update(0, 2**31 - 65_535 + 1000))
    _assert_terminated(conn, peer, events, ErrorCode.FLOW_CONTROL_ERROR, abandoned=[0, 1])


def test_window_update_overflowing_stream_window_is_flow_control_error() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    events = conn.receive_data(window_update(1, 2**31 - 1))
    _assert_terminated(conn, peer, events, ErrorCode.FLOW_CONTROL_ERROR, abandoned=[0])


def test_initial_window_change_overflowing_a_stream_is_flow_control_error() -> None:
    conn, peer, _ = start()
    send(conn, peer, body=b"")
    conn.receive_data(window_update(1, 2**31 - 1 - 65_535))
    events = conn.receive_data(settings(INITIAL_WINDOW_SIZE=65_536))
    _assert_terminated(conn, peer, events, ErrorCode.FLOW_CONTROL_ERROR, abandoned=[0])


def test_initial_window_size_above_maximum_is_flow_control_error() -> None:
    conn, peer, _ = start()
    events = conn.receive_data(raw_settings((INITIAL_WINDOW_SIZE, 2**31)))
    _assert_terminated(conn, peer, events, ErrorCode.FLOW_CONTROL_ERROR, abandoned=[])


def _assert_terminated(
    conn: ApnsConnection,
    peer: Peer,
    events: list[object],
    code: int,
    *,
    abandoned: list[object],
) -> None:
    last = events[-1]
    assert isinstance(last, ConnectionTerminated)
    assert isinstance(last.error, RemoteProtocolError)
    assert last.error_code == code == last.error.error_code
    assert last.abandoned == abandoned
    assert not last.remote
    goaways = [f for f in peer.parse(conn.data_to_send()) if f.type == 0x7]
    assert len(goaways) == 1
    assert goaways[0].error_code == code
    assert conn.finished


def test_cancelled_request_blocked_on_connection_window_is_skipped() -> None:
    conn, peer, _ = start()
    first, second = send(conn, peer, 2, body=b"d" * 40_000)
    assert len(peer.requests[3].body) == 65_535 - 40_000
    conn.cancel(second)
    peer.parse(conn.data_to_send())
    conn.receive_data(window_update(0, 100_000))
    assert conn.data_to_send() == b""
    assert conn.send_window == 100_000
    assert first.stream_id == 1


# ------------------------------------------------------------------- body queue (issue 13)


def _count_body_offers(conn: ApnsConnection, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the stream id of every body offered to flow control."""
    offers: list[int] = []
    write_body = conn._write_body

    def counting(handle: Any) -> bool:
        offers.append(handle.stream_id)
        return write_body(handle)

    monkeypatch.setattr(conn, "_write_body", counting)
    return offers


@pytest.mark.pure_python  # counts calls of a method: not possible on the compiled build
def test_window_bound_bodies_are_offered_once_per_window_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 1,000 requests of 200 bytes against the default 65,535-byte connection window: most
    # bodies wait. Each WINDOW_UPDATE must offer the waiting bodies in order and stop at the
    # first that does not fit: the bodies it sends plus at most one, never every waiting one.
    conn, peer, _ = start()
    offers = _count_body_offers(conn, monkeypatch)
    body = b"x" * 200
    send(conn, peer, 1000, body=body)
    fitted = 65_535 // 200  # 327 whole bodies, then one partly
    assert len(offers) == fitted + 1  # bodies opened behind a full window are not offered
    rnd = random.Random(13)
    updates = 0
    while not all(r.ended for r in peer.requests.values()):
        before_offers = len(offers)
        before_done = sum(r.ended for r in peer.requests.values())
        conn.receive_data(window_update(0, rnd.randrange(50, 3000)))
        peer.parse(conn.data_to_send())
        completed = sum(r.ended for r in peer.requests.values()) - before_done
        assert len(offers) - before_offers <= completed + 1
        updates += 1
        assert updates < 10_000
    assert all(r.body == body for r in peer.requests.values())
    # Every body offered about once: on opening, or once per update that reached it.
    assert len(offers) <= 1000 + updates


@pytest.mark.pure_python  # counts calls of a method: not possible on the compiled build
def test_body_waiting_on_its_stream_window_does_not_hold_up_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stream windows of 100 bytes: the first body (300 bytes) waits for its stream's update,
    # the later ones (50 bytes) still go out as the connection window allows.
    conn, peer, _ = start(
        server_settings=settings(MAX_CONCURRENT_STREAMS=10, INITIAL_WINDOW_SIZE=100)
    )
    (big,) = send(conn, peer, body=b"b" * 300, context="big")
    smalls = send(conn, peer, 3, body=b"s" * 50)
    assert all(peer.requests[h.stream_id].ended for h in smalls)
    offers = _count_body_offers(conn, monkeypatch)
    conn.receive_data(window_update(0, 10_000))  # connection credit: nothing waits on it
    assert offers == []
    conn.receive_data(window_update(big.stream_id, 500))
    peer.parse(conn.data_to_send())
    assert offers == [big.stream_id]
    assert peer.requests[big.stream_id].body == b"b" * 300
