"""Optional integrations (OpenTelemetry, Django, Celery, ...), each behind its own extra."""
