"""Issue 10: no server, however broken or hostile, can crash, hang or bloat the core.

One section per numbered item of the issue; each test failed on the code before the fix.
The rule they share: ``receive_data`` raises nothing, a violation ends the connection with
our GOAWAY and the right code, and every request ends in exactly one outcome.
"""

from __future__ import annotations

import struct
from typing import Any

import hpack
import pytest
from hyperframe.frame import GoAwayFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame
from peer import (
    CONTINUATION,
    DATA,
    HEADERS,
    PING,
    PRIORITY,
    SETTINGS,
    Peer,
    data,
    goaway,
    ping,
    raw_frame,
    send,
    settings,
    start,
    window_update,
)

from apnskit._core.connection import ApnsConnection, ErrorCode
from apnskit._core.events import ConnectionTerminated, Event, ResponseReceived
from apnskit._errors import RemoteProtocolError

END_STREAM, END_HEADERS = 0x1, 0x4


def _terminated(
    conn: ApnsConnection, peer: Peer, events: list[Event], code: int, seen: list[Any] = ()
) -> ConnectionTerminated:
    """The last event ends the connection for ``code``, and our GOAWAY says so.

    ``seen``: frames of ours the test already parsed (the GOAWAY may be among them).
    """
    event = events[-1]
    assert isinstance(event, ConnectionTerminated), events
    assert isinstance(event.error, RemoteProtocolError)
    assert event.error.error_code == code, str(event.error)
    assert conn.finished
    assert conn.in_flight == 0
    frames = [*seen, *peer.parse(conn.data_to_send())]
    goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
    assert [g.error_code for g in goaways] == [code]
    return event


def _raw_block(headers: list[tuple[str, str]]) -> bytes:
    # hpack's encoder keeps names as given (uppercase included): what a broken server sends.
    return hpack.Encoder().encode(headers, huffman=False)


# ------------------------------------------------------------ 1. :status is three ASCII digits


@pytest.mark.parametrize(
    "status",
    ["²²²", "٢٠٠", "\uff12\uff10\uff10", "600", "099", "000", "+20", " 20", "2O0", "20", "2000"],
)
def test_status_not_three_ascii_digits_100_to_599_is_protocol_error(status: str) -> None:
    conn, peer, _ = start()
    send(conn, peer, 2)
    events = conn.receive_data(peer.headers(1, [(":status", status)], end=True))
    event = _terminated(conn, peer, events, ErrorCode.PROTOCOL_ERROR)
    # Never an accepted (or any) response: the request's fate is unknown.
    assert len(events) == 1
    assert event.abandoned == [0, 1]


def test_bad_status_keeps_responses_read_before_it() -> None:
    # "²²²" used to raise ValueError out of receive_data, dropping the response for stream 1
    # that arrived in the same read.
    conn, peer, _ = start()
    send(conn, peer, 3)
    blob = peer.respond(1, 200, apns_id="a") + peer.headers(3, [(":status", "²²²")], end=True)
    events = conn.receive_data(blob)
    assert isinstance(events[0], ResponseReceived)
    assert (events[0].context, events[0].status, events[0].apns_id) == (0, 200, "a")
    event = _terminated(conn, peer, events, ErrorCode.PROTOCOL_ERROR)
    assert event.abandoned == [1, 2]
    assert len(events) == 2


# ------------------------------------------------------------ 2. odd JSON in bodies and GOAWAY


def _response_with_body(body: bytes, status: int = 400) -> ResponseReceived:
    conn, peer, _ = start()
    send(conn, peer)
    blob = peer.headers(1, [(":status", str(status))])
    for offset in range(0, len(body), 16_384):
        blob += data(1, body[offset : offset + 16_384], end=False)
    events = conn.receive_data(blob + data(1, b""))
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, ResponseReceived)
    return event


