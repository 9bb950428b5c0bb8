"""The staff feed's per-process hub: batched frames, a slow socket cut loose, one subscription per process."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import transaction
from django.test import override_settings

from realtime import feedhub, services
from tests.factories import StaffUserFactory, UserFactory
from tests.realtime.helpers import (
    client_socket,
    collect_events,
    events_until_ready,
    feed_socket,
    flushed,
    no_more_events,
    receive_until,
)

pytestmark = pytest.mark.django_db(transaction=True)


def emit_in_one_transaction(organization, count: int, event_type: str = "burst") -> list[int]:
    """``count`` events committed together: the publisher sends them as one layer message."""
    with transaction.atomic():
        return [services.emit(organization, event_type, "n", i, {"i": i}) for i in range(count)]


def lists_layer() -> dict:
    return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                        "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": settings.CHANNEL_PREFIX + ":lists",
                                   "capacity": 1000}}}  # fmt: skip


@pytest.mark.parametrize("layer", ["pubsub", "lists"])
def test_a_burst_reaches_every_staff_socket_in_a_few_frames_not_one_per_event(layer):
    staff, user = StaffUserFactory(), UserFactory()

    async def scenario():
        sockets = [await feed_socket(staff, "?types=burst") for _ in range(3)]
        for comm in sockets:
            assert (await comm.connect())[0]
            await receive_until(comm, "ready")
        ids = await sync_to_async(emit_in_one_transaction)(user.organization, 200)
        await flushed()
        for comm in sockets:
            frames = []
            while sum(len(f["events"]) for f in frames) < 200:
                frame = await receive_until(comm, "events", timeout=10)
                assert frame["backlog"] is False
                frames.append(frame)
            assert [e["id"] for f in frames for e in f["events"]] == ids  # all of them, in order, once
            assert len(frames) <= 3
            assert await no_more_events(comm, 0.3) == []
        for comm in sockets:
            await comm.disconnect()

    if layer == "lists":
        with override_settings(CHANNEL_LAYERS=lists_layer()):
            async_to_sync(scenario)()
    else:
        async_to_sync(scenario)()


def test_a_client_socket_still_gets_one_frame_per_event_from_a_batched_broadcast():
    """The mobile protocol is unchanged: ``{"type": "event", "event": {...}}`` per event."""
    user = UserFactory()

    async def scenario():
        comm = await client_socket(user)
        assert (await comm.connect())[0]
        await receive_until(comm, "hello")
        ids = await sync_to_async(emit_in_one_transaction)(user.organization, 5)
        await flushed()
        for expected in ids:
            frame = await receive_until(comm, "event")
            assert frame["event"]["id"] == expected
        await comm.disconnect()

    async_to_sync(scenario)()


def test_the_backlog_arrives_in_marked_frames_before_ready():
    staff, user = StaffUserFactory(), UserFactory()
    cursor = services.emit(user.organization, "old", "n", 0, {})
    ids = emit_in_one_transaction(user.organization, 600, "old")

    async def scenario():
        comm = await feed_socket(staff, f"?since={cursor}")
        assert (await comm.connect())[0]
        frames = []
        while (message := await comm.receive_json_from(timeout=10))["type"] != "ready":
            frames.append(message)
        assert all(f["type"] == "events" and f["backlog"] is True for f in frames)
        assert [len(f["events"]) for f in frames] == [250, 250, 100]
        assert [e["id"] for f in frames for e in f["events"]] == ids
        assert message["next"] == ids[-1]
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_staff_socket_that_falls_behind_is_closed_with_4409_while_the_others_keep_up(monkeypatch):
    """A browser that stops reading must not hold the others back or grow the server's memory without bound."""
    monkeypatch.setattr(feedhub, "MAX_QUEUED_EVENTS", 50)
    user = UserFactory()

    async def scenario():
        hub = feedhub.feed_hub()
        stuck_forever = asyncio.Event()
        closed: list[int] = []
        frames: list[str] = []

        async def never_finishes_sending(frame: str) -> None:
            await stuck_forever.wait()  # a full TCP buffer to a frozen browser tab

        async def record_close(code: int) -> None:
            closed.append(code)

        async def keep(frame: str) -> None:
            frames.append(frame)

        async def no_close(code: int) -> None:
            raise AssertionError("the healthy socket was closed")

        slow = feedhub.FeedSubscriber(None, {"lag"}, never_finishes_sending, record_close)
        healthy = feedhub.FeedSubscriber(None, {"lag"}, keep, no_close)
        for subscriber in (slow, healthy):
            await hub.add(subscriber)
            subscriber.go_live()
        sent: list[int] = []
        for _ in range(4):  # the first frame sticks in send(); the next ones pile up behind it
            sent += await sync_to_async(emit_in_one_transaction)(user.organization, 30, "lag")
            await flushed()
            await asyncio.sleep(0.1)
        for _ in range(50):
            if closed and sum(f.count('"id": ') for f in frames) >= len(sent):
                break
            await asyncio.sleep(0.1)
        assert closed == [feedhub.CLOSE_LAGGING]
        assert slow.queued <= feedhub.MAX_QUEUED_EVENTS + 30 and not slow.queue  # dropped, not hoarded
        received = [int(part.split(",", 1)[0]) for f in frames for part in f.split('{"id": ')[1:]]
        assert received == sent
        for subscriber in (slow, healthy):
            await hub.remove(subscriber)

    async_to_sync(scenario)()


def test_the_hub_leaves_the_layer_with_the_last_staff_socket_and_rejoins_for_the_next():
    staff, user = StaffUserFactory(), UserFactory()

    async def scenario():
        hub = feedhub.feed_hub()
        first, second = await feed_socket(staff), await feed_socket(staff)
        for comm in (first, second):
            assert (await comm.connect())[0]
            await receive_until(comm, "ready")
        assert len(hub.subscribers) == 2 and hub.receiver is not None
        await first.disconnect()
        assert hub.receiver is not None  # one staff socket still open
        await second.disconnect()
        assert hub.subscribers == set() and hub.receiver is None
        third = await feed_socket(staff)
        assert (await third.connect())[0]
        await receive_until(third, "ready")
        event_id = await sync_to_async(services.emit)(user.organization, "again", "n", 1, {})
        await flushed()
        assert [e["id"] for e in await collect_events(third, 1)] == [event_id]
        await third.disconnect()
        assert hub.receiver is None

    async_to_sync(scenario)()


def test_a_feed_filtered_to_one_organization_gets_only_its_events_from_the_shared_hub():
    staff, a, b = StaffUserFactory(), UserFactory(), UserFactory()

    async def scenario():
        everything = await feed_socket(staff)
        only_a = await feed_socket(staff, f"?organization={a.organization_id}")
        for comm in (everything, only_a):
            assert (await comm.connect())[0]
            await events_until_ready(comm)
        ids_a = await sync_to_async(emit_in_one_transaction)(a.organization, 3, "mixed")
        ids_b = await sync_to_async(emit_in_one_transaction)(b.organization, 3, "mixed")
        await flushed()
        seen_all = await collect_events(everything, 6)
        assert sorted(e["id"] for e in seen_all) == sorted(ids_a + ids_b)
        seen_a = await collect_events(only_a, 3)
        assert [e["id"] for e in seen_a] == ids_a
        assert await no_more_events(only_a, 0.3) == []
        for comm in (everything, only_a):
            await comm.disconnect()

    async_to_sync(scenario)()
