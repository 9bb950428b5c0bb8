"""The web process pools its PostgreSQL connections: requests reuse them instead of opening one each."""

from __future__ import annotations

import time

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


def settled_new_backends(before: set[int], timeout: float = 3.0) -> set[int]:
    """Web backends not in ``before``, once closed ones have left pg_stat_activity (that takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        new = web_backends() - before
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.1)


def test_the_web_process_serves_many_requests_on_the_same_few_pooled_connections():
    before = web_backends()  # an earlier test's server may still be leaving
    with asgi_server() as base:
        hit(base, 20)
        first = web_backends() - before
        assert 1 <= len(first) <= 3  # without the pool every connection closes when its request ends: none left
        hit(base, 40)
        assert web_backends() - before == first  # the same connections answered 40 more requests


def test_setting_conn_max_age_for_the_web_process_turns_the_pool_off():
    before = web_backends()
    with asgi_server(child_env(CONN_MAX_AGE="0")) as base:
        hit(base, 10)
        assert settled_new_backends(before) == set()
