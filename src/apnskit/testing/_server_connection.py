"""A sans-I/O, server-side APNs HTTP/2 connection: bytes in, replies decided by an app, bytes out.

Theory of operation
-------------------
:class:`ServerConnection` wraps h2's server-side ``H2Connection``. It assembles each request
(HEADERS, then DATA frames up to END_STREAM) into a :class:`ReceivedRequest` and hands it to
the *app*, a callable ``app(request) -> Reply | Fault``. The app decides what happens:

* a :class:`Reply` is sent at once (HEADERS with ``:status`` and ``apns-id``..., then a JSON
  body when there is a reason);
* ``Fault.delay(seconds, reply)`` sends the reply later: :meth:`ServerConnection.next_timer`
  says when, and the I/O layer calls :meth:`ServerConnection.tick` then;
* ``Fault.reset(error_code)`` answers with RST_STREAM (7 is REFUSED_STREAM, RFC 9113 section
  8.7: the request was not processed and may be retried);
* ``Fault.goaway(...)`` sends GOAWAY (RFC 9113 section 6.8) with a last stream id and a JSON
  debug payload such as ``{"reason": "Shutdown"}``, as APNs does, then lingers a moment so
  the peer can read it before :attr:`ServerConnection.should_close` turns true;
* ``Fault.drop()`` makes :attr:`ServerConnection.should_close` true at once: the I/O layer
  drops the TCP connection with whatever is still in flight;
* ``Fault.no_reply()`` leaves the stream open forever.

The I/O layer's loop is::

    conn = ServerConnection(app)
    conn.initiate()
    send(conn.data_to_send())
    while not conn.should_close:
        conn.receive_data(read(), now())      # or conn.tick(now()) when next_timer() passes
        send(conn.data_to_send())

Times given to :meth:`~ServerConnection.receive_data` and :meth:`~ServerConnection.tick` are
from any monotonic clock; they only schedule delayed replies. The APNs clock used for
provider tokens belongs to the app.

Stream limit: APNs allows one stream on a token-authenticated connection until a request
succeeds, then raises SETTINGS_MAX_CONCURRENT_STREAMS (apns-reference.md, "Connection").
``hold_streams_until_success=True`` does the same: the first 2xx reply raises the limit to
``max_concurrent_streams``. :meth:`~ServerConnection.set_max_concurrent_streams` changes it
mid-connection with a new SETTINGS frame.

Which limit is in force follows RFC 9113 section 6.5.3: a client may act on a SETTINGS frame
as soon as it reads it, and the server can rely on it only once the ACK arrives. So the limit
enforced is the highest of the last acknowledged value and every value sent since: a raise
takes effect when it is sent (no client acting on it can break it), a cut once acknowledged.
Before the client acknowledges the preface's SETTINGS no limit is in force, the initial value
of section 6.5.2 (clients may send requests before reading the server's preface, section
3.4; nghttp2 opens up to 100 streams then). h2 applies a local setting only on its ACK, raises
included, so this connection counts open streams and enforces the limit itself (issue 17:
h2load's eager streams got the connection killed). A stream beyond it is a client bug (section
5.1.2), answered by default with RST_STREAM REFUSED_STREAM, which the section allows and
clients retry; with ``strict_stream_limit=True`` by GOAWAY PROTOCOL_ERROR, so the bug shows
loudly. Either way it is recorded in :attr:`ServerConnection.peer_errors`.

Speed: h2 costs a lot per request on CPython. Header validation and normalisation are
switched off (the app validates what APNs validates), and response headers are encoded by
:class:`_LiteralEncoder` (HPACK literals without Huffman coding, never indexed), which is a
fraction of hpack's cost. Request bodies are acknowledged for the connection window in bulk
instead of one WINDOW_UPDATE pair per request.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RequestReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings

from apnskit._core.hpack_codec import encode_integer

__all__ = [
    "App",
    "ConnectionContext",
    "Fault",
    "ReceivedRequest",
    "Reply",
    "ServerConnection",
]


class _NoProviderTokens(logging.Filter):
    """Drop hpack's DEBUG records of decoded headers: they would log every client's JWT.

    The server side decodes requests with hpack, whose ``hpack.hpack`` logger reports each
    decoded header at DEBUG, ``authorization: bearer <JWT>`` included. apnskit promises no
    secret in any log line, in users' test suites too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = f"{record.msg} {record.args!r}"
        return "authorization" not in text and "bearer" not in text


