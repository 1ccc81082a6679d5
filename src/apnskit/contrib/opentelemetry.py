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

- ``apnskit.notifications`` (``{notification}``): notifications that ended, by
  ``apnskit.outcome`` (accepted, rejected, failed), ``http.response.status_code``,
  ``apns.reason`` and ``error.type``;
- ``apnskit.notification.duration`` (histogram, ``s``): from the hand-over to the client until
  the result, retries included, by outcome;
- ``apnskit.notifications.in_flight`` (up-down): handed over and not yet ended;
- ``apnskit.retries`` (``{retry}``): by ``apnskit.retry.cause``;
- ``apnskit.connections.opened``, ``.closed`` (by ``apnskit.connection.close_reason``) and
  ``.failed`` (by ``error.type``), in ``{connection}``.

Notification metrics also carry ``apns.push_type`` and ``apns.topic``. The counters are
observable instruments fed from running totals (see :class:`OpenTelemetryHook`). The
observability guide of the documentation lists every attribute value.

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
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import Observation
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

# APNs reasons and GOAWAY reasons are single CamelCase words; anything else (free text with
# numbers or addresses) is left out of attributes to keep their values bounded.
_WORD = re.compile(r"[A-Za-z]{1,64}")
# Bounds the attribute-set caches; they hold a few dozen entries in practice.
_CACHE_LIMIT = 1024


class _Pending:
    """One handed-over notification the hook waits to see the result of."""

    __slots__ = ("attributes", "in_flight_key", "notification", "span", "started")

    def __init__(
        self,
        notification: Any,
        started: float,
        attributes: Attributes,
        in_flight_key: tuple[Any, ...],
        span: Span | None,
    ) -> None:
        # Holding the notification keeps its id() from being reused while it is pending.
        self.notification = notification
        self.started = started
        self.attributes = attributes
        self.in_flight_key = in_flight_key
        self.span = span


# The counters, kept as running totals in Python and observed by the SDK when it collects:
# an SDK measurement costs about 10 us of CPU (it validates and hashes the attributes every
# time), a dict update a fraction of one, and a hook runs on the client's I/O path.
_COUNTERS: dict[str, tuple[bool, str, str]] = {
    # name: (up-down, unit, description)
    "apnskit.notifications": (
        False,
        "{notification}",
        "Notifications that ended, by outcome (accepted, rejected, failed).",
    ),
    "apnskit.notifications.in_flight": (
        True,
        "{notification}",
        "Notifications handed to the client that have no result yet.",
    ),
    "apnskit.retries": (False, "{retry}", "Notifications scheduled to be sent again, by cause."),
    "apnskit.connections.opened": (
        False,
        "{connection}",
        "HTTP/2 connections to APNs that were established.",
    ),
    "apnskit.connections.closed": (
        False,
        "{connection}",
        "HTTP/2 connections to APNs that ended, by reason.",
    ),
    "apnskit.connections.failed": (
        False,
        "{connection}",
        "Attempts to connect to APNs that failed, by error type.",
    ),
}


