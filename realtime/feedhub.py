"""The staff live feed's fan-out: one channel-layer subscription per web process, many events per frame.

Why not one Channels consumer per socket in the layer group: every layer message then costs each socket its own
deserialisation, dispatch and websocket frame (~55 µs per event per socket here), so 50 staff sockets at 1,000
events/s needed 2.75 CPU-seconds per second and the feed fell 30 s behind. The hub receives each layer message
once per process, keeps the events that each subscriber's filter wants, and every ``FEED_FLUSH_SECONDS`` hands
each subscriber ONE frame (``{"type": "events", "events": [...]}``) rendered once per distinct filter. Each socket
has its own writer task, so a slow browser delays only itself; one that falls ``MAX_QUEUED_EVENTS`` behind is
closed with code 4409 and reconnects with its cursor (the backlog read fills the gap).

Loss: the hub watches each publisher's sequence numbers on ``GROUP_ALL``; a jump (channel-layer overflow, Redis
reconnect) is counted in ``feed_loss_counters`` and repaired from the database, deduplicated by event id.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from realtime import queries
from realtime.services import GROUP_ALL, EventItem, event_item, record_feed_loss

log = logging.getLogger("pushwatch.realtime")

MAX_QUEUED_EVENTS = 20_000  # per socket: ~20 s of a 1,000 events/s firehose
SEEN_WINDOW = 50_000  # event ids the hub remembers, so a repair never sends an event twice
REPAIR_DELAY_SECONDS = 0.25  # a burst of drops is repaired by one database read
REPAIR_LIMIT = 5000
CLOSE_LAGGING = 4409


_FRAME_HEAD = {True: '{"type": "events", "backlog": true, "events": [',
               False: '{"type": "events", "backlog": false, "events": ['}  # fmt: skip


def render_events(items: Iterable[EventItem], backlog: bool = False) -> str:
    """One feed frame. Each item carries its event already as JSON text: joining is all that is left to do."""
    return _FRAME_HEAD[backlog] + ", ".join(item[3] for item in items) + "]}"


class _Batch:
    """The events of one flush that one filter wants; the frame is rendered on first use, then shared."""

    __slots__ = ("items", "_frame")

    def __init__(self, items: list[EventItem]) -> None:
        self.items = items
        self._frame: str | None = None

    @property
    def frame(self) -> str:
        if self._frame is None:
            self._frame = render_events(self.items)
        return self._frame


class SequenceWatch:
    """Each publisher's last sequence number (and last event id) per layer group; reports what was skipped."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], tuple[int, int]] = {}

    def missed(self, message: dict, last_id: int) -> tuple[int, int]:
        """(messages skipped before this one, id of the last event seen from the same publisher)."""
        key = (message.get("pub", ""), message.get("grp", ""))
        seq = int(message.get("pseq", 0))
        previous_seq, previous_id = self.last.get(key, (None, 0))
        if previous_seq is None or seq > previous_seq:
            self.last[key] = (seq, last_id)
        if previous_seq is None or seq <= previous_seq + 1:
            return 0, previous_id
        return seq - previous_seq - 1, previous_id


