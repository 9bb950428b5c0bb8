"""Flag reads. CONTRACT (other apps call these; keep the signatures):

- ``flag_value(key, *, user=None, platform=None, app_version=None)`` -> the evaluated value.
- ``push_suppression_reason()`` -> None when pushes may be sent, else "kill_switch" or "flag_disabled".

Evaluation is served from a per-process snapshot (see ``flags.cache``): no database query per call in
the steady state, and a change made anywhere is obeyed here within ~200 ms.
Also: ``evaluated_config`` / ``config_etag`` (the /api/v1/config answer), ``list_flags`` and
``flag_history`` (the dashboard).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flags import cache
from flags.defaults import KILL_SWITCH, PUSH_RESYNC_ENABLED, SEED_DEFAULTS
from flags.rules import parse_version

__all__ = [
    "SEED_DEFAULTS",
    "clear_cache",
    "config_etag",
    "evaluated_config",
    "flag_history",
    "flag_value",
    "list_flags",
    "push_suppression_reason",
]


def _user_id(user: Any) -> Any:
    if user is None or getattr(user, "is_authenticated", True) is False:
        return None
    return getattr(user, "pk", user)


def _evaluate(snap: cache.Snapshot, key: str, user_id: Any, platform: str | None, version: Any) -> Any:
    flag = snap[key]
    if key == PUSH_RESYNC_ENABLED and snap[KILL_SWITCH].value is True:
        return False  # the kill-switch overrides every rule, for everyone
    for rule in flag.rules:
        if rule.matches(key, user_id, platform, version):
            return rule.value
    return flag.value


def flag_value(key: str, *, user=None, platform: str | None = None, app_version: str | None = None) -> Any:
    """The value of ``key`` for this caller. KeyError for an unknown key; an unparseable
    ``app_version`` simply matches no min_app_version rule."""
    snap = cache.snapshot()
    if key not in snap:
        raise KeyError(f"unknown flag {key!r}")
    return _evaluate(snap, key, _user_id(user), platform, parse_version(app_version))


def push_suppression_reason() -> str | None:
    """Why fan-out must not send right now (the flags' global values), or None."""
    snap = cache.snapshot()
    if snap[KILL_SWITCH].value is True:
        return "kill_switch"
    if snap[PUSH_RESYNC_ENABLED].value is not True:
        return "flag_disabled"
    return None


def evaluated_config(user, platform: str | None, app_version: str | None) -> dict[str, Any]:
    """What a client gets from /api/v1/config: every flag evaluated for it, plus the kill-switch state."""
    snap = cache.snapshot()
    user_id, version = _user_id(user), parse_version(app_version)
    flags = {key: _evaluate(snap, key, user_id, platform, version) for key in sorted(snap)}
    return {"flags": flags, "kill_switch": snap[KILL_SWITCH].value is True}


def config_etag(config: dict[str, Any]) -> str:
    """A strong ETag (quoted) over the evaluated answer: it changes exactly when what this caller
    would receive changes."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


def list_flags() -> list[dict[str, Any]]:
    """Every flag as stored (fresh from the database), for the dashboard."""
    from flags.models import Flag

    rows = list(
        Flag.objects.order_by("key").values(
            "key", "type", "value", "default", "description", "schema", "rules", "updated_at"
        )
    )
    for row in rows:
        row["is_kill_switch"] = row["key"] == KILL_SWITCH
    return rows


def flag_history(key: str, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` changes of ``key``: who, when, old, new ({"value", "rules"}) and why."""
    from flags.models import FlagChange

    limit = max(1, min(int(limit), 1000))
    return list(
        FlagChange.objects.filter(flag__key=key)
        .order_by("-created_at", "-id")
        .values("id", "created_at", "old", "new", "reason", "changed_by_id", "changed_by__username")[:limit]
    )


def clear_cache() -> None:
    """Drop this process's cached flags (tests)."""
    cache.reset()
