"""dashboard api."""
