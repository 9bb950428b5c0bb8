"""messaging api."""
