"""Flag reads. CONTRACT (other apps call these; keep the signatures):

- ``flag_value(key, *, user=None, platform=None, app_version=None)`` -> the evaluated value.
- ``push_suppression_reason()`` -> None when pushes may be sent, else "kill_switch" or "flag_disabled".

Until the flags issue lands this reads the seed-000 defaults.
"""

from __future__ import annotations

from typing import Any

SEED_DEFAULTS: dict[str, Any] = {
    "features.push_resync.enabled": True,
    "features.push_resync.killSwitch": False,
    "sync.maxBatch": 200,
    "realtime.retryBackoff": [1500, 3000, 6000],
    "auth.refreshTimeoutMs": 1800,
    "outbox.retryShortDelayMs": 700,
}


def flag_value(key: str, *, user=None, platform: str | None = None, app_version: str | None = None) -> Any:
    return SEED_DEFAULTS[key]


def push_suppression_reason() -> str | None:
    if flag_value("features.push_resync.killSwitch"):
        return "kill_switch"
    if not flag_value("features.push_resync.enabled"):
        return "flag_disabled"
    return None
