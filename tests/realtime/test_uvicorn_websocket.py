"""Over a real uvicorn process with the `websockets` client: the client socket end to end."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from asgiref.sync import async_to_sync, sync_to_async

from realtime import services
from tests.factories import GroupMemberFactory, UserFactory, token_for
from tests.processes import asgi_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def next_of(ws, kind: str, timeout: float = 10.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


def test_over_uvicorn_a_client_gets_its_own_events_typing_and_pong_but_not_another_orgs():
    alice = GroupMemberFactory()
    bob = GroupMemberFactory(group=alice.group)
    mallory = UserFactory()
    alice_key, bob_key = token_for(alice.user), token_for(bob.user)

    async def scenario(base: str):
        url = base.replace("http://", "ws://") + "/ws/v1/events"
        async with (
            websockets.connect(url, subprotocols=["pushwatch.v1", f"token.{alice_key}"]) as a,
            websockets.connect(f"{url}?token={bob_key}") as b,
        ):
            assert a.subprotocol == "pushwatch.v1"
            await next_of(a, "hello")
            await next_of(b, "hello")
            await sync_to_async(services.emit)(mallory.organization, "note", "n", 1, {"secret": True})
            mine = await sync_to_async(services.emit)(alice.group.organization, "note", "n", 2, {"x": 1})
            await asyncio.to_thread(services.wait_for_broadcasts, 5)
            event = (await next_of(a, "event"))["event"]
            assert event["id"] == mine  # the other organization's event (emitted first) never arrived
            await a.send(json.dumps({"type": "typing", "group_id": str(alice.group_id), "state": "start"}))
            typing = await next_of(b, "typing")
            assert typing["user_id"] == alice.user_id
            await a.send(json.dumps({"type": "ping", "ts": 42}))
            assert (await next_of(a, "pong"))["ts"] == 42
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(f"{url}?token=wrong"):
                pass

    with asgi_server() as base:
        async_to_sync(scenario)(base)
