"""realtime queries."""
