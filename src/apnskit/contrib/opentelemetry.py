"""OpenTelemetry metrics and traces for apnskit clients (``pip install apnskit[otel]``).

Pass an :class:`OpenTelemetryHook` as a client's ``event_hook``::

    hook = OpenTelemetryHook(spans=True)
    client = apnskit.PushClient(credentials, environment="production", event_hook=hook)

It turns the client's events (:class:`apnskit.ClientEvent`) into the metrics below, through
the OpenTelemetry API: with no SDK configured they cost next to nothing and go nowhere; with
one (a Prometheus exporter, OTLP...) they are exported like any other instrumentation's.
Names, units and attributes follow OpenTelemetry's semantic conventions: dotted lowercase
names in the ``apnskit.`` namespace, UCUM units (``s``, ``{notification}``), no ``_total``
suffix, and the general attributes where one exists (``http.response.status_code``,
``error.type``, ``server.address``).

======================================  ============  =========================================
Instrument                              Unit          Attributes
======================================  ============  =========================================
``apnskit.notifications`` (counter)     notification  ``apnskit.outcome`` (accepted, rejected,
                                                      failed), ``apns.push_type``,
                                                      ``apns.topic``,
                                                      ``http.response.status_code``,
                                                      ``apns.reason``, ``error.type``
``apnskit.notification.duration``       ``s``         ``apnskit.outcome``, ``apns.push_type``,
(histogram)                                           ``apns.topic``: from the hand-over to the
                                                      client until its result, retries included
``apnskit.notifications.in_flight``     notification  ``apns.push_type``, ``apns.topic``:
(up-down counter)                                     handed over and not yet ended
``apnskit.retries`` (counter)           retry         ``apnskit.retry.cause``,
                                                      ``http.response.status_code``,
                                                      ``apns.reason``, ``apns.push_type``,
                                                      ``apns.topic``
``apnskit.connections.opened``          connection    ``server.address``, ``server.port``
``apnskit.connections.closed``          connection    ``apnskit.connection.close_reason``,
                                                      ``apns.reason`` (a GOAWAY's)
``apnskit.connections.failed``          connection    ``error.type``
======================================  ============  =========================================

No attribute ever holds a device token, a payload, a JWT or any other secret, and none has
unbounded values (the ``apns-id`` goes on spans only).

With ``spans=True``, each notification (or a sampled share of them, ``span_sample_ratio``)
gets one span named ``apns.send`` of kind CLIENT, from its hand-over to its result, as a child
of whatever span is current where ``send()``/``send_many()`` was called. It carries the push
type, topic, HTTP status, APNs reason, ``apns.id``, ``apnskit.retry_count`` and an event per
send attempt and per retry (with its cause); rejected and failed notifications end it with
status ERROR.
"""

from __future__ import annotations

import random as _random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

import apnskit
from apnskit import (
    ClientEvent,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionOpened,
    NotificationSent,
    NotificationSubmitted,
    PushResult,
    ResultReady,
    RetryScheduled,
)

__all__ = [
    "DURATION_BUCKETS",
    "SPAN_NAME",
    "OpenTelemetryHook",
]

Attributes = Mapping[str, AttributeValue]

SPAN_NAME = "apns.send"
"""The name of the per-notification span."""

DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    30.0,
    60.0,
)
"""Histogram bucket boundaries in seconds, given as advice to the SDK: OpenTelemetry's HTTP
client duration buckets, plus 30 and 60 s for notifications that wait out retries."""

_SCOPE = "apnskit"

# RetryScheduled.reason as the dispatcher writes it: "503 ServiceUnavailable",
# "403 ExpiredProviderToken", "stream refused", "not processed before GOAWAY", "connection lost".
_STATUS_REASON = re.compile(r"(\d{3})(?:\s+([A-Za-z]+))?")
_RETRY_CAUSE_BY_STATUS = {429: "throttled", 500: "server_error", 503: "unavailable"}
_RETRY_CAUSE_BY_TEXT = {
    "stream refused": "stream_refused",
    "not processed before GOAWAY": "goaway",
    "connection lost": "connection_lost",
}
# APNs reasons and GOAWAY reasons are single CamelCase words; anything else (free text with
# numbers or addresses) is left out of attributes to keep their values bounded.
_WORD = re.compile(r"[A-Za-z]{1,64}")
# Bounds the attribute-set caches; they hold a few dozen entries in practice.
_CACHE_LIMIT = 1024


