"""Loss is visible and repaired; a vanished client goes offline by expiry (no close needed)."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from realtime import presence, queries, services
from realtime.models import RealtimeEvent
from tests.factories import GroupMemberFactory, StaffUserFactory, UserFactory
from tests.realtime.helpers import client_socket, collect_events, events_until_ready, feed_socket, receive_until

pytestmark = pytest.mark.django_db(transaction=True)


def as_wire(event: RealtimeEvent) -> dict:
    return queries.serialize_event({f: getattr(event, f) for f in ("id", "organization_id", "event_type",
                                                                   "entity_type", "entity_id", "payload",
                                                                   "created_at")})  # fmt: skip


def test_a_dropped_broadcast_is_counted_and_the_staff_feed_repairs_it_from_the_database():
    staff, user = StaffUserFactory(), UserFactory()
    first = RealtimeEvent.objects.create(organization=user.organization, event_type="e", entity_type="n", entity_id=1)
    lost = RealtimeEvent.objects.create(organization=user.organization, event_type="e", entity_type="n", entity_id=2)
    third = RealtimeEvent.objects.create(organization=user.organization, event_type="e", entity_type="n", entity_id=3)
    before = queries.feed_loss_counters()

    async def scenario():
        comm = await feed_socket(staff)
        assert (await comm.connect())[0]
        assert await events_until_ready(comm) == []
        layer = get_channel_layer()
        # A publisher whose message #2 the layer dropped (as over-capacity or a Redis reconnect would).
        for pseq, event in ((1, first), (3, third)):
            item = services.event_item(await sync_to_async(as_wire)(event))
            await layer.group_send(services.GROUP_ALL, {"type": "rt.events", "events": [item], "pub": "test-pub",
                                                        "pseq": pseq, "grp": services.GROUP_ALL})  # fmt: skip
        received = await collect_events(comm, 3)
        assert sorted(e["id"] for e in received) == [first.id, lost.id, third.id]
        await comm.disconnect()

    async_to_sync(scenario)()
    after = queries.feed_loss_counters()
    assert after["gaps"] == before["gaps"] + 1
    assert after["missed"] == before["missed"] + 1
    assert after["repaired"] >= before["repaired"] + 1
    assert after["layer"] in ("RedisPubSubChannelLayer", "RedisChannelLayer")


def test_a_client_that_missed_a_broadcast_is_told_to_resync_from_its_cursor():
    user = UserFactory()
    event = RealtimeEvent.objects.create(organization=user.organization, event_type="e", entity_type="n", entity_id=1)

    async def scenario():
        comm = await client_socket(user)
        assert (await comm.connect())[0]
        await receive_until(comm, "hello")
        wire = await sync_to_async(as_wire)(event)
        group = services.org_group(user.organization_id)
        await get_channel_layer().group_send(group, {"type": "rt.events", "events": [services.event_item(wire)],
                                                     "pub": "p", "pseq": 1, "grp": group})  # fmt: skip
        await receive_until(comm, "event")
        later = services.event_item(wire | {"id": event.id + 5})
        await get_channel_layer().group_send(group, {"type": "rt.events", "events": [later], "pub": "p", "pseq": 4,
                                                     "grp": group})  # fmt: skip
        resync = await receive_until(comm, "resync")
        assert resync["since"] == event.id
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_vanished_client_reads_offline_after_its_heartbeat_deadline_and_the_sweep_announces_it():
    alice = GroupMemberFactory()
    bob = GroupMemberFactory(group=alice.group)

    async def scenario():
        a = await client_socket(alice.user)
        assert (await a.connect())[0]
        await receive_until(a, "hello")
        # Bob's socket "vanishes": its heartbeat deadline passed and no close ever came.
        await presence.touch(bob.user_id, "ghost-channel", "online", [str(alice.group_id)])
        assert (await presence.states([bob.user_id]))[bob.user_id]["status"] == "online"
        redis = presence.async_redis()
        await redis.zadd(f"pw:rt:pres:conns:{bob.user_id}", {"ghost-channel": time.time() - 1})
        await redis.zadd(presence.ONLINE_KEY, {str(bob.user_id): time.time() - 1})
        assert (await presence.states([bob.user_id]))[bob.user_id]["status"] == "offline"
        assert await sync_to_async(presence.sweep_expired)() >= 1
        await receive_until_status(a, bob.user_id, "offline")
        await a.disconnect()

    async def receive_until_status(comm, user_id, status):
        while True:
            message = await receive_until(comm, "presence")
            if message["user_id"] == user_id and message["status"] == status:
                return message

    async_to_sync(scenario)()
