"""A change made in this (test) process is obeyed by a separately running Celery worker within a second."""

from __future__ import annotations

import json
import sys
import time
import uuid

import pytest

from flags import cache
from flags.services import set_flag
from flags.tasks import report_flag_value
from tests.processes import child_env, running


def wait_for_report(redis_key: str, proc, log_path, timeout: float = 90.0) -> dict:
    client = cache.redis_client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = client.get(redis_key)
        if raw is not None:
            return json.loads(raw)
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.05)
    raise TimeoutError(f"the worker never reported {redis_key}:\n{log_path.read_text()[-3000:]}")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_change_made_here_is_seen_by_a_running_celery_worker_within_one_second(admin, tmp_path):
    log_path = tmp_path / "worker.log"
    prefix = f"pw:test:flags:{uuid.uuid4().hex}"
    cmd = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default", "-c", "1", "-P", "solo",
           "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"flags-{uuid.uuid4().hex[:8]}@%h",
           "--loglevel", "INFO"]  # fmt: skip
    with running(cmd, child_env(), log_path=log_path) as worker:
        # The worker evaluates (and caches) the old value first, twice: the second read is served
        # from its snapshot, not reloaded.
        report_flag_value.delay("sync.maxBatch", f"{prefix}:before")
        before = wait_for_report(f"{prefix}:before", worker, log_path)
        report_flag_value.delay("sync.maxBatch", f"{prefix}:before-again")
        before_again = wait_for_report(f"{prefix}:before-again", worker, log_path)
        assert before["value"] == before_again["value"] == 200
        assert before_again["cache_loads"] == before["cache_loads"]

        set_flag("sync.maxBatch", 350, changed_by=admin, reason="worker propagation test")
        changed_at = time.time()
        # Ask exactly one second after the change: the promise is that any evaluation from then on,
        # in any process, sees the new value.
        time.sleep(max(0.0, changed_at + 1.0 - time.time()))
        report_flag_value.delay("sync.maxBatch", f"{prefix}:after")
        after = wait_for_report(f"{prefix}:after", worker, log_path)

    assert after["value"] == 350
    assert after["seen_at"] >= changed_at + 1.0
    assert after["cache_loads"] == before["cache_loads"] + 1, "exactly one reload, triggered by the change"
