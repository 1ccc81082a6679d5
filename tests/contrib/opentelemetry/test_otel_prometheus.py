"""The hook's metrics through OpenTelemetry's Prometheus exporter: the names and labels the
observability guide shows (and its PromQL uses) are what Prometheus really scrapes."""

from __future__ import annotations

import re

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import REGISTRY, generate_latest

import apnskit
from apnskit.contrib.opentelemetry import OpenTelemetryHook
from apnskit.testing import MockApnsServer


def test_prometheus_exposition() -> None:
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    try:
        with MockApnsServer() as server:
            server.unregister("cd" * 32)
            with apnskit.PushClient(
                server.apns_token_credentials(),
                host=server.host,
                port=server.port,
                ca_file=server.ca_file,
                retry=apnskit.RetryPolicy(backoff_base=0.001),
                event_hook=OpenTelemetryHook(meter_provider=provider),
            ) as client:
                server.faults.fail_next(1, 503)
                for token in ("ab" * 32, "cd" * 32):
                    client.send(
                        apnskit.Notification(token, {"aps": {"alert": "hi"}}, topic="com.ex.app")
                    )
        text = generate_latest(REGISTRY).decode()
    finally:
        provider.shutdown()  # unregisters the collector from the global registry

    def sample(name: str, **labels: str) -> float:
        for line in text.splitlines():
            if not line.startswith(name + "{"):
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', line))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {name} {labels} in:\n{text}")

    assert sample("apnskit_notifications_total", apnskit_outcome="accepted") == 1
    assert (
        sample(
            "apnskit_notifications_total",
            apnskit_outcome="rejected",
            apns_reason="Unregistered",
            http_response_status_code="410",
            apns_topic="com.ex.app",
        )
        == 1
    )
    assert sample("apnskit_retries_total", apnskit_retry_cause="unavailable") == 1
    assert sample("apnskit_notification_duration_seconds_count", apnskit_outcome="accepted") == 1
    assert sample("apnskit_notification_duration_seconds_bucket", le="+Inf") == 1
    assert sample("apnskit_notifications_in_flight") == 0
    assert sample("apnskit_connections_opened_total") == 1
    assert (
        sample("apnskit_connections_closed_total", apnskit_connection_close_reason="client_closed")
        == 1
    )
