"""Optional integrations (OpenTelemetry, Django, ...), each behind its own extra."""
