"""flags api."""
