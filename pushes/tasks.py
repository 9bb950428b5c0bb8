"""pushes tasks."""
