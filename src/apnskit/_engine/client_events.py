"""The public events a client reports to its ``event_hook``, for metrics and tracing.

They are re-exported from :mod:`apnskit` (``apnskit.ResultReady``...) and documented there;
this module only defines them, so that the engine that emits them and the hooks that read
them (:mod:`apnskit.contrib.opentelemetry`) share one definition without importing the engine.
Each event is a small frozen, keyword-only dataclass with a docstring per field.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from apnskit._model.results import PushResult, Reason

__all__ = [
    "ClientEvent",
    "ConnectionClosed",
    "ConnectionFailed",
    "ConnectionOpened",
    "NotificationSent",
    "NotificationSubmitted",
    "ResultReady",
    "RetryCause",
    "RetryScheduled",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientEvent:
    """Base class of the events a client reports to its ``event_hook`` (for metrics)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationSubmitted(ClientEvent):
    """A notification was handed to the client; exactly one :class:`ResultReady` follows.

    It is reported from the caller's own thread or task (inside ``send``/``send_many``), so
    a hook sees the caller's context here, e.g. its tracing span.
    """

    notification: Any
    """The notification (or broadcast request), as handed to the client."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationSent(ClientEvent):
    """A notification was written to a connection."""

    notification: Any
    """The notification (or broadcast request)."""
    attempt: int
    """1 for the first send, 2 for the first retry..."""
    connection_id: int
    """Which pooled connection carries it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultReady(ClientEvent):
    """A notification ended."""

    result: PushResult
    """Its one and only result."""


class RetryCause(str, enum.Enum):
    """Why a notification is sent again (:attr:`RetryScheduled.cause`): a closed set of values.

    The values are stable, lower-case words meant for metric attributes.
    """

    THROTTLED = "throttled"
    """APNs answered 429 TooManyRequests (not processed)."""
    SERVER_ERROR = "server_error"
    """APNs answered 500 (it may have been processed: the resend may be a duplicate)."""
    UNAVAILABLE = "unavailable"
    """APNs answered 503 ServiceUnavailable (not processed)."""
    EXPIRED_PROVIDER_TOKEN = "expired_provider_token"  # noqa: S105 (a cause, not a secret)
    """APNs answered 403 ExpiredProviderToken: resent once with a renewed token."""
    STREAM_REFUSED = "stream_refused"
    """The server reset the stream with REFUSED_STREAM (not processed, RFC 9113 section 8.7)."""
    GOAWAY = "goaway"
    """The server's GOAWAY said it did not process it (above the last stream id), or it was
    still queued on a connection that closed."""
    CONNECTION_LOST = "connection_lost"
    """Its connection broke while it was in flight (fate unknown; only idempotent ones)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(ClientEvent):
    """A notification will be sent again."""

    notification: Any
    """The notification."""
    attempt: int
    """The attempt number it will be sent as."""
    delay: float
    """Seconds until it is sent again."""
    reason: str
    """Why, for people (e.g. ``"503 ServiceUnavailable"``, ``"not processed before GOAWAY"``,
    ``"connection lost"``); its wording may change: programs read :attr:`cause`."""
    cause: RetryCause
    """Why, for programs: one of a closed set of values."""
    status: int | None = None
    """The HTTP status that caused it (429, 500, 503, 403), when APNs answered."""
    apns_reason: Reason | str | None = None
    """Apple's reason from that answer, when it gave one (an unknown one as its string)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened(ClientEvent):
    """A pooled connection is up."""

    connection_id: int
    """The connection's id within the client."""
    host: str
    """The host it is connected to."""
    port: int
    """The port it is connected to."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(ClientEvent):
    """A pooled connection ended."""

    connection_id: int
    """The connection's id within the client."""
    reason: str
    """Why: GOAWAY reason, lost, idle health check failed, client closed..."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionFailed(ClientEvent):
    """A connection could not be opened."""

    connection_id: int
    """The id the connection would have had."""
    error: BaseException
    """What went wrong."""
    retry_in: float
    """Seconds before the next attempt to connect."""
