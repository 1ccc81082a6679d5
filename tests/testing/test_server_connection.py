"""ServerConnection without any I/O: an h2 client connection talks to it in memory."""

from __future__ import annotations

import json

import h2.config
import h2.connection
import h2.events
import pytest
from h2.settings import SettingCodes, Settings

from apnskit._core.hpack_codec import encode_integer as _hpack_int
from apnskit.testing import Fault, ReceivedRequest, Reply, ServerConnection

HEADERS = [
    (":method", "POST"),
    (":scheme", "https"),
    (":path", "/3/device/abcd"),
    (":authority", "localhost"),
    ("apns-topic", "com.example.app"),
]


class Pair:
    def __init__(self, app, *, handshake: bool = True, **kwargs) -> None:
        self.server = ServerConnection(app, **kwargs)
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.events: list[h2.events.Event] = []
        self.server.initiate()
        self.client.initiate_connection()
        self.now = 0.0
        if handshake:
            self.exchange()

    def exchange(self) -> None:
        for _ in range(4):
            out = self.client.data_to_send()
            if out:
                self.server.receive_data(out, self.now)
            back = self.server.data_to_send()
            if back:
                self.events.extend(self.client.receive_data(back))
            if not out and not back:
                break

    def request(self, body: bytes = b'{"aps":{}}', headers=HEADERS, chunks: int = 1) -> int:
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, headers, end_stream=not body)
        size = max(1, len(body) // chunks)
        for index in range(0, len(body), size):
            last = index + size >= len(body)
            self.client.send_data(stream_id, body[index : index + size], end_stream=last)
        return stream_id

    def of(self, kind, stream_id=None):
        return [
            e
            for e in self.events
            if isinstance(e, kind)
            and (stream_id is None or getattr(e, "stream_id", None) == stream_id)
        ]


def ok(request: ReceivedRequest) -> Reply:
    return Reply(200, (("apns-id", "x"),))


def test_request_is_assembled_from_several_data_frames() -> None:
    seen: list[ReceivedRequest] = []

    def app(request: ReceivedRequest) -> Reply:
        seen.append(request)
        return Reply(410, (("apns-id", "x"), ("x-long", "v" * 300)), "Unregistered", 1234)

    pair = Pair(app, connection_id=7)
    body = json.dumps({"aps": {"alert": "x" * 1000}}).encode()
    stream_id = pair.request(
        body, headers=[*HEADERS, ("Apns-Priority", "10"), ("apns-priority", "5")], chunks=5
    )
    pair.exchange()
    [request] = seen
    assert (request.method, request.path, request.body) == ("POST", "/3/device/abcd", body)
    assert request.headers["apns-priority"] == "5"
    assert request.duplicate_headers == ("apns-priority",)
    assert (request.stream_id, request.connection_id) == (stream_id, 7)
    assert request.connection is pair.server.context
    [response] = pair.of(h2.events.ResponseReceived, stream_id)
    assert dict(response.headers) == {
        ":status": "410",
        "apns-id": "x",
        "x-long": "v" * 300,
        "content-type": "application/json",
        "content-length": str(len(b'{"reason":"Unregistered","timestamp":1234}')),
    }
    [data] = pair.of(h2.events.DataReceived, stream_id)
    assert json.loads(data.data) == {"reason": "Unregistered", "timestamp": 1234}


@pytest.mark.parametrize("status", [200, 204, 400, 403, 404, 405, 413, 429, 500, 503])
def test_every_status_encodes(status: int) -> None:
    pair = Pair(lambda request: Reply(status))
    stream_id = pair.request()
    pair.exchange()
    [response] = pair.of(h2.events.ResponseReceived, stream_id)
    assert dict(response.headers)[":status"] == str(status)


def test_header_table_size_change_is_acknowledged_in_the_next_block() -> None:
    pair = Pair(ok)
    pair.client.update_settings({SettingCodes.HEADER_TABLE_SIZE: 256})
    pair.exchange()
    stream_id = pair.request()
    pair.exchange()
    # h2's decoder insists on the size update (RFC 7541 section 4.2) and decodes the block.
    assert dict(pair.of(h2.events.ResponseReceived, stream_id)[0].headers)[":status"] == "200"


def test_hpack_integers() -> None:
    assert _hpack_int(10, 5, 0) == b"\x0a"
    assert _hpack_int(1337, 5, 0) == b"\x1f\x9a\x0a"  # RFC 7541 C.1.2
    assert _hpack_int(42, 8, 0) == b"\x2a"


def test_delayed_reply_uses_the_timer() -> None:
    pair = Pair(lambda request: Fault.delay(2.0, Reply(200)))
    pair.now = 10.0
    stream_id = pair.request()
    pair.exchange()
    assert pair.of(h2.events.ResponseReceived, stream_id) == []
    assert pair.server.next_timer() == 12.0
    assert pair.server.open_request_count == 1
    pair.server.tick(11.9)
    assert pair.server.data_to_send() == b""
    pair.server.tick(12.0)
    pair.exchange()
    assert len(pair.of(h2.events.ResponseReceived, stream_id)) == 1
    assert pair.server.next_timer() is None


def test_delay_of_zero_replies_at_once() -> None:
    pair = Pair(lambda request: Fault.delay(0, Reply(200)))
    stream_id = pair.request()
    pair.exchange()
    assert len(pair.of(h2.events.ResponseReceived, stream_id)) == 1


def test_delayed_reply_to_a_reset_stream_is_dropped() -> None:
    pair = Pair(lambda request: Fault.delay(1.0, Reply(200)))
    stream_id = pair.request()
    pair.exchange()
    pair.client.reset_stream(stream_id, 8)
    pair.exchange()
    assert pair.server.next_timer() is None
    pair.server.tick(5.0)
    assert pair.server.data_to_send() == b""


def test_goaway_lingers_then_closes() -> None:
    pair = Pair(lambda request: Fault.goaway(reply=Reply(200)))
    pair.now = 3.0
    stream_id = pair.request()
    pair.exchange()
    assert len(pair.of(h2.events.ResponseReceived, stream_id)) == 1
    [goaway] = pair.of(h2.events.ConnectionTerminated)
    assert goaway.last_stream_id == stream_id
    assert json.loads(goaway.additional_data) == {"reason": "Shutdown"}
    assert pair.server.goaway_sent
    assert not pair.server.should_close
    pair.server.receive_data(b"ignored after GOAWAY", 3.5)
    assert pair.server.next_timer() == 4.0
    pair.server.tick(4.0)
    assert pair.server.should_close


def test_close_sends_goaway() -> None:
    pair = Pair(ok)
    pair.server.close(error_code=0, reason=None)
    pair.exchange()
    [goaway] = pair.of(h2.events.ConnectionTerminated)
    assert goaway.additional_data is None
    pair.server.close()  # a second close does nothing
    assert pair.server.data_to_send() == b""


def test_reset_drop_and_no_reply() -> None:
    outcomes = iter([Fault.reset(), Fault.no_reply(), Fault.drop()])
    pair = Pair(lambda request: next(outcomes))
    first = pair.request()
    pair.exchange()
    assert pair.of(h2.events.StreamReset, first)[0].error_code == 7
    second = pair.request()
    pair.exchange()
    assert pair.of(h2.events.ResponseReceived, second) == []
    assert pair.server.open_request_count == 0 or not pair.server.should_close
    pair.request()
    pair.exchange()
    assert pair.server.should_close


def test_peer_closing_or_goaway_closes() -> None:
    pair = Pair(ok)
    pair.client.close_connection()
    pair.exchange()
    assert pair.server.should_close
    other = Pair(ok)
    other.server.receive_data(b"", 0.0)
    assert other.server.should_close


def test_stream_limit_held_until_success_and_changeable() -> None:
    replies = iter([Reply(403, reason="InvalidProviderToken"), Reply(200), Reply(200)])
    pair = Pair(
        lambda request: next(replies), max_concurrent_streams=20, hold_streams_until_success=True
    )
    assert pair.client.remote_settings.max_concurrent_streams == 1
    assert pair.server.max_concurrent_streams == 1
    pair.request()
    pair.exchange()
    assert pair.client.remote_settings.max_concurrent_streams == 1
    pair.request()
    pair.exchange()
    assert pair.client.remote_settings.max_concurrent_streams == 20
    pair.server.set_max_concurrent_streams(4)
    pair.exchange()
    assert pair.client.remote_settings.max_concurrent_streams == 4
    with pytest.raises(ValueError, match="max_concurrent_streams"):
        pair.server.set_max_concurrent_streams(0)


def test_bad_app_results_and_arguments() -> None:
    pair = Pair(lambda request: "OK")  # type: ignore[arg-type,return-value]
    pair.request()
    with pytest.raises(TypeError, match="Reply or a Fault"):
        pair.exchange()
    with pytest.raises(ValueError, match="max_concurrent_streams"):
        ServerConnection(ok, max_concurrent_streams=0)
    with pytest.raises(ValueError, match="status"):
        Reply(99)
    with pytest.raises(TypeError, match="status"):
        Reply("200")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds"):
        Fault.delay(-1, Reply())
    with pytest.raises(ValueError, match="last_stream_id"):
        Fault.goaway(last_stream_id=-1)


def test_garbage_is_a_protocol_error() -> None:
    pair = Pair(ok)
    pair.server.receive_data(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00", 0.0)
    assert pair.server.error is not None
    assert pair.server.goaway_sent
    assert pair.server.data_to_send()  # the GOAWAY


def test_large_bodies_keep_the_connection_window_open() -> None:
    pair = Pair(ok)
    body = b"{" + b" " * 60000 + b"}"
    for _ in range(200):  # 12 MB: more than half the 16 MB window
        pair.request(body, chunks=4)
        pair.exchange()
    assert len(pair.of(h2.events.ResponseReceived)) == 200
    assert pair.client.outbound_flow_control_window > 8 * 1024 * 1024


def test_request_repr_hides_the_token() -> None:
    request = ReceivedRequest(
        "POST", "/3/device/ab", {"authorization": "bearer SECRET"}, b"{}", 1, 1
    )
    assert "SECRET" not in repr(request)
    assert "bearer <redacted>" in repr(request)


# -- the stream limit (issue 17) ----------------------------------------------------------------


def _ignore_stream_limit(client: h2.connection.H2Connection) -> None:
    """Make the h2 client open streams past the server's limit, as a buggy client would."""
    client.remote_settings = Settings(
        client=False, initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: 1000}
    )


def test_raised_limit_holds_before_the_client_acknowledges_it() -> None:
    # The race h2load hit: the client reads the SETTINGS raising the limit and opens streams
    # at once; they reach the server before its SETTINGS ACK does (RFC 9113 section 6.5.3).
    pair = Pair(ok, max_concurrent_streams=20, hold_streams_until_success=True)
    assert pair.server.enforced_max_concurrent_streams == 1
    pair.request()
    pair.server.receive_data(pair.client.data_to_send(), 0.0)
    pair.events.extend(pair.client.receive_data(pair.server.data_to_send()))
    assert pair.client.remote_settings.max_concurrent_streams == 20
    assert pair.server.enforced_max_concurrent_streams == 20  # in force once sent
    ack = pair.client.data_to_send()  # the SETTINGS ACK, still on its way
    streams = [pair.request() for _ in range(5)]
    pair.server.receive_data(pair.client.data_to_send(), 0.0)  # the streams overtake it
    pair.server.receive_data(ack, 0.0)
    pair.exchange()
    statuses = [dict(pair.of(h2.events.ResponseReceived, s)[0].headers)[":status"] for s in streams]
    assert statuses == ["200"] * 5
    assert pair.of(h2.events.StreamReset) == []
    assert pair.server.peer_errors == []
    assert pair.server.error is None


def test_lowered_limit_is_enforced_once_acknowledged() -> None:
    pair = Pair(lambda request: Fault.no_reply(), max_concurrent_streams=10)
    pair.server.set_max_concurrent_streams(2)
    cut = pair.server.data_to_send()  # SETTINGS 2, not yet read by the client
    assert pair.server.enforced_max_concurrent_streams == 10
    early = [pair.request() for _ in range(4)]  # sent before the client read the cut
    pair.exchange()
    assert pair.server.open_stream_count == 4
    assert pair.server.peer_errors == []
    pair.events.extend(pair.client.receive_data(cut))
    pair.exchange()  # the ACK arrives
    assert pair.server.enforced_max_concurrent_streams == 2
    _ignore_stream_limit(pair.client)
    late = pair.request()
    pair.exchange()
    [reset] = pair.of(h2.events.StreamReset, late)
    assert reset.error_code == 7  # REFUSED_STREAM
    assert pair.server.open_stream_count == 4
    [problem] = pair.server.peer_errors
    assert f"stream {late} exceeds SETTINGS_MAX_CONCURRENT_STREAMS 2 (4 open)" in problem
    assert "REFUSED_STREAM" in problem
    # Streams the client resets close: below the limit again, a new stream is served.
    for stream_id in early[:3]:
        pair.client.reset_stream(stream_id)
    pair.exchange()
    assert pair.server.open_stream_count == 1
    pair.request()
    pair.exchange()
    assert pair.server.open_stream_count == 2
    assert len(pair.server.peer_errors) == 1
    assert pair.server.error is None


def test_no_limit_before_the_preface_settings_are_acknowledged() -> None:
    # RFC 9113 sections 3.4 and 6.5.2: a client may send requests before it reads the
    # server's preface, and until then no stream limit applies (nghttp2 opens up to 100).
    pair = Pair(lambda request: Fault.no_reply(), hold_streams_until_success=True, handshake=False)
    assert pair.server.max_concurrent_streams == 1
    assert pair.server.enforced_max_concurrent_streams > 1000
    for _ in range(3):
        pair.request()
    pair.server.receive_data(pair.client.data_to_send(), 0.0)
    assert pair.server.open_stream_count == 3
    assert pair.server.peer_errors == []
    pair.exchange()  # the client reads the preface and acknowledges it
    assert pair.server.enforced_max_concurrent_streams == 1
    _ignore_stream_limit(pair.client)
    late = pair.request()
    pair.exchange()
    assert pair.of(h2.events.StreamReset, late)[0].error_code == 7
    assert len(pair.server.peer_errors) == 1


def test_stream_over_the_limit_is_refused_and_the_connection_goes_on() -> None:
    pair = Pair(ok, max_concurrent_streams=1)
    _ignore_stream_limit(pair.client)
    first = pair.request()
    second = pair.client.get_next_available_stream_id()
    pair.client.send_headers(second, HEADERS)
    # Both HEADERS in one read: the first is still open when the second arrives, even if its
    # reply is produced in between (the client sent the second before it could see it).
    pair.server.receive_data(pair.client.data_to_send(), 0.0)
    # The refused stream's body arrives in a later read: ignored, the connection goes on.
    pair.client.send_data(second, b'{"aps":{}}', end_stream=True)
    pair.server.receive_data(pair.client.data_to_send(), 0.0)
    pair.exchange()
    assert dict(pair.of(h2.events.ResponseReceived, first)[0].headers)[":status"] == "200"
    assert pair.of(h2.events.StreamReset, second)[0].error_code == 7
    third = pair.request()
    pair.exchange()
    assert dict(pair.of(h2.events.ResponseReceived, third)[0].headers)[":status"] == "200"
    assert pair.of(h2.events.ConnectionTerminated) == []
    [problem] = pair.server.peer_errors
    assert problem.startswith(f"TooManyStreams: stream {second} exceeds")
    assert not pair.server.goaway_sent
    assert pair.server.error is None


def test_strict_stream_limit_answers_with_goaway_protocol_error() -> None:
    pair = Pair(ok, max_concurrent_streams=1, strict_stream_limit=True, goaway_linger=1.0)
    _ignore_stream_limit(pair.client)
    first = pair.request()
    second = pair.request()
    pair.exchange()
    assert dict(pair.of(h2.events.ResponseReceived, first)[0].headers)[":status"] == "200"
    assert pair.of(h2.events.ResponseReceived, second) == []
    [goaway] = pair.of(h2.events.ConnectionTerminated)
    assert goaway.error_code == 1  # PROTOCOL_ERROR
    assert goaway.last_stream_id == first  # the refused stream was not processed
    assert pair.server.error is not None
    assert f"stream {second} exceeds SETTINGS_MAX_CONCURRENT_STREAMS 1" in pair.server.error
    assert pair.server.peer_errors == [pair.server.error]
    assert not pair.server.should_close
    pair.server.tick(1.0)
    assert pair.server.should_close


def test_closed_streams_are_forgotten() -> None:
    # h2's own stream count used to prune closed streams; without it they must not pile up.
    pair = Pair(ok)
    for _ in range(50):
        for _ in range(20):
            pair.request()
        pair.exchange()
    assert len(pair.of(h2.events.ResponseReceived)) == 1000
    assert pair.server.open_stream_count == 0
    assert len(pair.server._h2.streams) <= 100


def test_limit_in_force_with_several_settings_in_flight() -> None:
    # The highest of the acknowledged value and every value still unacknowledged: the client
    # may be acting on any of them (RFC 9113 section 6.5.3).
    pair = Pair(ok, max_concurrent_streams=10)
    for value in (30, 2, 5):
        pair.server.set_max_concurrent_streams(value)
    assert pair.server.max_concurrent_streams == 5
    assert pair.server.enforced_max_concurrent_streams == 30  # the raise, at once
    pair.events.extend(pair.client.receive_data(pair.server.data_to_send()))
    acks = pair.client.data_to_send()
    assert len(acks) == 3 * 9  # three empty SETTINGS frames with the ACK flag
    limits = []
    for index in range(3):
        pair.server.receive_data(acks[index * 9 : index * 9 + 9], 0.0)
        limits.append(pair.server.enforced_max_concurrent_streams)
    # 30 acknowledged (2 and 5 pending); 2 acknowledged (5 pending); 5 acknowledged.
    assert limits == [30, 5, 5]
