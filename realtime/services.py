"""Realtime writes. CONTRACT (other apps call this; keep the signature):

``emit(organization, event_type, entity_type, entity_id, payload, dedupe_key=None) -> event id | None``
``organization`` is an Organization, its id, or None (system-wide, staff only). Best effort: never raises.

How an event travels (DESIGN.md behaviour 8):
1. ``emit`` inserts the row (``ON CONFLICT DO NOTHING`` on the (organization, dedupe_key) partial unique index,
   inside a savepoint so a failed insert never poisons the caller's transaction);
2. after the caller's transaction commits (at once in autocommit) the event is handed to this process's
   *publisher*: one daemon thread with its own event loop that sends to the channel layer in order. The caller
   never waits on Redis, so a slow or dead Redis cannot slow down or break a message send.
3. the publisher sends what has queued up as ONE ``rt.events`` layer message per group (``GROUP_ALL`` and the
   event's organization group): ``events`` is a list of ``EventItem`` ``[id, organization_id, event_type, json]``
   with each event rendered to JSON once, here, so no receiver serialises it again;
4. every broadcast carries ``(pub, pseq)``: the publisher's id and a per-group sequence number, so a receiver
   that sees a jump knows it lost messages (channel-layer capacity, Redis reconnect) and counts it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from typing import Any

from django.db import connection, transaction

from config.sql import execute_prepared

log = logging.getLogger("pushwatch.realtime")

MAX_PAYLOAD_BYTES = 2048
# A cut payload aims a little lower, so jsonb's own number formatting can never push it over the CHECK.
TRUNCATED_PAYLOAD_BYTES = 2000
# Groups on the channel layer. Clients join their organization's; staff feeds join ALL (or one organization's).
GROUP_ALL = "rt.all"
GROUP_SYSTEM = "rt.system"
FAILURE_KEY = "pw:rt:emit_failures"
PUBLISH_QUEUE_MAX = 50_000
PUBLISH_BATCH_MAX = 200  # events per layer message (a few tens of KB)

# What travels on the layer per event: (id, organization_id, event_type, the event as JSON text).
EventItem = tuple[int, int | None, str, str]

# The organization is checked in the statement itself: Django's foreign keys are DEFERRABLE INITIALLY DEFERRED,
# so a bad id would otherwise only fail at the caller's COMMIT and take the caller's own writes with it.
_INSERT_SQL = """
INSERT INTO realtime_realtimeevent
    (organization_id, event_type, entity_type, entity_id, payload, dedupe_key, created_at)
SELECT %(org)s::bigint, %(type)s::text, %(etype)s::text, %(eid)s::text, %(payload)s::jsonb, %(dedupe)s::text,
       clock_timestamp()
WHERE %(org)s::bigint IS NULL OR EXISTS (SELECT 1 FROM messaging_organization WHERE id = %(org)s::bigint)
ON CONFLICT (organization_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
RETURNING id, created_at
"""
_ORG_EXISTS_SQL = (
    "SELECT %(org)s::bigint IS NULL OR EXISTS (SELECT 1 FROM messaging_organization WHERE id = %(org)s::bigint)"
)


def org_group(organization_id: int | None) -> str:
    return f"rt.org.{organization_id}" if organization_id is not None else GROUP_SYSTEM


def chat_group(group_id: Any) -> str:
    """The layer group of one chat group (typing and presence)."""
    return f"rt.grp.{str(group_id).replace('-', '')}"


# --------------------------------------------------------------------------- payload size


def _json_size(value: Any) -> int:
    # jsonb::text uses ", " and ": " separators and raw UTF-8; the byte length matches this dump.
    return len(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")).encode())


def _cut_string(text: str, budget: int) -> str:
    """The longest prefix of ``text`` whose JSON string form (with quotes) fits ``budget`` bytes."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _json_size(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def fit_payload(payload: Any, limit: int = MAX_PAYLOAD_BYTES, cut_to: int = TRUNCATED_PAYLOAD_BYTES) -> dict:
    """A JSON object of at most ``limit`` bytes (as ``payload::text``); cut ones say ``truncated: true``.

    Keys are kept in order while they fit; a string that does not fit whole is shortened; anything else
    that does not fit is dropped. Events are signals, not state: the client refetches what it needs.
    """
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        payload = {"value": payload}
    # Round-trip so dates, UUIDs and Decimals become plain JSON (what jsonb will store).
    payload = json.loads(json.dumps(payload, default=str))
    if _json_size(payload) <= limit:
        return payload
    limit = min(limit, cut_to)
    result: dict[str, Any] = {"truncated": True}
    for key, value in payload.items():
        if key == "truncated":
            continue
        result[key] = value
        size = _json_size(result)
        if size <= limit:
            continue
        if isinstance(value, str):
            room = _json_size(value) - (size - limit)
            result[key] = _cut_string(value, room) if room >= 2 else None
            if result[key] is not None and _json_size(result) <= limit:
                continue
        del result[key]
    return result


def event_item(event: dict) -> list:
    """The layer form of one event (a list: msgpack has no tuples)."""
    return [event["id"], event["organization_id"], event["event_type"], json.dumps(event)]


# --------------------------------------------------------------------------- failure counters

_local_failures: Counter[str] = Counter()  # this process; also pushed to Redis when Redis answers
_unflushed_failures: Counter[str] = Counter()
_failure_lock = threading.Lock()
_redis_client = None


def redis_client():
    """One shared sync Redis client per process (short timeouts: counters must never stall a caller)."""
    global _redis_client
    if _redis_client is None:
        import redis
        from django.conf import settings

        _redis_client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5, decode_responses=True
        )
    return _redis_client


