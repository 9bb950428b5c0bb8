"""Telemetry reads for the dashboard's "Client health" page: from the hourly counters only, never raw rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet, Sum

from telemetry.models import TelemetryCounter

# Tiles the Client health page shows, as (tile name, tag, action).
HEALTH_TILES: tuple[tuple[str, str, str], ...] = (
    ("push_wakes", "push", "wake"),
    ("rt_rebuilds", "rt", "rebuild"),
    ("rt_degraded_steps", "rt", "degraded"),
    ("auth_writes_blocked", "auth", "writes:blocked"),
    ("auth_writes_ready", "auth", "writes:ready"),
    ("outbox_deferred", "outbox", "deferred"),
    ("outbox_drains", "outbox", "drain start"),
    ("sync_merged", "sync", "merged"),
)


def _counters(since: dt.datetime, organization_id: int | None) -> QuerySet[TelemetryCounter]:
    # The bucket holding `since` is included: counters are hourly, so that is the nearest honest answer.
    start = since.replace(minute=0, second=0, microsecond=0)
    counters = TelemetryCounter.objects.filter(hour__gte=start)
    if organization_id is not None:
        counters = counters.filter(organization_id=organization_id)
    return counters


def client_health_series(since: dt.datetime, organization_id: int | None = None) -> list[dict[str, Any]]:
    """Hourly counts per platform, tag, action and reason (summed over organizations unless one is given):
    ``[{"hour", "platform", "tag", "action", "reason", "count"}, ...]`` ordered by hour."""
    keys = ("hour", "platform", "tag", "action", "reason")
    rows = _counters(since, organization_id).values(*keys).annotate(total=Sum("count")).order_by(*keys)
    return [{**{k: row[k] for k in keys}, "count": int(row["total"])} for row in rows]


def client_health_summary(since: dt.datetime, organization_id: int | None = None) -> dict[str, Any]:
    """Totals for the tiles: overall, per tag, per (tag, action), per platform, plus the named HEALTH_TILES."""
    rows = (
        _counters(since, organization_id)
        .values("platform", "tag", "action")
        .annotate(total=Sum("count"))
        .order_by("tag", "action", "platform")
    )
    by_tag: dict[str, int] = {}
    by_platform: dict[str, int] = {}
    by_tag_action: dict[tuple[str, str], int] = {}
    for row in rows:
        n = int(row["total"])
        by_tag[row["tag"]] = by_tag.get(row["tag"], 0) + n
        by_platform[row["platform"]] = by_platform.get(row["platform"], 0) + n
        key = (row["tag"], row["action"])
        by_tag_action[key] = by_tag_action.get(key, 0) + n
    return {
        "since": since,
        "total": sum(by_tag.values()),
        "by_tag": by_tag,
        "by_platform": by_platform,
        "by_tag_action": [{"tag": t, "action": a, "count": n} for (t, a), n in by_tag_action.items()],
        "tiles": {name: by_tag_action.get((tag, action), 0) for name, tag, action in HEALTH_TILES},
    }
