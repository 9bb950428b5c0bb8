"""Websockets through config.asgi (AuthMiddlewareStack + consumers) on the real Redis channel layer."""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from config.asgi import application
from realtime import queries, services
from tests.factories import GroupMemberFactory, StaffUserFactory, UserFactory
from tests.realtime.helpers import (
    WebsocketCommunicator,
    client_socket,
    collect_events,
    events_until_ready,
    feed_socket,
    flushed,
    no_more_events,
    payload_bytes,
    receive_until,
)

pytestmark = pytest.mark.django_db(transaction=True)
emit = sync_to_async(services.emit)


def run(coro_fn):
    return async_to_sync(coro_fn)()


@pytest.mark.parametrize("via", ["subprotocol", "query"])
def test_a_client_never_receives_another_organizations_event_over_websocket(via):
    alice, mallory = UserFactory(), UserFactory()

    async def scenario():
        comm = await client_socket(alice, via=via)
        connected, subprotocol = await comm.connect()
        assert connected
        assert subprotocol == ("pushwatch.v1" if via == "subprotocol" else None)  # never the token itself
        await receive_until(comm, "hello")
        await emit(mallory.organization, "note", "n", 1, {"secret": True})
        await emit(None, "flag.changed", "flag", "k", {})
        mine = await emit(alice.organization, "note", "n", 2, {"ok": True})
        await flushed()
        [event] = await collect_events(comm, 1)
        assert event["id"] == mine and event["organization_id"] == alice.organization_id
        assert await no_more_events(comm) == []
        await comm.disconnect()

    run(scenario)


def test_a_client_with_a_bad_or_missing_token_is_refused():
    async def scenario():
        for comm in (
            WebsocketCommunicator(application, "/ws/v1/events?token=nope"),
            WebsocketCommunicator(application, "/ws/v1/events", subprotocols=["pushwatch.v1", "token.nope"]),
            WebsocketCommunicator(application, "/ws/v1/events"),
        ):
            connected, _ = await comm.connect()
            assert not connected

    run(scenario)


def test_an_anonymous_or_non_staff_socket_on_the_staff_feed_is_refused():
    member = UserFactory()

    async def scenario():
        for comm in (await feed_socket(None), await feed_socket(member)):
            connected, _ = await comm.connect()
            assert not connected

    run(scenario)


def test_a_staff_feed_from_a_foreign_origin_is_refused():
    staff = StaffUserFactory()

    async def scenario():
        comm = await feed_socket(staff)
        comm.scope["headers"].append((b"origin", b"https://evil.example"))
        connected, _ = await comm.connect()
        assert not connected

    run(scenario)


def test_a_5kb_payload_arrives_truncated_under_2048_bytes():
    staff, user = StaffUserFactory(), UserFactory()

    async def scenario():
        comm = await feed_socket(staff)
        assert (await comm.connect())[0]
        await receive_until(comm, "ready")
        await emit(user.organization, "note", "n", 1, {"text": "x" * 5000})
        await flushed()
        [event] = await collect_events(comm, 1)
        assert event["payload"]["truncated"] is True
        assert payload_bytes(event["payload"]) < 2048
        await comm.disconnect()

    run(scenario)


def test_the_staff_feed_filters_by_organization_and_event_type():
    staff, a, b = StaffUserFactory(), UserFactory(), UserFactory()

    async def scenario():
        comm = await feed_socket(staff, f"?organization={a.organization_id}&types=wanted")
        assert (await comm.connect())[0]
        await receive_until(comm, "ready")
        await emit(b.organization, "wanted", "n", 1, {})
        await emit(a.organization, "other", "n", 2, {})
        wanted = await emit(a.organization, "wanted", "n", 3, {})
        await flushed()
        assert [e["id"] for e in await collect_events(comm, 1)] == [wanted]
        assert await no_more_events(comm) == []
        await comm.disconnect()

    run(scenario)


def test_events_emitted_during_a_feeds_connect_arrive_exactly_once(monkeypatch):
    """Deterministic seam: one event commits just before the backlog read (it is in the backlog AND on the
    live stream: must be sent once), one just after (only on the live stream: must not be lost)."""
    staff, user = StaffUserFactory(), UserFactory()
    org = user.organization
    before = [services.emit(org, "e", "n", i, {}) for i in range(3)]
    around: list[int] = []
    real_recent_events = queries.recent_events

    def racing_recent_events(*args, **kwargs):
        around.append(services.emit(org, "e", "n", "during-before-read", {}))
        services.wait_for_broadcasts(5)
        rows = real_recent_events(*args, **kwargs)
        around.append(services.emit(org, "e", "n", "during-after-read", {}))
        return rows

    monkeypatch.setattr(queries, "recent_events", racing_recent_events)

    async def scenario():
        comm = await feed_socket(staff, f"?since={before[0]}")
        assert (await comm.connect())[0]
        received = await events_until_ready(comm)
        assert [e["id"] for e in received] == [*before[1:], around[0]]  # the backlog
        after = await emit(org, "e", "n", "after", {})
        await flushed()
        expected = [*before[1:], *around, after]
        received += await collect_events(comm, len(expected) - len(received))
        received += await no_more_events(comm)
        ids = [e["id"] for e in received]
        assert sorted(ids) == sorted(expected)  # each exactly once, none missing
        await comm.disconnect()

    run(scenario)


