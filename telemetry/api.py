"""telemetry api."""
