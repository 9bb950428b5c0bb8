"""realtime services."""
