"""One simulated phone running the seed-000 client: token registration, send with client ids and a local
outbox, realtime socket, onWake(reason) → ensure auth for writes → realtime rebuild → syncMissed → outbox
drain, push receipts, and buffered telemetry with the seed's log tags."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulator.api import ApiClient, ApiResult, items
from simulator.stats import Stats

SEED_DEFAULTS: dict[str, Any] = {
    "features.push_resync.enabled": True,
    "features.push_resync.killSwitch": False,
    "sync.maxBatch": 200,
    "realtime.retryBackoff": [1500, 3000, 6000],
    "auth.refreshTimeoutMs": 1800,
    "outbox.retryShortDelayMs": 700,
}
TELEMETRY_MAX_BATCH = 500
TELEMETRY_BUFFER_CAP = 5000


def fake_fcm_token() -> str:
    """Shaped like a real FCM registration token: ``<22-char instance id>:APA91b<…>``."""
    return f"{secrets.token_urlsafe(16)[:22]}:APA91b{secrets.token_urlsafe(105)[:134]}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def extract_flags(body: Any) -> dict[str, Any]:
    """The evaluated flags from ``/api/v1/config``: flat, or under ``flags``/``values``/``config``."""
    if not isinstance(body, dict):
        return {}
    for key in ("flags", "values", "config"):
        if isinstance(body.get(key), dict):
            return body[key]
    return body


@dataclass
class GroupState:
    cursor: int = 0  # every seq up to here is merged locally (the after_seq cursor)
    ahead: set[int] = field(default_factory=set)  # merged seqs above the cursor (our own sends)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def merge(self, seq: int) -> bool:
        """Idempotent merge of one message; False when it was already here."""
        if seq <= self.cursor or seq in self.ahead:
            return False
        self.ahead.add(seq)
        while self.cursor + 1 in self.ahead:
            self.cursor += 1
            self.ahead.discard(self.cursor)
        return True


@dataclass
class OutboxItem:
    group_id: str
    body: str
    server_id: str | None = None  # the id of the first answer, to check replays return the same message


class SimDevice:
    FOREGROUND, BACKGROUND, OFFLINE = "foreground", "background", "offline"

    def __init__(self, user: Any, api: ApiClient, stats: Stats, rng: random.Random, ws_base: str,
                 open_prob: float = 0.3, drop_response_prob: float = 0.03) -> None:  # fmt: skip
        self.user = user
        self.api = api
        self.stats = stats
        self.rng = rng
        self.ws_base = ws_base
        self.open_prob = open_prob
        self.drop_response_prob = drop_response_prob
        self.platform = "ios" if rng.random() < 0.4 else "android"
        self.app_version = rng.choice(["1.9.2", "1.10.0", "2.0.1"])
        self.fcm_token = fake_fcm_token()
        self.device_id: str | None = None
        self.state = self.FOREGROUND
        self.installed = False
        self.quiet = False
        self.flags: dict[str, Any] = dict(SEED_DEFAULTS)
        self.config_etag: str | None = None
        self.groups: dict[str, GroupState] = {gid: GroupState() for gid in user.group_ids}
        self.outbox: dict[str, OutboxItem] = {}
        self.in_flight: set[str] = set()  # outbox items whose request is on the wire
        self.telemetry: list[dict] = []
        self.telemetry_batch: list[dict] | None = None  # the batch being flushed, retried as is
        self.telemetry_key: str | None = None  # its Idempotency-Key, reused until the server acknowledges it
        self.flushing = False
        self.pending_wakes: list[dict] = []
        self.tasks: set[asyncio.Task] = set()
        self.ws_task: asyncio.Task | None = None
        self.socket: Any = None
        # Set by the runner: the server deactivated a device (seen on this org's socket): (device_id, reason).
        self.on_device_deactivated: Any = None
        self.draining = False

    # --- small helpers -----------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.user.username

    @property
    def max_batch(self) -> int:
        value = self.flags.get("sync.maxBatch", 200)
        return value if isinstance(value, int) and value > 0 else 200

    @property
    def online(self) -> bool:
        return self.installed and self.state != self.OFFLINE

    @property
    def can_act(self) -> bool:
        return self.online and not self.quiet

    def log(self, message: str, **metadata: Any) -> None:
        """A client log line with a seed tag, buffered for the next telemetry flush."""
        metadata.update(platform=self.platform, app_version=self.app_version)
        if self.device_id:
            metadata["device_id"] = self.device_id
        self.telemetry.append({"event_type": "log", "message": message, "metadata": metadata, "client_ts": now_iso()})
        if len(self.telemetry) > TELEMETRY_BUFFER_CAP:
            del self.telemetry[: len(self.telemetry) - TELEMETRY_BUFFER_CAP]  # a phone's buffer is bounded too

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel_all(self) -> None:
        tasks = list(self.tasks) + ([self.ws_task] if self.ws_task else [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def install(self, stop: asyncio.Event) -> bool:
        """App start: register the token (retrying), read the remote config, cold-start sync, open the socket."""
        delay = 0.5
        while not stop.is_set():
            result = await self.api.register_device(self.platform, self.fcm_token, self.app_version)
            if result.ok:
                if isinstance(result.body, dict):
                    self.device_id = str(result.body.get("id") or result.body.get("device_id") or "") or None
                break
            if 400 <= result.status < 500 and result.status != 429:
                return False  # our request is wrong; retrying cannot help
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        if stop.is_set():
            return False
        self.installed = True
        self.state = self.FOREGROUND
        self.log(f"[push] token:registered {self.platform} {self.fcm_token[:6]}…")
        await self.refresh_config()
        await self.load_groups()
        await self.on_wake("cold_start")
        return True

    async def uninstall(self, count: bool = True) -> str:
        """The app is deleted: sockets die, the outbox is lost; returns the dead token (the fake is told)."""
        self.installed = False
        self.stats.uninstalls += int(count)
        await self.cancel_all()
        self.outbox.clear()
        self.telemetry.clear()
        self.telemetry_batch = self.telemetry_key = None
        self.pending_wakes.clear()
        return self.fcm_token

    async def reinstall(self, stop: asyncio.Event) -> None:
        self.fcm_token = fake_fcm_token()
        self.groups = {gid: GroupState() for gid in self.groups}
        self.stats.reinstalls += 1
        await self.install(stop)

    async def refresh_config(self) -> None:
        result = await self.api.config(self.platform, self.app_version, self.config_etag)
        self.stats.config_fetches += 1
        if result.status == 304:
            self.stats.config_not_modified += 1
        elif result.ok:
            self.flags = {**SEED_DEFAULTS, **extract_flags(result.body)}
            self.config_etag = result.headers.get("etag")

    async def load_groups(self) -> None:
        result = await self.api.groups()
        if result.ok:
            for group in items(result.body, "groups", "results"):
                gid = str(group.get("id", ""))
                if gid and gid not in self.groups:
                    self.groups[gid] = GroupState()

    # --- state changes driven by the runner's chaos loop ----------------------------------------------------------
    async def go_background(self) -> None:
        if self.state == self.FOREGROUND:
            self.state = self.BACKGROUND
            self.stats.background_episodes += 1
            self.stop_socket()

    async def go_offline(self) -> None:
        if self.state != self.OFFLINE:
            self.state = self.OFFLINE
            self.stats.offline_episodes += 1
            self.stop_socket()

    async def resume(self) -> None:
        """Back to the foreground (app:resume / network:online): the same onWake sequence, then any pushes
        that arrived while the network was gone."""
        if not self.installed or self.state == self.FOREGROUND:
            return
        self.state = self.FOREGROUND
        await self.on_wake("resume")
        wakes, self.pending_wakes = self.pending_wakes, []
        for data in wakes:
            await self.handle_push(data)

    # --- onWake -----------------------------------------------------------------------------------------------
    async def on_wake(self, reason: str, group_id: str | None = None) -> None:
        if reason in ("data", "tap"):
            self.log(f"[push] wake reason={reason}", group_id=group_id or "")
        await self.ensure_auth_for_writes()
        if self.state == self.FOREGROUND:
            self.start_socket()
        # A push names its group: resync just that one (seed: "immediately resync the open group"); a resume
        # or cold start resyncs every group.
        order = [group_id] if group_id in self.groups else list(self.groups)
        for gid in order:
            if not self.online:
                return
            await self.sync_missed(gid)
        await self.drain_outbox()

    async def ensure_auth_for_writes(self) -> None:
        # Sometimes the session refresh is slow: writes are blocked, the outbox waits retryShortDelayMs.
        if self.rng.random() < 0.05:
            self.log("[auth] writes:blocked reason=refresh_timeout")
            if self.outbox:
                self.log("[outbox] deferred reason=auth_refresh", count=len(self.outbox))
            await asyncio.sleep(int(self.flags.get("outbox.retryShortDelayMs", 700)) / 1000)
        self.log("[auth] writes:ready")

    # --- sync ----------------------------------------------------------------------------------------------
    async def sync_missed(self, group_id: str) -> int:
        """Fetch after_seq=cursor in pages of sync.maxBatch, merge idempotently, post a delivered receipt."""
        group = self.groups[group_id]
        async with group.lock:
            since = group.cursor
            self.log(f"[sync] start group={group_id} since={since}")
            merged = 0
            for _page in range(1000):
                if not self.online:
                    break
                requested = group.cursor  # own sends may move the cursor while the request is in flight
                result = await self.api.messages_after(group_id, requested, self.max_batch)
                if not result.ok or not isinstance(result.body, dict):
                    break
                self.stats.syncs += 1
                expected = requested + 1
                for message in sorted(items(result.body, "messages"), key=lambda m: m.get("seq", 0)):
                    seq = int(message.get("seq", 0))
                    if seq < expected:
                        self.stats.client_duplicates += 1  # at or below the cursor we asked from, or twice
                        continue
                    if seq != expected:
                        self.stats.client_seq_gaps += 1  # the server skipped a seq
                    expected = seq + 1
                    merged += int(group.merge(seq))
                if group.cursor <= requested and result.body.get("has_more"):
                    break  # no progress: never loop on a server that repeats itself
                if not result.body.get("has_more"):
                    break
            self.stats.synced += merged
            self.log(f"[sync] merged count={merged}", group_id=group_id)
            if merged and self.online:
                receipt = await self.api.group_receipt(group_id, "delivered", group.cursor)
                self.stats.group_receipts += int(receipt.ok)
            return merged

    # --- sending and the outbox ----------------------------------------------------------------------------
    async def send(self, group_id: str, body: str) -> None:
        client_id = str(uuid.uuid4())
        self.outbox[client_id] = OutboxItem(group_id, body)
        if not self.online:
            self.stats.queued_offline += 1  # shows "sending…" until the outbox drains on resume
            return
        await self.typing(group_id)
        await self.post_outbox_item(client_id)

    async def post_outbox_item(self, client_id: str) -> None:
        item = self.outbox.get(client_id)
        if item is None or client_id in self.in_flight:
            return  # one request per item at a time; a drain skips what a send is already posting
        self.in_flight.add(client_id)
        try:
            result: ApiResult = await self.api.send_message(item.group_id, client_id, item.body)
        finally:
            self.in_flight.discard(client_id)
        if result.ok and isinstance(result.body, dict):
            server_id = str(result.body.get("id", ""))
            if item.server_id is not None and server_id != item.server_id:
                self.stats.idempotency_mismatches += 1
            if result.status == 201 and item.server_id is None:
                self.stats.sent += 1
            else:
                self.stats.replayed += 1
            group = self.groups.get(item.group_id)
            if item.server_id is None and self.rng.random() < self.drop_response_prob:
                # The answer "never arrived": keep the item; the replay must return this same message.
                item.server_id = server_id
                self.stats.dropped_responses += 1
                return
            self.outbox.pop(client_id, None)
            if group is not None and isinstance(result.body.get("seq"), int):
                group.merge(result.body["seq"])  # our own message is merged locally without a round trip
        elif 400 <= result.status < 500 and result.status not in (401, 408, 429):
            self.outbox.pop(client_id, None)  # refused for good (e.g. blocked member): not retried forever
        # 5xx, 401, 429 or no answer: it stays in the outbox and the next drain retries it with the same id.

    async def drain_outbox(self) -> None:
        if self.draining or not self.outbox or not self.online:
            return
        self.draining = True
        try:
            self.log(f"[outbox] drain start count={len(self.outbox)}")
            for client_id in list(self.outbox):
                if not self.online:
                    break
                await self.post_outbox_item(client_id)
        finally:
            self.draining = False

    # --- pushes ------------------------------------------------------------------------------------------------
    def deliver(self, fcm_message: dict) -> None:
        """The fake FCM server handed us a data message addressed to our token."""
        if not self.installed:
            return
        self.stats.pushes_seen += 1
        data = fcm_message.get("data") or {}
        if self.quiet:
            return  # a quiet phone (battery saver, switched off) never reacts
        if self.state == self.OFFLINE:
            self.pending_wakes.append(data)
            return
        self.spawn(self.handle_push(data))

    @property
    def push_resync_enabled(self) -> bool:
        # Kill-switch on (or the feature off) short-circuits to the old behaviour: pushes wake nothing.
        return bool(self.flags.get("features.push_resync.enabled", True)) and not self.flags.get(
            "features.push_resync.killSwitch", False
        )

    async def handle_push(self, data: dict) -> None:
        if data.get("type") not in (None, "new_message", "test") or not self.push_resync_enabled:
            return
        self.stats.push_wakes += 1
        group_id = data.get("group_id") or None
        await self.on_wake("data", group_id)
        push_id = data.get("push_id") or data.get("push")
        if not push_id or not self.device_id:
            self.stats.push_receipts_without_push_id += 1
            return
        receipt = await self.api.push_receipt(push_id, self.device_id, "delivered", {"reason": "data"})
        self.stats.push_receipts += int(receipt.ok)
        if self.online and self.rng.random() < self.open_prob:
            # The user taps the notification: the app opens the group; the push counts as opened.
            self.state = self.FOREGROUND
            await self.on_wake("tap", group_id)
            opened = await self.api.push_receipt(push_id, self.device_id, "opened", {"reason": "tap"})
            self.stats.opened += int(opened.ok)
            if group_id in self.groups and self.groups[group_id].cursor:
                await self.api.group_receipt(group_id, "read", self.groups[group_id].cursor)

    # --- realtime socket -----------------------------------------------------------------------------------
    def start_socket(self) -> None:
        if self.ws_task is None or self.ws_task.done():
            self.ws_task = asyncio.get_running_loop().create_task(self.socket_loop())

    def stop_socket(self) -> None:
        if self.ws_task is not None:
            self.ws_task.cancel()
            self.ws_task = None

    async def socket_loop(self) -> None:
        """Keep /ws/v1/events open while in the foreground; a group's new message triggers a sync. On failure
        back off per realtime.retryBackoff, then degrade to a 10 s fetch-poll."""
        import websockets

        channel = f"org:{self.user.organization}"
        url = f"{self.ws_base}/ws/v1/events?token={self.api.api_key}"
        backoff_step = 0
        while self.installed and self.state == self.FOREGROUND:
            try:
                async with websockets.connect(url, open_timeout=5, close_timeout=1, max_size=2**20) as socket:
                    self.stats.ws_connects += 1
                    backoff_step = 0
                    self.socket = socket
                    self.log(f"[rt] rebuild channel={channel} status=SUBSCRIBED")
                    heartbeat = asyncio.get_running_loop().create_task(self.heartbeat_loop(socket))
                    try:
                        async for raw in socket:
                            self.stats.ws_events += 1
                            self.on_socket_event(raw)
                    finally:
                        self.socket = None
                        heartbeat.cancel()
                self.log(f"[rt] rebuild channel={channel} status=CLOSED")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, 403/404 handshake, dropped: the watchdog's job
                self.stats.ws_failures += 1
                self.log(f"[rt] rebuild channel={channel} status=CHANNEL_ERROR", error=type(exc).__name__)
            steps = self.flags.get("realtime.retryBackoff") or [1500, 3000, 6000]
            if backoff_step < len(steps):
                delay_ms = int(steps[backoff_step])
                self.log(f"[rt] degraded backoff={delay_ms}")
                backoff_step += 1
                await asyncio.sleep(delay_ms / 1000)
            else:
                # Degraded: poll every 10 s until the socket heals.
                for gid in list(self.groups):
                    if self.can_act:
                        await self.sync_missed(gid)
                await asyncio.sleep(10)

    async def heartbeat_loop(self, socket: Any) -> None:
        """Presence heartbeat every 30 s: the server closes a socket that stays silent for 90 s."""
        while True:
            await asyncio.sleep(30)
            await socket.send(json.dumps({"type": "heartbeat"}))

    async def typing(self, group_id: str) -> None:
        """Typing indicator before a send, when the socket is up (ephemeral, never stored)."""
        socket = self.socket
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.send(json.dumps({"type": "typing", "group_id": group_id, "state": "start"}))

    def on_socket_event(self, raw: str | bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        inner = event.get("event") if isinstance(event.get("event"), dict) else {}
        if inner.get("event_type") == "device.deactivated" and self.on_device_deactivated is not None:
            payload = inner.get("payload") if isinstance(inner.get("payload"), dict) else {}
            self.on_device_deactivated(str(inner.get("entity_id", "")), str(payload.get("reason", "")))
            return
        if event.get("type") == "resync":
            # The server says we may have missed events: catch up every group by seq.
            for gid, group in self.groups.items():
                if self.can_act and not group.lock.locked():
                    self.spawn(self.sync_missed(gid))
            return
        event = event.get("event") if isinstance(event.get("event"), dict) else event
        payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
        group_id = str(payload.get("group_id") or event.get("group_id") or "")
        if not group_id and event.get("entity_type") == "group":
            group_id = str(event.get("entity_id") or "")
        group = self.groups.get(group_id)
        if group is None or not self.can_act:
            return
        seq = payload.get("seq")
        if isinstance(seq, int) and seq <= group.cursor:
            return
        if not group.lock.locked():
            self.spawn(self.sync_missed(group_id))

    # --- telemetry -------------------------------------------------------------------------------------------
    async def flush_telemetry(self) -> None:
        """Every 10 s (seed 004): one batch; a failed flush is retried as the very same batch with the same
        Idempotency-Key (a different body under a used key would be a conflict)."""
        if not self.online or self.flushing:
            return
        if self.telemetry_batch is None:
            if not self.telemetry:
                return
            self.telemetry_batch = self.telemetry[:TELEMETRY_MAX_BATCH]
            del self.telemetry[:TELEMETRY_MAX_BATCH]
            self.telemetry_key = str(uuid.uuid4())
        batch = self.telemetry_batch
        self.flushing = True
        try:
            result = await self.api.telemetry_batch(batch, self.telemetry_key or "")
        finally:
            self.flushing = False
        if result.ok:
            self.stats.telemetry_entries += len(batch)
        elif 400 <= result.status < 500 and result.status not in (401, 408, 429):
            self.stats.telemetry_dropped += len(batch)  # refused for good: drop it
        else:
            return  # keep the batch and its key for the next flush
        if self.telemetry_batch is not batch:
            return  # uninstalled meanwhile
        self.telemetry_batch = None
        self.telemetry_key = None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.cancel_all()
