"""telemetry queries."""
