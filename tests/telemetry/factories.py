"""Telemetry entries as the seed-000/004 clients flush them."""

from __future__ import annotations

import datetime as dt
import itertools

SEED_LINES = (
    "[push] wake reason=data",
    "[push] wake reason=notification_tap",
    "[rt] rebuild channel=group:42 status=SUBSCRIBED",
    "[rt] degraded backoff=1500",
    "[rt] degraded backoff=3000",
    "[auth] writes:ready",
    "[auth] writes:blocked reason=refresh_timeout",
    "[sync] start group=42 since=17",
    "[sync] merged count=5",
    "[outbox] drain start count=2",
    "[outbox] deferred reason=auth_refresh",
    "[push] token:registered android abcdef…",
    "app resumed",
)


def entry(message: str = "[push] wake reason=data", **overrides) -> dict:
    body = {
        "event_type": "log",
        "message": message,
        "metadata": {"app_version": "1.4.0"},
        "client_ts": "2026-11-21T05:10:00Z",
    }
    body.update(overrides)
    return body


def seed_entries(count: int, *, start: dt.datetime | None = None) -> list[dict]:
    """``count`` entries cycling through the seed tags, spread over a few hours of client time."""
    start = start or dt.datetime(2026, 11, 21, 1, 0, tzinfo=dt.UTC)
    lines = itertools.cycle(SEED_LINES)
    return [
        entry(next(lines), client_ts=(start + dt.timedelta(minutes=7 * i)).isoformat(), metadata={"i": i})
        for i in range(count)
    ]
