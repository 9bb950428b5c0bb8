"""dashboard tasks."""
