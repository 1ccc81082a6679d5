"""Every way the server can break HTTP/2 ends the connection with our GOAWAY and an event."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hyperframe.frame import GoAwayFrame
from peer import (
    CONTINUATION,
    DATA,
    ENABLE_PUSH,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE,
    PING,
    PRIORITY,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    Peer,
    raw_frame,
    raw_settings,
    send,
    settings,
    start,
)

from apnskit._core.connection import ApnsConnection, ErrorCode
from apnskit._core.events import ConnectionTerminated, ResponseReceived
from apnskit._core.hpack_codec import HeaderDecoder, HpackError, encode_integer
from apnskit._errors import RemoteProtocolError

P = ErrorCode.PROTOCOL_ERROR
F = ErrorCode.FRAME_SIZE_ERROR
C = ErrorCode.COMPRESSION_ERROR
FC = ErrorCode.FLOW_CONTROL_ERROR
END_HEADERS, END_STREAM, PADDED, PRIO = 0x4, 0x1, 0x8, 0x20
U32 = struct.Struct(">L").pack


def _status(block: bytes = b"") -> bytes:
    return b"\x88" + block  # :status 200 (static index 8)


def _headers(stream_id: int, block: bytes, flags: int = END_HEADERS) -> bytes:
    return raw_frame(HEADERS, flags, stream_id, block)


# Each case gets the server's Peer (for a valid HEADERS when needed) and returns bad bytes.
Case = Callable[[Peer], bytes]
CASES: dict[str, tuple[Case, int]] = {
    # frames on the wrong stream
    "data-stream-0": (lambda p: raw_frame(DATA, 1, 0, b"x"), P),
    "headers-stream-0": (lambda p: _headers(0, _status()), P),
    "headers-even-stream": (lambda p: _headers(2, _status()), P),
    "headers-idle-stream": (lambda p: _headers(9, _status()), P),
    "data-idle-stream": (lambda p: raw_frame(DATA, 1, 11, b"x"), P),
    "data-even-stream": (lambda p: raw_frame(DATA, 1, 4, b"x"), P),
    "rst-stream-0": (lambda p: raw_frame(RST_STREAM, 0, 0, U32(0)), P),
    "rst-idle-stream": (lambda p: raw_frame(RST_STREAM, 0, 101, U32(0)), P),
    "rst-even-stream": (lambda p: raw_frame(RST_STREAM, 0, 2, U32(0)), P),
    "window-update-idle-stream": (lambda p: raw_frame(WINDOW_UPDATE, 0, 99, U32(1)), P),
    "window-update-even-stream": (lambda p: raw_frame(WINDOW_UPDATE, 0, 2, U32(1)), P),
    "settings-on-stream": (lambda p: raw_frame(SETTINGS, 0, 1, b""), P),
    "ping-on-stream": (lambda p: raw_frame(PING, 0, 1, b"12345678"), P),
    "goaway-on-stream": (lambda p: raw_frame(GOAWAY, 0, 1, bytes(8)), P),
    "priority-stream-0": (lambda p: raw_frame(PRIORITY, 0, 0, bytes(5)), P),
    "push-promise": (lambda p: raw_frame(PUSH_PROMISE, END_HEADERS, 1, U32(2) + b"\x82"), P),
    # header block sequencing (section 6.10)
    "continuation-alone": (lambda p: raw_frame(CONTINUATION, END_HEADERS, 1, b"\x88"), P),
    "continuation-interleaved-data": (
        lambda p: _headers(1, b"\x88", 0) + raw_frame(DATA, 1, 1, b"x"),
        P,
    ),
    "continuation-other-stream": (
        lambda p: _headers(1, b"\x88", 0) + raw_frame(CONTINUATION, END_HEADERS, 3, b""),
        P,
    ),
    "continuation-interleaved-ping": (
        lambda p: _headers(1, b"\x88", 0) + raw_frame(PING, 0, 0, bytes(8)),
        P,
    ),
    # frame sizes
    "ping-size": (lambda p: raw_frame(PING, 0, 0, b"1234567"), F),
    "ping-ack-size": (lambda p: raw_frame(PING, 1, 0, b"123456789"), F),
    "window-update-size": (lambda p: raw_frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"), F),
    "rst-size": (lambda p: raw_frame(RST_STREAM, 0, 1, b"\x00\x00\x00\x00\x00"), F),
    "settings-size": (lambda p: raw_frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00"), F),
    "settings-ack-payload": (lambda p: raw_frame(SETTINGS, 1, 0, bytes(6)), F),
    "goaway-size": (lambda p: raw_frame(GOAWAY, 0, 0, bytes(7)), F),
    "oversize-frame": (lambda p: raw_frame(DATA, 0, 1, bytes(16_385)), F),
    "oversize-frame-header-only": (lambda p: raw_frame(DATA, 0, 1, bytes(16_385))[:9], F),
    "padded-data-empty": (lambda p: raw_frame(DATA, PADDED, 1, b""), F),
    "priority-headers-truncated": (lambda p: _headers(1, b"\x00\x00", END_HEADERS | PRIO), F),
    # padding
    "data-padding-too-long": (lambda p: raw_frame(DATA, PADDED | END_STREAM, 1, b"\x03ab"), P),
    "headers-padding-too-long": (
        lambda p: _headers(1, b"\x05\x88", END_HEADERS | PADDED),
        P,
    ),
    # window updates
    "window-increment-0-connection": (lambda p: raw_frame(WINDOW_UPDATE, 0, 0, U32(0)), P),
    "window-increment-0-stream": (lambda p: raw_frame(WINDOW_UPDATE, 0, 1, U32(0)), P),
    "window-overflow-connection": (lambda p: raw_frame(WINDOW_UPDATE, 0, 0, U32(2**31 - 1)), FC),
    "window-overflow-stream": (lambda p: raw_frame(WINDOW_UPDATE, 0, 1, U32(2**31 - 1)), FC),
    # settings values (section 6.5.2)
    "max-frame-size-small": (lambda p: raw_settings((MAX_FRAME_SIZE, 16_383)), P),
    "max-frame-size-large": (lambda p: raw_settings((MAX_FRAME_SIZE, 2**24)), P),
    "enable-push-2": (lambda p: raw_settings((ENABLE_PUSH, 2)), P),
    "enable-push-1-from-server": (lambda p: raw_settings((ENABLE_PUSH, 1)), P),
    "initial-window-too-big": (lambda p: raw_settings((INITIAL_WINDOW_SIZE, 2**31)), FC),
    # HPACK (RFC 7541; RFC 9113 section 4.3: COMPRESSION_ERROR)
    "hpack-index-0": (lambda p: _headers(1, b"\x80"), C),
    "hpack-index-missing": (lambda p: _headers(1, b"\x88\xc6"), C),  # index 70: empty table
    "hpack-literal-name-index-missing": (lambda p: _headers(1, b"\x88\x0f\x30\x01a"), C),
    "hpack-bad-huffman-eos": (lambda p: _headers(1, b"\x88\x00\x01a\x84\xff\xff\xff\xff"), C),
    "hpack-bad-huffman-padding-zeros": (lambda p: _headers(1, b"\x88\x00\x01a\x81\x00"), C),
    "hpack-bad-huffman-padding-long": (lambda p: _headers(1, b"\x88\x00\x01a\x81\xff"), C),
    "hpack-size-update-too-big": (lambda p: _headers(1, encode_integer(5000, 5, 0x20)), C),
    "hpack-size-update-in-middle": (lambda p: _headers(1, b"\x88\x20"), C),
    "hpack-string-past-end": (lambda p: _headers(1, b"\x88\x00\x05ab"), C),
    "hpack-truncated-integer": (lambda p: _headers(1, b"\x88\xff"), C),
    "hpack-truncated-literal": (lambda p: _headers(1, b"\x88\x00"), C),
    "hpack-integer-too-large": (lambda p: _headers(1, b"\xff\xff\xff\xff\xff\xff\x01"), C),
    "hpack-in-continuation": (
        lambda p: _headers(1, b"\x88", 0) + raw_frame(CONTINUATION, END_HEADERS, 1, b"\x80"),
        C,
    ),
    # HTTP semantics (section 8)
    "missing-status": (lambda p: p.headers(1, [("apns-id", "x")], end=True), P),
    "bad-status": (lambda p: p.headers(1, [(":status", "2000")], end=True), P),
    "non-numeric-status": (lambda p: p.headers(1, [(":status", "abc")], end=True), P),
    "status-with-letter": (lambda p: p.headers(1, [(":status", "20x")], end=True), P),
    "informational-ends-stream": (lambda p: p.headers(1, [(":status", "100")], end=True), P),
    "data-before-headers": (lambda p: raw_frame(DATA, END_STREAM, 1, b"{}"), P),
    "data-after-1xx": (
        lambda p: p.headers(1, [(":status", "100")]) + raw_frame(DATA, 1, 1, b"{}"),
        P,
    ),
    "trailers-without-end-stream": (
        lambda p: p.headers(1, [(":status", "200")]) + p.headers(1, [("x-t", "1")]),
        P,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_protocol_violation_terminates_connection(name: str) -> None:
    case, code = CASES[name]
    conn, peer, _ = start(server_settings=settings(MAX_CONCURRENT_STREAMS=2))
    send(conn, peer, 3)  # contexts 0 and 1 open (streams 1, 3), 2 queued
    events = conn.receive_data(case(peer), now=1.0)
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, ConnectionTerminated)
    assert isinstance(event.error, RemoteProtocolError)
    assert event.error.error_code == code, str(event.error)
    assert event.error_code == code
    assert not event.remote
    assert event.abandoned == [0, 1]
    assert event.unprocessed == [2]
    assert conn.finished
    assert not conn.accepting
    assert conn.in_flight == 0
    out = peer.parse(conn.data_to_send())
    assert len(out) == 1
    assert isinstance(out[0], GoAwayFrame)
    assert out[0].error_code == code
    assert out[0].last_stream_id == 0
    assert out[0].additional_data == str(event.error).encode()[:256]
    # Nothing more happens on a dead connection.
    assert conn.receive_data(raw_frame(PING, 0, 0, bytes(8))) == []
    assert conn.data_to_send() == b""


def test_events_before_the_violation_are_kept() -> None:
    conn, peer, _ = start()
    send(conn, peer, 3)
    blob = peer.respond(1, 200) + raw_frame(PING, 0, 0, b"short") + peer.respond(3, 200)
    events = conn.receive_data(blob)
    assert isinstance(events[0], ResponseReceived)
    assert events[0].context == 0
    assert isinstance(events[1], ConnectionTerminated)
    assert events[1].abandoned == [1, 2]
    assert len(events) == 2


def test_hpack_error_is_remote_protocol_error_with_compression_code() -> None:
    with pytest.raises(HpackError) as info:
        HeaderDecoder().decode(b"\xbe")
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.error_code == ErrorCode.COMPRESSION_ERROR
    assert "index 62" in str(info.value)


def test_violation_before_any_request() -> None:
    conn = ApnsConnection("api.push.apple.com")
    conn.initiate()
    conn.data_to_send()
    events = conn.receive_data(raw_frame(SETTINGS, 0, 0, b"\x00"))
    assert len(events) == 1
    assert isinstance(events[0], ConnectionTerminated)
    assert events[0].abandoned == events[0].unprocessed == []
