from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import token_for


@pytest.fixture
def api_client():
    """An API client authenticated as the given user: ``api_client(user)``."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
        return client

    return make
