"""The scheduling path for real: a committed message's fan-out schedules pushes.tasks.dispatch_due_pushes
(countdown = the coalescing window) and a real Celery worker process sends it to the real fake FCM."""

from __future__ import annotations

import sys
import time

import pytest
from django.db import transaction

from pushes.models import PushNotification, UserDevice
from pushes.tasks import dispatch_due_pushes
from tests.processes import child_env, running
from tests.pushes.factories import make_room, send


@pytest.mark.django_db
def test_the_celery_task_is_a_thin_wrapper_returning_pushes_handled(
    fake_fcm, settings, django_capture_on_commit_callbacks
):
    settings.PUSH_COALESCE_WINDOW_SECONDS = 0
    room = make_room(recipients=2)
    with django_capture_on_commit_callbacks(execute=True):
        send(room)
    assert dispatch_due_pushes.apply(kwargs={"limit": 10}).get() == 2
    assert set(PushNotification.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_committed_message_is_pushed_by_a_real_worker_after_the_window(fake_fcm, settings, tmp_path):
    settings.PUSH_COALESCE_WINDOW_SECONDS = 0.5
    room = make_room(recipients=2)
    tokens = list(UserDevice.objects.filter(user__in=room.members).values_list("token", flat=True))
    cmd = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "pushes", "--concurrency", "1",
           "--pool", "solo", "--without-heartbeat", "--without-gossip", "--without-mingle",
           "--loglevel", "INFO"]  # fmt: skip
    log_path = tmp_path / "worker.log"
    with running(cmd, child_env(**fake_fcm.env), log_path=log_path):
        ready_by = time.monotonic() + 60
        while "ready." not in log_path.read_text() and time.monotonic() < ready_by:
            time.sleep(0.2)  # the worker must be consuming before the task is scheduled
        with transaction.atomic():
            send(room)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(fake_fcm.deliveries(token=t) for t in tokens):
                break
            time.sleep(0.2)
    assert all(len(fake_fcm.deliveries(token=t)) == 1 for t in tokens), log_path.read_text()[-3000:]
    assert set(PushNotification.objects.values_list("status", flat=True)) == {"sent"}
