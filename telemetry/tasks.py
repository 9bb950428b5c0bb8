"""telemetry tasks."""
