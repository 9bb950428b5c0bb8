"""dashboard queries."""
