"""telemetry services."""
