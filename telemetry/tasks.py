"""Telemetry periodic work (scheduled by beat in config/celery.py)."""

from __future__ import annotations

from celery import shared_task

from telemetry import services


@shared_task(name="telemetry.tasks.fold_telemetry_counters")
def fold_telemetry_counters() -> int:
    """Fold new client log rows into the hourly counters; returns the number of rows folded."""
    return services.fold_telemetry_counters()
