"""The `fake_fcm` fixture: the real fake FCM server (`manage.py fakefcm`) as a subprocess on a free port.

Other test packages import it with `from tests.pushes.conftest import fake_fcm  # noqa: F401`. The server
process is started once per test session (lazily, by the first test that asks) and reset before each test.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from pushes.fakefcm.service_account import ensure_service_account
from pushes.providers import reset_provider
from tests.processes import free_port, running

PROJECT_ID = "pushwatch-test"


@dataclass
class FakeFcmServer:
    base_url: str
    project_id: str
    service_account_file: str
    env: dict[str, str] = field(default_factory=dict)  # FCM_* variables for child processes

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.base_url}{path}", json=payload, timeout=10)
        response.raise_for_status()
        return response.json()

    def script(self, token: str, responses: list[dict[str, Any]]) -> None:
        """Scripted answers for `token`, consumed in order, e.g. [{"error": "UNAVAILABLE", "retry_after": 2}, {}]."""
        self._post("/__fake__/script", {"token": token, "responses": responses})

    def unregister(self, tokens: list[str]) -> None:
        self._post("/__fake__/unregister", {"tokens": list(tokens)})

    def configure(self, **config: Any) -> dict[str, Any]:
        """Change latency_ms, latency_jitter_ms, success_rate, retry_after, error_mix until the next reset."""
        return self._post("/__fake__/config", config)

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.base_url}/__fake__/stats", timeout=10).json()

    def deliveries(self, after: int = 0, token: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        """Accepted messages as the fake received them (oldest first)."""
        params: dict[str, Any] = {"after": after, "limit": limit}
        if token is not None:
            params["token"] = token
        return httpx.get(f"{self.base_url}/__fake__/deliveries", params=params, timeout=10).json()["deliveries"]

    def reset(self) -> None:
        self._post("/__fake__/reset", {})


_session_server: FakeFcmServer | None = None


def _start_session_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> FakeFcmServer:
    global _session_server
    if _session_server is not None:
        return _session_server
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    sa_file = str(tmp_path_factory.mktemp("fakefcm") / "service-account.json")
    ensure_service_account(sa_file, base_url, PROJECT_ID)  # the fake reuses this file's key
    cmd = [sys.executable, "manage.py", "fakefcm", "--host", "127.0.0.1", "--port", str(port),
           "--project-id", PROJECT_ID, "--service-account-out", sa_file]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="config.settings")
    stack = contextlib.ExitStack()
    stack.enter_context(
        running(cmd, env, ready_url=f"{base_url}/healthz", log_path=tmp_path_factory.getbasetemp() / "fakefcm.log")
    )

    def stop() -> None:
        global _session_server
        _session_server = None
        stack.close()

    request.config.add_cleanup(stop)
    fcm_env = {"FCM_BASE_URL": base_url, "FCM_SERVICE_ACCOUNT_FILE": sa_file, "FCM_PROJECT_ID": PROJECT_ID}
    _session_server = FakeFcmServer(base_url, PROJECT_ID, sa_file, fcm_env)
    return _session_server


@pytest.fixture
def fake_fcm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, settings: Any):
    """A clean fake FCM server with settings and the cached provider pointed at it."""
    server = _start_session_server(request, tmp_path_factory)
    server.reset()
    settings.FCM_BASE_URL = server.base_url
    settings.FCM_SERVICE_ACCOUNT_FILE = server.service_account_file
    settings.FCM_PROJECT_ID = server.project_id
    reset_provider()
    yield server
    reset_provider()