class _Pending:
    """One handed-over notification the hook waits to see the result of."""

    __slots__ = ("attributes", "notification", "span", "started")

    def __init__(
        self, notification: Any, started: float, attributes: Attributes, span: Span | None
    ) -> None:
        # Holding the notification keeps its id() from being reused while it is pending.
        self.notification = notification
        self.started = started
        self.attributes = attributes
        self.span = span


class OpenTelemetryHook:
    """A client ``event_hook`` that records OpenTelemetry metrics, and optionally spans.

    One hook may serve several clients, sync and async alike (it is thread-safe); the
    instruments are created once, when the hook is built.

    Args:
        meter_provider: Where the metrics go; by default the global one
            (``opentelemetry.metrics.get_meter_provider()``).
        tracer_provider: Where the spans go; by default the global one.
        spans: Record one span per notification.
        span_sample_ratio: With ``spans``, the share of notifications (0.0 to 1.0) that get
            a span, e.g. ``0.01`` for bulk sends of millions. The tracer provider's own
            sampler applies on top of this.
        attributes: Extra attributes put on every metric point and span (e.g.
            ``{"apnskit.client": "marketing"}`` to tell clients apart).
        clock: Seconds as a float, for the duration histogram (default
            :func:`time.perf_counter`).
        random: A source of floats in [0, 1) for span sampling.

    Raises:
        ValueError: ``span_sample_ratio`` is not between 0 and 1.

    Notifications are matched with their results by identity: if the same
    :class:`apnskit.Notification` object is in flight several times at once, its pending
    hand-overs are matched oldest first, so durations stay correct on average.
    """

    def __init__(
        self,
        *,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        spans: bool = False,
        span_sample_ratio: float = 1.0,
        attributes: Attributes | None = None,
        clock: Callable[[], float] = time.perf_counter,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not 0.0 <= span_sample_ratio <= 1.0:
            raise ValueError(
                f"span_sample_ratio: must be between 0.0 and 1.0, got {span_sample_ratio!r}"
            )
        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter(_SCOPE, apnskit.__version__)
        self._notifications = meter.create_counter(
            "apnskit.notifications",
            unit="{notification}",
            description="Notifications that ended, by outcome (accepted, rejected, failed).",
        )
        self._duration = meter.create_histogram(
            "apnskit.notification.duration",
            unit="s",
            description="Time from handing a notification to the client until its result.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._in_flight = meter.create_up_down_counter(
            "apnskit.notifications.in_flight",
            unit="{notification}",
            description="Notifications handed to the client that have no result yet.",
        )
        self._retries = meter.create_counter(
            "apnskit.retries",
            unit="{retry}",
            description="Notifications scheduled to be sent again, by cause.",
        )
        self._opened = meter.create_counter(
            "apnskit.connections.opened",
            unit="{connection}",
            description="HTTP/2 connections to APNs that were established.",
        )
        self._closed = meter.create_counter(
            "apnskit.connections.closed",
            unit="{connection}",
            description="HTTP/2 connections to APNs that ended, by reason.",
        )
        self._failed = meter.create_counter(
            "apnskit.connections.failed",
            unit="{connection}",
            description="Attempts to connect to APNs that failed, by error type.",
        )
        self._tracer: trace.Tracer | None = None
        if spans and span_sample_ratio > 0.0:
            tracer_source = tracer_provider or trace.get_tracer_provider()
            self._tracer = tracer_source.get_tracer(_SCOPE, apnskit.__version__)
        self._ratio = span_sample_ratio
        self._extra: dict[str, AttributeValue] = dict(attributes or {})
        self._clock = clock
        self._random = random
        self._lock = threading.Lock()
        self._pending: dict[int, deque[_Pending]] = {}
        self._base_cache: dict[tuple[str | None, str | None], Attributes] = {}
        self._cache: dict[tuple[Any, ...], Attributes] = {}

    def __call__(self, event: ClientEvent) -> None:
        """Record one client event (the client calls this)."""
        kind = type(event)
        if kind is NotificationSubmitted:
            self._on_submitted(event)  # type: ignore[arg-type]
        elif kind is ResultReady:
            self._on_result(event)  # type: ignore[arg-type]
        elif kind is NotificationSent:
            self._on_sent(event)  # type: ignore[arg-type]
        elif kind is RetryScheduled:
            self._on_retry(event)  # type: ignore[arg-type]
        elif kind is ConnectionOpened:
            assert isinstance(event, ConnectionOpened)
            self._opened.add(
                1,
                self._with({"server.address": event.host, "server.port": event.port}),
            )
        elif kind is ConnectionClosed:
            assert isinstance(event, ConnectionClosed)
            self._closed.add(1, self._with(_close_attributes(event.reason)))
        elif kind is ConnectionFailed:
            assert isinstance(event, ConnectionFailed)
            self._failed.add(1, self._with({"error.type": _error_type(event.error)}))

    # ------------------------------------------------------------------ notifications

    def _on_submitted(self, event: NotificationSubmitted) -> None:
        item = event.notification
        attributes = self._base(item)
        span = None
        if self._tracer is not None and (self._ratio >= 1.0 or self._random() < self._ratio):
            # Started here, in the caller's thread or task, so the caller's current span
            # (a web request, a task) becomes its parent.
            span = self._tracer.start_span(SPAN_NAME, kind=SpanKind.CLIENT, attributes=attributes)
            priority = getattr(item, "priority", None)
            if priority is not None:
                span.set_attribute("apns.priority", int(priority))
        pending = _Pending(item, self._clock(), attributes, span)
        with self._lock:
            queue = self._pending.get(id(item))
            if queue is None:
                self._pending[id(item)] = deque((pending,))
            else:
                queue.append(pending)
        self._in_flight.add(1, attributes)

    def _on_sent(self, event: NotificationSent) -> None:
        if self._tracer is None:
            return
        pending = self._peek(event.notification)
        if pending is not None and pending.span is not None:
            pending.span.add_event(
                "apns.attempt",
                {"apnskit.attempt": event.attempt, "apnskit.connection.id": event.connection_id},
            )

    def _on_retry(self, event: RetryScheduled) -> None:
        cause, status, reason = _retry_cause(event.reason)
        key = ("retry", cause, status, reason, *self._base_key(event.notification))
        attributes = self._cache.get(key)
        if attributes is None:
            extra: dict[str, AttributeValue] = {"apnskit.retry.cause": cause}
            if status is not None:
                extra["http.response.status_code"] = status
            if reason is not None:
                extra["apns.reason"] = reason
            attributes = self._remember(key, {**self._base(event.notification), **extra})
        self._retries.add(1, attributes)
        if self._tracer is not None:
            pending = self._peek(event.notification)
            if pending is not None and pending.span is not None:
                pending.span.add_event(
                    "apns.retry",
                    {
                        "apnskit.retry.cause": cause,
                        "apnskit.attempt": event.attempt,
                        "apnskit.retry.delay": event.delay,
                    },
                )

    def _on_result(self, event: ResultReady) -> None:
        now = self._clock()
        result = event.result
        item = result.notification
        with self._lock:
            queue = self._pending.get(id(item))
            pending = queue.popleft() if queue else None
            if queue is not None and not queue:
                del self._pending[id(item)]
        base = pending.attributes if pending is not None else self._base(item)
        outcome = _outcome(result)
        status = result.status
        reason = _reason(result)
        error_type = None
        if outcome == "rejected":
            error_type = reason or str(status)
        elif outcome == "failed":
            error_type = _error_type(result.error)
        key = ("result", *self._base_key(item), outcome, status, reason, error_type)
        attributes = self._cache.get(key)
        if attributes is None:
            extra: dict[str, AttributeValue] = {"apnskit.outcome": outcome}
            if status is not None:
                extra["http.response.status_code"] = status
            if reason is not None:
                extra["apns.reason"] = reason
            if error_type is not None:
                extra["error.type"] = error_type
            attributes = self._remember(key, {**base, **extra})
        self._notifications.add(1, attributes)
        if pending is None:
            return
        self._in_flight.add(-1, base)
        duration_key = ("duration", *self._base_key(item), outcome)
        duration_attributes = self._cache.get(duration_key)
        if duration_attributes is None:
            duration_attributes = self._remember(duration_key, {**base, "apnskit.outcome": outcome})
        self._duration.record(max(0.0, now - pending.started), duration_attributes)
        if pending.span is not None:
            _end_span(pending.span, result, attributes)

    def _peek(self, item: Any) -> _Pending | None:
        with self._lock:
            queue = self._pending.get(id(item))
            return queue[0] if queue else None

    # ------------------------------------------------------------------ attributes

    def _base_key(self, item: Any) -> tuple[str | None, str | None]:
        push_type = getattr(item, "resolved_push_type", None)
        topic = getattr(item, "topic", None)
        if push_type is not None and isinstance(topic, str):
            return str(push_type.value), topic
        # A broadcast request, or anything else a client was handed: read the headers.
        headers = getattr(item, "headers", None)
        found: dict[str, str] = {}
        if isinstance(headers, tuple):
            for header in headers:
                if isinstance(header, tuple) and len(header) == 2:
                    found[str(header[0])] = str(header[1])
        return found.get("apns-push-type"), found.get("apns-topic")

    def _base(self, item: Any) -> Attributes:
        key = self._base_key(item)
        attributes = self._base_cache.get(key)
        if attributes is None:
            push_type, topic = key
            built: dict[str, AttributeValue] = dict(self._extra)
            if push_type is not None:
                built["apns.push_type"] = push_type
            if topic is not None:
                built["apns.topic"] = topic
            if len(self._base_cache) >= _CACHE_LIMIT:
                self._base_cache.clear()
            self._base_cache[key] = attributes = built
        return attributes

    def _remember(self, key: tuple[Any, ...], attributes: Attributes) -> Attributes:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = attributes
        return attributes

    def _with(self, attributes: dict[str, AttributeValue]) -> Attributes:
        return {**self._extra, **attributes} if self._extra else attributes


def _outcome(result: PushResult) -> str:
    if result.accepted:
        return "accepted"
    if result.rejected:
        return "rejected"
    return "failed"


def _reason(result: PushResult) -> str | None:
    reason = result.reason
    if reason is None:
        return None
    text = str(reason.value) if isinstance(reason, apnskit.Reason) else str(reason)
    # A reason APNs may add later is kept, but only if it looks like one (bounded values).
    return text if _WORD.fullmatch(text) else "other"


def _error_type(error: BaseException | None) -> str:
    """OpenTelemetry's ``error.type``: the exception's fully qualified class name."""
    if error is None:
        return "_OTHER"  # the convention's value for "an error of no known type"
    cls = type(error)
    if getattr(apnskit, cls.__name__, None) is cls:
        return f"apnskit.{cls.__name__}"  # the public name, not the private module
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _retry_cause(why: str) -> tuple[str, int | None, str | None]:
    """(cause, HTTP status, APNs reason) of a :class:`apnskit.RetryScheduled` reason."""
    cause = _RETRY_CAUSE_BY_TEXT.get(why)
    if cause is not None:
        return cause, None, None
    match = _STATUS_REASON.fullmatch(why)
    if match is None:
        return "other", None, None
    status = int(match.group(1))
    reason = match.group(2)
    if reason == apnskit.Reason.EXPIRED_PROVIDER_TOKEN.value:
        return "expired_provider_token", status, reason
    return _RETRY_CAUSE_BY_STATUS.get(status, "http_status"), status, reason


def _close_attributes(why: str) -> dict[str, AttributeValue]:
    """Bounded attributes for a :class:`apnskit.ConnectionClosed` reason."""
    attributes: dict[str, AttributeValue] = {}
    if why == "client closed":
        cause = "client_closed"
    elif why == "drained after GOAWAY":
        cause = "drained"
    elif why.startswith("GOAWAY"):
        cause = "goaway"
        reason = why[len("GOAWAY") :].strip()
        if _WORD.fullmatch(reason):
            attributes["apns.reason"] = reason  # e.g. Shutdown, MaxRequestsReached
    elif "PING" in why:
        cause = "ping_timeout"
    elif why.startswith("lost"):
        cause = "lost"
    elif why.startswith("protocol error"):
        cause = "protocol_error"
    else:
        cause = "other"
    attributes["apnskit.connection.close_reason"] = cause
    return attributes


def _end_span(span: Span, result: PushResult, attributes: Attributes) -> None:
    span.set_attributes(attributes)
    span.set_attribute("apnskit.retry_count", max(0, result.attempts - 1))
    if result.apns_id:
        span.set_attribute("apns.id", result.apns_id)
    if result.apns_unique_id:
        span.set_attribute("apns.unique_id", result.apns_unique_id)
    if not result.accepted:
        # The description is the bounded error.type (a reason or an exception class), never
        # an error message, which might quote request data.
        span.set_status(Status(StatusCode.ERROR, str(attributes.get("error.type", ""))))
    span.end()