@pytest.mark.parametrize(
    "body",
    [
        b'{"reason":' + b"[" * 4000,  # within the parse limit: RecursionError inside json
        b'{"a":' * 20_000,  # far deeper, and bigger than any APNs body
        b"[" * 30_000,
    ],
    ids=["nested-small", "nested-big", "array"],
)
def test_deeply_nested_error_body_gives_no_reason_and_a_short_detail(body: bytes) -> None:
    event = _response_with_body(body)
    assert event.status == 400
    assert event.reason is None
    assert event.body == body
    assert event.detail is not None
    assert event.detail.endswith("...")
    assert len(event.detail) <= 123
    assert event.detail.startswith(body[:20].decode())


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"Bad gateway\r\n", "Bad gateway??"),
        (b'["reason"]', '["reason"]'),
        (b'{"reason": 7}', '{"reason": 7}'),
        (b"\xff\xfe{", "\ufffd\ufffd{"),
    ],
)
def test_unexpected_error_body_gives_no_reason_and_its_text(body: bytes, detail: str) -> None:
    event = _response_with_body(body, status=502)
    assert event.reason is None
    assert event.detail == detail


def test_expected_error_body_has_reason_and_no_detail() -> None:
    event = _response_with_body(b'{"reason":"BadDeviceToken"}')
    assert event.reason == "BadDeviceToken"
    assert event.detail is None


def test_oversized_json_error_body_is_not_parsed() -> None:
    body = b'{"reason":"BadDeviceToken","pad":"' + b"x" * 5000 + b'"}'
    event = _response_with_body(body)
    assert event.reason is None
    assert event.detail is not None


@pytest.mark.parametrize(
    "debug",
    [b'{"reason":' + b"[" * 5000, b'{"x":' * 3000],
    ids=["nested-array", "nested-object"],
)
def test_deeply_nested_goaway_debug_data_gives_no_reason(debug: bytes) -> None:
    conn, peer, _ = start()
    send(conn, peer, 2)
    events = conn.receive_data(goaway(1, ErrorCode.NO_ERROR, debug))
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ConnectionTerminated)
    assert event.error is None
    assert event.reason is None
    assert event.debug_data == debug
    assert event.detail is not None
    assert event.detail.endswith("...")
    assert event.unprocessed == [1]


def test_plain_text_goaway_debug_data_is_kept_as_detail() -> None:
    conn, _, _ = start()
    events = conn.receive_data(goaway(0, ErrorCode.ENHANCE_YOUR_CALM, b"too_many_pings"))
    event = events[0]
    assert isinstance(event, ConnectionTerminated)
    assert (event.reason, event.detail) == (None, "too_many_pings")
    json_events = ApnsConnection("h")
    json_events.initiate()
    json_events.receive_data(settings())
    (shutdown,) = json_events.receive_data(goaway(0, 0, b'{"reason":"Shutdown"}'))
    assert isinstance(shutdown, ConnectionTerminated)
    assert (shutdown.reason, shutdown.detail) == ("Shutdown", None)


# ------------------------------------------- 3. early response while our body waits for window


def test_response_while_body_blocked_resets_stream_before_opening_the_next() -> None:
    # One stream allowed and a 10-byte window: request 0's body is stuck after 10 bytes.
    conn, peer, _ = start(
        server_settings=settings(MAX_CONCURRENT_STREAMS=1, INITIAL_WINDOW_SIZE=10)
    )
    handles = send(conn, peer, 2, body=b"c" * 100)
    assert [h.stream_id for h in handles] == [1, 0]
    events = conn.receive_data(peer.respond(1, 413, body=b'{"reason":"PayloadTooLarge"}'))
    assert [type(e) for e in events] == [ResponseReceived]
    frames = peer.parse(conn.data_to_send())
    # Section 8.1: RST_STREAM(NO_ERROR) ends our half of stream 1, and only then does stream 3
    # open, so the server never sees two open streams under its limit of one.
    kinds = [(type(f).__name__, f.stream_id) for f in frames if f.stream_id]
    assert kinds[0] == ("RstStreamFrame", 1)
    assert frames[[type(f) for f in frames].index(RstStreamFrame)].error_code == 0
    assert ("HeadersFrame", 3) in kinds
    assert kinds.index(("RstStreamFrame", 1)) < kinds.index(("HeadersFrame", 3))
    # Stream 1 never gets more of its body, even with window to spare.
    conn.receive_data(window_update(1, 1000) + window_update(3, 1000))
    later = peer.parse(conn.data_to_send())
    assert all(f.stream_id == 3 for f in later if f.stream_id)
    assert peer.requests[3].body == b"c" * 100


