"""CPU cost of apnskit.contrib.opentelemetry.OpenTelemetryHook per notification.

Feeds the hook the events one accepted notification produces (submitted, sent, result) for N
notifications, with the OpenTelemetry SDK recording (an in-memory metric reader; spans to a
processor that drops them), and prints microseconds of CPU per notification, the median of
several runs. Compare with the client's own cost (``python bench/core.py``, about 10-15 us).

    python bench/otel_hook.py [--count 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import apnskit
from apnskit.contrib.opentelemetry import OpenTelemetryHook


class _Drop(SpanExporter):
    def export(self, spans):  # type: ignore[no-untyped-def]
        return SpanExportResult.SUCCESS


def _run(hook: OpenTelemetryHook, notes: list[apnskit.Notification]) -> float:
    submitted = [apnskit.NotificationSubmitted(notification=n) for n in notes]
    sent = [apnskit.NotificationSent(notification=n, attempt=1, connection_id=1) for n in notes]
    ready = [
        apnskit.ResultReady(
            result=apnskit.PushResult(notification=n, status=200, apns_id="0" * 8 + "-" * 28)
        )
        for n in notes
    ]
    start = time.process_time()
    for a, b, c in zip(submitted, sent, ready, strict=True):
        hook(a)
        hook(b)
        hook(c)
    return (time.process_time() - start) / len(notes) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    notes = [
        apnskit.Notification(f"{i:064x}", {"aps": {"alert": "hi"}}, topic="com.example.bench")
        for i in range(args.count)
    ]
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(_Drop()))
    for label, kwargs in (
        ("metrics only", {}),
        ("metrics + a span per notification", {"spans": True}),
        ("metrics + spans sampled at 1%", {"spans": True, "span_sample_ratio": 0.01}),
    ):
        hook = OpenTelemetryHook(meter_provider=meters, tracer_provider=tracers, **kwargs)
        figures = [_run(hook, notes) for _ in range(args.runs)]
        print(f"{label:36s} {statistics.median(figures):6.1f} us CPU per notification")
    meters.shutdown()
    tracers.shutdown()


if __name__ == "__main__":
    main()