class _Instruments:
    """The instruments of one meter provider, shared by every hook that records to it.

    OpenTelemetry keeps the first instrument registered under a name and ignores the callbacks
    of later ones, so hooks on the same provider must share one set (and its totals).
    """

    def __init__(self, provider: metrics.MeterProvider) -> None:
        meter = provider.get_meter(_SCOPE, apnskit.__version__)
        self.lock = threading.Lock()
        #: name -> attribute key -> [attributes, running total]
        self.totals: dict[str, dict[tuple[Any, ...], list[Any]]] = {n: {} for n in _COUNTERS}
        self.duration = meter.create_histogram(
            "apnskit.notification.duration",
            unit="s",
            description="Time from handing a notification to the client until its result.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        for name, (up_down, unit, description) in _COUNTERS.items():
            create = (
                meter.create_observable_up_down_counter
                if up_down
                else meter.create_observable_counter
            )
            create(name, callbacks=[self._observer(name)], unit=unit, description=description)

    def _observer(self, name: str) -> Callable[[metrics.CallbackOptions], list[Observation]]:
        totals = self.totals[name]

        def observe(options: metrics.CallbackOptions) -> list[Observation]:
            with self.lock:
                return [Observation(cell[1], cell[0]) for cell in totals.values()]

        return observe

    def add(self, name: str, key: tuple[Any, ...], attributes: Attributes, amount: int) -> None:
        """Add to a running total; the caller holds :attr:`lock`."""
        cell = self.totals[name].get(key)
        if cell is None:
            self.totals[name][key] = [attributes, amount]
        else:
            cell[1] += amount


_registry: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _instruments_for(provider: metrics.MeterProvider) -> _Instruments:
    with _registry_lock:
        found = _registry.get(provider)
        if found is None:
            found = _registry[provider] = _Instruments(provider)
        return found


class OpenTelemetryHook:
    """A client ``event_hook`` that records OpenTelemetry metrics, and optionally spans.

    One hook may serve several clients, sync and async alike (it is thread-safe), and several
    hooks may record to one meter provider (they share its instruments). The counters are
    kept as running totals and read by the SDK when it collects, so recording costs a few
    dictionary updates per notification plus one histogram measurement.

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
        self._instruments = _instruments_for(meter_provider or metrics.get_meter_provider())
        self._lock = self._instruments.lock
        self._add = self._instruments.add
        self._duration = self._instruments.duration
        self._tracer: trace.Tracer | None = None
        if spans and span_sample_ratio > 0.0:
            tracer_source = tracer_provider or trace.get_tracer_provider()
            self._tracer = tracer_source.get_tracer(_SCOPE, apnskit.__version__)
        self._ratio = span_sample_ratio
        self._extra: dict[str, AttributeValue] = dict(attributes or {})
        # Hooks with other extra attributes share the totals: keep their series apart.
        self._extra_key = tuple(sorted((k, repr(v)) for k, v in self._extra.items()))
        self._clock = clock
        self._random = random
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
            self._count(
                "apnskit.connections.opened",
                {"server.address": event.host, "server.port": event.port},
            )
        elif kind is ConnectionClosed:
            assert isinstance(event, ConnectionClosed)
            self._count("apnskit.connections.closed", _close_attributes(event.reason))
        elif kind is ConnectionFailed:
            assert isinstance(event, ConnectionFailed)
            self._count("apnskit.connections.failed", {"error.type": _error_type(event.error)})

    # ------------------------------------------------------------------ notifications

    def _on_submitted(self, event: NotificationSubmitted) -> None:
        item = event.notification
        base_key = self._base_key(item)
        attributes = self._base(base_key)
        span = None
        if self._tracer is not None and (self._ratio >= 1.0 or self._random() < self._ratio):
            # Started here, in the caller's thread or task, so the caller's current span
            # (a web request, a task) becomes its parent.
            span = self._tracer.start_span(SPAN_NAME, kind=SpanKind.CLIENT, attributes=attributes)
            priority = getattr(item, "priority", None)
            if priority is not None:
                span.set_attribute("apns.priority", int(priority))
        in_flight_key = (self._extra_key, *base_key)
        pending = _Pending(item, self._clock(), attributes, in_flight_key, span)
        with self._lock:
            queue = self._pending.get(id(item))
            if queue is None:
                self._pending[id(item)] = deque((pending,))
            else:
                queue.append(pending)
            self._add("apnskit.notifications.in_flight", in_flight_key, attributes, 1)

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
        cause, status, reason = _retry_cause(event)
        base_key = self._base_key(event.notification)
        key = ("retry", self._extra_key, cause, status, reason, *base_key)
        attributes = self._cache.get(key)
        if attributes is None:
            extra: dict[str, AttributeValue] = {"apnskit.retry.cause": cause}
            if status is not None:
                extra["http.response.status_code"] = status
            if reason is not None:
                extra["apns.reason"] = reason
            attributes = self._remember(key, {**self._base(base_key), **extra})
        with self._lock:
            self._add("apnskit.retries", key, attributes, 1)
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
        base_key = self._base_key(item)
        outcome = _outcome(result)
        status = result.status
        reason = _reason(result)
        error_type = None
        if outcome == "rejected":
            error_type = reason or str(status)
        elif outcome == "failed":
            error_type = _error_type(result.error)
        key = ("result", self._extra_key, *base_key, outcome, status, reason, error_type)
        attributes = self._cache.get(key)
        if attributes is None:
            extra: dict[str, AttributeValue] = {"apnskit.outcome": outcome}
            if status is not None:
                extra["http.response.status_code"] = status
            if reason is not None:
                extra["apns.reason"] = reason
            if error_type is not None:
                extra["error.type"] = error_type
            attributes = self._remember(key, {**self._base(base_key), **extra})
        with self._lock:
            queue = self._pending.get(id(item))
            pending = queue.popleft() if queue else None
            if queue is not None and not queue:
                del self._pending[id(item)]
            self._add("apnskit.notifications", key, attributes, 1)
            if pending is not None:
                self._add("apnskit.notifications.in_flight", pending.in_flight_key, {}, -1)
        if pending is None:
            return  # handed over before this hook was attached: no start time
        duration_key = ("duration", self._extra_key, *base_key, outcome)
        duration_attributes = self._cache.get(duration_key)
        if duration_attributes is None:
            duration_attributes = self._remember(
                duration_key, {**self._base(base_key), "apnskit.outcome": outcome}
            )
        self._duration.record(max(0.0, now - pending.started), duration_attributes)
        if pending.span is not None:
            _end_span(pending.span, result, attributes)

    def _peek(self, item: Any) -> _Pending | None:
        with self._lock:
            queue = self._pending.get(id(item))
            return queue[0] if queue else None

    # ------------------------------------------------------------------ attributes

    def _count(self, name: str, attributes: dict[str, AttributeValue]) -> None:
        if self._extra:
            attributes = {**self._extra, **attributes}
        key = (self._extra_key, *sorted((k, repr(v)) for k, v in attributes.items()))
        with self._lock:
            self._add(name, key, attributes, 1)

    @staticmethod
    def _base_key(item: Any) -> tuple[str | None, str | None]:
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

    def _base(self, key: tuple[str | None, str | None]) -> Attributes:
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


def _outcome(result: PushResult) -> str:
    if result.accepted:
        return "accepted"
    if result.rejected:
        return "rejected"
    return "failed"


def _reason(result: PushResult) -> str | None:
    return _reason_text(result.reason)


def _reason_text(reason: apnskit.Reason | str | None) -> str | None:
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


def _retry_cause(event: RetryScheduled) -> tuple[str, int | None, str | None]:
    """(cause, HTTP status, APNs reason) of a retry, from its structured fields."""
    # RetryScheduled.reason is text for people; its cause, status and apns_reason are the
    # closed set and the answer's own values, so nothing is parsed here.
    return event.cause.value, event.status, _reason_text(event.apns_reason)


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
