"""A scripted HTTP/2 server for driving ``ApnsConnection`` bytes in, bytes out.

``Peer`` parses what the client writes with hyperframe (frames) and hpack (header blocks), so
the tests check the client's output with independent implementations, and builds server frames
with the same libraries, or by hand (:func:`raw_frame`) when a frame must be malformed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from apnskit._core.connection import ApnsConnection
from apnskit._core.events import Event

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
AUTHORITY = "api.push.apple.com"
TOKEN = "ab" * 32
PATH = f"/3/device/{TOKEN}"
APNS_HEADERS = (("apns-topic", "com.example.app"), ("apns-push-type", "alert"))
BODY = b'{"aps":{"alert":"hi"}}'

# Frame type numbers (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
# Settings identifiers (section 6.5.2).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS = 1, 2, 3
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 4, 5, 6


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """Any frame, valid or not: 9-byte header (section 4.1) plus payload."""
    length = len(payload)
    return struct.pack(">HBBBL", length >> 8, length & 0xFF, frame_type, flags, stream_id) + payload


def settings(ack: bool = False, **values: int) -> bytes:
    """A SETTINGS frame; keyword names as hyperframe's constants (``MAX_CONCURRENT_STREAMS``)."""
    frame = SettingsFrame(0, flags=["ACK"] if ack else [])
    for name, value in values.items():
        frame.settings[getattr(SettingsFrame, name)] = value
    return frame.serialize()


def raw_settings(*pairs: tuple[int, int]) -> bytes:
    """A SETTINGS frame from (identifier, value) pairs, no validation at all."""
    return raw_frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", i, v) for i, v in pairs))


def data(stream_id: int, payload: bytes, *, end: bool = True, pad: int | None = None) -> bytes:
    """A DATA frame, optionally padded."""
    frame = DataFrame(stream_id, payload)
    if end:
        frame.flags.add("END_STREAM")
    if pad is not None:
        frame.flags.add("PADDED")
        frame.pad_length = pad
    return frame.serialize()


def window_update(stream_id: int, increment: int) -> bytes:
    """A WINDOW_UPDATE frame."""
    return WindowUpdateFrame(stream_id, window_increment=increment).serialize()


def rst_stream(stream_id: int, error_code: int) -> bytes:
    """A RST_STREAM frame."""
    return RstStreamFrame(stream_id, error_code=error_code).serialize()


def goaway(last_stream_id: int, error_code: int = 0, debug: bytes = b"") -> bytes:
    """A GOAWAY frame."""
    return GoAwayFrame(
        0, last_stream_id=last_stream_id, error_code=error_code, additional_data=debug
    ).serialize()


def ping(payload: bytes, *, ack: bool = False) -> bytes:
    """A PING frame."""
    return PingFrame(0, opaque_data=payload, flags=["ACK"] if ack else []).serialize()


@dataclass
class Request:
    """One request as the server saw it."""

    stream_id: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    ended: bool = False
    header_frames: list[Frame] = field(default_factory=list)
    data_frames: list[DataFrame] = field(default_factory=list)


