"""pushes queries."""
