"""Websocket consumers: ``/ws/v1/events`` (mobile clients) and ``/ws/dashboard/feed`` (staff).

Events arrive as ``rt.events`` layer messages that ``realtime.services`` publishes after commit. A client socket
joins its organization's layer group and watches each publisher's sequence number: a message the channel layer
dropped is counted (``feed_loss_counters``) and the client is told to ``resync`` through
``GET /api/v1/events?since=``. Staff sockets do not join the layer at all: they subscribe to this process's
``realtime.feedhub.FeedHub``, which receives each message once and sends batched frames (and repairs loss from
the database).
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from realtime import presence, queries
from realtime.feedhub import FeedSubscriber, SequenceWatch, feed_hub, render_events
from realtime.services import chat_group, event_item, org_group, record_feed_loss

log = logging.getLogger("pushwatch.realtime")

SUBPROTOCOL = "pushwatch.v1"
BACKLOG_PAGE = 1000
BACKLOG_MAX = 20_000
BACKLOG_FRAME = 250  # events per backlog frame


def _query(scope) -> dict[str, str]:
    raw = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {k: v[-1] for k, v in raw.items()}


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


@database_sync_to_async
def _user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


@database_sync_to_async
def _group_ids_of(user) -> list[str]:
    from messaging.models import GroupMember

    rows = GroupMember.objects.filter(user=user, is_blocked=False, group__organization_id=user.organization_id)
    return [str(g) for g in rows.values_list("group_id", flat=True)]


@database_sync_to_async
def _member_ids(group_id: str) -> list[int]:
    from messaging.models import GroupMember

    return list(GroupMember.objects.filter(group_id=group_id, is_blocked=False).values_list("user_id", flat=True))


class _FastDispatch:
    """Channels runs ``close_old_connections`` in a thread (one shared executor) before EVERY handler; for
    layer messages that never touch the database that hop is the whole cost and it serialises all sockets
    of a process. DB work here always goes through ``database_sync_to_async``, which does that cleanup."""

    _NO_DB = frozenset({"rt.events", "rt.typing", "rt.presence"})

    async def dispatch(self, message):
        if message.get("type") in self._NO_DB:
            await getattr(self, message["type"].replace(".", "_"))(message)
        else:
            await super().dispatch(message)


class ClientEventsConsumer(_FastDispatch, AsyncJsonWebsocketConsumer):
    """One mobile client: its organization's events, plus typing and presence in its groups."""

    user = None
    group_ids: list[str] = []

    async def connect(self) -> None:
        token, subprotocol = self._token_from_scope()
        user = await _user_for_token(token) if token else None
        if user is None or user.organization_id is None:
            await self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        self.user = user
        self.watch = SequenceWatch()
        self.last_event_id = 0
        self.status = "online"
        self.last_touch = 0.0
        self.last_heard = time.monotonic()
        self.group_ids = await _group_ids_of(user)
        await self.channel_layer.group_add(org_group(user.organization_id), self.channel_name)
        for gid in self.group_ids:
            await self.channel_layer.group_add(chat_group(gid), self.channel_name)
        await self.accept(subprotocol)
        await self.send_json({"type": "hello", "user_id": user.pk, "groups": self.group_ids,
                              "heartbeat_seconds": presence.HEARTBEAT_SECONDS})  # fmt: skip
        await self._touch_presence(force=True)
        self.watchdog = asyncio.ensure_future(self._watchdog())

    def _token_from_scope(self) -> tuple[str | None, str | None]:
        """Token from ``Sec-WebSocket-Protocol: pushwatch.v1, token.<key>`` (or ``token, <key>``) or ``?token=``.
        Returns (token, subprotocol to answer with — never the key itself)."""
        offered = [p.strip() for p in self.scope.get("subprotocols", [])]
        token = None
        for i, proto in enumerate(offered):
            if proto.startswith("token.") and len(proto) > 6:
                token = proto[6:]
            elif proto == "token" and i + 1 < len(offered):
                token = offered[i + 1]
        answer = next((p for p in (SUBPROTOCOL, "token") if p in offered), None)
        return token or _query(self.scope).get("token"), answer

    async def disconnect(self, code: int) -> None:
        if self.user is None:
            return
        if getattr(self, "watchdog", None):
            self.watchdog.cancel()
        await self.channel_layer.group_discard(org_group(self.user.organization_id), self.channel_name)
        try:
            state = await presence.leave(self.user.pk, self.channel_name)
            if state:
                await self._announce_presence(state)
        except Exception:
            log.warning("[rt] presence leave failed user=%s", self.user.pk)
        for gid in self.group_ids:
            await self.channel_layer.group_discard(chat_group(gid), self.channel_name)

    async def _watchdog(self) -> None:
        """Close a socket whose client stopped talking (half-open TCP): 3 missed heartbeats."""
        while True:
            await asyncio.sleep(presence.HEARTBEAT_SECONDS / 2)
            if time.monotonic() - self.last_heard > presence.PRESENCE_TTL_SECONDS:
                await self.close(code=4408)
                return

    # ------------------------------------------------------------------ from the client

    async def receive_json(self, content, **kwargs) -> None:
        self.last_heard = time.monotonic()
        if not isinstance(content, dict):
            await self._error("bad_message", "Send a JSON object with a type.")
            return
        kind = content.get("type")
        if kind == "ping":
            await self.send_json({"type": "pong", "ts": content.get("ts"), "server_ts": time.time()})
            await self._touch_presence()
        elif kind == "heartbeat":
            await self._touch_presence()
            await self.send_json({"type": "heartbeat.ack", "server_ts": time.time()})
        elif kind == "presence":
            await self._set_status(content.get("status"))
        elif kind == "typing":
            await self._typing(content)
        elif kind == "presence.query":
            await self._presence_query(str(content.get("group_id", "")))
        else:
            await self._error("unknown_type", "Unknown message type.")

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
        except ValueError:  # malformed JSON never closes the socket
            await self._error("malformed_json", "The message is not valid JSON.")

    async def _error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})

    async def _set_status(self, status) -> None:
        if status not in presence.STATUSES:
            await self._error("invalid_status", "status must be online or away.")
            return
        self.status = status
        await self._touch_presence(force=True)

    async def _touch_presence(self, force: bool = False) -> None:
        # Heartbeats refresh the 90 s deadline; a burst of pings costs one Redis write per 10 s.
        if not force and time.monotonic() - self.last_touch < 10:
            return
        self.last_touch = time.monotonic()
        try:
            changed, state = await presence.touch(self.user.pk, self.channel_name, self.status, self.group_ids)
        except Exception:
            log.warning("[rt] presence touch failed user=%s", self.user.pk)
            return
        if changed:
            await self._announce_presence(state)

    async def _announce_presence(self, state: dict) -> None:
        message = {"type": "rt.presence", **state}
        for gid in self.group_ids:
            await self.channel_layer.group_send(chat_group(gid), message)

    async def _typing(self, content: dict) -> None:
        group_id = str(content.get("group_id", ""))
        state = content.get("state", "start")
        if group_id not in self.group_ids:
            await self._error("not_a_member", "You are not a member of that group.")
            return
        if state not in ("start", "stop"):
            await self._error("invalid_state", "state must be start or stop.")
            return
        try:
            allowed = await presence.typing_allowed(self.user.pk, group_id, state)
        except Exception:
            allowed = True  # Redis hiccup: typing is cosmetic, let it through
        if not allowed:
            await self._error("rate_limited", "Typing signals are limited to one per second.")
            return
        await self.channel_layer.group_send(
            chat_group(group_id),
            {"type": "rt.typing", "group_id": group_id, "user_id": self.user.pk, "state": state},
        )

    async def _presence_query(self, group_id: str) -> None:
        if group_id not in self.group_ids:
            await self._error("not_a_member", "You are not a member of that group.")
            return
        members = await _member_ids(group_id)
        states = await presence.states(members)
        await self.send_json({"type": "presence.state", "group_id": group_id, "members": list(states.values())})

    # ------------------------------------------------------------------ from the channel layer

    async def rt_events(self, message: dict) -> None:
        items = message["events"]
        if not items:
            return
        missed, _ = self.watch.missed(message, items[-1][0])
        if missed:
            await asyncio.to_thread(record_feed_loss, 1, missed)
            await self.send_json({"type": "resync", "since": self.last_event_id})
        for event_id, organization_id, _type, text in items:
            if organization_id != self.user.organization_id:
                continue  # defence in depth: the org group should never carry another organization's event
            self.last_event_id = max(self.last_event_id, event_id)
            await self.send(text_data='{"type": "event", "backlog": false, "event": ' + text + "}")

    async def rt_typing(self, message: dict) -> None:
        if message["user_id"] != self.user.pk:  # never echoed to the sender (any of their sockets)
            await self.send_json({k: message[k] for k in ("group_id", "user_id", "state")} | {"type": "typing"})

    async def rt_presence(self, message: dict) -> None:
        if message["user_id"] != self.user.pk:
            await self.send_json({"type": "presence", "user_id": message["user_id"], "status": message["status"],
                                  "last_seen": message.get("last_seen")})  # fmt: skip


