"""The Celery app. Queues: ``pushes`` (fan-out and dispatch) and ``default`` (everything else)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("pushwatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("pushes"))
app.conf.task_default_queue = "default"
# Anything in pushes/tasks.py runs on the `pushes` queue.
app.conf.task_routes = {"pushes.tasks.*": {"queue": "pushes"}}
app.autodiscover_tasks()

# Periodic work (run by `celery beat`). Each task lives in its app's tasks.py.
app.conf.beat_schedule = {
    "dispatch-due-pushes": {"task": "pushes.tasks.dispatch_due_pushes", "schedule": 1.0},
    "delete-expired-events": {"task": "realtime.tasks.delete_expired_events", "schedule": 300.0},
    "sweep-presence": {"task": "realtime.tasks.sweep_presence", "schedule": 30.0},
    "refresh-rollups": {"task": "dashboard.tasks.refresh_rollups", "schedule": 30.0},
    "evaluate-alerts": {"task": "dashboard.tasks.evaluate_alerts", "schedule": 60.0},
    "fold-telemetry-counters": {"task": "telemetry.tasks.fold_telemetry_counters", "schedule": 60.0},
}
