"""Realtime reads: catch-up pages, the staff feed backlog, and the loss/failure counters for the dashboard."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from realtime.models import RealtimeEvent

FEED_LOSS_KEY = "pw:rt:feed_loss"
MAX_PAGE = 500
_FIELDS = ("id", "organization_id", "event_type", "entity_type", "entity_id", "payload", "created_at")


def serialize_event(row: dict) -> dict:
    out = dict(row)
    created = out.get("created_at")
    if created is not None and not isinstance(created, str):
        out["created_at"] = created.isoformat()
    return out


def events_page(organization_id: int, since: int = 0, limit: int = 100) -> tuple[list[dict], int]:
    """Events of one organization after the cursor, ascending (index range scan on (organization, id)).

    Returns (events, next cursor); the cursor stays ``since`` when nothing is newer.
    """
    limit = max(1, min(int(limit), MAX_PAGE))
    rows = list(
        RealtimeEvent.objects.filter(organization_id=organization_id, id__gt=since)
        .order_by("id")
        .values(*_FIELDS)[:limit]
    )
    events = [serialize_event(r) for r in rows]
    return events, (events[-1]["id"] if events else since)


def recent_events(organization_id: int | None = None, event_types: Iterable[str] | None = None,
                  since: int | None = None, limit: int = 100) -> list[dict]:  # fmt: skip
    """For staff (all organizations unless one is named). With ``since``: ascending after the cursor
    (backfill); without: the newest ``limit`` events, newest first."""
    qs = RealtimeEvent.objects.all()
    if organization_id is not None:
        qs = qs.filter(organization_id=organization_id)
    types = [t for t in (event_types or []) if t]
    if types:
        qs = qs.filter(event_type__in=types)
    limit = max(1, min(int(limit), 5000))
    qs = qs.filter(id__gt=since).order_by("id") if since is not None else qs.order_by("-id")
    return [serialize_event(r) for r in qs.values(*_FIELDS)[:limit]]


def _redis_hash(key: str) -> dict[str, int]:
    from realtime.services import redis_client

    try:
        return {k: int(v) for k, v in redis_client().hgetall(key).items()}
    except Exception:
        return {}


def emit_failure_counts() -> dict[str, int]:
    """Emit failures by kind (``write``, ``broadcast``, ``publish_queue_full``): every process's counts kept
    in Redis, plus this process's counts that could not reach Redis (e.g. while it was down)."""
    from realtime import services

    counts = _redis_hash(services.FAILURE_KEY)
    with services._failure_lock:
        for kind, n in services._unflushed_failures.items():
            counts[kind] = counts.get(kind, 0) + n
    return counts


def feed_loss_counters() -> dict:
    """Live-stream loss seen by consumers: ``gaps`` (a jump in a publisher's sequence), ``missed`` (messages
    skipped by those jumps), ``repaired`` (events re-sent from the database after a gap), plus the layer."""
    counts = _redis_hash(FEED_LOSS_KEY)
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    return {
        "layer": backend.rsplit(".", 1)[-1],
        "gaps": counts.get("gaps", 0),
        "missed": counts.get("missed", 0),
        "repaired": counts.get("repaired", 0),
        "emit_failures": sum(emit_failure_counts().values()),
    }
