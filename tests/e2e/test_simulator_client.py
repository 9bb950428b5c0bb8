"""The simulator's client logic on its own (no server processes): outbox, merge, telemetry retries, failures.

The HTTP server is an in-process httpx transport standing in for Pushwatch's answers; no database is involved.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid

import httpx

from simulator.api import ApiClient
from simulator.device import GroupState, SimDevice
from simulator.setup import SimUser
from simulator.stats import Stats

GROUP = str(uuid.uuid4())


def make_device(handler) -> tuple[SimDevice, Stats, httpx.AsyncClient]:
    stats = Stats()
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    user = SimUser("sim-org-1-user1", "key", "sim-org-1", (GROUP,))
    api = ApiClient(http, "http://pushwatch.test", "key", observer=stats.observe)
    device = SimDevice(user, api, stats, random.Random(1), "ws://pushwatch.test", drop_response_prob=0.0)
    device.installed = True
    return device, stats, http


def test_merging_is_idempotent_and_the_cursor_only_covers_contiguous_seqs():
    group = GroupState()
    assert [group.merge(seq) for seq in (1, 3, 3, 2, 1)] == [True, True, False, True, False]
    assert group.cursor == 3 and not group.ahead
    assert group.merge(5) and group.cursor == 3  # 4 is still missing: after_seq must stay at 3


def test_a_send_that_gets_a_5xx_stays_in_the_outbox_and_is_replayed_with_the_same_client_id():
    seen_ids: list[str] = []
    answers = iter([500, 201])

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen_ids.append(body["client_generated_id"])
        status = next(answers)
        if status == 500:
            return httpx.Response(500, json={"error": {"code": "server_error", "message": "boom", "fields": {}}})
        return httpx.Response(201, json={"id": str(uuid.uuid4()), "seq": 1, "status": "sent"})

    async def scenario() -> tuple[SimDevice, Stats]:
        device, stats, http = make_device(handler)
        async with http:
            await device.send(GROUP, "hello")
            assert len(device.outbox) == 1
            await device.drain_outbox()
        return device, stats

    device, stats = asyncio.run(scenario())
    assert not device.outbox and len(set(seen_ids)) == 1 and len(seen_ids) == 2
    assert stats.server_errors == 1 and stats.sent == 1
    assert device.groups[GROUP].cursor == 1  # our own message is merged without a sync


def test_a_replay_answered_with_another_message_is_counted_as_an_idempotency_violation():
    answers = iter([201, 200])  # a broken server: the replay answers 200 but with a different message

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json={"id": str(uuid.uuid4()), "seq": 1})

    async def scenario() -> Stats:
        device, stats, http = make_device(handler)
        device.drop_response_prob = 1.0  # the first answer "never arrives"
        async with http:
            await device.send(GROUP, "hello")
            device.drop_response_prob = 0.0
            await device.drain_outbox()
        return stats

    stats = asyncio.run(scenario())
    assert stats.dropped_responses == 1 and stats.idempotency_mismatches == 1


def test_a_failed_telemetry_flush_is_retried_as_the_same_batch_with_the_same_idempotency_key():
    flushes: list[tuple[str, bytes]] = []
    answers = iter([httpx.Response(503), httpx.Response(202, json={"batch_id": "b", "accepted": 2})])

    def handler(request: httpx.Request) -> httpx.Response:
        flushes.append((request.headers["Idempotency-Key"], request.content))
        return next(answers)

    async def scenario() -> Stats:
        device, stats, http = make_device(handler)
        async with http:
            device.log("[auth] writes:ready")
            device.log("[sync] start group=g since=0")
            await device.flush_telemetry()
            device.log("[sync] merged count=0")  # logged between the two flushes: goes in the next batch
            await device.flush_telemetry()
        assert len(device.telemetry) == 1
        return stats

    stats = asyncio.run(scenario())
    assert flushes[0] == flushes[1] and stats.telemetry_entries == 2
    messages = [entry["message"] for entry in json.loads(flushes[0][1])]
    assert messages == ["[auth] writes:ready", "[sync] start group=g since=0"]


def test_a_server_that_is_down_counts_as_no_answer_and_never_raises():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async def scenario() -> tuple[SimDevice, Stats]:
        device, stats, http = make_device(handler)
        async with http:
            await device.send(GROUP, "hello")
            await device.sync_missed(GROUP)
            await device.flush_telemetry()
        return device, stats

    device, stats = asyncio.run(scenario())
    assert stats.no_answer == 3 and stats.server_errors == 0 and len(device.outbox) == 1
