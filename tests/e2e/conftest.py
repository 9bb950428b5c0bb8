"""The real processes for the end-to-end tests, started once per module on loopback against the test database:
the fake FCM server, the ASGI server (uvicorn), a Celery worker and Celery beat."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.processes import ROOT, child_env, free_port, running

# Small so the tests wait little, large enough that a burst of three API sends lands in one window on a busy
# machine (2 cores shared with other work).
COALESCE_WINDOW_SECONDS = "2.0"
PROJECT_ID = "pushwatch-e2e"


@dataclass
class Stack:
    base_url: str
    fcm_url: str
    env: dict[str, str]
    log_dir: Path

    def ws_url(self, path: str) -> str:
        return self.base_url.replace("http://", "ws://", 1) + path

    def fcm(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.fcm_url + path, timeout=10, **kwargs)

    def deliveries(self, token: str | None = None, after: int = 0) -> list[dict]:
        params: dict = {"after": after, "limit": 10_000}
        if token:
            params["token"] = token
        return self.fcm("GET", "/__fake__/deliveries", params=params).json()["deliveries"]

    def logs(self) -> str:
        """The tail of every process's log, for a failing assertion's message."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace")
            parts.append(f"--- {path.name} ---\n{text[-3000:]}")
        return "\n".join(parts)


def wait_for_log_line(path: Path, needle: str, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{path.name}: process exited with {proc.returncode}:\n{path.read_text()[-3000:]}")
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{path.name} never logged {needle!r}:\n{path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def e2e_stack(django_db_setup, tmp_path_factory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("e2e-logs")
    fcm_port, web_port = free_port(), free_port()
    fcm_url, base_url = f"http://127.0.0.1:{fcm_port}", f"http://127.0.0.1:{web_port}"
    service_account = log_dir / "fake-fcm-service-account.json"
    env = child_env(
        FCM_BASE_URL=fcm_url,
        FCM_SERVICE_ACCOUNT_FILE=str(service_account),
        FCM_PROJECT_ID=PROJECT_ID,
        PUSH_COALESCE_WINDOW_SECONDS=COALESCE_WINDOW_SECONDS,
        LOG_LEVEL="INFO",
    )
    python, manage = sys.executable, str(ROOT / "manage.py")
    celery = [python, "-m", "celery", "-A", "config"]
    with contextlib.ExitStack() as stack:
        fakefcm = [python, manage, "fakefcm", "--host", "127.0.0.1", "--port", str(fcm_port),
                   "--project-id", PROJECT_ID, "--service-account-out", str(service_account)]  # fmt: skip
        stack.enter_context(running(fakefcm, env, ready_url=f"{fcm_url}/healthz", log_path=log_dir / "fakefcm.log"))
        web = [python, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(web_port),
               "--no-access-log"]  # fmt: skip
        stack.enter_context(running(web, env, ready_url=f"{base_url}/healthz", log_path=log_dir / "web.log"))
        worker_log = log_dir / "worker.log"
        worker = stack.enter_context(
            running(
                [
                    *celery,
                    "worker",
                    "-Q",
                    "pushes,default",
                    "-c",
                    "2",
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    f"e2e-{web_port}@%h",
                ],  # fmt: skip
                env,
                log_path=worker_log,
            )  # fmt: skip
        )
        wait_for_log_line(worker_log, "ready.", worker)
        beat = [*celery, "beat", "--loglevel", "INFO", "--schedule", str(log_dir / "celerybeat-schedule")]
        stack.enter_context(running(beat, env, log_path=log_dir / "beat.log"))
        yield Stack(base_url=base_url, fcm_url=fcm_url, env=env, log_dir=log_dir)
