"""The web process pools its PostgreSQL connections: requests reuse them instead of opening one each."""

from __future__ import annotations

import httpx
import pytest
from django.db import connection

from tests.processes import asgi_server, child_env

pytestmark = pytest.mark.django_db(transaction=True)


def web_backends() -> set[int]:
    """Backend pids of the web process's connections to the test database (named by application_name)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            ["pushwatch-web"],
        )
        return {row[0] for row in cur.fetchall()}


def hit(base: str, times: int) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(times):
            assert client.get("/healthz").status_code == 200  # each one runs a query


def test_the_web_process_serves_many_requests_on_the_same_few_pooled_connections():
    with asgi_server() as base:
        hit(base, 20)
        first = web_backends()
        assert 1 <= len(first) <= 3  # without the pool every connection closes when its request ends: none left
        hit(base, 40)
        assert web_backends() == first  # the same connections answered 40 more requests


def test_setting_conn_max_age_for_the_web_process_turns_the_pool_off():
    env = child_env(CONN_MAX_AGE="0")
    with asgi_server(env) as base:
        hit(base, 10)
        assert web_backends() == set()
