"""The seed-000 flags: key, type, default, description and validation schema (pure data, no models).

The data migration ``0003_seed_flags`` creates rows from this; ``flags.services.set_flag`` recreates a
missing seed row on first write, and ``flags.queries`` falls back to these defaults when a row is absent,
so a database flushed by a transactional test still answers with seed-000 behaviour.

Schema vocabulary (checked by ``flags.validation``):
  int/float: ``min``, ``max`` (inclusive)
  json list: ``list_of: "int"``, ``min_len``, ``max_len``, ``item_min``, ``item_max``, ``ascending`` (strictly)
  any type:  ``global: true`` = no targeting rules allowed (the kill-switch is one switch for everyone)
"""

from __future__ import annotations

from typing import Any

KILL_SWITCH = "features.push_resync.killSwitch"
PUSH_RESYNC_ENABLED = "features.push_resync.enabled"

# Upper bound for client-facing integers: they end up in JavaScript/Dart ints on the phones.
INT32_MAX = 2**31 - 1

SEED_FLAGS: list[dict[str, Any]] = [
    {
        "key": PUSH_RESYNC_ENABLED,
        "type": "bool",
        "default": True,
        "description": "Background delivery via FCM/APNs data pushes plus foreground resync. "
        "Off: no pushes are fanned out (recorded as suppressed, reason flag_disabled).",
        "schema": {},
    },
    {
        "key": KILL_SWITCH,
        "type": "bool",
        "default": False,
        "description": "Global kill-switch. On: fan-out stops at once, pending pushes are suppressed "
        "(reason kill_switch) and features.push_resync.enabled evaluates false for everyone.",
        "schema": {"global": True},
    },
    {
        "key": "sync.maxBatch",
        "type": "int",
        "default": 200,
        "description": "Most messages one after_seq sync page returns (client and server).",
        "schema": {"min": 1, "max": 1000},
    },
    {
        "key": "realtime.retryBackoff",
        "type": "json",
        "default": [1500, 3000, 6000],
        "description": "Realtime channel re-create backoff steps in ms; after the last one the client "
        "marks realtime degraded and polls.",
        "schema": {
            "list_of": "int",
            "min_len": 1,
            "max_len": 10,
            "item_min": 1,
            "item_max": INT32_MAX,
            "ascending": True,
        },
    },
    {
        "key": "auth.refreshTimeoutMs",
        "type": "int",
        "default": 1800,
        "description": "How long the client waits for a session refresh before blocking writes (ms).",
        "schema": {"min": 1, "max": INT32_MAX},
    },
    {
        "key": "outbox.retryShortDelayMs",
        "type": "int",
        "default": 700,
        "description": "Short retry delay for a write deferred by an auth refresh (ms).",
        "schema": {"min": 1, "max": INT32_MAX},
    },
]

SEED_BY_KEY: dict[str, dict[str, Any]] = {f["key"]: f for f in SEED_FLAGS}
SEED_DEFAULTS: dict[str, Any] = {f["key"]: f["default"] for f in SEED_FLAGS}