def test_response_after_whole_body_sent_sends_no_reset() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    conn.receive_data(peer.respond(1, 200))
    assert not [f for f in peer.parse(conn.data_to_send()) if isinstance(f, RstStreamFrame)]


# ----------------------------------------------------------------- 4. bounded buffers


def test_we_advertise_max_header_list_size() -> None:
    conn = ApnsConnection("api.push.apple.com")
    conn.initiate()
    peer = Peer()
    (ours, _) = peer.parse(conn.data_to_send())
    assert isinstance(ours, SettingsFrame)
    assert ours.settings[SettingsFrame.MAX_HEADER_LIST_SIZE] == 65_536


def test_continuation_flood_is_capped() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    events = conn.receive_data(raw_frame(HEADERS, 0, 1, b"\x88"))
    fragment = b"\x00\x01a\x01b" * 3000  # valid literals, 15 kB per CONTINUATION
    fed = 0
    while not events and fed < 100:  # the old code buffered all 100 (1.5 MB) and more
        events = conn.receive_data(raw_frame(CONTINUATION, 0, 1, fragment))
        fed += 1
    assert fed == 5  # 1 + 4 * 15,000 bytes is within 65,536; the fifth goes over
    event = _terminated(conn, peer, events, ErrorCode.ENHANCE_YOUR_CALM)
    assert event.abandoned == [0]


def test_empty_continuation_frames_do_not_accumulate() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    conn.receive_data(raw_frame(HEADERS, END_STREAM, 1, b"\x88"))
    conn.receive_data(raw_frame(CONTINUATION, 0, 1, b"") * 1000)
    assert conn._continuation is not None
    assert len(conn._continuation[2]) == 1
    (event,) = conn.receive_data(raw_frame(CONTINUATION, END_HEADERS, 1, b""))
    assert isinstance(event, ResponseReceived)
    assert event.status == 200


def test_endless_body_is_capped_and_its_window_never_replenished() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    conn.receive_data(peer.headers(1, [(":status", "400")]))
    chunk = b"y" * 16_384
    events: list[Event] = []
    frames = []
    fed = 0
    while not events and fed < 100:  # the old code took all 100 (1.6 MB), and then more
        events = conn.receive_data(data(1, chunk, end=False))
        frames.extend(peer.parse(conn.data_to_send()))
        fed += 1
    assert fed == 64  # exactly the 1 MiB stream window
    assert not [f for f in frames if isinstance(f, WindowUpdateFrame) and f.stream_id == 1]
    event = _terminated(conn, peer, events, ErrorCode.ENHANCE_YOUR_CALM, frames)
    assert event.abandoned == [0]


def test_body_filling_the_whole_window_with_end_stream_is_accepted() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    conn.receive_data(peer.headers(1, [(":status", "200")]))
    chunk = b"z" * 16_384
    for _ in range(63):
        assert conn.receive_data(data(1, chunk, end=False)) == []
    (event,) = conn.receive_data(data(1, chunk))
    assert isinstance(event, ResponseReceived)
    assert len(event.body) == 1 << 20


def test_open_streams_never_buffer_more_than_the_connection_window() -> None:
    # 20 streams each half-way through a 900 kB body: 18 MB would be buffered if the
    # connection window were given back as bytes arrive (the old code did).
    conn, peer, _ = start()
    send(conn, peer, 20)
    chunk = b"w" * 15_000
    blob = b"".join(peer.headers(sid, [(":status", "400")]) for sid in range(1, 41, 2))
    events = conn.receive_data(blob)
    frames = []
    for sid in range(1, 41, 2):
        for _ in range(60):
            events += conn.receive_data(data(sid, chunk, end=False))
            frames += peer.parse(conn.data_to_send())
            if events:
                break
        if events:
            break
    assert not [f for f in frames if isinstance(f, WindowUpdateFrame)]
    event = _terminated(conn, peer, events, ErrorCode.FLOW_CONTROL_ERROR, frames)
    assert len(event.abandoned) == 20