class Peer:
    """The server side: parses client output, keeps an HPACK decoder and encoder in step."""

    def __init__(self) -> None:
        self.decoder = hpack.Decoder()
        self.encoder = hpack.Encoder()
        self.buffer = b""
        self.preface_seen = False
        self.frames: list[Frame] = []
        self.requests: dict[int, Request] = {}
        self._block: tuple[int, list[bytes], bool, list[Frame]] | None = None

    def parse(self, data: bytes) -> list[Frame]:
        """Parse client bytes into frames; requests are assembled into ``self.requests``."""
        buf = self.buffer + data
        if not self.preface_seen:
            if len(buf) < len(PREFACE):
                self.buffer = buf
                return []
            assert buf.startswith(PREFACE), buf[:24]
            buf = buf[len(PREFACE) :]
            self.preface_seen = True
        frames: list[Frame] = []
        pos = 0
        while len(buf) - pos >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[pos : pos + 9]))
            if len(buf) - pos - 9 < length:
                break
            frame.parse_body(memoryview(buf[pos + 9 : pos + 9 + length]))
            pos += 9 + length
            frames.append(frame)
            self._track(frame)
        self.buffer = buf[pos:]
        self.frames.extend(frames)
        return frames

    def _track(self, frame: Frame) -> None:
        if isinstance(frame, HeadersFrame):
            assert self._block is None, "HEADERS inside a header block"
            self._block = (frame.stream_id, [frame.data], "END_STREAM" in frame.flags, [frame])
            if "END_HEADERS" in frame.flags:
                self._finish_block()
        elif isinstance(frame, ContinuationFrame):
            assert self._block is not None
            assert self._block[0] == frame.stream_id
            self._block[1].append(frame.data)
            self._block[3].append(frame)
            if "END_HEADERS" in frame.flags:
                self._finish_block()
        else:
            assert self._block is None, "frame interleaved with a header block"
            if isinstance(frame, DataFrame):
                request = self.requests[frame.stream_id]
                assert not request.ended, "DATA after END_STREAM"
                request.body += frame.data
                request.data_frames.append(frame)
                request.ended = "END_STREAM" in frame.flags

    def _finish_block(self) -> None:
        assert self._block is not None
        stream_id, fragments, ended, frames = self._block
        self._block = None
        headers = [(str(n), str(v)) for n, v in self.decoder.decode(b"".join(fragments))]
        assert stream_id not in self.requests, "two header blocks for one request"
        self.requests[stream_id] = Request(stream_id, headers, ended=ended, header_frames=frames)

    def of_type(self, kind: type[Frame]) -> list[Any]:
        """Every parsed frame of one class, in order."""
        return [f for f in self.frames if isinstance(f, kind)]

    # ---------------------------------------------------------------- building responses

    def headers(
        self,
        stream_id: int,
        header_list: list[tuple[str, str]],
        *,
        end: bool = False,
        huffman: bool = True,
        pad: int | None = None,
        priority: bool = False,
    ) -> bytes:
        """A HEADERS frame encoded with the server's hpack encoder (one frame, END_HEADERS)."""
        frame = HeadersFrame(stream_id, self.encoder.encode(header_list, huffman=huffman))
        frame.flags.add("END_HEADERS")
        if end:
            frame.flags.add("END_STREAM")
        if pad is not None:
            frame.flags.add("PADDED")
            frame.pad_length = pad
        if priority:
            frame.flags.add("PRIORITY")
            frame.depends_on = 0
            frame.stream_weight = 15
        return frame.serialize()

    def respond(
        self,
        stream_id: int,
        status: int = 200,
        *,
        apns_id: str | None = None,
        body: bytes = b"",
        extra: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        """A complete response: HEADERS (+ DATA when there is a body)."""
        header_list = [(":status", str(status))]
        if apns_id is not None:
            header_list.append(("apns-id", apns_id))
        header_list.extend(extra)
        if not body:
            return self.headers(stream_id, header_list, end=True)
        return self.headers(stream_id, header_list) + data(stream_id, body)


def start(
    conn: ApnsConnection | None = None, *, server_settings: bytes | None = None
) -> tuple[ApnsConnection, Peer, list[Event]]:
    """Initiate a connection and feed it the server's first SETTINGS."""
    conn = conn or ApnsConnection(AUTHORITY)
    peer = Peer()
    conn.initiate()
    peer.parse(conn.data_to_send())
    if server_settings is None:
        server_settings = settings(MAX_CONCURRENT_STREAMS=1000)
    events = conn.receive_data(server_settings)
    peer.parse(conn.data_to_send())
    return conn, peer, events


def send(conn: ApnsConnection, peer: Peer, n: int = 1, **kwargs: Any) -> list[Any]:
    """Send ``n`` requests with contexts 0..n-1 (or ``context``); returns the handles."""
    handles = []
    for i in range(n):
        kwargs.setdefault("body", BODY)
        kwargs.setdefault("headers", APNS_HEADERS)
        context = kwargs.pop("context", i)
        handles.append(conn.send_request(PATH, context=context, **kwargs))
    peer.parse(conn.data_to_send())
    return handles
