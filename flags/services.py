"""flags services."""