def test_finished_and_cancelled_streams_give_their_window_back() -> None:
    conn, peer, _ = start()
    handles = send(conn, peer, 40)
    chunk = b"v" * 16_000
    updates = []
    for handle in handles:
        sid = handle.stream_id
        conn.receive_data(peer.headers(sid, [(":status", "400")]))
        for _ in range(20):
            conn.receive_data(data(sid, chunk, end=False))
        if sid % 4 == 1:
            assert [type(e) for e in conn.receive_data(data(sid, b""))] == [ResponseReceived]
        else:
            conn.cancel(handle)
        updates += [f for f in peer.parse(conn.data_to_send()) if isinstance(f, WindowUpdateFrame)]
    # 40 x 320 kB = 12.8 MB went through a 16 MiB window: given back once, at half of it.
    assert [(u.stream_id, u.window_increment) for u in updates] == [(0, 27 * 320_000)]
    assert not conn.finished


def test_header_list_over_max_header_list_size_is_refused() -> None:
    conn, peer, _ = start()
    send(conn, peer, 2)
    # One 4 kB value in the dynamic table, then 20 one-byte references to it: a 4 kB block
    # that decodes to 80 kB of headers.
    encoder = hpack.Encoder()
    block = encoder.encode([(":status", "200"), ("x-big", "b" * 4000)], huffman=False)
    block += b"\xbe" * 20  # index 62: the newest dynamic entry
    events = conn.receive_data(raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    event = _terminated(conn, peer, events, ErrorCode.ENHANCE_YOUR_CALM)
    assert event.abandoned == [0, 1]


def test_trailers_count_toward_max_header_list_size() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    encoder = hpack.Encoder()
    first = encoder.encode([(":status", "200"), ("x-big", "b" * 4000)], huffman=False)
    first += b"\xbe" * 10  # about 40 kB: under the limit on its own
    events = conn.receive_data(raw_frame(HEADERS, END_HEADERS, 1, first))
    assert events == []
    events = conn.receive_data(raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xbe" * 10))
    _terminated(conn, peer, events, ErrorCode.ENHANCE_YOUR_CALM)


# ---------------------------------------------------------------- 5. malformed responses

MALFORMED: dict[str, list[tuple[str, str]]] = {
    "duplicate-status": [(":status", "200"), (":status", "200")],
    "duplicate-status-different": [(":status", "400"), (":status", "200")],
    "pseudo-after-regular": [("apns-id", "x"), (":status", "200")],
    "status-after-regular": [(":status", "200"), ("apns-id", "x"), (":status", "200")],
    "request-pseudo-path": [(":status", "200"), (":path", "/")],
    "request-pseudo-method": [(":method", "POST"), (":status", "200")],
    "unknown-pseudo": [(":status", "200"), (":foo", "x")],
    "uppercase-name": [(":status", "200"), ("Apns-Id", "x")],
    "uppercase-known-name": [(":status", "200"), ("Content-Length", "0")],
    "space-in-name": [(":status", "200"), ("apns id", "x")],
    "colon-in-name": [(":status", "200"), ("apns:id", "x")],
    "empty-name": [(":status", "200"), ("", "x")],
    "non-ascii-name": [(":status", "200"), ("apns-\u00efd", "x")],
    "connection": [(":status", "200"), ("connection", "close")],
    "keep-alive": [(":status", "200"), ("keep-alive", "timeout=5")],
    "proxy-connection": [(":status", "200"), ("proxy-connection", "close")],
    "transfer-encoding": [(":status", "200"), ("transfer-encoding", "chunked")],
    "upgrade": [(":status", "200"), ("upgrade", "h2c")],
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_response_is_protocol_error_not_a_response(name: str) -> None:
    conn, peer, _ = start()
    send(conn, peer, 2)
    block = _raw_block(MALFORMED[name])
    events = conn.receive_data(raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    # A failed attempt, never an accepted notification: no ResponseReceived at all.
    assert not [e for e in events if isinstance(e, ResponseReceived)]
    event = _terminated(conn, peer, events, ErrorCode.PROTOCOL_ERROR)
    assert event.abandoned == [0, 1]


@pytest.mark.parametrize(
    "trailers",
    [[(":status", "200")], [("Grpc-Status", "0")], [("connection", "close")]],
    ids=["pseudo", "uppercase", "connection-specific"],
)
def test_malformed_trailers_are_protocol_error(trailers: list[tuple[str, str]]) -> None:
    conn, peer, _ = start()
    send(conn, peer)
    events = conn.receive_data(peer.headers(1, [(":status", "200")]))
    assert events == []
    block = peer.encoder.encode(trailers, huffman=False)
    events = conn.receive_data(raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    assert not [e for e in events if isinstance(e, ResponseReceived)]
    _terminated(conn, peer, events, ErrorCode.PROTOCOL_ERROR)


def test_valid_trailers_are_kept() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    conn.receive_data(peer.headers(1, [(":status", "200"), ("apns-id", "i")]))
    (event,) = conn.receive_data(peer.headers(1, [("x-trailer", "1")], end=True))
    assert isinstance(event, ResponseReceived)
    assert event.headers == [(":status", "200"), ("apns-id", "i"), ("x-trailer", "1")]


@pytest.mark.parametrize("length", [0, 4, 6, 100])
def test_priority_frame_of_wrong_length_is_frame_size_error(length: int) -> None:
    conn, peer, _ = start()
    send(conn, peer)
    events = conn.receive_data(raw_frame(PRIORITY, 0, 1, bytes(length)))
    _terminated(conn, peer, events, ErrorCode.FRAME_SIZE_ERROR)


def test_priority_frame_of_five_bytes_is_ignored() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    assert conn.receive_data(raw_frame(PRIORITY, 0, 1, bytes(5))) == []
    assert conn.data_to_send() == b""
    assert not conn.finished


@pytest.mark.parametrize(
    "first",
    [
        ping(b"12345678"),
        settings(ack=True),
        raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x88"),
        raw_frame(0x20, 0, 0, b"unknown"),
        raw_frame(DATA, END_STREAM, 1, b""),
        goaway(0),
    ],
    ids=["ping", "settings-ack", "headers", "unknown-type", "data", "goaway"],
)
def test_first_server_frame_not_settings_is_protocol_error(first: bytes) -> None:
    conn = ApnsConnection("api.push.apple.com")
    conn.initiate()
    peer = Peer()
    peer.parse(conn.data_to_send())
    conn.send_request("/3/device/ab", (), b"{}", "only")
    peer.parse(conn.data_to_send())
    events = conn.receive_data(first + settings(MAX_CONCURRENT_STREAMS=10))
    event = _terminated(conn, peer, events, ErrorCode.PROTOCOL_ERROR)
    assert event.abandoned == ["only"]
    assert len(events) == 1


def test_settings_then_anything_is_fine() -> None:
    conn = ApnsConnection("api.push.apple.com")
    conn.initiate()
    conn.data_to_send()
    events = conn.receive_data(raw_frame(SETTINGS, 0, 0, b"") + ping(b"12345678"))
    assert len(events) == 1
    assert not conn.finished
    assert conn.data_to_send().endswith(raw_frame(PING, 1, 0, b"12345678"))


# ------------------------------------------------------------------- the rule itself


class _BrokenBytes(bytes):
    """Bytes whose slice at one offset raises: a stand-in for a bug in the frame loop.

    Not a monkeypatched method, so the test holds for the mypyc-compiled build too (its
    classes' methods are read-only); slicing a bytes subclass goes through ``__getitem__`` in
    both builds.
    """

    broken_at = -1

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice) and key.start == self.broken_at:
            raise KeyError("a bug")
        return super().__getitem__(key)


def test_unexpected_internal_error_becomes_a_clean_protocol_error() -> None:
    conn, peer, _ = start()
    send(conn, peer, 2)
    first = peer.respond(1, 200)
    data = _BrokenBytes(first + ping(b"12345678") + peer.respond(3, 200))
    data.broken_at = len(first) + 9  # the PING frame's payload
    events = conn.receive_data(data)
    assert isinstance(events[0], ResponseReceived)
    event = _terminated(conn, peer, events, ErrorCode.INTERNAL_ERROR)
    assert event.abandoned == [1]
    assert isinstance(event.error, RemoteProtocolError)
    assert isinstance(event.error.__cause__, KeyError)
    assert "KeyError" in str(event.error)
    assert conn.receive_data(b"anything at all") == []


# ------------------------------------------- CPU: no per-entry or per-stream passes on floods


def _data_frames(peer: Peer, conn: ApnsConnection) -> list[tuple[int, int]]:
    return [(f.stream_id, len(f.data)) for f in peer.parse(conn.data_to_send()) if f.type == DATA]


def test_settings_with_many_initial_window_entries_applies_each_in_turn() -> None:
    conn, peer, _ = start(server_settings=settings(INITIAL_WINDOW_SIZE=0))
    send(conn, peer, 3, body=b"q" * 500)
    assert _data_frames(peer, conn) == []
    # 2,000 entries in one frame (one pass over the streams, not 2,000); the last one counts.
    pairs = [(4, 7 + i % 3) for i in range(1999)] + [(4, 100)]
    conn.receive_data(raw_frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", *p) for p in pairs)))
    assert _data_frames(peer, conn) == [(1, 100), (3, 100), (5, 100)]
    assert [h._window for h in conn._streams.values()] == [0, 0, 0]


def test_initial_window_entry_over_the_limit_is_an_error_even_if_a_later_one_is_not() -> None:
    conn, peer, _ = start()
    send(conn, peer)
    pairs = [(4, 2**31), (4, 100)]
    events = conn.receive_data(
        raw_frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", *p) for p in pairs))
    )
    _terminated(conn, peer, events, ErrorCode.FLOW_CONTROL_ERROR)


def test_stream_window_over_the_limit_after_settings_is_flow_control_error() -> None:
    conn, peer, _ = start()
    (handle,) = send(conn, peer)
    conn.receive_data(window_update(1, 2**31 - 1 - handle._window))  # the stream's is at max
    peer.parse(conn.data_to_send())
    events = conn.receive_data(settings(INITIAL_WINDOW_SIZE=65_536))
    _terminated(conn, peer, events, ErrorCode.FLOW_CONTROL_ERROR)


def test_tiny_connection_window_updates_feed_blocked_streams_in_order() -> None:
    conn, peer, _ = start()
    body = b"p" * 30_000
    send(conn, peer, 4, body=body)  # 65,535 bytes of connection window: 2 bodies and a bit
    assert sum(len(r.body) for r in peer.requests.values()) == 65_535
    assert conn.send_window == 0
    for _ in range(3):
        conn.receive_data(window_update(0, 10))
        assert _data_frames(peer, conn) == [(5, 10)]
    conn.receive_data(window_update(0, 100_000))
    rest = _data_frames(peer, conn)
    assert {sid for sid, _ in rest} == {5, 7}
    assert all(peer.requests[sid].body == body for sid in (1, 3, 5, 7))


def test_stream_window_update_moves_only_that_stream() -> None:
    conn, peer, _ = start(server_settings=settings(INITIAL_WINDOW_SIZE=10))
    send(conn, peer, 3, body=b"r" * 50)
    assert [len(peer.requests[sid].body) for sid in (1, 3, 5)] == [10, 10, 10]
    conn.receive_data(window_update(3, 40))
    assert _data_frames(peer, conn) == [(3, 40)]
    assert peer.requests[3].ended
    conn.receive_data(window_update(0, 1000) + window_update(1, 5))
    assert _data_frames(peer, conn) == [(1, 5)]
