from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_throttle_history():
    """Throttle history lives in Redis and user ids repeat across test databases: start each test clean."""
    cache.clear()
    yield
    cache.clear()
