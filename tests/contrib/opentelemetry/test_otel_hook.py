"""apnskit.contrib.opentelemetry with the real OpenTelemetry SDK (in-memory reader and
exporter) and real clients against the mock APNs server, faults injected."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import apnskit
from apnskit.contrib.opentelemetry import (
    DURATION_BUCKETS,
    SPAN_NAME,
    OpenTelemetryHook,
    _close_attributes,
    _error_type,
    _retry_cause,
)
from apnskit.testing import MockApnsServer

pytestmark = pytest.mark.anyio

TOPIC = "com.example.app"
GOOD = "ab" * 32
GONE = "cd" * 32  # unregistered: 410 Unregistered
FAST_RETRY = apnskit.RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_max=0.01)
NO_RETRY = apnskit.RetryPolicy(max_attempts=1)


class Telemetry:
    """An SDK meter and tracer provider with in-memory reader and exporter."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def hook(self, **kwargs: Any) -> OpenTelemetryHook:
        return OpenTelemetryHook(meter_provider=self.meters, tracer_provider=self.tracers, **kwargs)

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, value) of each data point of metric ``name`` (value: int, or the
        histogram point)."""
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, Any], Any]] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        value = point if isinstance(point, HistogramDataPoint) else point.value
                        found.append((dict(point.attributes or {}), value))
        return found

    def total(self, name: str, match: dict[str, Any] | None = None) -> int:
        """Sum of the points of ``name`` whose attributes include ``match``."""
        return sum(
            value
            for attributes, value in self.points(name)
            if all(attributes.get(k) == v for k, v in (match or {}).items())
        )

    def units(self) -> dict[str, str]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            metric.name: metric.unit
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def shutdown(self) -> None:
        self.meters.shutdown()
        self.tracers.shutdown()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.shutdown()


@pytest.fixture
def server() -> Iterator[MockApnsServer]:
    with MockApnsServer() as srv:
        srv.unregister(GONE)
        yield srv


def make_client(server: MockApnsServer, hook: OpenTelemetryHook, **kwargs: Any) -> Any:
    kwargs.setdefault("retry", FAST_RETRY)
    return apnskit.PushClient(
        server.apns_token_credentials(),
        host=server.host,
        port=server.port,
        ca_file=server.ca_file,
        event_hook=hook,
        **kwargs,
    )


def note(token: str = GOOD, **kwargs: Any) -> apnskit.Notification:
    return apnskit.Notification(token, apnskit.Payload(alert="hi"), topic=TOPIC, **kwargs)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- metrics


def test_outcomes_latency_and_in_flight(server: MockApnsServer, telemetry: Telemetry) -> None:
    with make_client(server, telemetry.hook(), retry=NO_RETRY) as client:
        assert client.send(note()).accepted
        assert client.send(note(GONE)).rejected
        server.faults.drop_after(0)  # the next request meets a dropped connection
        failed = client.send(note())
        assert failed.failed
        assert client.send(note()).accepted  # a new connection

    total = telemetry.total
    assert total("apnskit.notifications", {"apnskit.outcome": "accepted"}) == 2
    assert total("apnskit.notifications", {"apnskit.outcome": "rejected"}) == 1
    assert total("apnskit.notifications", {"apnskit.outcome": "failed"}) == 1
    by_outcome = {a["apnskit.outcome"]: a for a, _ in telemetry.points("apnskit.notifications")}
    assert by_outcome["accepted"] == {
        "apnskit.outcome": "accepted",
        "apns.push_type": "alert",
        "apns.topic": TOPIC,
        "http.response.status_code": 200,
    }
    assert by_outcome["rejected"] == {
        "apnskit.outcome": "rejected",
        "apns.push_type": "alert",
        "apns.topic": TOPIC,
        "http.response.status_code": 410,
        "apns.reason": "Unregistered",
        "error.type": "Unregistered",
    }
    assert by_outcome["failed"]["error.type"] == "apnskit.ConnectionLostError"
    assert "http.response.status_code" not in by_outcome["failed"]

    # One duration per notification, in seconds, with the advised buckets.
    durations = telemetry.points("apnskit.notification.duration")
    assert sum(p.count for _, p in durations) == 4
    assert {a["apnskit.outcome"] for a, _ in durations} == {"accepted", "rejected", "failed"}
    for _, point in durations:
        assert tuple(point.explicit_bounds) == DURATION_BUCKETS
        assert 0 < point.sum < 60  # seconds, not milliseconds or nanoseconds

    # Everything that went in came out.
    in_flight = telemetry.points("apnskit.notifications.in_flight")
    assert in_flight == [({"apns.push_type": "alert", "apns.topic": TOPIC}, 0)]

    assert telemetry.units() == {
        "apnskit.notifications": "{notification}",
        "apnskit.notification.duration": "s",
        "apnskit.notifications.in_flight": "{notification}",
        "apnskit.connections.opened": "{connection}",
        "apnskit.connections.closed": "{connection}",
    }
    assert total("apnskit.connections.opened") == 2
    assert telemetry.points("apnskit.connections.opened")[0][0] == {
        "server.address": server.host,
        "server.port": server.port,
    }
    assert total("apnskit.connections.closed", {"apnskit.connection.close_reason": "lost"}) == 1
    assert (
        total("apnskit.connections.closed", {"apnskit.connection.close_reason": "client_closed"})
        == 1
    )


def test_in_flight_counts_what_awaits_a_result(
    server: MockApnsServer, telemetry: Telemetry
) -> None:
    server.faults.delay_next(5, 0.3)
    seen: list[int] = []
    hook = telemetry.hook()

    def watching(event: apnskit.ClientEvent) -> None:
        hook(event)
        if isinstance(event, apnskit.ResultReady):
            seen.append(telemetry.total("apnskit.notifications.in_flight"))

    with make_client(server, watching) as client:  # type: ignore[arg-type]
        results = list(client.send_many([note() for _ in range(5)]))
    assert all(r.accepted for r in results)
    # Read inside the hook as each result arrived: 4, 3, 2, 1, 0 left in flight.
    assert seen == [4, 3, 2, 1, 0]
    assert telemetry.total("apnskit.notifications") == 5


def test_retries_by_cause(server: MockApnsServer, telemetry: Telemetry) -> None:
    with make_client(server, telemetry.hook()) as client:
        server.faults.fail_next(1, 503)
        assert client.send(note()).accepted
        server.faults.fail_next(1, 429)
        assert client.send(note()).accepted
        server.faults.fail_next(1, 500)
        assert client.send(note()).accepted
        server.faults.refuse_next(1)
        assert client.send(note()).accepted
        server.faults.expire_token_next(1)
        assert client.send(note()).accepted
        server.faults.goaway_after(0)
        assert client.send(note()).accepted
        server.faults.drop_after(0)
        assert client.send(note()).accepted

    causes = {a["apnskit.retry.cause"]: (a, v) for a, v in telemetry.points("apnskit.retries")}
    assert {cause: v for cause, (_, v) in causes.items()} == {
        "unavailable": 1,
        "throttled": 1,
        "server_error": 1,
        "stream_refused": 1,
        "expired_provider_token": 1,
        "goaway": 1,
        "connection_lost": 1,
    }
    attributes, _ = causes["unavailable"]
    assert attributes["http.response.status_code"] == 503
    assert attributes["apns.reason"] == "ServiceUnavailable"
    assert attributes["apns.push_type"] == "alert"
    assert causes["throttled"][0]["apns.reason"] == "TooManyRequests"
    assert causes["expired_provider_token"][0]["http.response.status_code"] == 403
    assert "http.response.status_code" not in causes["goaway"][0]
    assert telemetry.total("apnskit.notifications", {"apnskit.outcome": "accepted"}) == 7
    closed = {
        a["apnskit.connection.close_reason"]: (a, v)
        for a, v in telemetry.points("apnskit.connections.closed")
    }
    assert closed["goaway"][0].get("apns.reason") == "Shutdown"
    assert closed["lost"][1] == 1


def test_connection_failures(server: MockApnsServer, telemetry: Telemetry) -> None:
    port = free_port()  # nothing listens there
    with apnskit.PushClient(
        server.apns_token_credentials(),
        host="127.0.0.1",
        port=port,
        retry=NO_RETRY,
        timeout=apnskit.Timeout(connect=5.0),
        event_hook=telemetry.hook(),
    ) as client:
        result = client.send(note())
    assert result.failed
    assert isinstance(result.error, apnskit.ConnectError)
    failed = telemetry.points("apnskit.connections.failed")
    assert failed == [({"error.type": _error_type(result.error)}, 1)]
    assert failed[0][0]["error.type"].startswith("apnskit.")
    assert telemetry.total("apnskit.connections.opened") == 0
    assert telemetry.total("apnskit.notifications", {"apnskit.outcome": "failed"}) == 1
    assert telemetry.total("apnskit.notifications.in_flight") == 0


def test_threads_share_one_hook(server: MockApnsServer, telemetry: Telemetry) -> None:
    hook = telemetry.hook()
    with make_client(server, hook, limits=apnskit.Limits(max_connections=2)) as client:

        def work(n: int) -> None:
            for i in range(25):
                client.send(note(GONE if (n + i) % 5 == 0 else GOOD))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert telemetry.total("apnskit.notifications") == 200
    assert telemetry.total("apnskit.notifications", {"apnskit.outcome": "rejected"}) == 40
    assert telemetry.total("apnskit.notifications.in_flight") == 0
    assert sum(p.count for _, p in telemetry.points("apnskit.notification.duration")) == 200


def test_same_notification_object_in_flight_many_times(
    server: MockApnsServer, telemetry: Telemetry
) -> None:
    # Results are matched to hand-overs by identity; one object sent 300 times at once.
    same = note()
    with make_client(server, telemetry.hook(spans=True)) as client:
        results = list(client.send_many([same] * 300))
    assert len(results) == 300
    assert telemetry.total("apnskit.notifications") == 300
    assert telemetry.total("apnskit.notifications.in_flight") == 0
    assert len(telemetry.spans()) == 300


async def test_async_client(
    server: MockApnsServer, telemetry: Telemetry, anyio_backend: str
) -> None:
    tracer = telemetry.tracers.get_tracer("test")
    async with apnskit.AsyncPushClient(
        server.apns_token_credentials(),
        host=server.host,
        port=server.port,
        ca_file=server.ca_file,
        retry=FAST_RETRY,
        event_hook=telemetry.hook(spans=True),
    ) as client:
        server.faults.fail_next(1, 503)
        with tracer.start_as_current_span("request") as parent:
            result = await client.send(note())
        results = [r async for r in client.send_many([note(), note(GONE)])]
    assert result.accepted
    assert sorted(r.accepted for r in results) == [False, True]
    assert telemetry.total("apnskit.notifications") == 3
    assert telemetry.total("apnskit.retries", {"apnskit.retry.cause": "unavailable"}) == 1
    assert telemetry.total("apnskit.notifications.in_flight") == 0
    spans = [s for s in telemetry.spans() if s.name == SPAN_NAME]
    assert len(spans) == 3
    first = next(s for s in spans if s.attributes and s.attributes.get("apnskit.retry_count"))
    assert first.parent is not None
    assert first.parent.span_id == parent.get_span_context().span_id


# ---------------------------------------------------------------------------- spans


def test_span_per_notification(server: MockApnsServer, telemetry: Telemetry) -> None:
    tracer = telemetry.tracers.get_tracer("test")
    with make_client(server, telemetry.hook(spans=True)) as client:
        server.faults.fail_next(1, 503)
        with tracer.start_as_current_span("handle request") as parent:
            accepted = client.send(note(priority=5, apns_id="7b9a0e5c-0d8e-4d43-9b34-64f1f8c0f4a1"))
        rejected = client.send(note(GONE))
    assert accepted.accepted
    assert rejected.rejected
    spans = {s.attributes["apnskit.outcome"]: s for s in telemetry.spans() if s.name == SPAN_NAME}
    ok = spans["accepted"]
    assert ok.kind is SpanKind.CLIENT
    assert ok.parent is not None
    assert ok.parent.span_id == parent.get_span_context().span_id
    assert ok.attributes is not None
    assert ok.attributes["apns.push_type"] == "alert"
    assert ok.attributes["apns.topic"] == TOPIC
    assert ok.attributes["apns.priority"] == 5
    assert ok.attributes["http.response.status_code"] == 200
    assert ok.attributes["apns.id"] == "7b9a0e5c-0d8e-4d43-9b34-64f1f8c0f4a1"
    assert ok.attributes["apnskit.retry_count"] == 1
    assert ok.status.status_code is StatusCode.UNSET
    assert [e.name for e in ok.events] == ["apns.attempt", "apns.retry", "apns.attempt"]
    retry = ok.events[1]
    assert retry.attributes is not None
    assert retry.attributes["apnskit.retry.cause"] == "unavailable"
    assert retry.attributes["apnskit.attempt"] == 2

    bad = spans["rejected"]
    assert bad.attributes is not None
    assert bad.attributes["apns.reason"] == "Unregistered"
    assert bad.attributes["http.response.status_code"] == 410
    assert bad.attributes["apnskit.retry_count"] == 0
    assert bad.attributes["apns.id"] == rejected.apns_id
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.status.description == "Unregistered"
    assert bad.parent is None


def test_failed_notification_span(server: MockApnsServer, telemetry: Telemetry) -> None:
    with make_client(
        server,
        telemetry.hook(spans=True),
        retry=NO_RETRY,
        timeout=apnskit.Timeout(deadline=0.5),
    ) as client:
        server.faults.never_reply_next(1)
        result = client.send(note())
    assert isinstance(result.error, apnskit.DeadlineExceededError)
    (span,) = telemetry.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "apnskit.DeadlineExceededError"
    assert span.attributes is not None
    assert span.attributes["apnskit.outcome"] == "failed"
    assert "http.response.status_code" not in span.attributes


def test_spans_off_by_default_and_sampled(server: MockApnsServer, telemetry: Telemetry) -> None:
    with make_client(server, telemetry.hook()) as client:
        list(client.send_many([note() for _ in range(10)]))
    assert telemetry.spans() == []

    draws = iter([0.1, 0.9] * 50)
    sampled = telemetry.hook(spans=True, span_sample_ratio=0.5, random=lambda: next(draws))
    with make_client(server, sampled) as client:
        list(client.send_many([note() for _ in range(100)]))
    assert len(telemetry.spans()) == 50
    # Metrics still see every notification.
    assert telemetry.total("apnskit.notifications") == 110

    with make_client(server, telemetry.hook(spans=True, span_sample_ratio=0.0)) as client:
        client.send(note())
    assert len(telemetry.spans()) == 50


def test_bad_sample_ratio() -> None:
    with pytest.raises(ValueError, match="span_sample_ratio"):
        OpenTelemetryHook(span_sample_ratio=1.5)


def test_extra_attributes_and_global_providers(server: MockApnsServer) -> None:
    # With no SDK configured the global providers are no-ops: sending works, nothing breaks.
    with make_client(server, OpenTelemetryHook(spans=True)) as client:
        assert client.send(note()).accepted
    telemetry = Telemetry()
    try:
        hook = telemetry.hook(attributes={"apnskit.client": "marketing"})
        with make_client(server, hook) as client:
            assert client.send(note()).accepted
        for name in ("apnskit.notifications", "apnskit.connections.opened"):
            assert all(a["apnskit.client"] == "marketing" for a, _ in telemetry.points(name))
    finally:
        telemetry.shutdown()


def test_hooks_share_a_meter_provider(
    server: MockApnsServer, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    # OpenTelemetry keeps the first instrument of a name and ignores later callbacks: hooks
    # on one provider must share instruments, and each keeps its own series.
    marketing = telemetry.hook(attributes={"apnskit.client": "marketing"})
    alerts = telemetry.hook(attributes={"apnskit.client": "alerts"})
    with make_client(server, marketing) as one, make_client(server, alerts) as two:
        list(one.send_many([note() for _ in range(3)]))
        assert two.send(note(GONE)).rejected
    assert telemetry.total("apnskit.notifications", {"apnskit.client": "marketing"}) == 3
    assert telemetry.total("apnskit.notifications", {"apnskit.client": "alerts"}) == 1
    assert telemetry.total("apnskit.connections.opened", {"apnskit.client": "alerts"}) == 1
    assert telemetry.total("apnskit.notifications.in_flight") == 0
    durations = telemetry.points("apnskit.notification.duration")
    assert {a["apnskit.client"]: p.count for a, p in durations} == {"marketing": 3, "alerts": 1}
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]


# ---------------------------------------------------------------------------- secrets


def test_no_device_token_or_secret_in_any_attribute(
    server: MockApnsServer, telemetry: Telemetry
) -> None:
    credentials = server.apns_token_credentials()
    tokens = [f"{i:02x}" * 32 for i in range(1, 6)]
    bearer = credentials.authorization()
    assert bearer is not None
    secrets = [*tokens, *(t.upper() for t in tokens), GONE, bearer[0].split()[1]]
    with apnskit.PushClient(
        credentials,
        host=server.host,
        port=server.port,
        ca_file=server.ca_file,
        retry=FAST_RETRY,
        event_hook=telemetry.hook(spans=True),
    ) as client:
        server.faults.fail_next(1, 503)
        server.faults.refuse_next(1)
        for result in client.send_many([note(t) for t in tokens] + [note(GONE)]):
            assert result.status is not None
        server.faults.drop_after(0)
        client.send(note(tokens[0]))

    texts: list[str] = []
    data = telemetry.reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    texts.extend(f"{k}={v}" for k, v in (point.attributes or {}).items())
    spans = telemetry.spans()
    assert len(spans) == 7
    for span in spans:
        texts.append(span.name)
        texts.append(str(span.status.description))
        texts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            texts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    assert len(texts) > 100
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob
    assert "/3/device" not in blob
    assert "PRIVATE KEY" not in blob


# ---------------------------------------------------------------------------- mappings


_CAUSE = apnskit.RetryCause


@pytest.mark.parametrize(
    ("why", "cause", "status", "apns_reason", "expected"),
    [
        (
            "503 ServiceUnavailable",
            _CAUSE.UNAVAILABLE,
            503,
            apnskit.Reason.SERVICE_UNAVAILABLE,
            ("unavailable", 503, "ServiceUnavailable"),
        ),
        (
            "429 TooManyRequests",
            _CAUSE.THROTTLED,
            429,
            "TooManyRequests",
            ("throttled", 429, "TooManyRequests"),
        ),
        ("500", _CAUSE.SERVER_ERROR, 500, None, ("server_error", 500, None)),
        (
            "403 ExpiredProviderToken",
            _CAUSE.EXPIRED_PROVIDER_TOKEN,
            403,
            apnskit.Reason.EXPIRED_PROVIDER_TOKEN,
            ("expired_provider_token", 403, "ExpiredProviderToken"),
        ),
        ("stream refused", _CAUSE.STREAM_REFUSED, None, None, ("stream_refused", None, None)),
        ("not processed before GOAWAY", _CAUSE.GOAWAY, None, None, ("goaway", None, None)),
        ("connection lost", _CAUSE.CONNECTION_LOST, None, None, ("connection_lost", None, None)),
        # The text is for people and may hold anything (here a proxy's HTML body, which the
        # old parser of the text turned into cause "other"): the cause still comes through.
        (
            "503 <html>Service down</html>",
            _CAUSE.UNAVAILABLE,
            503,
            None,
            ("unavailable", 503, None),
        ),
        # An unknown reason that does not look like one is bounded to "other".
        ("503 a b 12", _CAUSE.UNAVAILABLE, 503, "a b 12", ("unavailable", 503, "other")),
    ],
)
def test_retry_cause(
    why: str,
    cause: apnskit.RetryCause,
    status: int | None,
    apns_reason: apnskit.Reason | str | None,
    expected: tuple[str, int | None, str | None],
) -> None:
    event = apnskit.RetryScheduled(
        notification=None,
        attempt=2,
        delay=0.0,
        reason=why,
        cause=cause,
        status=status,
        apns_reason=apns_reason,
    )
    assert _retry_cause(event) == expected


@pytest.mark.parametrize(
    ("why", "expected"),
    [
        ("client closed", {"apnskit.connection.close_reason": "client_closed"}),
        ("drained after GOAWAY", {"apnskit.connection.close_reason": "drained"}),
        (
            "GOAWAY Shutdown",
            {"apnskit.connection.close_reason": "goaway", "apns.reason": "Shutdown"},
        ),
        ("GOAWAY error code 0x2", {"apnskit.connection.close_reason": "goaway"}),
        ("GOAWAY", {"apnskit.connection.close_reason": "goaway"}),
        (
            "lost: no answer to an HTTP/2 PING health check",
            {"apnskit.connection.close_reason": "ping_timeout"},
        ),
        ("lost: [Errno 104] reset by 10.1.2.3", {"apnskit.connection.close_reason": "lost"}),
        ("protocol error: bad frame", {"apnskit.connection.close_reason": "protocol_error"}),
        ("who knows", {"apnskit.connection.close_reason": "other"}),
    ],
)
def test_close_reason(why: str, expected: dict[str, str]) -> None:
    assert _close_attributes(why) == expected


def test_error_type() -> None:
    assert _error_type(apnskit.ConnectError("x")) == "apnskit.ConnectError"
    assert _error_type(TimeoutError()) == "TimeoutError"
    assert _error_type(socket.gaierror()) == "socket.gaierror"
    assert _error_type(None) == "_OTHER"
