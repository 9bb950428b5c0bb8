"""pushes api."""
