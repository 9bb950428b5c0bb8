"""Run the project's real processes (ASGI server, Celery, fake FCM) against the test database."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database pytest-django is using now (the test database), for child processes."""
    d = connection.settings_dict
    host = quote(d.get("HOST") or d.get("OPTIONS", {}).get("host", ""), safe="")
    port = f":{d['PORT']}" if d.get("PORT") else ""
    auth = quote(d.get("USER") or "postgres", safe="")
    if d.get("PASSWORD"):
        auth += ":" + quote(d["PASSWORD"], safe="")
    return f"postgres://{auth}@{host}{port}/{d['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    env.update(extra)
    return env


def wait_for_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str], ready_url: str | None = None, log_path: Path | None = None,
            ready_timeout: float = 30.0) -> Iterator[subprocess.Popen]:  # fmt: skip
    """Start ``cmd``; wait for ``ready_url``; terminate it (and its children) on exit."""
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if ready_url:
            wait_for_http(ready_url, ready_timeout, proc)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        if log_path:
            out.close()


@contextlib.contextmanager
def asgi_server(env: dict[str, str] | None = None, log_path: Path | None = None) -> Iterator[str]:
    """The real ASGI server (uvicorn) on a free loopback port; yields its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
           "--port", str(port), "--no-access-log"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(cmd, env or child_env(), ready_url=f"{base}/healthz", log_path=log_path):
        yield base
