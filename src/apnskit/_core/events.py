"""Events the sans-I/O core reports after it is fed bytes.

Each event is a small keyword-only dataclass. ``context`` is whatever object the caller handed
to :meth:`~apnskit._core.connection.ApnsConnection.send_request` (the client uses its own
per-notification record); the core never looks inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final

from apnskit._errors import RemoteProtocolError

__all__ = [
    "ConnectionTerminated",
    "Event",
    "PingAcknowledged",
    "ResponseReceived",
    "SettingsReceived",
    "StreamReset",
    "new_response",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of every core event."""


# init=False: the class writes its own __init__ (below), the same keyword-only signature and
# stores as the one dataclasses would generate, so that mypyc compiles it (issue 13).
@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class ResponseReceived(Event):
    """A complete response arrived for a request."""

    stream_id: int
    """The HTTP/2 stream the request used."""
    context: Any
    """The caller's object for this request."""
    status: int
    """The HTTP ``:status``."""
    apns_id: str | None
    """The ``apns-id`` response header."""
    apns_unique_id: str | None
    """The ``apns-unique-id`` header (sandbox only)."""
    reason: str | None
    """``reason`` from the JSON error body; ``None`` on success or with no/odd body."""
    timestamp_ms: int | None
    """``timestamp`` from a 410 body: milliseconds since the epoch."""
    headers: list[tuple[str, str]] = field(repr=False)
    """Every response header, pseudo-headers included, in order."""
    body: bytes = field(repr=False)
    """The raw body (JSON for errors, empty on success for device pushes)."""
    detail: str | None = None
    """For an error response whose body is not the expected small JSON object with a
    ``reason``: a short, printable, truncated copy of the body for error messages."""

    def __init__(
        self,
        *,
        stream_id: int,
        context: Any,
        status: int,
        apns_id: str | None,
        apns_unique_id: str | None,
        reason: str | None,
        timestamp_ms: int | None,
        headers: list[tuple[str, str]],
        body: bytes,
        detail: str | None = None,
    ) -> None:
        # What the dataclass's frozen __init__ does: frozen forbids ``self.x = ...``, so each
        # field goes through object.__setattr__. Written out because in the compiled build
        # (mypyc) the generated __init__ stays interpreted, about 16,000 instructions per
        # response, while mypyc turns ``object.__setattr__(self, "<field>", v)`` inside the
        # class into a direct store into the native object (callgrind, issue 13). Interpreted
        # code still meets the dataclass's __setattr__, so the object stays frozen.
        object.__setattr__(self, "stream_id", stream_id)
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "apns_id", apns_id)
        object.__setattr__(self, "apns_unique_id", apns_unique_id)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "timestamp_ms", timestamp_ms)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "detail", detail)


def _draft_class() -> Any:
    """A class with ``ResponseReceived``'s slots and plain stores, or None (compiled build).

    CPython lets an object of it become a ``ResponseReceived`` by assigning ``__class__``: same
    base (``Event``), same slots. The probe below checks that; in the compiled build
    (mypyc) ``Event`` is a native class that interpreted classes cannot extend, and
    ``new_response`` calls the constructor, which is cheap there.
    """
    try:
        draft = type(
            "_ResponseDraft",
            (Event,),
            {
                "__slots__": tuple(f.name for f in fields(ResponseReceived)),
                # Event's frozen __setattr__ would refuse the stores: the plain ones instead.
                # Both, so that CPython uses its generic slot (stores specialized by the
                # interpreter) rather than calling a Python-level __setattr__ per store.
                "__setattr__": object.__setattr__,
                "__delattr__": object.__delattr__,
                "__module__": __name__,
            },
        )
        _set_attribute(_make(draft), "__class__", ResponseReceived)
    except TypeError:
        return None
    return draft


_make: Final = object.__new__
_set_attribute: Final = object.__setattr__
_RESPONSE_DRAFT: Final = _draft_class()


