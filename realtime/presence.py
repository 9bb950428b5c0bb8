"""Presence and typing state in Redis (shared by every ASGI process; nothing lives in one process's memory).

Keys (all expire, so a crashed process leaves nothing behind for long):
- ``pw:rt:pres:conns:<user>``  ZSET channel_name -> deadline (epoch s); a socket counts while its deadline is ahead.
  Each client heartbeat (every 30 s) pushes the deadline 90 s ahead, so a vanished client is offline within 90 s.
- ``pw:rt:pres:<user>``        HASH status (online|away|offline), last_seen (epoch s), groups (comma list).
- ``pw:rt:pres:online``        ZSET user -> latest deadline; the sweep finds the vanished ones here.
- ``pw:rt:typing:<group>:<user>:<state>`` rate-limit marker (SET NX PX).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

from django.conf import settings

log = logging.getLogger("pushwatch.realtime")

HEARTBEAT_SECONDS = 30
PRESENCE_TTL_SECONDS = 90
TYPING_MIN_INTERVAL_MS = 1000
STATUSES = ("online", "away")
_KEEP_LAST_SEEN_SECONDS = 7 * 24 * 3600
ONLINE_KEY = "pw:rt:pres:online"

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _conns_key(user_id: int) -> str:
    return f"pw:rt:pres:conns:{user_id}"


def _state_key(user_id: int) -> str:
    return f"pw:rt:pres:{user_id}"


def async_redis():
    """One asyncio Redis client per event loop (a client is bound to the loop that created it)."""
    import redis.asyncio as aioredis

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(
            settings.REDIS_URL, decode_responses=True, socket_connect_timeout=1, socket_timeout=2
        )
        _clients[loop] = client
    return client


async def touch(user_id: int, channel_name: str, status: str, group_ids: list[str]) -> tuple[bool, dict]:
    """Mark one socket alive for another 90 s with ``status``; returns (status changed?, state)."""
    now = time.time()
    deadline = now + PRESENCE_TTL_SECONDS
    redis = async_redis()
    previous = await redis.hget(_state_key(user_id), "status")
    live = await redis.zcount(_conns_key(user_id), now, "+inf")
    pipe = redis.pipeline(transaction=True)
    pipe.zadd(_conns_key(user_id), {channel_name: deadline})
    pipe.expire(_conns_key(user_id), PRESENCE_TTL_SECONDS + 5)
    pipe.hset(_state_key(user_id), mapping={"status": status, "last_seen": f"{now:.3f}",
                                             "groups": ",".join(group_ids)})  # fmt: skip
    pipe.expire(_state_key(user_id), _KEEP_LAST_SEEN_SECONDS)
    pipe.zadd(ONLINE_KEY, {str(user_id): deadline})
    await pipe.execute()
    # A status held by expired sockets only is really "offline": treat it as a change.
    changed = previous != status or live == 0
    return changed, {"user_id": user_id, "status": status, "last_seen": now}


async def leave(user_id: int, channel_name: str) -> dict | None:
    """Forget one socket; when it was the user's last, mark offline and return the new state."""
    now = time.time()
    redis = async_redis()
    pipe = redis.pipeline(transaction=True)
    pipe.zrem(_conns_key(user_id), channel_name)
    pipe.zremrangebyscore(_conns_key(user_id), "-inf", now)
    pipe.zcard(_conns_key(user_id))
    remaining = (await pipe.execute())[2]
    if remaining:
        return None
    pipe = redis.pipeline(transaction=True)
    pipe.hset(_state_key(user_id), mapping={"status": "offline", "last_seen": f"{now:.3f}"})
    pipe.zrem(ONLINE_KEY, str(user_id))
    await pipe.execute()
    return {"user_id": user_id, "status": "offline", "last_seen": now}


async def states(user_ids: list[int]) -> dict[int, dict]:
    """Presence of several users; a status whose sockets all missed their heartbeats reads as offline."""
    now = time.time()
    redis = async_redis()
    pipe = redis.pipeline(transaction=False)
    for uid in user_ids:
        pipe.hgetall(_state_key(uid))
        pipe.zcount(_conns_key(uid), now, "+inf")
    answers = await pipe.execute()
    out: dict[int, dict] = {}
    for i, uid in enumerate(user_ids):
        state, live = answers[2 * i], answers[2 * i + 1]
        last_seen = float(state["last_seen"]) if state.get("last_seen") else None
        status = state.get("status", "offline") if live else "offline"
        out[uid] = {"user_id": uid, "status": status, "last_seen": last_seen}
    return out


async def typing_allowed(user_id: int, group_id: str, state: str) -> bool:
    """At most one typing signal per (user, group, state) per second, across all processes."""
    key = f"pw:rt:typing:{group_id}:{user_id}:{state}"
    return bool(await async_redis().set(key, "1", px=TYPING_MIN_INTERVAL_MS, nx=True))


def sweep_expired() -> int:
    """Mark offline (and announce) users whose sockets all vanished without a close. Returns how many."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from realtime.services import chat_group, redis_client

    redis = redis_client()
    now = time.time()
    went_offline = 0
    layer = get_channel_layer()
    for uid in redis.zrangebyscore(ONLINE_KEY, "-inf", now, start=0, num=1000):
        pipe = redis.pipeline(transaction=True)
        pipe.zremrangebyscore(_conns_key(uid), "-inf", now)
        pipe.zcard(_conns_key(uid))
        pipe.hget(_state_key(uid), "groups")
        _, live, groups = pipe.execute()
        if live:
            continue
        redis.hset(_state_key(uid), "status", "offline")
        redis.zrem(ONLINE_KEY, uid)
        went_offline += 1
        message = {"type": "rt.presence", "user_id": int(uid), "status": "offline", "last_seen": now}
        for gid in filter(None, (groups or "").split(",")):
            try:
                async_to_sync(layer.group_send)(chat_group(gid), message)
            except Exception:
                log.warning("[rt] presence sweep could not announce user=%s", uid)
    return went_offline