def record_failure(kind: str) -> None:
    """Count one emit/broadcast failure here and (best effort) in Redis for the dashboard."""
    with _failure_lock:
        _local_failures[kind] += 1
        _unflushed_failures[kind] += 1
        pending = dict(_unflushed_failures)
    try:
        pipe = redis_client().pipeline()
        for name, count in pending.items():
            pipe.hincrby(FAILURE_KEY, name, count)
        pipe.execute()
    except Exception:  # Redis down: keep them unflushed; emit_failure_counts() still shows them
        return
    with _failure_lock:
        for name, count in pending.items():
            _unflushed_failures[name] -= count
        for name in [n for n, c in _unflushed_failures.items() if c <= 0]:
            del _unflushed_failures[name]


def record_feed_loss(gaps: int, missed: int, repaired: int = 0) -> None:
    """Count live-stream loss seen by a receiver (``realtime.queries.feed_loss_counters``). Best effort."""
    from realtime.queries import FEED_LOSS_KEY

    try:
        pipe = redis_client().pipeline()
        for name, count in (("gaps", gaps), ("missed", missed), ("repaired", repaired)):
            if count:
                pipe.hincrby(FEED_LOSS_KEY, name, count)
        pipe.execute()
    except Exception:
        log.warning("[rt] could not record feed loss gaps=%s missed=%s", gaps, missed)


# --------------------------------------------------------------------------- the publisher


class _Publisher:
    """Sends events to the channel layer from one daemon thread, in emit order, without blocking callers."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.id = uuid.uuid4().hex[:12]
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue | None = None
        self.pending = 0
        self.pending_lock = threading.Lock()
        self.idle = threading.Event()
        self.idle.set()
        self.group_seq: dict[str, int] = {}
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), name="realtime-publisher", daemon=True)
        self.thread.start()
        ready.wait(5)
        # A short-lived process (management command, test run) gets up to 2 s to send what it queued.
        atexit.register(wait_for_broadcasts, 2.0)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue()
        ready.set()
        self.loop.run_until_complete(self._drain())

    def submit(self, event: dict) -> None:
        with self.pending_lock:
            if self.pending >= PUBLISH_QUEUE_MAX:
                record_failure("publish_queue_full")
                return
            self.pending += 1
            self.idle.clear()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    async def _drain(self) -> None:
        from channels.layers import get_channel_layer

        while True:
            batch = [await self.queue.get()]
            # Whatever queued up while the last send was in flight goes out together: one message per group.
            while len(batch) < PUBLISH_BATCH_MAX and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                layer = get_channel_layer()  # looked up each time: tests swap CHANNEL_LAYERS
                items = [event_item(event) for event in batch]
                by_group: dict[str, list] = {GROUP_ALL: items}
                for item in items:
                    by_group.setdefault(org_group(item[1]), []).append(item)
                for group, group_items in by_group.items():
                    try:
                        await self._send(layer, group, group_items)
                    except Exception as exc:  # one group's failure must not cost the others their events
                        log.warning("[rt] broadcast of %d events to %s failed: %s", len(group_items), group, exc)
                        await asyncio.to_thread(record_failure, "broadcast")
            except Exception:
                log.exception("[rt] broadcast of %d events failed", len(batch))
                await asyncio.to_thread(record_failure, "broadcast")
            finally:
                with self.pending_lock:
                    self.pending -= len(batch)
                    if self.pending == 0:
                        self.idle.set()

    async def _send(self, layer, group: str, items: list) -> None:
        # The sequence number advances even if the send fails: receivers then see the gap and repair it.
        seq = self.group_seq.get(group, 0) + 1
        self.group_seq[group] = seq
        message = {"type": "rt.events", "events": items, "pub": self.id, "pseq": seq, "grp": group}
        await asyncio.wait_for(layer.group_send(group, message), timeout=2.0)


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()


def _get_publisher() -> _Publisher:
    global _publisher
    # A forked child (Celery prefork) must not reuse the parent's thread or loop.
    if _publisher is None or _publisher.pid != os.getpid() or not _publisher.thread.is_alive():
        with _publisher_lock:
            if _publisher is None or _publisher.pid != os.getpid() or not _publisher.thread.is_alive():
                _publisher = _Publisher()
    return _publisher


def broadcast(event: dict) -> None:
    """Hand a committed event to the publisher (never raises)."""
    try:
        _get_publisher().submit(event)
    except Exception:
        log.exception("[rt] could not queue broadcast id=%s", event.get("id"))
        record_failure("broadcast")


def wait_for_broadcasts(timeout: float = 5.0) -> bool:
    """Block until this process's publisher has sent everything queued (tests and benchmarks)."""
    if _publisher is None or _publisher.pid != os.getpid():
        return True
    return _publisher.idle.wait(timeout)


