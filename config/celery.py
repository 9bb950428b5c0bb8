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
