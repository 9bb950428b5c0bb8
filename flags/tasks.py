"""flags tasks."""
