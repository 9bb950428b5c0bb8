"""The per-process flag cache and its cross-process invalidation.

Choice: a Redis version counter (``pw:flags:version``), not pub/sub. ``set_flag`` INCRs it after its
transaction commits; every process keeps one immutable snapshot of all flags and, at most every
``CHECK_INTERVAL`` (200 ms), GETs the counter: equal -> keep the snapshot, different -> reload all flags
in one query. So a change is obeyed everywhere within ~200 ms (well inside the 1 s promise) and the
steady state costs no database query per evaluation and at most 5 Redis GETs per second per process.
Why not pub/sub: it needs a listener thread per process that must survive Celery's prefork, uvicorn
reloads and Redis reconnects, and a message missed during a reconnect leaves a process stale forever;
a counter is stateless, fork-safe and self-healing. Safety nets: the snapshot is reloaded every
``MAX_AGE`` (30 s) regardless (covers a process that died between COMMIT and INCR), and when Redis
does not answer the snapshot is reloaded from PostgreSQL at most every ``CHECK_INTERVAL``.

Ordering matters: the counter is read *before* the rows, so a snapshot is never tagged with a newer
version than the data it holds (a reload racing a change at worst reloads once more).

Uncommitted writes: a thread that changed a flag inside a still-open transaction reads flags straight
from its own connection (seeing its write) and never caches them; once that transaction is over
(commit or rollback) the snapshot is dropped. A rolled-back change thus never lingers in the cache.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from flags.defaults import SEED_BY_KEY
from flags.rules import CompiledRule, compile_rules, rules_errors

log = logging.getLogger("pushwatch.flags")

VERSION_KEY = "pw:flags:version"
CHECK_INTERVAL = 0.2
MAX_AGE = 30.0


@dataclass(frozen=True, slots=True)
class CachedFlag:
    key: str
    type: str
    value: Any
    rules: tuple[CompiledRule, ...]


Snapshot = dict[str, CachedFlag]

_UNKNOWN = object()  # Redis did not answer


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshot: Snapshot | None = None
        self.version: Any = _UNKNOWN
        self.checked_at = 0.0
        self.loaded_at = 0.0
        self.redis_client: redis.Redis | None = None
        self.redis_warned_at = 0.0
        self.loads = 0  # snapshots loaded from PostgreSQL by this process (observability, tests)


_state = _State()
_thread = threading.local()  # .uncommitted_write: this thread changed a flag in an open transaction
_loader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="flags-load")


def redis_client() -> redis.Redis:
    """One client per process (redis-py's pool notices a fork and reconnects); short timeouts so a
    Redis hiccup delays an evaluation by at most a fraction of a second."""
    if _state.redis_client is None:
        _state.redis_client = make_redis_client(settings.REDIS_URL)
    return _state.redis_client


def make_redis_client(url: str) -> redis.Redis:
    # No retries with backoff: a failed check falls back to PostgreSQL at once instead of stalling.
    return redis.Redis.from_url(
        url, socket_timeout=0.25, socket_connect_timeout=0.25, retry=Retry(NoBackoff(), 0), health_check_interval=30
    )


def _read_version() -> Any:
    try:
        return redis_client().get(VERSION_KEY)
    except redis.RedisError as exc:
        now = time.monotonic()
        if now - _state.redis_warned_at > 30:
            _state.redis_warned_at = now
            log.warning("[flags] version check failed (%s); reloading from PostgreSQL instead", exc)
        return _UNKNOWN


def bump_version() -> None:
    """Tell every process to reload (called after a flag change commits)."""
    try:
        redis_client().incr(VERSION_KEY)
    except redis.RedisError:
        # Other processes still converge: their snapshots expire after MAX_AGE.
        log.exception("[flags] could not bump %s; other processes pick the change up within %ss", VERSION_KEY, MAX_AGE)
    invalidate_local()


def invalidate_local() -> None:
    _state.snapshot = None


def mark_uncommitted_write() -> None:
    _thread.uncommitted_write = True


def clear_uncommitted_write() -> None:
    _thread.uncommitted_write = False


def stats() -> dict[str, Any]:
    """How this process's cache is doing (for ops and tests)."""
    version = _state.version
    return {"loads": _state.loads, "version": version.decode() if isinstance(version, bytes) else None}


def reset() -> None:
    """Forget everything cached in this process (tests)."""
    clear_uncommitted_write()
    with _state.lock:
        _state.snapshot, _state.version, _state.checked_at, _state.loaded_at = None, _UNKNOWN, 0.0, 0.0


def snapshot() -> Snapshot:
    """All flags, as this process may serve them now."""
    if getattr(_thread, "uncommitted_write", False):
        if connection.in_atomic_block:
            return _load()  # sees this transaction's own write; not cached
        clear_uncommitted_write()
        invalidate_local()
    now = time.monotonic()
    snap = _state.snapshot
    if snap is not None and now - _state.checked_at < CHECK_INTERVAL and now - _state.loaded_at < MAX_AGE:
        return snap
    with _state.lock:
        snap = _state.snapshot
        if snap is not None and now - _state.checked_at < CHECK_INTERVAL and now - _state.loaded_at < MAX_AGE:
            return snap  # another thread refreshed while we waited
        version = _read_version()
        if (
            snap is not None
            and version is not _UNKNOWN
            and version == _state.version
            and now - _state.loaded_at < MAX_AGE
        ):
            _state.checked_at = now
            return snap
        snap = _load()
        _state.loads += 1
        _state.snapshot, _state.version, _state.checked_at, _state.loaded_at = snap, version, now, now
        return snap


def _load() -> Snapshot:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _load_sync()
    # Called from async code (a consumer, an async view): Django refuses queries on an event-loop
    # thread, so run the one query on a helper thread. Only happens on a reload, never per evaluation.
    return _loader.submit(_load_in_helper_thread).result()


def _load_in_helper_thread() -> Snapshot:
    from django.db import close_old_connections

    try:
        return _load_sync()
    finally:
        close_old_connections()


def _load_sync() -> Snapshot:
    from flags.models import Flag

    snap: Snapshot = {}
    for key, flag_type, value, rules, schema in Flag.objects.values_list("key", "type", "value", "rules", "schema"):
        snap[key] = CachedFlag(key, flag_type, value, _safe_rules(key, flag_type, schema, rules))
    for key, seed in SEED_BY_KEY.items():
        # A missing seed row (e.g. a database flushed by a test) still answers with its default.
        snap.setdefault(key, CachedFlag(key, seed["type"], seed["default"], ()))
    return snap


def _safe_rules(key: str, flag_type: str, schema: dict, rules: Any) -> tuple[CompiledRule, ...]:
    # Rows are validated on write; this guards against hand-edited rows so evaluation never raises.
    errors = rules_errors(flag_type, schema or {}, rules)
    if errors:
        log.error("[flags] ignoring invalid rules on %s: %s", key, "; ".join(errors))
        return ()
    return compile_rules(rules)
