"""flags queries."""
