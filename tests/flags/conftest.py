from __future__ import annotations

import pytest

from flags import queries
from flags.services import ensure_seed_flags
from tests.factories import StaffUserFactory


@pytest.fixture(autouse=True)
def fresh_flag_cache():
    """Each test starts with an empty per-process flag cache (the cache itself is under test)."""
    queries.clear_cache()
    yield
    queries.clear_cache()


@pytest.fixture
def admin(db):
    # Transactional tests flush the tables (data-migration rows included): put the seed flags back.
    ensure_seed_flags()
    return StaffUserFactory(role="admins")
