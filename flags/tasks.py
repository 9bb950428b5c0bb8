"""flags tasks."""

from __future__ import annotations

import json
import time

from celery import shared_task

from flags import cache, queries, services

REPORT_TTL_SECONDS = 300


@shared_task(name="flags.tasks.report_flag_value", ignore_result=True)
def report_flag_value(
    key: str, redis_key: str, platform: str | None = None, app_version: str | None = None, user_id: int | None = None
) -> None:
    """Write what THIS process evaluates ``key`` to into Redis (``{"value", "seen_at", "cache_loads"}``): the way to
    observe a worker's flag cache from outside (tests, benchmarks, ops)."""
    value = queries.flag_value(key, user=user_id, platform=platform, app_version=app_version)
    body = json.dumps({"value": value, "seen_at": time.time(), "cache_loads": cache.stats()["loads"]})
    cache.redis_client().set(redis_key, body, ex=REPORT_TTL_SECONDS)


@shared_task(name="flags.tasks.resweep_pending_pushes", ignore_result=True)
def resweep_pending_pushes(reason: str) -> None:
    """Second sweep after the kill-switch went on (or push_resync off): suppresses a push that a
    process created while its cache still held the old value. Skipped if the switch was undone."""
    if queries.push_suppression_reason() == reason:
        services.suppress_pending_pushes(reason)
