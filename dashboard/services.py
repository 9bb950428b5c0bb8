"""dashboard services."""
