"""realtime api."""
