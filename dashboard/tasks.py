"""Periodic dashboard work (scheduled by beat in config/celery.py)."""

from __future__ import annotations

from celery import shared_task

from dashboard import services


@shared_task(name="dashboard.tasks.refresh_rollups", ignore_result=True)
def refresh_rollups() -> int:
    """Fold delivery logs newer than the watermark into the chart rollups."""
    return services.refresh_rollups()


@shared_task(name="dashboard.tasks.evaluate_alerts", ignore_result=True)
def evaluate_alerts() -> int:
    """Evaluate alert rules; emits alert.firing / alert.resolved events on a change."""
    return len(services.evaluate_alerts())