_hpack_logger = logging.getLogger("hpack.hpack")
if not any(isinstance(f, _NoProviderTokens) for f in _hpack_logger.filters):
    _hpack_logger.addFilter(_NoProviderTokens())

#: REFUSED_STREAM (RFC 9113 section 7): the stream was not processed; safe to retry.
REFUSED_STREAM = 7
#: PROTOCOL_ERROR (RFC 9113 section 7).
PROTOCOL_ERROR = 1
# RFC 9113 section 6.5.2: SETTINGS_MAX_CONCURRENT_STREAMS starts unlimited; stream ids are
# 31-bit, so no connection can have more open streams than this.
_NO_LIMIT = 2**31 - 1

# How long a connection stays open after sending GOAWAY so the peer can read it: closing at
# once, with the peer's frames unread, makes the kernel send RST and the GOAWAY may be lost.
_GOAWAY_LINGER = 1.0
# Connection-level flow control: announce a large window once, top it up in bulk.
_CONNECTION_WINDOW = 16 * 1024 * 1024
_STREAM_WINDOW = 1024 * 1024


@dataclass(eq=False)
class ConnectionContext:
    """What an app knows about the connection a request arrived on.

    Attributes:
        connection_id: A number unique among the server's connections.
        client_certificate_info: For mutual TLS, what the client certificate allows (an
            ``apnskit._credentials.certinfo.CertificateInfo``), else ``None``.
        state: Free space for the app's per-connection state (e.g. the provider token last
            presented and when).
    """

    connection_id: int
    client_certificate_info: Any = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One complete request, as the app sees it.

    Attributes:
        method: ``:method``, e.g. ``"POST"``.
        path: ``:path``, e.g. ``"/3/device/<token>"``.
        headers: Regular (non-pseudo) headers, names lowercase; for a repeated header the last
            value (see ``duplicate_headers``).
        body: The request body, all DATA frames joined.
        stream_id: The HTTP/2 stream it arrived on.
        connection_id: The connection it arrived on.
        duplicate_headers: Names of headers that appeared more than once.
        connection: The connection's :class:`ConnectionContext`.
    """

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    stream_id: int
    connection_id: int
    duplicate_headers: tuple[str, ...] = ()
    connection: ConnectionContext | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        return (
            f"ReceivedRequest(method={self.method!r}, path={self.path!r}, "
            f"headers={redact_headers(self.headers)!r}, body={len(self.body)} bytes, "
            f"stream_id={self.stream_id}, connection_id={self.connection_id})"
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP response to send on the request's stream.

    Attributes:
        status: The HTTP status.
        headers: Extra response headers, e.g. ``(("apns-id", "..."),)``.
        reason: APNs' reason; when given, the body is ``{"reason": ...}`` (plus ``timestamp``).
        timestamp_ms: For 410 answers: when the token stopped being valid, ms since the epoch.
        body: A raw body, sent instead of the JSON one built from ``reason``.
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    reason: str | None = None
    timestamp_ms: int | None = None
    body: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise TypeError(f"Reply.status: {self.status!r} must be an int")
        if not 100 <= self.status <= 599:
            raise ValueError(f"Reply.status: {self.status} must be within 100..599")

    def encoded_body(self) -> bytes:
        """The bytes of the body: ``body`` if given, else Apple's JSON error body, else empty."""
        if self.body is not None:
            return self.body
        if self.reason is None:
            return b""
        content: dict[str, object] = {"reason": self.reason}
        if self.timestamp_ms is not None:
            content["timestamp"] = self.timestamp_ms
        return json.dumps(content, separators=(",", ":")).encode()


FaultKind = Literal["goaway", "reset", "drop", "delay", "no_reply"]