def new_response(
    stream_id: int,
    context: Any,
    status: int,
    apns_id: str | None,
    apns_unique_id: str | None,
    reason: str | None,
    timestamp_ms: int | None,
    headers: list[tuple[str, str]],
    body: bytes,
    detail: str | None,
) -> ResponseReceived:
    """``ResponseReceived(...)`` with every field given, for the core's once-per-response path.

    In pure Python the frozen dataclass's ``__init__`` writes each of the ten fields through
    ``object.__setattr__``, about 20,000 instructions per response (callgrind, issue 13).
    Here the fields are plain stores into a draft that then becomes a ``ResponseReceived``
    (the way :func:`apnskit._model.results.new_result` builds a ``PushResult``): the same
    frozen, equal object as the constructor's. No field is checked, as with the constructor.
    """
    draft_class = _RESPONSE_DRAFT
    if draft_class is None:
        return ResponseReceived(
            stream_id=stream_id,
            context=context,
            status=status,
            apns_id=apns_id,
            apns_unique_id=apns_unique_id,
            reason=reason,
            timestamp_ms=timestamp_ms,
            headers=headers,
            body=body,
            detail=detail,
        )
    draft = _make(draft_class)
    draft.stream_id = stream_id
    draft.context = context
    draft.status = status
    draft.apns_id = apns_id
    draft.apns_unique_id = apns_unique_id
    draft.reason = reason
    draft.timestamp_ms = timestamp_ms
    draft.headers = headers
    draft.body = body
    draft.detail = detail
    _set_attribute(draft, "__class__", ResponseReceived)
    event: ResponseReceived = draft
    return event


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamReset(Event):
    """The server reset a request's stream before answering it (RFC 9113 section 6.4)."""

    stream_id: int
    """The stream that was reset."""
    context: Any
    """The caller's object for this request."""
    error_code: int
    """The RST_STREAM error code (RFC 9113 section 7)."""
    retry_safe: bool
    """True for REFUSED_STREAM: the server did no processing, so resending cannot double a
    notification (RFC 9113 section 8.7)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsReceived(Event):
    """The server sent SETTINGS (we have already acknowledged them)."""

    changes: dict[int, int]
    """Setting identifier to new value, as received."""
    max_concurrent_streams: int
    """The stream limit now in force for new requests (APNs raises it after a first success)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PingAcknowledged(Event):
    """The server acknowledged one of our PINGs."""

    payload: bytes
    """The 8 opaque bytes we sent."""
    round_trip: float | None
    """Seconds between sending and the ack, when both times were given to the core."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionTerminated(Event):
    """The connection ended or is draining: no new request may be started on it.

    Sent for a server GOAWAY (``remote=True``), for a protocol violation by the server (``error``
    set, after which we sent GOAWAY ourselves), for our own ``close()`` and when the transport
    reports the connection lost. Requests listed in ``unprocessed`` were never processed by the
    server and can be sent again safely; those in ``abandoned`` were in flight on a connection
    that died and their fate is unknown. Requests on streams at or below ``last_stream_id`` of a
    GOAWAY are listed in neither: their responses may still arrive.
    """

    error_code: int
    """The HTTP/2 error code (0 is NO_ERROR: a graceful shutdown)."""
    last_stream_id: int | None
    """The GOAWAY's last stream id, when a GOAWAY was involved."""
    reason: str | None
    """``reason`` from JSON debug data (APNs sends e.g. ``{"reason": "Shutdown"}``)."""
    debug_data: bytes = field(repr=False)
    """The raw GOAWAY debug data."""
    detail: str | None = None
    """When the debug data is not the expected small JSON object with a ``reason``: a short,
    printable, truncated copy of it for error messages (some servers send plain text)."""
    remote: bool
    """True when the server ended the connection."""
    unprocessed: list[Any]
    """Contexts of requests that are safe to send again on another connection."""
    abandoned: list[Any]
    """Contexts of requests whose fate is unknown because the connection died under them."""
    error: RemoteProtocolError | None = None
    """Set when the server broke HTTP/2."""
