"""Responses, RST_STREAM, GOAWAY, cancel, close and connection loss."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hyperframe.frame import GoAwayFrame, RstStreamFrame
from peer import (
    AUTHORITY,
    PATH,
    Peer,
    data,
    goaway,
    raw_frame,
    rst_stream,
    send,
    settings,
    start,
)

from apnskit._core.connection import ApnsConnection, ErrorCode
from apnskit._core.events import (
    ConnectionTerminated,
    Event,
    ResponseReceived,
    StreamReset,
    new_response,
)
from apnskit._errors import LocalProtocolError

APNS_ID = "123e4567-e89b-12d3-a456-426614174000"


def _one(events: list[object]) -> ResponseReceived:
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ResponseReceived)
    return event


def test_success_response_fields() -> None:
    conn, peer, _ = start()
    send(conn, peer, context="ctx")
    extra = (("apns-unique-id", "u-1"), ("x-other", "v"))
    event = _one(conn.receive_data(peer.respond(1, 200, apns_id=APNS_ID, extra=extra)))
    assert event.stream_id == 1
    assert event.context == "ctx"
    assert event.status == 200
    assert event.apns_id == APNS_ID
    assert event.apns_unique_id == "u-1"
    assert event.reason is None
    assert event.timestamp_ms is None
    assert event.body == b""
    assert event.headers == [(":status", "200"), ("apns-id", APNS_ID), *extra]
    assert conn.open_streams == 0


def test_410_with_timestamp_and_body_split_over_frames() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    body = json.dumps({"reason": "Unregistered", "timestamp": 1_700_000_000_123}).encode()
    blob = peer.headers(1, [(":status", "410"), ("apns-id", APNS_ID)], huffman=False)
    blob += b"".join(data(1, body[i : i + 5], end=False) for i in range(0, len(body), 5))
    blob += data(1, b"")
    events = []
    for i in range(0, len(blob), 7):  # and every frame cut across reads
        events.extend(conn.receive_data(blob[i : i + 7]))
    event = _one(events)
    assert event.status == 410
    assert event.reason == "Unregistered"
    assert event.timestamp_ms == 1_700_000_000_123
    assert event.body == body


def test_padded_headers_and_data_and_priority_flag() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    blob = peer.headers(1, [(":status", "400")], pad=20, priority=True)
    blob += data(1, b'{"reason":', end=False, pad=7) + data(1, b'"BadTopic"}', pad=0)
    event = _one(conn.receive_data(blob))
    assert event.reason == "BadTopic"
    assert event.body == b'{"reason":"BadTopic"}'


def test_interim_1xx_then_final_response() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    assert conn.receive_data(peer.headers(1, [(":status", "100")])) == []
    assert conn.receive_data(peer.headers(1, [(":status", "103"), ("link", "x")])) == []
    event = _one(conn.receive_data(peer.respond(1, 200, apns_id=APNS_ID)))
    assert event.status == 200
    assert event.headers == [(":status", "200"), ("apns-id", APNS_ID)]


def test_trailers_are_appended_to_headers() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    blob = peer.headers(1, [(":status", "500")]) + data(
        1, b'{"reason":"InternalServerError"}', end=False
    )
    assert conn.receive_data(blob) == []
    event = _one(conn.receive_data(peer.headers(1, [("x-trailer", "t")], end=True)))
    assert event.reason == "InternalServerError"
    assert event.headers == [(":status", "500"), ("x-trailer", "t")]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"Shutdown"',
        b"42",
        b'{"reason": 5, "timestamp": "x"}',
        b'{"timestamp": true}',
        b"{}",
    ],
)
def test_odd_bodies_give_no_reason_and_no_crash(body: bytes) -> None:
    conn, peer, _ = start()
    send(conn, peer)
    event = _one(conn.receive_data(peer.respond(1, 400, body=body)))
    assert event.reason is None
    assert event.timestamp_ms is None
    assert event.body == body
    assert event.status == 400


def test_unknown_reason_string_is_kept() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    event = _one(conn.receive_data(peer.respond(1, 400, body=b'{"reason":"BrandNewReason2031"}')))
    assert event.reason == "BrandNewReason2031"


def test_many_responses_in_one_read_in_any_order() -> None:
    conn, peer, _ = start()
    send(conn, peer, 1, context="a")
    send(conn, peer, 1, context="b")
    send(conn, peer, 1, context="c")
    blob = peer.respond(5, 200) + peer.respond(1, 429, body=b'{"reason":"TooManyRequests"}')
    blob += peer.respond(3, 200)
    events = conn.receive_data(blob)
    assert [(e.context, e.status) for e in events] == [("c", 200), ("a", 429), ("b", 200)]


# ------------------------------------------------------------------- RST_STREAM


def test_refused_stream_is_retry_safe() -> None:
    conn, peer, _ = start()
    send(conn, peer, context="r")
    events = conn.receive_data(rst_stream(1, ErrorCode.REFUSED_STREAM))
    assert events == [StreamReset(stream_id=1, context="r", error_code=7, retry_safe=True)]
    assert conn.open_streams == 0


@pytest.mark.parametrize(
    "code", [ErrorCode.NO_ERROR, ErrorCode.CANCEL, ErrorCode.INTERNAL_ERROR, 0xDEAD]
)
def test_other_reset_codes_are_not_retry_safe(code: int) -> None:
    conn, peer, _ = start()
    send(conn, peer, context="r")
    events = conn.receive_data(peer.headers(1, [(":status", "200")]) + rst_stream(1, code))
    assert events == [StreamReset(stream_id=1, context="r", error_code=code, retry_safe=False)]


def test_reset_after_complete_response_is_ignored() -> None:
    conn, peer, _ = start()
    send(conn, peer, context="ok")
    # nginx answers, then resets with NO_ERROR (RFC 9113 section 8.1).
    events = conn.receive_data(peer.respond(1, 200, apns_id=APNS_ID) + rst_stream(1, 0))
    event = _one(events)
    assert event.context == "ok"
    assert not conn.finished
    assert conn.data_to_send() == b""


def test_reset_frees_a_stream_for_queued_requests() -> None:
    conn, peer, _ = start(server_settings=settings(MAX_CONCURRENT_STREAMS=1))
    send(conn, peer, 1, context="a")
    send(conn, peer, 1, context="b")
    assert sorted(peer.requests) == [1]
    conn.receive_data(rst_stream(1, ErrorCode.REFUSED_STREAM))
    peer.parse(conn.data_to_send())
    assert sorted(peer.requests) == [1, 3]


# ------------------------------------------------------------------- GOAWAY


def _goaway_event(events: list[object]) -> ConnectionTerminated:
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ConnectionTerminated)
    return event


def test_goaway_splits_in_flight_at_last_stream_id() -> None:
    conn, peer, _ = start(server_settings=settings(MAX_CONCURRENT_STREAMS=4))
    send(conn, peer, 6)  # streams 1,3,5,7 open; contexts 4 and 5 queued
    assert conn.queued == 2
    event = _goaway_event(conn.receive_data(goaway(3, 0, b'{"reason":"Shutdown"}')))
    assert event.remote
    assert event.error is None
    assert event.error_code == 0
    assert event.last_stream_id == 3
    assert event.reason == "Shutdown"
    assert event.debug_data == b'{"reason":"Shutdown"}'
    assert event.unprocessed == [2, 3, 4, 5]
    assert event.abandoned == []
    assert conn.open_streams == 2
    assert conn.queued == 0
    assert not conn.accepting
    assert conn.capacity == 0
    assert not conn.finished
    with pytest.raises(LocalProtocolError, match="closing"):
        conn.send_request(PATH, (), b"{}", "late")
    # Streams at or below the id still complete.
    assert _one(conn.receive_data(peer.respond(3, 200))).context == 1
    # Frames for the unprocessed streams are ignored.
    assert conn.receive_data(peer.respond(5, 200) + rst_stream(7, 0)) == []
    assert not conn.finished
    assert _one(conn.receive_data(peer.respond(1, 400, body=b'{"reason":"BadTopic"}'))).context == 0
    assert conn.finished
    assert peer.parse(conn.data_to_send()) == []  # no new streams opened after GOAWAY


def test_goaway_non_json_debug_data_and_error_code() -> None:
    conn, peer, _ = start()
    send(conn, peer, 2)
    event = _goaway_event(conn.receive_data(goaway(0, ErrorCode.ENHANCE_YOUR_CALM, b"calm down")))
    assert event.reason is None
    assert event.debug_data == b"calm down"
    assert event.error_code == ErrorCode.ENHANCE_YOUR_CALM
    assert event.unprocessed == [0, 1]
    assert conn.finished


def test_goaway_without_debug_data_and_reserved_bit() -> None:
    conn, peer, _ = start()
    send(conn, peer, 2)
    payload = (0x80000000 | 1).to_bytes(4, "big") + (0).to_bytes(4, "big")
    event = _goaway_event(conn.receive_data(raw_frame(7, 0, 0, payload)))
    assert event.last_stream_id == 1
    assert event.reason is None
    assert event.unprocessed == [1]


def test_second_goaway_lowers_last_stream_id_never_raises() -> None:
    conn, peer, _ = start()
    send(conn, peer, 4)
    first = _goaway_event(conn.receive_data(goaway(2**31 - 1)))
    assert first.unprocessed == []
    second = _goaway_event(conn.receive_data(goaway(3, 0, b'{"reason":"IdleTimeout"}')))
    assert second.last_stream_id == 3
    assert second.unprocessed == [2, 3]
    assert second.reason == "IdleTimeout"
    third = _goaway_event(conn.receive_data(goaway(7)))
    assert third.last_stream_id == 3
    assert third.unprocessed == []
    assert conn.open_streams == 2


def test_goaway_then_connection_lost_abandons_the_rest() -> None:
    conn, peer, _ = start()
    send(conn, peer, 3)
    conn.receive_data(goaway(3))
    lost = conn.connection_lost()
    assert lost.abandoned == [0, 1]
    assert lost.unprocessed == []
    assert lost.last_stream_id == 3
    assert lost.remote
    assert conn.finished


# ------------------------------------------------------------------- cancel, close, lost


def test_cancel_queued_request() -> None:
    conn, peer, _ = start(server_settings=settings(MAX_CONCURRENT_STREAMS=1))
    first, second, third = (
        send(conn, peer, 1, context="a")
        + send(conn, peer, 1, context="b")
        + send(conn, peer, 1, context="c")
    )
    assert second.stream_id == 0
    conn.cancel(second)
    assert second.done
    assert conn.queued == 1
    assert conn.data_to_send() == b""
    conn.cancel(second)  # twice is harmless
    events = conn.receive_data(peer.respond(1))
    assert [e.context for e in events] == ["a"]
    peer.parse(conn.data_to_send())
    assert sorted(peer.requests) == [1, 3]
    assert third.stream_id == 3
    assert first.done


def test_cancel_open_request_sends_rst_and_ignores_late_response() -> None:
    conn, peer, _ = start(server_settings=settings(MAX_CONCURRENT_STREAMS=1))
    (first,) = send(conn, peer, 1, context="a")
    send(conn, peer, 1, context="b")
    conn.cancel(first)
    frames = peer.parse(conn.data_to_send())
    assert isinstance(frames[0], RstStreamFrame)
    assert frames[0].stream_id == 1
    assert frames[0].error_code == ErrorCode.CANCEL
    assert sorted(peer.requests) == [1, 3]  # the freed slot went to the queued request
    # The late response is decoded (HPACK stays in step) and dropped.
    late = peer.headers(1, [(":status", "200"), ("apns-id", APNS_ID)]) + data(1, b"xx")
    assert conn.receive_data(late) == []
    assert conn.receive_data(rst_stream(1, 0)) == []
    event = _one(conn.receive_data(peer.respond(3, 200, apns_id=APNS_ID)))
    assert event.context == "b"
    assert event.apns_id == APNS_ID


def test_cancel_after_completion_or_termination_writes_nothing() -> None:
    conn, peer, _ = start()
    (handle,) = send(conn, peer)
    conn.receive_data(peer.respond(1))
    conn.cancel(handle)
    assert conn.data_to_send() == b""
    (other,) = send(conn, peer)
    conn.connection_lost()
    conn.cancel(other)
    assert conn.data_to_send() == b""


def test_connection_lost_lists_abandoned_and_unprocessed() -> None:
    conn, peer, _ = start(server_settings=settings(MAX_CONCURRENT_STREAMS=2))
    send(conn, peer, 5)
    conn.receive_data(peer.respond(1))
    peer.parse(conn.data_to_send())
    event = conn.connection_lost()
    assert event.abandoned == [1, 2]
    assert event.unprocessed == [3, 4]
    assert event.remote
    assert event.error is None
    assert event.last_stream_id is None
    assert conn.finished
    assert conn.in_flight == 0
    assert conn.data_to_send() == b""
    with pytest.raises(LocalProtocolError):
        conn.send_request(PATH, (), b"", None)


def test_close_lists_requests_and_writes_goaway() -> None:
    conn, peer, _ = start(server_settings=settings(MAX_CONCURRENT_STREAMS=1))
    send(conn, peer, 3)
    event = conn.close()
    assert event.abandoned == [0]
    assert event.unprocessed == [1, 2]
    assert not event.remote
    frames = peer.parse(conn.data_to_send())
    assert len(frames) == 1
    assert isinstance(frames[0], GoAwayFrame)


def test_stream_ids_run_out() -> None:
    conn, peer, _ = start()
    conn._next_stream_id = 2**31 - 1  # white-box: skip two billion requests
    assert conn.capacity == 1
    send(conn, peer, 1)
    assert sorted(peer.requests) == [2**31 - 1]
    assert not conn.accepting
    assert conn.capacity == 0
    with pytest.raises(LocalProtocolError, match="stream ids"):
        conn.send_request("/3/device/00", (), b"{}", "late")
    assert conn.queued == 0
    assert _one(conn.receive_data(peer.respond(2**31 - 1))).context == 0


def test_peer_helper_round_trip() -> None:
    conn = ApnsConnection(AUTHORITY)
    peer = Peer()
    conn.initiate()
    out = conn.data_to_send()
    assert peer.parse(out[:10]) == []
    assert len(peer.parse(out[10:])) == 2


def test_response_header_block_over_several_continuations() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    block = peer.encoder.encode([(":status", "200"), ("apns-id", APNS_ID), ("x-pad", "p" * 50)])
    thirds = [block[:10], block[10:30], block[30:]]
    blob = raw_frame(1, 0x1, 1, thirds[0])  # HEADERS, END_STREAM, no END_HEADERS
    blob += raw_frame(9, 0, 1, thirds[1]) + raw_frame(9, 0x4, 1, thirds[2])
    assert conn.receive_data(blob[:-5]) == []
    event = _one(conn.receive_data(blob[-5:]))
    assert event.apns_id == APNS_ID
    assert event.headers[-1] == ("x-pad", "p" * 50)


# -- new_response: the core's fast constructor (issue 13) ------------------------------------


def _response_fields() -> dict[str, object]:
    return {
        "stream_id": 7,
        "context": object(),
        "status": 410,
        "apns_id": APNS_ID,
        "apns_unique_id": "u-1",
        "reason": "Unregistered",
        "timestamp_ms": 1_700_000_000_000,
        "headers": [(":status", "410"), ("apns-id", APNS_ID)],
        "body": b'{"reason":"Unregistered","timestamp":1700000000000}',
        "detail": None,
    }


def test_new_response_is_the_same_event_as_the_constructor() -> None:
    fields = _response_fields()
    fast = new_response(**fields)  # type: ignore[arg-type]
    slow = ResponseReceived(**fields)  # type: ignore[arg-type]
    assert type(fast) is ResponseReceived
    assert isinstance(fast, Event)
    assert fast == slow
    assert repr(fast) == repr(slow)
    for name in (f.name for f in dataclasses.fields(ResponseReceived)):
        assert getattr(fast, name) == fields[name], name
    # Stored as given, not copied (the compiled build unboxes the ints, so no `is` for those).
    assert fast.headers is fields["headers"]
    assert fast.context is fields["context"]


def test_new_response_is_frozen_like_the_constructors_event() -> None:
    fast = new_response(**_response_fields())  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.status = 200  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del fast.reason  # type: ignore[misc]
    changed = dataclasses.replace(fast, status=200)
    assert type(changed) is ResponseReceived
    assert changed.status == 200
    assert changed.apns_id == fast.apns_id
