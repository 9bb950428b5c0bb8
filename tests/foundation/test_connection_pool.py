"""The web process pools its PostgreSQL connections: requests reuse them instead of opening one each."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from django.db import connection

from tests.processes import ROOT, asgi_server, child_env

pytestmark = pytest.mark.django_db(transaction=True)


def sessions_so_far() -> int:
    """Database sessions ever started on the test database (PostgreSQL's cumulative statistics)."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cur.fetchone()[0]


def sessions_opened_by(base: str, requests: int) -> int:
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/healthz").status_code == 200  # warm: imports, first connections
        before = sessions_so_far()
        for _ in range(requests):
            assert client.get("/healthz").status_code == 200  # each one runs a query
    deadline = time.monotonic() + 5  # a closed session is counted when its backend reports, a moment later
    while True:
        opened = sessions_so_far() - before
        if opened >= requests or time.monotonic() > deadline:
            return opened
        time.sleep(0.2)


def test_the_web_process_answers_many_requests_without_opening_a_database_session_for_each():
    with asgi_server() as base:
        assert sessions_opened_by(base, 40) <= 3


def test_without_the_pool_every_request_opens_its_own_database_session():
    """The same measurement with the pool turned off: what the pool saves, and proof the probe sees it."""
    with asgi_server(child_env(DB_POOL="0")) as base:
        assert sessions_opened_by(base, 40) >= 40


@pytest.mark.parametrize(("extra", "pooled"), [({}, True), ({"CONN_MAX_AGE": "0"}, False), ({"DB_POOL": "0"}, False)])
def test_the_asgi_entry_point_pools_unless_conn_max_age_or_db_pool_says_otherwise(extra, pooled):
    env = child_env(**extra)
    for name in ("CONN_MAX_AGE", "DB_POOL"):
        if name not in extra:
            env.pop(name, None)
    probe = ("import config.asgi; from django.conf import settings; "
             "print('pool' in settings.DATABASES['default']['OPTIONS'])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(pooled)