def _origin_allowed(scope) -> bool:
    """Browsers always send Origin with a cookie-authenticated websocket: it must be one of our hosts."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    host = origin.split("://", 1)[-1].split("/", 1)[0]
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


class StaffFeedConsumer(AsyncJsonWebsocketConsumer):
    """Staff live feed: every organization (or one), optional event-type filter, ``since`` backlog then live.

    Frames: ``{"type": "events", "backlog": bool, "events": [...]}``, then ``ready`` after the backlog.
    No gap, no duplicate across the backlog/live seam: subscribe to the hub FIRST, then read the backlog, then
    release the live batches that queued meanwhile, minus any event the backlog already carried.
    """

    # No per-socket layer channel: the process's FeedHub holds the one subscription (an alias that is not
    # configured makes Channels skip new_channel()).
    channel_layer_alias = "staff-feed-uses-the-feed-hub"
    subscriber: FeedSubscriber | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff or not _origin_allowed(self.scope):
            await self.close()
            return
        params = _query(self.scope)
        try:
            organization_id = int(params["organization"]) if params.get("organization") else None
            since = int(params["since"]) if params.get("since") not in (None, "") else None
        except ValueError:
            await self.close()
            return
        event_types = {t for t in params.get("types", "").split(",") if t} or None
        self.subscriber = FeedSubscriber(organization_id, event_types, self._send_frame, self._close_lagging)
        await feed_hub().add(self.subscriber)
        await self.accept()
        last_id = since or 0
        if since is not None:
            last_id = await self._send_backlog(since)
        await self.send_json({"type": "ready", "next": last_id})
        self.subscriber.go_live()

    async def disconnect(self, code: int) -> None:
        if self.subscriber is not None:
            await feed_hub().remove(self.subscriber)
            self.subscriber = None

    async def _send_frame(self, frame: str) -> None:
        await self.send(text_data=frame)

    async def _close_lagging(self, code: int) -> None:
        await self.close(code=code)

    async def _send_backlog(self, since: int) -> int:
        sub = self.subscriber
        cursor, total = since, 0
        while total < BACKLOG_MAX:
            page = await database_sync_to_async(queries.recent_events)(
                sub.organization_id, sub.event_types, since=cursor, limit=BACKLOG_PAGE
            )
            items = [event_item(event) for event in page]
            sub.sent_in_backlog(item[0] for item in items)
            for start in range(0, len(items), BACKLOG_FRAME):
                await self.send(text_data=render_events(items[start : start + BACKLOG_FRAME], backlog=True))
            total += len(page)
            if page:
                cursor = page[-1]["id"]
            if len(page) < BACKLOG_PAGE:
                return cursor
        await self.send_json({"type": "backlog.incomplete", "next": cursor})
        return cursor

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "ts": content.get("ts"), "server_ts": time.time()})

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
        except ValueError:
            await self.send_json({"type": "error", "code": "malformed_json"})
