"""The sans-I/O client side of one HTTP/2 connection to APNs.

Theory of operation
-------------------
``ApnsConnection`` knows HTTP/2 (RFC 9113) and nothing about sockets, threads or clocks: the
caller feeds it the bytes it read (``receive_data``) and writes out what it produces
(``data_to_send``). Times, where they matter (PING round trips), are passed in.

A request handed to :meth:`ApnsConnection.send_request` waits in a queue until a stream may be
opened: never more streams than the server's SETTINGS_MAX_CONCURRENT_STREAMS (section 5.1.2),
one stream until the server's first SETTINGS arrives, and, when ``hold_until_success`` is set,
one stream until a first 2xx answer, which is how APNs treats token-authenticated connections
until it has seen a valid token. A request's HEADERS go out as soon as its stream opens; its
DATA follows as far as the flow-control windows allow (section 5.2), split at the server's
SETTINGS_MAX_FRAME_SIZE, and the rest waits for WINDOW_UPDATE.

Incoming frames become events (:mod:`apnskit._core.events`). Nothing is ever dropped: every
request ends in exactly one of ``ResponseReceived``, ``StreamReset``, or a
``ConnectionTerminated`` listing it as ``unprocessed`` (safe to resend) or ``abandoned`` (the
connection died under it), or the caller cancels it.

The server is not trusted (issue 10): ``receive_data`` raises nothing, whatever the bytes. A
violation of RFC 9113 (framing, flow control, HPACK, a malformed response per section 8.1.1,
a first frame that is not SETTINGS) ends the connection with our GOAWAY carrying the error
code, and a ``ConnectionTerminated`` that lists every request still open as abandoned and
every queued one as unprocessed; responses completed earlier in the same read are kept.
Memory is bounded whatever the server does: a read holds at most one partial frame, a header
block at most SETTINGS_MAX_HEADER_LIST_SIZE (which we advertise), a response body at most its
stream window (never replenished), and all bodies together at most the connection window
(bytes are given back only when their stream ends).

Departures from a general-purpose HTTP/2 client, because APNs never needs them: no server
push (we send SETTINGS_ENABLE_PUSH=0, so PUSH_PROMISE is a protocol error), no priorities, and
any stream-level error is treated as a connection error (allowed by section 5.4.1).
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from apnskit._core.events import (
    ConnectionTerminated,
    Event,
    PingAcknowledged,
    SettingsReceived,
    StreamReset,
    new_response,
)
from apnskit._core.hpack_codec import HeaderDecoder, HeaderEncoder
from apnskit._errors import LocalProtocolError, RemoteProtocolError

__all__ = ["ApnsConnection", "ErrorCode", "RequestHandle"]

# Module constants are Final: mypyc then reads them as C globals rather than through the
# module dictionary, which the hot paths otherwise pay on every use (issue 13).

# RFC 9113 section 3.4: the client connection preface.
PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (section 6).
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

# Flags.
FLAG_END_STREAM: Final = 0x1
FLAG_ACK: Final = 0x1
FLAG_END_HEADERS: Final = 0x4
FLAG_PADDED: Final = 0x8
FLAG_PRIORITY: Final = 0x20

# Settings (section 6.5.2).
SETTINGS_HEADER_TABLE_SIZE: Final = 0x1
SETTINGS_ENABLE_PUSH: Final = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS: Final = 0x3
SETTINGS_INITIAL_WINDOW_SIZE: Final = 0x4
SETTINGS_MAX_FRAME_SIZE: Final = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE: Final = 0x6


class ErrorCode:
    """HTTP/2 error codes (RFC 9113 section 7)."""

    NO_ERROR: Final = 0x0
    PROTOCOL_ERROR: Final = 0x1
    INTERNAL_ERROR: Final = 0x2
    FLOW_CONTROL_ERROR: Final = 0x3
    SETTINGS_TIMEOUT: Final = 0x4
    STREAM_CLOSED: Final = 0x5
    FRAME_SIZE_ERROR: Final = 0x6
    REFUSED_STREAM: Final = 0x7
    CANCEL: Final = 0x8
    COMPRESSION_ERROR: Final = 0x9
    CONNECT_ERROR: Final = 0xA
    ENHANCE_YOUR_CALM: Final = 0xB
    INADEQUATE_SECURITY: Final = 0xC
    HTTP_1_1_REQUIRED: Final = 0xD


_MAX_WINDOW: Final = 2**31 - 1  # section 6.9.1
_MAX_STREAM_ID: Final = 2**31 - 1
_DEFAULT_WINDOW: Final = 65_535  # section 6.9.2
_DEFAULT_MAX_FRAME: Final = 16_384  # section 6.5.2
_MAX_FRAME_LIMIT: Final = 16_777_215

# 24-bit length as 16+8 bits, type, flags, 31-bit stream id (section 4.1).
_FRAME_HEADER: Final = struct.Struct(">HBBBL")
_pack_header: Final = _FRAME_HEADER.pack
_unpack_header: Final = _FRAME_HEADER.unpack_from
_U32: Final = struct.Struct(">L")
_SETTING: Final = struct.Struct(">HL")
_GOAWAY: Final = struct.Struct(">LL")

# Headers that repeat across requests on a connection, worth a dynamic-table entry.
_INDEXABLE: Final = frozenset(
    {
        ":method",
        ":scheme",
        ":authority",
        "authorization",
        "apns-topic",
        "apns-push-type",
        "apns-priority",
        "apns-expiration",
        "apns-channel-id",
    }
)

# Our receive windows: large, because APNs bodies are tiny and we never want the server to
# stall on us. The connection window is raised with a WINDOW_UPDATE right after the preface.
# A stream's window is never replenished: it is also the cap on one response body (APNs
# bodies are under 1 KiB, a broadcast channel list about 300 KB), so a body that never ends
# cannot grow past it (issue 10). Bytes buffered for an open stream are only given back to
# the connection window when the stream ends, so all open streams together never hold more
# than the connection window.
_LOCAL_STREAM_WINDOW: Final = 1 << 20
_LOCAL_CONNECTION_WINDOW: Final = 1 << 24
# SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce (section 6.5.2, 10.5.1), also the cap
# on a header block's encoded size, so a CONTINUATION flood cannot grow without end.
_MAX_HEADER_LIST_SIZE: Final = 1 << 16
# Error bodies and GOAWAY debug data larger than this are not parsed as JSON; APNs sends a
# few dozen bytes. ``detail`` keeps at most _DETAIL_CHARS characters of an unexpected body.
_MAX_JSON_BODY: Final = 4096
_DETAIL_CHARS: Final = 120

# Section 8.2.2: connection-specific header fields make a message malformed.
_CONNECTION_SPECIFIC: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)
# Section 8.2.1: a field name has no characters 0x00-0x20, 'A'-'Z', 0x7f-0xff, and no colon
# outside pseudo-headers (which are checked by name, section 8.3).
_FIELD_NAME: Final = re.compile(r"[\x21-\x39\x3b-\x40\x5b-\x7e]+\Z").match
# Regular response header names already found valid (a small bounded cache: names repeat).
_valid_names: Final[set[str]] = {"apns-id", "apns-unique-id", "content-length", "content-type"}
_VALID_NAMES_MAX: Final = 256


# Where a request body that could not go out at once waits (RequestHandle._body_wait).
_NOT_WAITING: Final = 0
_WAIT_CONNECTION: Final = 1
_WAIT_STREAM: Final = 2


def _frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    length = len(payload)
    return _pack_header(length >> 8, length & 0xFF, frame_type, flags, stream_id) + payload


# A request's response headers until they arrive: never extended (trailers extend the list the
# HEADERS frame brought, which replaces this one first).
_NO_HEADERS: Final[list[tuple[str, str]]] = []


class RequestHandle:
    """One request's state inside the core; returned by ``send_request``.

    The caller may keep it to cancel the request; everything else is internal.
    """

    __slots__ = (
        "_authorization",
        "_body",
        "_body_wait",
        "_headers",
        "_method",
        "_offset",
        "_path",
        "_received",
        "_response_body",
        "_response_headers",
        "_window",
        "context",
        "done",
        "status",
        "stream_id",
    )

    def __init__(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        authorization: str | None,
        context: Any,
    ) -> None:
        self._method = method
        self._path = path
        self._headers = headers
        self._body = body
        self._authorization = authorization
        self.context = context
        #: 0 while queued; the HTTP/2 stream id once opened.
        self.stream_id = 0
        self.status: int | None = None
        self.done = False
        self._offset = 0
        self._window = 0
        #: Where the unsent rest of the body waits: _NOT_WAITING, _WAIT_CONNECTION (in the
        #: connection's FIFO of bodies) or _WAIT_STREAM (for this stream's WINDOW_UPDATE).
        self._body_wait = _NOT_WAITING
        # Flow-controlled bytes received on the stream (padding included), handed back to
        # the connection window when the stream ends.
        self._received = 0
        # Both set only when a response arrives: an in-flight request holds no lists of its
        # own (two fewer containers per request for the garbage collector to scan while
        # thousands are in flight; with bulk sends the collector costs 1 to 3 us per
        # notification, issue 13).
        self._response_headers: list[tuple[str, str]] = _NO_HEADERS
        self._response_body: list[bytes] | None = None

    def __repr__(self) -> str:
        return f"<RequestHandle stream_id={self.stream_id} {self._method} {self._path}>"


class ApnsConnection:
    """A client-side HTTP/2 connection specialised for APNs requests.

    Args:
        authority: The ``:authority`` to send (the APNs host name, with ``:port`` if not 443).
        hold_until_success: Open only one stream until a first 2xx response, as APNs allows
            under token authentication before it has seen a valid token.
        scheme: The ``:scheme`` pseudo-header.
    """

    def __init__(
        self, authority: str, *, hold_until_success: bool = False, scheme: str = "https"
    ) -> None:
        self._constant_headers: tuple[tuple[str, str], ...] = (
            (":scheme", scheme),
            (":authority", authority),
        )
        # (":method", m) and the constant pseudo-headers, per method (HeaderEncoder caches
        # their encoding under this tuple).
        self._request_heads: dict[str, tuple[tuple[str, str], ...]] = {}
        self._hold = hold_until_success
        self._succeeded = False
        self._out: list[bytes] = []
        self._initiated = False
        self._encoder = HeaderEncoder()
        self._decoder = HeaderDecoder()
        self._streams: dict[int, RequestHandle] = {}
        self._queue: deque[RequestHandle] = deque()
        # Bodies waiting for the connection flow-control window, oldest first. Each window
        # update offers them in order and stops at the first that does not fit, so a body is
        # offered once per update however many wait behind it (section 6.9).
        self._blocked: deque[RequestHandle] = deque()
        self._next_stream_id = 1
        self._settings_received = False
        # One stream until the server's SETTINGS tell us its limit (the safe reading of 5.1.2).
        self._peer_max_streams = 1
        self._peer_initial_window = _DEFAULT_WINDOW
        self._peer_max_frame = _DEFAULT_MAX_FRAME
        self._send_window = _DEFAULT_WINDOW
        self._recv_window = _LOCAL_CONNECTION_WINDOW
        self._recv_unacked = 0
        self._inbuf = b""
        # (stream id, HEADERS flags, fragments, encoded size so far) while a header block
        # is split over CONTINUATION frames.
        self._continuation: tuple[int, int, list[bytes], int] | None = None
        self._pings: dict[bytes, float | None] = {}
        self._ping_counter = 0
        self._draining = False  # GOAWAY received or sent: no new streams
        self._terminated = False  # nothing more will happen on this connection
        self._goaway_last_stream_id: int | None = None

    # ----------------------------------------------------------------- properties

    @property
    def max_concurrent_streams(self) -> int:
        """The number of streams that may be open at once right now."""
        if self._hold and not self._succeeded:
            # One stream, but never more than the server allows (it may say 0, section 5.1.2).
            return 1 if self._peer_max_streams else 0
        return self._peer_max_streams

    @property
    def open_streams(self) -> int:
        """Requests sent and awaiting their response."""
        return len(self._streams)

    @property
    def queued(self) -> int:
        """Requests waiting for a stream (or for the server's first SETTINGS)."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Requests handed in and not yet answered: open plus queued."""
        return len(self._streams) + len(self._queue)

    @property
    def capacity(self) -> int:
        """How many more requests can start a stream right away (0 when draining)."""
        if self._draining:
            return 0
        free = min(self.max_concurrent_streams, (_MAX_STREAM_ID - self._next_stream_id) // 2 + 1)
        return max(0, free - len(self._streams) - len(self._queue))

    @property
    def settings_received(self) -> bool:
        """True once the server's first SETTINGS frame has arrived."""
        return self._settings_received

    @property
    def accepting(self) -> bool:
        """True while new requests may be sent on this connection."""
        return not self._draining and self._next_stream_id <= _MAX_STREAM_ID

    @property
    def streams_left(self) -> int:
        """How many more streams this connection may ever open (ids end at 2**31-1, 5.1.1)."""
        return max(0, (_MAX_STREAM_ID - self._next_stream_id) // 2 + 1)

    @property
    def finished(self) -> bool:
        """True when the connection can do nothing more: closed, or drained after GOAWAY."""
        return self._terminated or (self._draining and not self._streams and not self._queue)

    @property
    def peer_max_frame_size(self) -> int:
        """The server's SETTINGS_MAX_FRAME_SIZE."""
        return self._peer_max_frame

    @property
    def window_blocked(self) -> bool:
        """True while request bodies wait for the server's connection flow-control window.

        Such a connection carries at most one window of bodies per round trip, whatever its
        stream limit (section 6.9): more requests on it would only wait longer.
        """
        return bool(self._blocked)

    @property
    def send_window(self) -> int:
        """Bytes of DATA the connection-level flow-control window allows us to send now."""
        return self._send_window

    # ----------------------------------------------------------------- sending

    def initiate(self) -> None:
        """Queue the connection preface, our SETTINGS and a connection WINDOW_UPDATE."""
        if self._initiated:
            raise LocalProtocolError("initiate() was already called on this connection")
        self._initiated = True
        settings = b"".join(
            (
                _SETTING.pack(SETTINGS_ENABLE_PUSH, 0),
                _SETTING.pack(SETTINGS_INITIAL_WINDOW_SIZE, _LOCAL_STREAM_WINDOW),
                _SETTING.pack(SETTINGS_HEADER_TABLE_SIZE, 4096),
                _SETTING.pack(SETTINGS_MAX_HEADER_LIST_SIZE, _MAX_HEADER_LIST_SIZE),
            )
        )
        self._out.append(PREFACE)
        self._out.append(_frame(SETTINGS, 0, 0, settings))
        increment = _LOCAL_CONNECTION_WINDOW - _DEFAULT_WINDOW
        self._out.append(_frame(WINDOW_UPDATE, 0, 0, _U32.pack(increment)))

    def send_request(
        self,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        context: Any,
        *,
        method: str = "POST",
        authorization: str | None = None,
    ) -> RequestHandle:
        """Queue a request; its stream opens as soon as the limits allow.

        Args:
            path: The ``:path`` (e.g. ``/3/device/<token>``).
            headers: Regular headers, lowercase names, no pseudo-headers.
            body: The request body; empty for GET and DELETE.
            context: Any object; it is handed back in this request's events.
            method: The HTTP method.
            authorization: The value of the ``authorization`` header (token auth), if any.

        Raises:
            LocalProtocolError: the connection is not initiated, draining or closed.
        """
        if not self._initiated:
            raise LocalProtocolError("initiate() the connection before sending requests")
        if self._draining or self._terminated:
            raise LocalProtocolError("the connection is closing and takes no new requests")
        if self._next_stream_id > _MAX_STREAM_ID:
            # Section 5.1.1: stream ids cannot be reused; a new connection is needed.
            raise LocalProtocolError("the connection has used up its stream ids")
        handle = RequestHandle(method, path, headers, body, authorization, context)
        self._queue.append(handle)
        self._open_streams()
        return handle

    def cancel(self, handle: RequestHandle) -> None:
        """Give up on a request (e.g. its deadline passed): RST_STREAM CANCEL if it was sent."""
        if handle.done:
            return
        handle.done = True
        if handle.stream_id == 0:
            with contextlib.suppress(ValueError):
                self._queue.remove(handle)
            return
        if self._streams.pop(handle.stream_id, None) is not None and not self._terminated:
            self._out.append(_frame(RST_STREAM, 0, handle.stream_id, _U32.pack(ErrorCode.CANCEL)))
            self._release(handle)
        self._open_streams()

    def send_ping(self, now: float | None = None) -> bytes:
        """Queue a PING (section 6.7); its ack arrives as :class:`PingAcknowledged`.

        Args:
            now: The current time in seconds, to report the round trip when the ack arrives.

        Returns:
            The 8 opaque bytes sent.
        """
        self._ping_counter += 1
        payload = self._ping_counter.to_bytes(8, "big")
        self._pings[payload] = now
        self._out.append(_frame(PING, 0, 0, payload))
        return payload

    def close(self, error_code: int = ErrorCode.NO_ERROR) -> ConnectionTerminated:
        """Send GOAWAY and stop; every request not yet answered is returned in the event."""
        if not self._terminated and self._initiated:
            self._out.append(_frame(GOAWAY, 0, 0, _GOAWAY.pack(0, error_code)))
        return self._terminate(error_code, remote=False, error=None)

    def connection_lost(self) -> ConnectionTerminated:
        """Tell the core the transport is gone; returns what was left unanswered."""
        return self._terminate(ErrorCode.NO_ERROR, remote=True, error=None)

    def data_to_send(self) -> bytes:
        """Everything queued for the wire since the last call."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _open_streams(self) -> None:
        queue = self._queue
        if not queue or self._draining:
            return
        limit = self.max_concurrent_streams
        streams = self._streams
        while queue and len(streams) < limit and self._next_stream_id <= _MAX_STREAM_ID:
            handle = queue.popleft()
            stream_id = self._next_stream_id
            self._next_stream_id += 2
            handle.stream_id = stream_id
            handle._window = self._peer_initial_window
            streams[stream_id] = handle
            self._write_headers(handle)
            if handle._body:
                if self._blocked or self._send_window <= 0:
                    # Bodies already wait for the connection window: this one queues behind
                    # them without being offered (it could not go first anyway).
                    handle._body_wait = _WAIT_CONNECTION
                    self._blocked.append(handle)
                elif not self._write_body(handle):
                    self._park_body(handle)

    def _write_headers(self, handle: RequestHandle) -> None:
        # Pseudo-headers first (section 8.3), then authorization and the APNs headers.
        head = self._request_heads.get(handle._method)
        if head is None:
            head = ((":method", handle._method), *self._constant_headers)
            if len(self._request_heads) < 8:
                self._request_heads[handle._method] = head
        block = self._encoder.encode_request(
            head, handle._path, handle._authorization, handle._headers, _INDEXABLE
        )
        flags = FLAG_END_HEADERS if handle._body else FLAG_END_HEADERS | FLAG_END_STREAM
        max_frame = self._peer_max_frame
        length = len(block)
        if length <= max_frame:
            self._out.append(
                _pack_header(length >> 8, length & 0xFF, HEADERS, flags, handle.stream_id)
            )
            self._out.append(block)
            return
        # Section 6.10: the rest of a large block goes in CONTINUATION frames, back to back.
        self._out.append(
            _frame(HEADERS, flags & ~FLAG_END_HEADERS, handle.stream_id, block[:max_frame])
        )
        offset = max_frame
        while offset < len(block):
            chunk = block[offset : offset + max_frame]
            offset += max_frame
            last = offset >= len(block)
            self._out.append(
                _frame(CONTINUATION, FLAG_END_HEADERS if last else 0, handle.stream_id, chunk)
            )

    def _write_body(self, handle: RequestHandle) -> bool:
        """Send as much of the body as the windows allow; True when all of it is out."""
        body = handle._body
        offset = handle._offset
        total = len(body)
        out = self._out
        if (
            not offset
            and total <= self._send_window
            and total <= handle._window
            and total <= self._peer_max_frame
        ):
            # The common case: the whole body fits every window and one frame (section 6.9).
            self._send_window -= total
            handle._window -= total
            out.append(
                _pack_header(total >> 8, total & 0xFF, DATA, FLAG_END_STREAM, handle.stream_id)
            )
            out.append(body)
            handle._offset = total
            return True
        while offset < total:
            allowed = min(total - offset, self._send_window, handle._window, self._peer_max_frame)
            if allowed <= 0:
                break
            chunk = body[offset : offset + allowed] if (offset or allowed < total) else body
            offset += allowed
            self._send_window -= allowed
            handle._window -= allowed
            flags = FLAG_END_STREAM if offset == total else 0
            out.append(_pack_header(allowed >> 8, allowed & 0xFF, DATA, flags, handle.stream_id))
            out.append(chunk)
        handle._offset = offset
        return offset == total

    def _park_body(self, handle: RequestHandle) -> None:
        """``handle``'s body is partly out: queue the rest behind the window it waits for."""
        if handle._window <= 0 and self._send_window > 0:
            handle._body_wait = _WAIT_STREAM  # only its own stream's WINDOW_UPDATE helps
        else:
            handle._body_wait = _WAIT_CONNECTION
            self._blocked.append(handle)

    def _flush_blocked(self) -> None:
        """Send waiting bodies, oldest first, while the connection window lasts."""
        blocked = self._blocked
        streams = self._streams
        while blocked and self._send_window > 0:
            handle = blocked.popleft()
            handle._body_wait = _NOT_WAITING
            if handle.done or handle.stream_id not in streams:
                continue
            if self._write_body(handle):
                continue
            if handle._window <= 0 and self._send_window > 0:
                # Its stream's window is the limit: it waits for that stream's update and
                # the bodies behind it go on.
                handle._body_wait = _WAIT_STREAM
                continue
            # The connection window ran out in the middle of it: it stays first in line.
            handle._body_wait = _WAIT_CONNECTION
            blocked.appendleft(handle)
            break

    # ----------------------------------------------------------------- receiving

    def receive_data(self, data: bytes, now: float | None = None) -> list[Event]:
        """Feed bytes read from the transport; returns the events they complete.

        Args:
            data: Bytes from the server, any amount (partial frames are buffered).
            now: The current time, used for PING round trips.
        """
        events: list[Event] = []
        if self._terminated:
            return events
        buf = self._inbuf + data if self._inbuf else data
        pos = 0
        end = len(buf)
        try:
            while end - pos >= 9:
                hi, lo, frame_type, flags, stream_id = _unpack_header(buf, pos)
                length = (hi << 8) | lo
                if length > _DEFAULT_MAX_FRAME:
                    # We never raise our SETTINGS_MAX_FRAME_SIZE from 16,384 (section 4.2).
                    raise RemoteProtocolError(
                        f"frame of {length} bytes exceeds our SETTINGS_MAX_FRAME_SIZE of 16384",
                        ErrorCode.FRAME_SIZE_ERROR,
                    )
                stop = pos + 9 + length
                if stop > end:
                    break
                payload = buf[pos + 9 : stop]
                pos = stop
                if self._continuation is None and self._settings_received:
                    # The frames of every response, handled without _handle_frame's checks
                    # (which only matter before SETTINGS or inside a header block).
                    if frame_type == HEADERS:
                        self._handle_headers(flags, stream_id & 0x7FFFFFFF, payload, events)
                        continue
                    if frame_type == DATA:
                        self._handle_data(flags, stream_id & 0x7FFFFFFF, payload, events)
                        continue
                self._handle_frame(frame_type, flags, stream_id & 0x7FFFFFFF, payload, now, events)
                if self._is_terminated():
                    break
        except RemoteProtocolError as error:
            self._inbuf = b""
            self._protocol_error(error, events)
            return events
        except Exception as error:
            # Belt and braces (issue 10): whatever the bytes, the caller sees only the
            # library's protocol error. A bug here must end this connection cleanly, not
            # escape into the client and orphan every other request on it.
            self._inbuf = b""
            wrapped = RemoteProtocolError(
                f"internal error while reading the server's frames: {type(error).__name__}",
                ErrorCode.INTERNAL_ERROR,
            )
            wrapped.__cause__ = error
            self._protocol_error(wrapped, events)
            return events
        self._inbuf = buf[pos:] if pos < end else b""
        self._open_streams()
        return events

    def _is_terminated(self) -> bool:
        # A method, not the attribute, so type checkers do not assume frame handlers left
        # the flag as it was before the loop.
        return self._terminated

    def _handle_frame(
        self,
        frame_type: int,
        flags: int,
        stream_id: int,
        payload: bytes,
        now: float | None,
        events: list[Event],
    ) -> None:
        if self._continuation is not None:
            self._handle_continuation(frame_type, flags, stream_id, payload, events)
            return
        if not self._settings_received and (frame_type != SETTINGS or flags & FLAG_ACK):
            # Section 3.4: the server connection preface is a SETTINGS frame, sent first.
            raise RemoteProtocolError(
                f"the server's first frame is of type {frame_type}, not SETTINGS (section 3.4)",
                ErrorCode.PROTOCOL_ERROR,
            )
        if frame_type == HEADERS:
            self._handle_headers(flags, stream_id, payload, events)
        elif frame_type == DATA:
            self._handle_data(flags, stream_id, payload, events)
        elif frame_type == WINDOW_UPDATE:
            self._handle_window_update(stream_id, payload)
        elif frame_type == SETTINGS:
            self._handle_settings(flags, stream_id, payload, events)
        elif frame_type == PING:
            self._handle_ping(flags, stream_id, payload, now, events)
        elif frame_type == RST_STREAM:
            self._handle_rst_stream(stream_id, payload, events)
        elif frame_type == GOAWAY:
            self._handle_goaway(stream_id, payload, events)
        elif frame_type == PUSH_PROMISE:
            raise RemoteProtocolError(
                "PUSH_PROMISE received although we sent SETTINGS_ENABLE_PUSH=0 (section 8.4)",
                ErrorCode.PROTOCOL_ERROR,
            )
        elif frame_type == CONTINUATION:
            raise RemoteProtocolError(
                "CONTINUATION without a preceding HEADERS (section 6.10)",
                ErrorCode.PROTOCOL_ERROR,
            )
        elif frame_type == PRIORITY:
            if stream_id == 0:
                raise RemoteProtocolError(
                    "PRIORITY on stream 0 (section 6.3)", ErrorCode.PROTOCOL_ERROR
                )
            if len(payload) != 5:
                # Section 6.3 names a stream error; any stream error may end the connection
                # (section 5.4.1), as every other one does here.
                raise RemoteProtocolError(
                    f"PRIORITY frame of {len(payload)} bytes, not 5 (section 6.3)",
                    ErrorCode.FRAME_SIZE_ERROR,
                )
        # Unknown frame types are ignored (section 5.5).

    def _check_server_stream(self, stream_id: int, frame_name: str) -> None:
        if stream_id == 0:
            raise RemoteProtocolError(
                f"{frame_name} on stream 0 (RFC 9113 section 6)", ErrorCode.PROTOCOL_ERROR
            )
        if stream_id % 2 == 0 or stream_id >= self._next_stream_id:
            # Section 5.1: a frame on a stream we never opened ("idle") is a connection error.
            raise RemoteProtocolError(
                f"{frame_name} on stream {stream_id}, which we never opened (section 5.1)",
                ErrorCode.PROTOCOL_ERROR,
            )

    @staticmethod
    def _strip_padding(flags: int, payload: bytes, frame_name: str) -> bytes:
        if not flags & FLAG_PADDED:
            return payload
        if not payload:
            raise RemoteProtocolError(
                f"padded {frame_name} without a pad length", ErrorCode.FRAME_SIZE_ERROR
            )
        pad = payload[0]
        if pad >= len(payload):
            # Sections 6.1 and 6.2: padding as long as the payload is a PROTOCOL_ERROR.
            raise RemoteProtocolError(
                f"{frame_name} padding longer than its payload", ErrorCode.PROTOCOL_ERROR
            )
        return payload[1 : len(payload) - pad]

    def _handle_headers(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if stream_id == 0 or not stream_id & 1 or stream_id >= self._next_stream_id:
            self._check_server_stream(stream_id, "HEADERS")
        fragment = (
            self._strip_padding(flags, payload, "HEADERS") if flags & FLAG_PADDED else payload
        )
        if flags & FLAG_PRIORITY:
            if len(fragment) < 5:
                raise RemoteProtocolError(
                    "HEADERS priority fields truncated", ErrorCode.FRAME_SIZE_ERROR
                )
            fragment = fragment[5:]
        if flags & FLAG_END_HEADERS:
            self._header_block(stream_id, bool(flags & FLAG_END_STREAM), fragment, events)
        else:
            self._continuation = (stream_id, flags, [fragment], len(fragment))

    def _handle_continuation(
        self, frame_type: int, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        assert self._continuation is not None
        expected_stream, first_flags, fragments, size = self._continuation
        if frame_type != CONTINUATION or stream_id != expected_stream:
            # Section 6.10: nothing may come between HEADERS and its last CONTINUATION.
            raise RemoteProtocolError(
                f"expected CONTINUATION on stream {expected_stream}, got frame type "
                f"{frame_type} on stream {stream_id} (section 6.10)",
                ErrorCode.PROTOCOL_ERROR,
            )
        if payload:
            size += len(payload)
            if size > _MAX_HEADER_LIST_SIZE:
                # A header block that never ends (section 10.5: CONTINUATION frames are a
                # known way to make a peer buffer without bound). Ours has a cap.
                raise RemoteProtocolError(
                    f"header block on stream {expected_stream} exceeds "
                    f"{_MAX_HEADER_LIST_SIZE} bytes (section 10.5)",
                    ErrorCode.ENHANCE_YOUR_CALM,
                )
            fragments.append(payload)
            self._continuation = (expected_stream, first_flags, fragments, size)
        if flags & FLAG_END_HEADERS:
            self._continuation = None
            block = b"".join(fragments)
            self._header_block(expected_stream, bool(first_flags & FLAG_END_STREAM), block, events)

    def _header_block(
        self, stream_id: int, end_stream: bool, block: bytes, events: list[Event]
    ) -> None:
        # Always decode, even for streams we gave up on: the HPACK table must stay in step
        # with the server's encoder (section 4.3).
        headers = self._decoder.decode(block)
        handle = self._streams.get(stream_id)
        if handle is None:
            return
        if handle.status is None:
            status = _check_response_headers(headers, stream_id, len(block))
            if 100 <= status < 200:
                if end_stream:
                    raise RemoteProtocolError(
                        "informational response ends the stream (section 8.1)",
                        ErrorCode.PROTOCOL_ERROR,
                    )
                return  # 1xx: interim, the real response follows (section 8.1).
            handle.status = status
            handle._response_headers = headers
        else:
            if not end_stream:
                raise RemoteProtocolError(
                    "trailers without END_STREAM (section 8.1)", ErrorCode.PROTOCOL_ERROR
                )
            for name, _ in headers:
                if name not in _valid_names:
                    # Section 8.1: no pseudo-headers in trailers (and the usual name rules).
                    _check_name(name, stream_id)
            handle._response_headers.extend(headers)
            if _header_list_size(handle._response_headers) > _MAX_HEADER_LIST_SIZE:
                raise _too_many_headers(stream_id)
        if end_stream:
            self._complete(handle, events)

    def _handle_data(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0 or not stream_id & 1 or stream_id >= self._next_stream_id:
            self._check_server_stream(stream_id, "DATA")
        length = len(payload)
        # Flow control counts the whole frame payload, padding included (section 6.9.1).
        self._recv_window -= length
        if self._recv_window < 0:
            raise RemoteProtocolError(
                "server sent more DATA than our connection window allows (section 6.9.1)",
                ErrorCode.FLOW_CONTROL_ERROR,
            )
        data = self._strip_padding(flags, payload, "DATA")
        handle = self._streams.get(stream_id)
        if handle is None:
            # A stream we cancelled: nothing is kept, so the window is given back at once.
            self._consumed(length)
            return
        if handle.status is None:
            raise RemoteProtocolError(
                f"DATA before response HEADERS on stream {stream_id} (section 8.1)",
                ErrorCode.PROTOCOL_ERROR,
            )
        handle._received += length
        if handle._received >= _LOCAL_STREAM_WINDOW:
            if handle._received > _LOCAL_STREAM_WINDOW:
                raise RemoteProtocolError(
                    f"server overran the flow-control window of stream {stream_id}",
                    ErrorCode.FLOW_CONTROL_ERROR,
                )
            if not flags & FLAG_END_STREAM:
                # The window is the body cap and is never replenished: the server cannot
                # finish this body, so it would wait for window forever (issue 10).
                raise RemoteProtocolError(
                    f"response body on stream {stream_id} reached the "
                    f"{_LOCAL_STREAM_WINDOW}-byte cap without END_STREAM",
                    ErrorCode.ENHANCE_YOUR_CALM,
                )
        if data:
            if handle._response_body is None:
                handle._response_body = [data]
            else:
                handle._response_body.append(data)
        if flags & FLAG_END_STREAM:
            self._complete(handle, events)

    def _consumed(self, length: int) -> None:
        """Give ``length`` bytes back to the connection receive window, in batches."""
        self._recv_unacked += length
        if self._recv_unacked >= _LOCAL_CONNECTION_WINDOW // 2:
            self._out.append(_frame(WINDOW_UPDATE, 0, 0, _U32.pack(self._recv_unacked)))
            self._recv_window += self._recv_unacked
            self._recv_unacked = 0

    def _release(self, handle: RequestHandle) -> None:
        """``handle``'s stream ended: its buffered bytes no longer hold connection window."""
        if handle._received:
            self._consumed(handle._received)
            handle._received = 0

    def _complete(self, handle: RequestHandle, events: list[Event]) -> None:
        del self._streams[handle.stream_id]
        handle.done = True
        if handle._offset < len(handle._body):
            # The whole response came while our body was still waiting for flow-control
            # window. Section 8.1: stop sending it with RST_STREAM(NO_ERROR), which also
            # closes the stream for the server, so it no longer counts against
            # SETTINGS_MAX_CONCURRENT_STREAMS when the next stream opens (issue 10).
            self._out.append(_frame(RST_STREAM, 0, handle.stream_id, _U32.pack(ErrorCode.NO_ERROR)))
        if handle._received:
            self._release(handle)
        status = handle.status
        assert status is not None
        apns_id = apns_unique_id = reason = detail = None
        for name, value in handle._response_headers:
            if name == "apns-id":
                apns_id = value
            elif name == "apns-unique-id":
                apns_unique_id = value
        chunks = handle._response_body
        body = b"" if chunks is None else b"".join(chunks)
        timestamp_ms = None
        if body:
            reason, timestamp_ms, detail = _parse_error_body(body)
        if 200 <= status < 300:
            detail = None
        if 200 <= status < 300 or (400 <= status < 500 and status not in (403, 429)):
            # Any answer but an authentication failure (403) or throttling (429) shows that
            # APNs accepted the provider token: lift the one-stream hold. A batch whose first
            # device tokens are dead (410, 400 BadDeviceToken) must not run one request per
            # round trip.
            self._succeeded = True
        events.append(
            new_response(
                handle.stream_id,
                handle.context,
                status,
                apns_id,
                apns_unique_id,
                reason,
                timestamp_ms,
                handle._response_headers,
                body,
                detail,
            )
        )

    def _handle_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise RemoteProtocolError(
                "WINDOW_UPDATE payload must be 4 bytes (section 6.9)", ErrorCode.FRAME_SIZE_ERROR
            )
        increment = _U32.unpack(payload)[0] & 0x7FFFFFFF
        if increment == 0:
            raise RemoteProtocolError(
                "WINDOW_UPDATE with an increment of 0 (section 6.9)", ErrorCode.PROTOCOL_ERROR
            )
        if stream_id == 0:
            self._send_window += increment
            if self._send_window > _MAX_WINDOW:
                raise RemoteProtocolError(
                    "connection flow-control window exceeds 2**31-1 (section 6.9.1)",
                    ErrorCode.FLOW_CONTROL_ERROR,
                )
        else:
            handle = self._streams.get(stream_id)
            if handle is None:
                if stream_id % 2 == 0 or stream_id >= self._next_stream_id:
                    self._check_server_stream(stream_id, "WINDOW_UPDATE")
                return  # a closed stream: allowed and meaningless (section 6.9)
            handle._window += increment
            if handle._window > _MAX_WINDOW:
                raise RemoteProtocolError(
                    f"stream {stream_id} flow-control window exceeds 2**31-1 (section 6.9.1)",
                    ErrorCode.FLOW_CONTROL_ERROR,
                )
            if handle._body_wait == _WAIT_STREAM:
                # Only this stream can move: no pass over the other waiting bodies.
                handle._body_wait = _NOT_WAITING
                if not self._write_body(handle):
                    self._park_body(handle)
            return
        self._flush_blocked()

    def _handle_settings(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if stream_id != 0:
            raise RemoteProtocolError(
                "SETTINGS on a stream (section 6.5)", ErrorCode.PROTOCOL_ERROR
            )
        if flags & FLAG_ACK:
            if payload:
                raise RemoteProtocolError(
                    "SETTINGS ack with a payload (section 6.5)", ErrorCode.FRAME_SIZE_ERROR
                )
            return
        if len(payload) % 6:
            raise RemoteProtocolError(
                "SETTINGS payload not a multiple of 6 bytes (section 6.5)",
                ErrorCode.FRAME_SIZE_ERROR,
            )
        changes: dict[int, int] = {}
        initial_window = self._peer_initial_window
        for offset in range(0, len(payload), 6):
            identifier, value = _SETTING.unpack_from(payload, offset)
            changes[identifier] = value
            self._apply_setting(identifier, value)
        if initial_window != self._peer_initial_window:
            # Section 6.9.2: the change applies to every open stream's window. Once per frame,
            # not per entry: a frame of 2,730 entries must not cost 2,730 passes (issue 10).
            delta = self._peer_initial_window - initial_window
            for handle in self._streams.values():
                handle._window += delta
                if handle._window > _MAX_WINDOW:
                    raise RemoteProtocolError(
                        "a stream's window exceeds 2**31-1 after SETTINGS (section 6.9.2)",
                        ErrorCode.FLOW_CONTROL_ERROR,
                    )
                if handle._body_wait == _WAIT_STREAM and handle._window > 0:
                    # Its stream window opened: back in line for the connection window.
                    handle._body_wait = _WAIT_CONNECTION
                    self._blocked.append(handle)
        if not self._settings_received:
            self._settings_received = True
            if SETTINGS_MAX_CONCURRENT_STREAMS not in changes:
                # Section 5.1.2: no limit unless the server sets one. The client's own
                # in-flight limit still bounds what it hands us.
                self._peer_max_streams = _MAX_STREAM_ID
        self._out.append(_frame(SETTINGS, FLAG_ACK, 0, b""))
        events.append(
            SettingsReceived(changes=changes, max_concurrent_streams=self.max_concurrent_streams)
        )
        self._flush_blocked()

    def _apply_setting(self, identifier: int, value: int) -> None:
        if identifier == SETTINGS_MAX_CONCURRENT_STREAMS:
            self._peer_max_streams = value
        elif identifier == SETTINGS_INITIAL_WINDOW_SIZE:
            if value > _MAX_WINDOW:
                raise RemoteProtocolError(
                    f"SETTINGS_INITIAL_WINDOW_SIZE {value} exceeds 2**31-1 (section 6.5.2)",
                    ErrorCode.FLOW_CONTROL_ERROR,
                )
            self._peer_initial_window = value  # open streams: see _handle_settings
        elif identifier == SETTINGS_MAX_FRAME_SIZE:
            if not _DEFAULT_MAX_FRAME <= value <= _MAX_FRAME_LIMIT:
                raise RemoteProtocolError(
                    f"SETTINGS_MAX_FRAME_SIZE {value} outside 16384..16777215 (section 6.5.2)",
                    ErrorCode.PROTOCOL_ERROR,
                )
            self._peer_max_frame = value
        elif identifier == SETTINGS_HEADER_TABLE_SIZE:
            self._encoder.set_max_table_size(value)
        elif identifier == SETTINGS_ENABLE_PUSH and value != 0:
            # Section 6.5.2: a server must not set it to 1, and no other value is valid.
            raise RemoteProtocolError(
                f"server sent SETTINGS_ENABLE_PUSH {value}; only 0 is allowed (section 6.5.2)",
                ErrorCode.PROTOCOL_ERROR,
            )
        # SETTINGS_MAX_HEADER_LIST_SIZE is advisory; APNs requests are far below any limit.
        # Unknown settings are ignored (section 6.5.2).

    def _handle_ping(
        self,
        flags: int,
        stream_id: int,
        payload: bytes,
        now: float | None,
        events: list[Event],
    ) -> None:
        if stream_id != 0:
            raise RemoteProtocolError("PING on a stream (section 6.7)", ErrorCode.PROTOCOL_ERROR)
        if len(payload) != 8:
            raise RemoteProtocolError(
                "PING payload must be 8 bytes (section 6.7)", ErrorCode.FRAME_SIZE_ERROR
            )
        if flags & FLAG_ACK:
            if payload in self._pings:
                sent = self._pings.pop(payload)
                round_trip = now - sent if now is not None and sent is not None else None
                events.append(PingAcknowledged(payload=payload, round_trip=round_trip))
            return
        self._out.append(_frame(PING, FLAG_ACK, 0, payload))

    def _handle_rst_stream(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if len(payload) != 4:
            raise RemoteProtocolError(
                "RST_STREAM payload must be 4 bytes (section 6.4)", ErrorCode.FRAME_SIZE_ERROR
            )
        handle = self._streams.pop(stream_id, None)
        if handle is None:
            if stream_id == 0 or stream_id % 2 == 0 or stream_id >= self._next_stream_id:
                self._check_server_stream(stream_id, "RST_STREAM")
            # A reset after a complete response (nginx sends NO_ERROR here, section 8.1) or
            # for a stream we cancelled: nothing is lost.
            return
        handle.done = True
        self._release(handle)
        error_code = _U32.unpack(payload)[0]
        events.append(
            StreamReset(
                stream_id=stream_id,
                context=handle.context,
                error_code=error_code,
                retry_safe=error_code == ErrorCode.REFUSED_STREAM,
            )
        )

    def _handle_goaway(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id != 0:
            raise RemoteProtocolError("GOAWAY on a stream (section 6.8)", ErrorCode.PROTOCOL_ERROR)
        if len(payload) < 8:
            raise RemoteProtocolError(
                "GOAWAY payload shorter than 8 bytes (section 6.8)", ErrorCode.FRAME_SIZE_ERROR
            )
        last_stream_id, error_code = _GOAWAY.unpack_from(payload)
        last_stream_id &= 0x7FFFFFFF
        debug_data = payload[8:]
        self._draining = True
        if self._goaway_last_stream_id is not None:
            # Section 6.8: a later GOAWAY may lower, never raise, the last stream id.
            last_stream_id = min(last_stream_id, self._goaway_last_stream_id)
        self._goaway_last_stream_id = last_stream_id
        unprocessed: list[Any] = []
        # Streams above last_stream_id were not processed and may be retried (section 6.8).
        for sid in sorted(s for s in self._streams if s > last_stream_id):
            handle = self._streams.pop(sid)
            handle.done = True
            self._release(handle)
            unprocessed.append(handle.context)
        while self._queue:
            handle = self._queue.popleft()
            handle.done = True
            unprocessed.append(handle.context)
        reason, _, detail = _parse_error_body(debug_data) if debug_data else (None, None, None)
        events.append(
            ConnectionTerminated(
                error_code=error_code,
                last_stream_id=last_stream_id,
                reason=reason,
                detail=detail,
                debug_data=debug_data,
                remote=True,
                unprocessed=unprocessed,
                abandoned=[],
            )
        )

    # ----------------------------------------------------------------- termination

    def _protocol_error(self, error: RemoteProtocolError, events: list[Event]) -> None:
        # Section 5.4.1: on a connection error send GOAWAY with the code, then close.
        if not self._terminated:
            debug = str(error).encode("utf-8")[:256]
            self._out.append(_frame(GOAWAY, 0, 0, _GOAWAY.pack(0, error.error_code) + debug))
        events.append(self._terminate(error.error_code, remote=False, error=error))

    def _terminate(
        self, error_code: int, *, remote: bool, error: RemoteProtocolError | None
    ) -> ConnectionTerminated:
        self._draining = True
        self._terminated = True
        unprocessed: list[Any] = []
        for handle in self._queue:
            handle.done = True
            unprocessed.append(handle.context)
        self._queue.clear()
        abandoned: list[Any] = []
        for sid in sorted(self._streams):
            handle = self._streams[sid]
            handle.done = True
            abandoned.append(handle.context)
        self._streams.clear()
        self._blocked.clear()
        return ConnectionTerminated(
            error_code=error_code,
            last_stream_id=self._goaway_last_stream_id,
            reason=None,
            debug_data=b"",
            remote=remote,
            unprocessed=unprocessed,
            abandoned=abandoned,
            error=error,
        )


def _malformed(stream_id: int, rule: str) -> RemoteProtocolError:
    # Section 8.1.1: a malformed response is a stream error of type PROTOCOL_ERROR; like every
    # stream error here it ends the connection (section 5.4.1), so the request is a failed
    # attempt, never an accepted notification.
    return RemoteProtocolError(
        f"malformed response on stream {stream_id}: {rule}", ErrorCode.PROTOCOL_ERROR
    )


def _too_many_headers(stream_id: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"response headers on stream {stream_id} exceed our SETTINGS_MAX_HEADER_LIST_SIZE of "
        f"{_MAX_HEADER_LIST_SIZE} (section 10.5.1)",
        ErrorCode.ENHANCE_YOUR_CALM,
    )


def _check_name(name: str, stream_id: int) -> None:
    """Raise unless ``name`` may be a regular response header (sections 8.2.1, 8.2.2, 8.3)."""
    if name.startswith(":"):
        raise _malformed(
            stream_id,
            f"pseudo-header {name[:40]!r} after a regular header, repeated, or not allowed in "
            "a response (sections 8.3, 8.3.2)",
        )
    if name in _CONNECTION_SPECIFIC:
        raise _malformed(stream_id, f"connection-specific header {name!r} (section 8.2.2)")
    if _FIELD_NAME(name) is None:
        raise _malformed(
            stream_id,
            f"header name {name[:40]!r} is empty or has uppercase or invalid characters "
            "(section 8.2.1)",
        )
    if len(_valid_names) < _VALID_NAMES_MAX:
        _valid_names.add(name)


def _check_response_headers(
    headers: list[tuple[str, str]], stream_id: int, block_length: int
) -> int:
    """Validate a response's header list (of a ``block_length``-byte block); returns ``:status``.

    Exactly one ``:status`` and no other pseudo-header, before every regular header (sections
    8.3, 8.3.2), so it comes first; valid lowercase names, none connection-specific (8.2.1,
    8.2.2); at most our SETTINGS_MAX_HEADER_LIST_SIZE (section 6.5.2).
    """
    # This runs for every response: the common case is two headers and a few dict lookups.
    if not headers or headers[0][0] != ":status":
        if any(name == ":status" for name, _ in headers):
            raise _malformed(stream_id, ":status after a regular header (section 8.3)")
        raise _malformed(stream_id, "no :status pseudo-header (section 8.3.2)")
    status = _STATUS_CODES.get(headers[0][1])
    if status is None:
        # RFC 9110 section 15: exactly three ASCII digits, 100 to 599 (str.isdigit() alone
        # also accepts "²²²", which int() then rejects, and Arabic-Indic digits, which it
        # reads as 200).
        raise _malformed(
            stream_id,
            f":status {headers[0][1][:10]!r} is not three digits 100-599 (RFC 9110 section 15)",
        )
    valid = _valid_names
    for name, _ in headers[1:]:
        if name not in valid:
            _check_name(name, stream_id)
    # Decoded strings are at most 8/5 of their Huffman-coded length (the shortest code is 5
    # bits) and a table entry at most 4,096 bytes: only a list that could be over the limit
    # is measured.
    if (
        2 * block_length + 4128 * len(headers) > _MAX_HEADER_LIST_SIZE
        and _header_list_size(headers) > _MAX_HEADER_LIST_SIZE
    ):
        raise _too_many_headers(stream_id)
    return status


def _header_list_size(headers: list[tuple[str, str]]) -> int:
    # Section 6.5.2 counts octets plus 32 per field; len() of the decoded (surrogate-escaped)
    # text is close enough for a bound that is far above anything APNs sends.
    return sum(len(name) + len(value) + 32 for name, value in headers)


# Section 15 of RFC 9110: the valid :status values, as the strings that carry them.
_STATUS_CODES: Final = {str(code): code for code in range(100, 600)}


def _parse_error_body(body: bytes) -> tuple[str | None, int | None, str | None]:
    """Read ``reason`` and ``timestamp`` from an APNs JSON body.

    Returns:
        ``(reason, timestamp, detail)``. Anything that is not the expected small JSON object
        (too big, not JSON, nested too deep for the parser, no string ``reason``) gives
        ``reason`` None and ``detail``, a short printable copy of the text for messages.
    """
    document: Any = None
    if len(body) <= _MAX_JSON_BODY and body[:1] == b"{":
        # RecursionError: deeply nested JSON ("{" * 3000) must not escape the core.
        with contextlib.suppress(ValueError, RecursionError):
            document = json.loads(body)
    reason = timestamp = None
    if isinstance(document, dict):
        value = document.get("reason")
        reason = value if isinstance(value, str) else None
        value = document.get("timestamp")
        timestamp = value if isinstance(value, int) and not isinstance(value, bool) else None
    if reason is not None:
        return reason, timestamp, None
    return None, timestamp, _detail(body)


def _detail(raw: bytes) -> str:
    text = raw[: _DETAIL_CHARS * 4].decode("utf-8", "replace")
    shortened = "".join(ch if ch.isprintable() else "?" for ch in text[:_DETAIL_CHARS])
    return (
        shortened + "..."
        if len(text) > _DETAIL_CHARS or len(raw) > _DETAIL_CHARS * 4
        else shortened
    )
