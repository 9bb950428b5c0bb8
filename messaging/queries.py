"""messaging queries."""