def test_a_feed_connecting_while_events_stream_in_gets_each_exactly_once():
    """A real race: a thread emits 150 events while the feed connects with a cursor."""
    staff, user = StaffUserFactory(), UserFactory()
    org = user.organization
    cursor = services.emit(org, "start", "n", 0, {})
    emitted: list[int] = []
    started = threading.Event()

    def emitter():
        from django.db import connection

        for i in range(150):
            emitted.append(services.emit(org, "e", "n", i, {"i": i}))
            if i == 20:
                started.set()
        connection.close()

    async def scenario():
        thread = threading.Thread(target=emitter)
        thread.start()
        await sync_to_async(started.wait)(10)
        comm = await feed_socket(staff, f"?since={cursor}")
        assert (await comm.connect())[0]
        received = await events_until_ready(comm)
        await sync_to_async(thread.join)()
        await flushed()
        received += await collect_events(comm, len(emitted) - len(received), timeout=15)
        received += await no_more_events(comm)
        ids = [e["id"] for e in received]
        assert len(ids) == len(set(ids)) == 150
        assert set(ids) == set(emitted)
        await comm.disconnect()

    run(scenario)


def test_typing_reaches_the_other_members_and_not_the_sender():
    alice = GroupMemberFactory()
    bob = GroupMemberFactory(group=alice.group)
    outsider = UserFactory(organization=alice.group.organization)

    async def scenario():
        a, b, o = [await client_socket(u) for u in (alice.user, bob.user, outsider)]
        for comm in (a, b, o):
            assert (await comm.connect())[0]
            await receive_until(comm, "hello")
        await a.send_json_to({"type": "typing", "group_id": str(alice.group_id), "state": "start"})
        typing = await receive_until(b, "typing")
        assert typing == {"type": "typing", "group_id": str(alice.group_id), "user_id": alice.user_id,
                          "state": "start"}  # fmt: skip
        # Too soon again: rate-limited, and the sender is told so (but never sees its own typing).
        await a.send_json_to({"type": "typing", "group_id": str(alice.group_id), "state": "start"})
        assert (await receive_until(a, "error"))["code"] == "rate_limited"
        # Not a member: refused.
        await o.send_json_to({"type": "typing", "group_id": str(alice.group_id), "state": "start"})
        assert (await receive_until(o, "error"))["code"] == "not_a_member"
        for comm, who in ((a, "sender"), (o, "outsider")):
            while not await comm.receive_nothing(timeout=0.5):
                message = await comm.receive_json_from()
                assert message["type"] != "typing", f"{who} saw typing"
        for comm in (a, b, o):
            await comm.disconnect()

    run(scenario)


def test_presence_goes_online_then_offline_after_disconnect():
    alice = GroupMemberFactory()
    bob = GroupMemberFactory(group=alice.group)

    async def scenario():
        a = await client_socket(alice.user)
        assert (await a.connect())[0]
        await receive_until(a, "hello")
        b = await client_socket(bob.user)
        assert (await b.connect())[0]
        online = await receive_until(a, "presence")
        assert (online["user_id"], online["status"]) == (bob.user_id, "online")
        await b.send_json_to({"type": "presence", "status": "away"})
        away = await receive_until(a, "presence")
        assert (away["user_id"], away["status"]) == (bob.user_id, "away")
        await a.send_json_to({"type": "presence.query", "group_id": str(alice.group_id)})
        states = {m["user_id"]: m["status"] for m in (await receive_until(a, "presence.state"))["members"]}
        assert states == {alice.user_id: "online", bob.user_id: "away"}
        await b.disconnect()
        offline = await receive_until(a, "presence")
        assert (offline["user_id"], offline["status"]) == (bob.user_id, "offline")
        assert offline["last_seen"] is not None
        await a.disconnect()

    run(scenario)


def test_ping_gets_a_pong_with_the_clients_timestamp():
    user = UserFactory()

    async def scenario():
        comm = await client_socket(user)
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "ping", "ts": 123.5})
        pong = await receive_until(comm, "pong")
        assert pong["ts"] == 123.5 and pong["server_ts"] > 0
        await comm.send_to(text_data="not json")
        assert (await receive_until(comm, "error"))["code"] == "malformed_json"
        await comm.disconnect()

    run(scenario)
