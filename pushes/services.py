"""pushes services."""