@dataclass(frozen=True, slots=True)
class Fault:
    """Something other than a plain reply; build one with the static constructors.

    Attributes:
        kind: ``"goaway"``, ``"reset"``, ``"drop"``, ``"delay"`` or ``"no_reply"``.
        error_code: HTTP/2 error code for ``goaway`` and ``reset``.
        last_stream_id: For ``goaway``: the last stream processed (``None``: see
            :meth:`goaway`).
        debug_data: For ``goaway``: the debug data bytes.
        seconds: For ``delay``: how long to wait.
        reply: For ``delay``: the reply sent after the wait; for ``goaway``: an optional reply
            sent on the stream just before the GOAWAY.
    """

    kind: FaultKind
    error_code: int = 0
    last_stream_id: int | None = None
    debug_data: bytes = b""
    seconds: float = 0.0
    reply: Reply | None = None

    @staticmethod
    def goaway(
        *,
        last_stream_id: int | None = None,
        error_code: int = 0,
        reason: str | None = "Shutdown",
        debug_data: bytes | None = None,
        reply: Reply | None = None,
    ) -> Fault:
        """Close the connection with GOAWAY, as APNs does when it shuts down or drops a client.

        Args:
            last_stream_id: The last stream the server claims to have processed. ``None``: the
                request's own stream if ``reply`` is given, else the highest stream handled
                before it (so this request and later ones are safe to retry, RFC 9113
                section 6.8).
            error_code: The GOAWAY error code (0 is NO_ERROR).
            reason: Put ``{"reason": reason}`` in the debug data (APNs does); ``None``: none.
            debug_data: Raw debug data, used instead of ``reason``.
            reply: A reply sent on the request's stream before the GOAWAY.
        """
        if debug_data is None:
            debug_data = b"" if reason is None else json.dumps({"reason": reason}).encode()
        if last_stream_id is not None and last_stream_id < 0:
            raise ValueError(f"Fault.goaway last_stream_id: {last_stream_id} must be >= 0")
        return Fault("goaway", error_code, last_stream_id, debug_data, 0.0, reply)

    @staticmethod
    def reset(error_code: int = REFUSED_STREAM) -> Fault:
        """Answer with RST_STREAM; the default code 7 is REFUSED_STREAM (RFC 9113 section 8.7)."""
        return Fault("reset", error_code=error_code)

    @staticmethod
    def drop() -> Fault:
        """Drop the TCP connection at once, leaving every request on it unanswered."""
        return Fault("drop")

    @staticmethod
    def delay(seconds: float, reply: Reply) -> Fault:
        """Send ``reply`` after ``seconds``."""
        if seconds < 0:
            raise ValueError(f"Fault.delay seconds: {seconds} must be >= 0")
        return Fault("delay", seconds=seconds, reply=reply)

    @staticmethod
    def no_reply() -> Fault:
        """Never answer: the stream stays open until the client gives up or the connection ends."""
        return Fault("no_reply")


