"""realtime tasks."""
