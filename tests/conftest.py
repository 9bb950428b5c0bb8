from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests import log_capture
from tests.factories import token_for


@pytest.fixture(autouse=True)
def _every_log_record_is_scanned_for_tokens():
    """Keep the run-wide token scanner on the root logger (see tests/log_capture.py)."""
    log_capture.attach()
    yield


def pytest_sessionfinish(session, exitstatus):
    leaks = log_capture.RUN_RECORDS.leaks
    if leaks:
        print(f"\n{len(leaks)} log record(s) held a full device token:")
        for name, text in leaks[:20]:
            print(f"  {name}: {text}")
        session.exitstatus = 1


@pytest.fixture
def api_client():
    """An API client authenticated as the given user: ``api_client(user)``."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
        return client

    return make
