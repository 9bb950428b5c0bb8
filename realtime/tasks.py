"""Realtime periodic work (scheduled by beat in config/celery.py)."""

from __future__ import annotations

from celery import shared_task

from realtime import presence, services


@shared_task(name="realtime.tasks.delete_expired_events", ignore_result=True)
def delete_expired_events() -> int:
    """Retention: events older than 24 h, in bounded batches."""
    return services.delete_expired_events()


@shared_task(name="realtime.tasks.sweep_presence", ignore_result=True)
def sweep_presence() -> int:
    """Announce `offline` for clients that vanished without closing (no heartbeat for 90 s)."""
    return presence.sweep_expired()
