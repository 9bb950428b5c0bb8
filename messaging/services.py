"""messaging services."""