def publisher_stats() -> dict:
    p = _publisher
    return {"pending": p.pending if p else 0, "publisher_id": p.id if p else None}


# --------------------------------------------------------------------------- emit


def emit(organization, event_type: str, entity_type: str, entity_id, payload: dict | None = None,
         dedupe_key: str | None = None) -> int | None:  # fmt: skip
    """Write one realtime event and broadcast it after commit. Returns its id, or None (duplicate or failure)."""
    try:
        org_id = getattr(organization, "pk", organization)
        org_id = None if org_id is None else int(org_id)
        body = fit_payload(payload)
        params = {
            "org": org_id,
            "type": str(event_type)[:64],
            "etype": str(entity_type)[:64],
            "eid": str(entity_id)[:64],
            "payload": json.dumps(body, allow_nan=False),
            "dedupe": None if dedupe_key is None else str(dedupe_key)[:200],
        }
        row = None
        for attempt in range(2):
            try:
                # Inside the caller's transaction: a savepoint, so our failure cannot abort theirs. In autocommit
                # the single INSERT is its own transaction (one round trip instead of three).
                guard = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
                with guard:
                    row = execute_prepared(_INSERT_SQL, params)[0]
                    if row is None and not execute_prepared(_ORG_EXISTS_SQL, {"org": org_id})[0][0]:
                        raise LookupError(f"organization {org_id} does not exist")
                break
            except Exception as exc:
                # Numbers can print longer in jsonb than in Python; retry once with a tighter cut.
                if attempt == 0 and "realtime_event_payload_2kb" in str(exc):
                    params["payload"] = json.dumps(fit_payload(body, MAX_PAYLOAD_BYTES // 2, MAX_PAYLOAD_BYTES // 2))
                    continue
                raise
        if row is None:
            return None  # the dedupe_key was already used: nothing new to say
        event_id, created_at = row
        event = {
            "id": event_id,
            "organization_id": org_id,
            "event_type": params["type"],
            "entity_type": params["etype"],
            "entity_id": params["eid"],
            "payload": json.loads(params["payload"]),
            "created_at": created_at.isoformat(),
        }
        transaction.on_commit(lambda: broadcast(event), robust=True)
        return event_id
    except Exception:
        log.exception("[rt] emit failed type=%s entity=%s:%s", event_type, entity_type, entity_id)
        try:
            record_failure("write")
        except Exception:
            pass
        return None


# --------------------------------------------------------------------------- receivers


def on_message_committed(sender=None, message=None, **kwargs) -> None:
    """``messaging.signals.message_committed`` → ``message.created`` (ids and seq only: no body)."""
    if message is None:
        return
    group = message.group
    emit(
        group.organization_id,
        "message.created",
        "message",
        message.pk,
        {"group_id": str(group.pk), "seq": message.seq, "sender_id": message.sender_id},
        dedupe_key=f"message.created:{message.pk}",
    )


# --------------------------------------------------------------------------- retention


def delete_expired_events(*, older_than_seconds: float = 24 * 3600, batch_size: int = 5000,
                          max_batches: int = 200) -> int:  # fmt: skip
    """Delete events older than the retention window in bounded batches (the only path allowed to delete)."""
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic(), connection.cursor() as cur:
            # SET LOCAL: the permission ends with this batch's transaction.
            cur.execute("SET LOCAL pushwatch.allow_delete = 'on'")
            cur.execute(
                """
                DELETE FROM realtime_realtimeevent
                WHERE id IN (
                    SELECT id FROM realtime_realtimeevent
                    WHERE created_at < now() - make_interval(secs => %s)
                    ORDER BY created_at
                    LIMIT %s
                    FOR UPDATE SKIP LOCKED
                )
                """,
                [older_than_seconds, batch_size],
            )
            count = cur.rowcount
        deleted += count
        if count < batch_size:
            break
        time.sleep(0)  # yield between batches
    if deleted:
        log.info("[rt] retention deleted=%d", deleted)
    return deleted