App = Callable[[ReceivedRequest], "Reply | Fault"]
"""The app's type: decides the answer to each request."""


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the provider token hidden, for reprs and logs."""
    if "authorization" not in headers:
        return headers
    shown = dict(headers)
    scheme = shown["authorization"].partition(" ")[0]
    shown["authorization"] = f"{scheme} <redacted>"
    return shown


# -- HPACK ------------------------------------------------------------------------------------

# RFC 7541 Appendix A: full (name, value) matches for :status.
_STATUS_INDEXED = {200: 8, 204: 9, 206: 10, 304: 11, 400: 12, 404: 13, 500: 14}


def _literal(name: bytes, value: bytes) -> bytes:
    # RFC 7541 section 6.2.2: literal header field without indexing, new name, no Huffman.
    return (
        b"\x00" + encode_integer(len(name), 7, 0) + name + encode_integer(len(value), 7, 0) + value
    )


class _LiteralEncoder:
    """An HPACK encoder that never uses the dynamic table and never Huffman-codes.

    Both choices are allowed by RFC 7541 and make encoding stateless, hence cheap and
    cacheable. A change of the peer's SETTINGS_HEADER_TABLE_SIZE is acknowledged with a
    dynamic table size update (section 6.3) at the start of the next block, as section 4.2
    requires.
    """

    def __init__(self) -> None:
        self._table_size = 4096
        self._pending_size_update = False
        self._names: dict[bytes, bytes] = {}

    @property
    def header_table_size(self) -> int:
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._table_size = value
        self._pending_size_update = True

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        parts: list[bytes] = []
        if self._pending_size_update:
            self._pending_size_update = False
            parts.append(encode_integer(min(self._table_size, 4096), 5, 0x20))
        for name, value in headers:
            if name == b":status":
                status = int(value)
                index = _STATUS_INDEXED.get(status)
                if index is not None:
                    parts.append(bytes((0x80 | index,)))
                else:
                    # Literal without indexing, name from static table entry 8 (":status").
                    parts.append(b"\x08" + encode_integer(len(value), 7, 0) + value)
                continue
            prefix = self._names.get(name)
            if prefix is None:
                prefix = b"\x00" + encode_integer(len(name), 7, 0) + name
                self._names[name] = prefix
            parts.append(prefix + encode_integer(len(value), 7, 0) + value)
        return b"".join(parts)


# -- the connection ---------------------------------------------------------------------------


class _H2ServerConnection(H2Connection):
    """h2's connection with the stream limit left to :class:`ServerConnection`.

    h2 checks each new stream against its *acknowledged* local SETTINGS_MAX_CONCURRENT_STREAMS
    and raises TooManyStreamsError, a connection error, before it decodes the header block.
    Neither suits this server: a raised limit must hold as soon as it is sent (RFC 9113
    section 6.5.3, see the module docstring), and refusing one stream with REFUSED_STREAM needs
    its header block decoded to keep HPACK state in step (section 4.3) and the stream created
    to reset it. h2 consults :attr:`open_inbound_streams` only for that check, so reporting no
    open stream switches it off; :class:`ServerConnection` counts and enforces instead.
    """

    @property
    def open_inbound_streams(self) -> int:
        return 0

    def forget_closed_streams(self) -> None:
        """Drop closed streams from ``streams``, which h2 did as a side effect of its count."""
        self._open_streams(0)


@dataclass(slots=True)
class _PendingStream:
    method: str
    path: str
    headers: dict[str, str]
    duplicates: tuple[str, ...]
    body: list[bytes]


class ServerConnection:
    """The server side of one APNs HTTP/2 connection, without I/O (see the module docstring).

    Args:
        app: Decides the answer to each request.
        client_certificate_info: What the client's TLS certificate allows (mutual TLS).
        connection_id: A number for :attr:`ReceivedRequest.connection_id`.
        max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS once the connection is trusted.
        hold_streams_until_success: Start with a limit of one stream, raised to
            ``max_concurrent_streams`` after the first 2xx reply (APNs token connections).
        goaway_linger: Seconds to keep reading (and discarding) after a GOAWAY before
            :attr:`should_close` turns true.
        strict_stream_limit: Answer a stream beyond the limit in force with GOAWAY
            PROTOCOL_ERROR instead of RST_STREAM REFUSED_STREAM (RFC 9113 section 5.1.2 allows
            both).
    """

    def __init__(
        self,
        app: App,
        *,
        client_certificate_info: Any = None,
        connection_id: int = 0,
        max_concurrent_streams: int = 1000,
        hold_streams_until_success: bool = False,
        goaway_linger: float = _GOAWAY_LINGER,
        strict_stream_limit: bool = False,
    ) -> None:
        if max_concurrent_streams < 1:
            raise ValueError(f"max_concurrent_streams: {max_concurrent_streams} must be >= 1")
        self._app = app
        self.context = ConnectionContext(connection_id, client_certificate_info)
        self._max_streams = max_concurrent_streams
        self._holding = hold_streams_until_success
        self._goaway_linger = goaway_linger
        self._strict_stream_limit = strict_stream_limit
        # The stream limit in force (RFC 9113 section 6.5.3): the last value the client
        # acknowledged and the values of the SETTINGS frames sent since, oldest first. Every
        # SETTINGS frame this connection sends carries the limit, so each ACK pops one.
        self._acked_limit = _NO_LIMIT
        self._unacked_limits: deque[int] = deque()
        # Streams open or half-closed (section 5.1.2 counts both).
        self._open: set[int] = set()
        # Streams this server closed while handling the current read: they still count for
        # HEADERS later in the same read, which the client sent before it could see them close.
        self._receiving = False
        self._closed_in_read: list[int] = []
        config = H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = _H2ServerConnection(config=config)
        self._h2.encoder = _LiteralEncoder()  # type: ignore[assignment]
        self._pending: dict[int, _PendingStream] = {}
        self._delayed: list[tuple[float, int, Reply]] = []
        self._unacked_bytes = 0
        self._last_handled_stream = 0
        self._closing_at: float | None = None
        self._now = 0.0
        self.should_close = False
        """True when the I/O layer must close the TCP connection now (after sending
        :meth:`data_to_send`)."""
        self.goaway_sent = False
        """True once a GOAWAY was sent; further requests are ignored."""
        self.error: str | None = None
        """Why the connection ended, when the peer broke HTTP/2."""
        self.peer_errors: list[str] = []
        """Every HTTP/2 rule the peer broke, oldest first: streams beyond the limit (refused or,
        with ``strict_stream_limit``, fatal) and the error that ended the connection."""

    # -- public API -----------------------------------------------------------------------

    @property
    def connection_id(self) -> int:
        """The connection's number."""
        return self.context.connection_id

    @property
    def max_concurrent_streams(self) -> int:
        """The stream limit currently announced (1 while held)."""
        return 1 if self._holding else self._max_streams

    @property
    def enforced_max_concurrent_streams(self) -> int:
        """The stream limit in force now (RFC 9113 section 6.5.3; see the module docstring).

        The highest of the last value the client acknowledged (unlimited before it
        acknowledges the preface) and every value sent since.
        """
        return max((self._acked_limit, *self._unacked_limits))

    @property
    def open_stream_count(self) -> int:
        """Streams the client opened that are not closed yet (RFC 9113 section 5.1.2)."""
        return len(self._open)

    @property
    def open_request_count(self) -> int:
        """Requests received and not yet answered (delayed, never answered, or incomplete)."""
        return len(self._pending) + len(self._delayed)

    def initiate(self) -> None:
        """Queue the server preface (SETTINGS) and a large connection window."""
        # Initial values (not pending changes) so that h2 enforces what the preface announces.
        self._h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams,
                SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        self._h2.initiate_connection()
        self._unacked_limits.append(self.max_concurrent_streams)
        self._h2.increment_flow_control_window(_CONNECTION_WINDOW - 65535)

    def set_max_concurrent_streams(self, value: int) -> None:
        """Change SETTINGS_MAX_CONCURRENT_STREAMS; sent at once unless the limit is held at 1."""
        if value < 1:
            raise ValueError(f"max_concurrent_streams: {value} must be >= 1")
        self._max_streams = value
        if not self._holding and not self.goaway_sent:
            self._announce_limit(value)

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer; replies are queued for :meth:`data_to_send`.

        Args:
            data: Bytes read from the network. ``b""`` means the peer closed its side.
            now: The current time on a monotonic clock, in seconds.
        """
        self._now = now
        if not data:
            self.should_close = True
            return
        if self.goaway_sent or self.should_close:
            return  # After GOAWAY the connection only drains (RFC 9113 section 6.8).
        try:
            events = self._h2.receive_data(data)
        except ProtocolError as exc:
            # h2 queued a GOAWAY with the right error code; send it, then close.
            self.error = f"{type(exc).__name__}: {exc}"
            self.peer_errors.append(self.error)
            self.goaway_sent = True
            self._pending.clear()
            self._delayed.clear()
            self._closing_at = now + self._goaway_linger
            return
        self._receiving = True
        try:
            self._handle_events(events)
        finally:
            self._receiving = False
            self._open.difference_update(self._closed_in_read)
            self._closed_in_read.clear()
        if self._unacked_bytes >= _CONNECTION_WINDOW // 2:
            self._h2.increment_flow_control_window(self._unacked_bytes)
            self._unacked_bytes = 0
        # h2 keeps closed streams in ``streams`` until something prunes them; pruning when
        # closed ones outnumber open ones keeps the cost constant per stream.
        if len(self._h2.streams) > 2 * len(self._open) + 64:
            self._h2.forget_closed_streams()

    def _handle_events(self, events: list[Event]) -> None:
        for event in events:
            if self.goaway_sent or self.should_close:
                break
            kind = type(event)
            if kind is DataReceived:
                self._on_data(event)  # type: ignore[arg-type]
            elif kind is RequestReceived:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is StreamEnded:
                self._on_end(event.stream_id)  # type: ignore[attr-defined]
            elif kind is StreamReset:
                sid = event.stream_id  # type: ignore[attr-defined]
                self._pending.pop(sid, None)
                self._open.discard(sid)
                self._delayed = [d for d in self._delayed if d[1] != sid]
            elif kind is SettingsAcknowledged:
                # RFC 9113 section 6.5.3: ACKs come in the order the SETTINGS were sent.
                if self._unacked_limits:
                    self._acked_limit = self._unacked_limits.popleft()
            elif kind is TrailersReceived:
                pass  # APNs requests carry no trailers; END_STREAM comes as StreamEnded.
            elif kind is ConnectionTerminated:
                # The peer sent GOAWAY: it opens no more streams. Answer nothing further.
                self.should_close = True

    def data_to_send(self) -> bytes:
        """Bytes to write to the network (may be empty)."""
        return self._h2.data_to_send()

    def next_timer(self) -> float | None:
        """When :meth:`tick` must next be called (monotonic time), or ``None``."""
        times = [d[0] for d in self._delayed]
        if self._closing_at is not None:
            times.append(self._closing_at)
        return min(times) if times else None

    def tick(self, now: float) -> None:
        """Send the delayed replies that are due, and close after a GOAWAY's linger time."""
        self._now = now
        if self._closing_at is not None and now >= self._closing_at:
            self.should_close = True
            return
        if not self._delayed or self.goaway_sent or self.should_close:
            return
        due = [d for d in self._delayed if d[0] <= now]
        if not due:
            return
        self._delayed = [d for d in self._delayed if d[0] > now]
        for _, stream_id, reply in due:
            self._send_reply(stream_id, reply)

    def close(self, *, error_code: int = 0, reason: str | None = None) -> None:
        """Send GOAWAY (e.g. when the server shuts down) and start lingering."""
        if not self.goaway_sent:
            self._goaway(Fault.goaway(error_code=error_code, reason=reason), None)

    # -- internals ------------------------------------------------------------------------

    def _on_request(self, event: RequestReceived) -> None:
        method = path = ""
        headers: dict[str, str] = {}
        duplicates: list[str] = []
        for raw_name, raw_value in event.headers or ():
            name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
            value = (
                raw_value.decode("utf-8", "replace") if isinstance(raw_value, bytes) else raw_value
            )
            if name[:1] == ":":
                if name == ":method":
                    method = value
                elif name == ":path":
                    path = value
                continue
            name = name.lower()
            if name in headers:
                duplicates.append(name)
            headers[name] = value
        stream_id = event.stream_id
        assert stream_id is not None
        if len(self._open) >= self.enforced_max_concurrent_streams:
            self._over_limit(stream_id)
            return
        self._open.add(stream_id)
        self._pending[stream_id] = _PendingStream(method, path, headers, tuple(duplicates), [])
        if event.stream_ended is not None:
            self._on_end(stream_id)

    def _over_limit(self, stream_id: int) -> None:
        # RFC 9113 section 5.1.2: a stream beyond the advertised limit is a stream error of
        # type PROTOCOL_ERROR or REFUSED_STREAM; REFUSED_STREAM tells the client the request
        # was not processed (section 8.7), so it retries instead of failing it.
        limit = self.enforced_max_concurrent_streams
        problem = (
            f"TooManyStreams: stream {stream_id} exceeds SETTINGS_MAX_CONCURRENT_STREAMS "
            f"{limit} ({len(self._open)} open)"
        )
        if self._strict_stream_limit:
            self.error = f"{problem}; answered with GOAWAY PROTOCOL_ERROR"
            self.peer_errors.append(self.error)
            self._goaway(Fault.goaway(error_code=PROTOCOL_ERROR, reason=None), None)
            return
        self.peer_errors.append(f"{problem}; refused with RST_STREAM REFUSED_STREAM")
        self._h2.reset_stream(stream_id, error_code=REFUSED_STREAM)

    def _on_data(self, event: DataReceived) -> None:
        self._unacked_bytes += event.flow_controlled_length or 0
        pending = self._pending.get(event.stream_id or 0)
        if pending is not None and event.data:
            pending.body.append(event.data)
        if event.stream_ended is not None and event.stream_id is not None:
            self._on_end(event.stream_id)

    def _on_end(self, stream_id: int) -> None:
        pending = self._pending.pop(stream_id, None)
        if pending is None:
            return
        body = pending.body
        request = ReceivedRequest(
            pending.method,
            pending.path,
            pending.headers,
            body[0] if len(body) == 1 else b"".join(body),
            stream_id,
            self.context.connection_id,
            pending.duplicates,
            self.context,
        )
        outcome = self._app(request)
        if type(outcome) is Reply:
            self._last_handled_stream = stream_id
            self._send_reply(stream_id, outcome)
            return
        if not isinstance(outcome, Fault):
            raise TypeError(f"app returned {outcome!r}; it must return a Reply or a Fault")
        kind = outcome.kind
        if kind == "delay":
            self._last_handled_stream = stream_id
            assert outcome.reply is not None
            if outcome.seconds <= 0:
                self._send_reply(stream_id, outcome.reply)
            else:
                self._delayed.append((self._now + outcome.seconds, stream_id, outcome.reply))
        elif kind == "reset":
            self._stream_closed(stream_id)
            try:
                self._h2.reset_stream(stream_id, error_code=outcome.error_code)
            except ProtocolError:
                # The client's GOAWAY closed the connection in the same read (a client that
                # closes while requests are in flight), as for replies: nobody to answer.
                return
        elif kind == "no_reply":
            self._last_handled_stream = stream_id
        elif kind == "drop":
            self.should_close = True
        elif kind == "goaway":
            self._goaway(outcome, stream_id)

    def _goaway(self, fault: Fault, stream_id: int | None) -> None:
        last = fault.last_stream_id
        if fault.reply is not None and stream_id is not None:
            self._send_reply(stream_id, fault.reply)
            self._last_handled_stream = stream_id
        if last is None:
            last = self._last_handled_stream
        # RFC 9113 section 6.8: streams up to last_stream_id were processed and their answers
        # must still arrive. h2 sends nothing after its GOAWAY, so a delayed reply for such a
        # stream goes out now, cut short by the shutdown; without it the client would see a
        # processed request vanish and send it again.
        for _, delayed_stream, delayed_reply in sorted(self._delayed, key=lambda d: d[1]):
            if delayed_stream <= last:
                self._send_reply(delayed_stream, delayed_reply)
        self._h2.close_connection(
            error_code=fault.error_code,
            additional_data=fault.debug_data or None,
            last_stream_id=last,
        )
        self.goaway_sent = True
        self._pending.clear()
        self._delayed.clear()
        self._closing_at = self._now + self._goaway_linger

    def _send_reply(self, stream_id: int, reply: Reply) -> None:
        body = reply.encoded_body()
        headers = [(b":status", str(reply.status).encode())]
        for name, value in reply.headers:
            headers.append((name.encode("latin-1"), value.encode()))
        if body:
            headers.append((b"content-type", b"application/json"))
            headers.append((b"content-length", str(len(body)).encode()))
        h2 = self._h2
        # END_STREAM closes the stream (the request had ended it from its side), and a failed
        # send means it was closed already.
        self._stream_closed(stream_id)
        try:
            h2.send_headers(stream_id, headers, end_stream=not body)
            if body:
                h2.send_data(stream_id, body, end_stream=True)
        except StreamClosedError:
            return  # The client reset the stream meanwhile.
        except ProtocolError:
            # The client's GOAWAY closed the connection in the same read (a client that
            # closes while requests are in flight): nobody is left to answer.
            return
        if self._holding and 200 <= reply.status < 300:
            # APNs raises the limit once a token-authenticated request has succeeded.
            self._holding = False
            self._announce_limit(self._max_streams)

    def _stream_closed(self, stream_id: int) -> None:
        if self._receiving:
            self._closed_in_read.append(stream_id)
        else:
            self._open.discard(stream_id)

    def _announce_limit(self, value: int) -> None:
        # A raise is in force from here on, a cut once acknowledged (RFC 9113 section 6.5.3):
        # see enforced_max_concurrent_streams.
        self._h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: value})
        self._unacked_limits.append(value)
