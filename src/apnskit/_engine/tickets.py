"""One notification's journey as a :class:`Ticket`, the retry rules, and its one result.

Pure decisions only: whether an answer or a lost connection allows a resend (the
:class:`~apnskit.RetryPolicy` plus what RFC 9113 and Apple say is safe to resend), and how a
ticket's :class:`~apnskit.PushResult` is written. The dispatcher applies them.
"""

from __future__ import annotations

from typing import Any, Protocol

from apnskit._config import RetryPolicy
from apnskit._core.connection import RequestHandle
from apnskit._core.events import ResponseReceived
from apnskit._engine.client_events import RetryCause
from apnskit._engine.pool import PooledConnection
from apnskit._model.results import PushResult, Reason, new_result

__all__ = [
    "FREE_RESENDS",
    "SendableRequest",
    "Ticket",
    "answer_retry_cause",
    "failure_result",
    "is_sendable",
    "may_resend_lost",
    "response_result",
]


class SendableRequest(Protocol):
    """What a client can send: a Notification, or a broadcast request."""

    @property
    def path(self) -> str:
        """The request path."""

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The request headers, without authorization or pseudo-headers."""

    @property
    def body(self) -> bytes:
        """The request body."""


def is_sendable(item: object) -> bool:
    """True when ``item`` has what a request needs (``path``, ``headers``, ``body``)."""
    return (
        isinstance(getattr(item, "path", None), str)
        and isinstance(getattr(item, "body", None), bytes)
        and isinstance(getattr(item, "headers", None), tuple)
    )


class Ticket:
    """One notification's journey through the client; the client may attach a waiter."""

    __slots__ = (
        "attempts",
        "conn",
        "connect_error",
        "connect_failures",
        "deadline",
        "done",
        "expired_token_retried",
        "generation",
        "handle",
        "item",
        "result",
        "sends",
        "unknown_fate",
        "waiter",
    )

    def __init__(self, item: Any, deadline: float | None) -> None:
        self.item = item
        self.deadline = deadline
        #: Sends that count against RetryPolicy.max_attempts.
        self.attempts = 0
        #: Every send, including free resends of requests a server never processed.
        self.sends = 0
        self.expired_token_retried = False
        #: Failed connects while it waited for a connection (reported in its attempts).
        self.connect_failures = 0
        #: The last of those failures: named when its deadline passes before it was ever sent.
        self.connect_error: BaseException | None = None
        #: True once a send of it may have been processed without us learning the answer
        #: (connection lost with it in flight, a 500): a resend may then be a duplicate.
        self.unknown_fate = False
        self.generation = -1
        #: The pooled connection carrying it, while it is in flight.
        self.conn: PooledConnection | None = None
        self.handle: RequestHandle | None = None
        self.result: PushResult | None = None
        self.done = False
        #: Whatever the client uses to wake the caller waiting for this ticket.
        self.waiter: Any = None

    def __call__(self) -> bool:
        """True once it ended: a ticket is the predicate of a wait for it.

        ``send()`` waits with the ticket itself rather than a ``lambda`` over it: no closure
        (two objects for the garbage collector) per call.
        """
        return self.done


# Statuses a resend may cure (Apple: 429 TooManyRequests, 500 InternalServerError, 503
# ServiceUnavailable/Shutdown).
_RETRY_CAUSE_BY_STATUS = {
    429: RetryCause.THROTTLED,
    500: RetryCause.SERVER_ERROR,
    503: RetryCause.UNAVAILABLE,
}
# Answers saying the request was turned away before any work (throttled, unavailable): safe
# to resend even when the request is not idempotent. A 500 may have done part of the work.
_NOT_PROCESSED_STATUSES = frozenset({429, 503})
FREE_RESENDS = 5
"""How many free resends (GOAWAY-unprocessed) a ticket may get on top of its attempts, so a
server that keeps refusing with GOAWAY cannot keep a notification alive forever."""


def answer_retry_cause(ticket: Ticket, status: int, policy: RetryPolicy) -> RetryCause | None:
    """Why an answer with ``status`` lets ``ticket`` be sent again, or None when it may not.

    ExpiredProviderToken is decided by the dispatcher (it renews the token first).
    """
    cause = _RETRY_CAUSE_BY_STATUS.get(status)
    if cause is None or ticket.attempts >= policy.max_attempts:
        return None
    if status not in _NOT_PROCESSED_STATUSES and (
        # A 500 may have been processed: resend only what may arrive twice, and only if the
        # policy allows it (README, "duplicates").
        not policy.retry_500 or not getattr(ticket.item, "idempotent", True)
    ):
        return None
    return cause


def may_resend_lost(ticket: Ticket, policy: RetryPolicy) -> bool:
    """Whether ``ticket``, in flight on a connection that died, may be sent again.

    Its fate is unknown: only what may safely arrive twice is resent, within the attempts.
    """
    return ticket.attempts < policy.max_attempts and bool(getattr(ticket.item, "idempotent", True))


def response_result(
    ticket: Ticket,
    event: ResponseReceived,
    reason: Reason | str | None,
    error: BaseException | None = None,
) -> PushResult:
    """The result of ``ticket`` answered by ``event``."""
    # Built once per answered notification: the fast constructor, the timestamp only when
    # there is one.
    timestamp_ms = event.timestamp_ms
    return new_result(
        ticket.item,
        event.status,
        event.apns_id or getattr(ticket.item, "apns_id", None),
        event.apns_unique_id,
        reason,
        None if timestamp_ms is None else PushResult.timestamp_from_ms(timestamp_ms),
        error,
        ticket.sends + ticket.connect_failures,
        dict(event.headers),
        event.body,
    )


def failure_result(ticket: Ticket, error: BaseException) -> PushResult:
    """The result of ``ticket`` ending without an answer, because of ``error``."""
    return PushResult(
        notification=ticket.item,
        status=None,
        apns_id=getattr(ticket.item, "apns_id", None),
        error=error,
        # Failed connects count: a notification that never left after three failed
        # connects was tried three times, not zero.
        attempts=ticket.sends + ticket.connect_failures,
    )
