"""Push tasks (queue ``pushes``). Thin: the work is in pushes.services."""

from __future__ import annotations

from celery import shared_task

from pushes import services


@shared_task(name="pushes.tasks.dispatch_due_pushes", ignore_result=True)
def dispatch_due_pushes(limit: int = 500) -> int:
    """Run by beat every second and scheduled by fan-out at the end of each coalescing window."""
    return services.dispatch_due_pushes(limit=limit)