class FeedSubscriber:
    """One staff socket: its filter, its queue of batches and the task that writes them.

    Until ``go_live`` the socket is reading its backlog: batches queue up (nothing is lost at the seam) and
    are sent afterwards, minus any event the backlog already carried.
    """

    def __init__(self, organization_id: int | None, event_types: set[str] | None,
                 send: Callable[[str], Awaitable[None]], close: Callable[[int], Awaitable[None]]) -> None:  # fmt: skip
        self.organization_id = organization_id
        self.event_types = frozenset(event_types) if event_types else None
        self.key = (organization_id, self.event_types)
        self._send, self._close = send, close
        self.queue: deque[_Batch] = deque()
        self.queued = 0
        self.backlog_ids: set[int] = set()
        self.backlog_max = 0
        self.lagging = False
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None

    def wants(self, item: EventItem) -> bool:
        if self.organization_id is not None and item[1] != self.organization_id:
            return False
        return self.event_types is None or item[2] in self.event_types

    def sent_in_backlog(self, event_ids: Iterable[int]) -> None:
        self.backlog_ids.update(event_ids)
        self.backlog_max = max(self.backlog_ids, default=0)

    def offer(self, batch: _Batch) -> None:
        if self.lagging:
            return
        self.queue.append(batch)
        self.queued += len(batch.items)
        if self.queued > MAX_QUEUED_EVENTS:
            # Too far behind to catch up live: drop the queue and let the client reconnect with its cursor.
            # The writer may be stuck in a send to a full TCP buffer, so it is cancelled, not woken.
            self.lagging = True
            self.queue.clear()
            if self._writer is not None:
                self._writer.cancel()
                asyncio.ensure_future(self._close_lagging())
            return
        self._wake.set()

    def go_live(self) -> None:
        if self.lagging:  # fell behind while its backlog was being read
            asyncio.ensure_future(self._close_lagging())
        elif self._writer is None:
            self._writer = asyncio.ensure_future(self._write())

    async def _close_lagging(self) -> None:
        log.info("[rt] a staff feed socket fell %d events behind: closing it (code %d)", MAX_QUEUED_EVENTS,
                 CLOSE_LAGGING)  # fmt: skip
        try:
            await self._close(CLOSE_LAGGING)
        except Exception as exc:
            log.debug("[rt] closing a lagging staff feed socket failed: %s", exc)

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()

    async def _write(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not self.queue:
                    continue
                batches = list(self.queue)
                self.queue.clear()
                self.queued = 0
                frame = self._frame_of(batches)
                if frame is not None:
                    await self._send(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket went away under us: the consumer's disconnect cleans up
            log.debug("[rt] staff feed writer stopped: %s", exc)

    def _frame_of(self, batches: list[_Batch]) -> str | None:
        """One frame for everything queued: the shared frame when possible, else re-rendered once."""
        if len(batches) == 1 and not self.backlog_ids:
            return batches[0].frame
        items = [item for batch in batches for item in batch.items]
        if self.backlog_ids:
            items = [item for item in items if item[0] > self.backlog_max or item[0] not in self.backlog_ids]
        return render_events(items) if items else None


class FeedHub:
    """Per process and event loop: one layer channel in ``GROUP_ALL``, the subscribers, flushes and repairs."""

    def __init__(self) -> None:
        self.subscribers: set[FeedSubscriber] = set()
        self.lock = asyncio.Lock()
        self.layer = None
        self.channel: str | None = None
        self.receiver: asyncio.Task | None = None
        self.flush_interval = float(getattr(settings, "FEED_FLUSH_SECONDS", 0.02))
        self._reset()

    def _reset(self) -> None:
        self.pending: list[EventItem] = []
        self.flush_handle: asyncio.TimerHandle | None = None
        self.last_flush = 0.0
        self.watch = SequenceWatch()
        self.seen: set[int] = set()
        self.seen_order: deque[int] = deque()
        self.repair_from, self.missed_pending, self.gaps_pending = 0, 0, 0
        self.repair_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ subscribers

    async def add(self, subscriber: FeedSubscriber) -> None:
        """Register ``subscriber``; when this returns, every event published from now on reaches it."""
        async with self.lock:
            if self.receiver is None:
                await self._start()
            self.subscribers.add(subscriber)

    async def remove(self, subscriber: FeedSubscriber) -> None:
        subscriber.stop()
        async with self.lock:
            self.subscribers.discard(subscriber)
            if not self.subscribers and self.receiver is not None:
                await self._stop()

    async def _start(self) -> None:
        self.layer = get_channel_layer()  # looked up each time: tests swap CHANNEL_LAYERS
        self.channel = await self.layer.new_channel("feedhub.")
        await self.layer.group_add(GROUP_ALL, self.channel)
        self.receiver = asyncio.ensure_future(self._receive_loop())

    async def _stop(self) -> None:
        for task in (self.receiver, self.repair_task):
            if task is not None:
                task.cancel()
        try:
            await self.receiver
        except (asyncio.CancelledError, Exception):
            pass
        try:
            await self.layer.group_discard(GROUP_ALL, self.channel)
        except Exception as exc:
            log.warning("[rt] feed hub could not leave the layer group: %s", exc)
        if self.flush_handle is not None:
            self.flush_handle.cancel()
        self.receiver, self.channel = None, None
        self._reset()

    # ------------------------------------------------------------------ from the channel layer

    async def _receive_loop(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the layer reconnects; the sequence watch sees what was lost
                log.warning("[rt] feed hub receive failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if message.get("type") == "rt.events" and message.get("events"):
                self.take(message)

    def take(self, message: dict) -> None:
        items = message["events"]
        missed, previous_id = self.watch.missed(message, items[-1][0])
        self._queue_new(items)
        if missed:
            self.missed_pending += missed
            self.gaps_pending += 1
            self.repair_from = min(self.repair_from, previous_id) if self.repair_from else previous_id
            if self.repair_task is None:
                self.repair_task = asyncio.ensure_future(self._repair_soon())

    def _queue_new(self, items: Iterable[EventItem]) -> int:
        added = 0
        for item in items:
            event_id = item[0]
            if event_id in self.seen:
                continue
            self.seen.add(event_id)
            self.seen_order.append(event_id)
            self.pending.append(item)
            added += 1
        while len(self.seen_order) > SEEN_WINDOW:
            self.seen.discard(self.seen_order.popleft())
        if added and self.flush_handle is None:
            loop = asyncio.get_running_loop()
            # At most one flush per interval: under load each frame carries ~interval × rate events.
            delay = max(0.0, self.last_flush + self.flush_interval - loop.time())
            self.flush_handle = loop.call_later(delay, self.flush)
        return added

    def flush(self) -> None:
        self.flush_handle = None
        self.last_flush = asyncio.get_running_loop().time()
        items, self.pending = self.pending, []
        if not items:
            return
        by_key: dict[tuple, _Batch | None] = {}
        for subscriber in self.subscribers:
            key = subscriber.key
            if key not in by_key:
                wanted = [item for item in items if subscriber.wants(item)]
                by_key[key] = _Batch(wanted) if wanted else None
            batch = by_key[key]
            if batch is not None:
                subscriber.offer(batch)

    async def _repair_soon(self) -> None:
        """The layer dropped messages: re-read the events after the last one seen from the publisher that
        skipped, and pass on those not seen yet."""
        try:
            await asyncio.sleep(REPAIR_DELAY_SECONDS)
            since, missed, gaps = self.repair_from, self.missed_pending, self.gaps_pending
            self.repair_from, self.missed_pending, self.gaps_pending = 0, 0, 0
            rows = await database_sync_to_async(queries.recent_events)(
                None, None, since=max(since - 1, 0), limit=REPAIR_LIMIT
            )
            repaired = self._queue_new(event_item(row) for row in rows)
            await database_sync_to_async(record_feed_loss)(gaps, missed, repaired)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("[rt] feed repair failed")
        finally:
            self.repair_task = None


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FeedHub] = weakref.WeakKeyDictionary()


def feed_hub() -> FeedHub:
    """This event loop's hub (one per process under uvicorn; tests run several loops)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = FeedHub()
    return hub
