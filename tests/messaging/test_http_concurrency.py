"""Concurrent sends through the real ASGI server (uvicorn) and HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest

from messaging.models import Group, Message
from tests.factories import token_for
from tests.messaging.helpers import group_with_members, run_in_threads
from tests.processes import asgi_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_sixteen_http_writers_times_200_sends_get_seqs_exactly_1_to_3200():
    group, members = group_with_members(16)
    tokens = [token_for(m.user) for m in members]
    writers, per_writer = 16, 200
    with asgi_server() as base:
        url = f"{base}/api/v1/groups/{group.pk}/messages"

        def write(i: int) -> list[int]:
            seqs = []
            headers = {"Authorization": f"Token {tokens[i]}"}
            with httpx.Client(headers=headers, timeout=30) as client:
                for k in range(per_writer):
                    response = client.post(url, json={"client_generated_id": str(uuid.uuid4()), "body": f"{i}:{k}"})
                    assert response.status_code == 201, response.text
                    seqs.append(response.json()["seq"])
            return seqs

        answered = run_in_threads(write, writers)
    total = writers * per_writer
    assert sorted(s for seqs in answered for s in seqs) == list(range(1, total + 1))
    stored = list(Message.objects.filter(group=group).order_by("seq").values_list("seq", flat=True))
    assert stored == list(range(1, total + 1))
    assert Group.objects.get(pk=group.pk).last_seq == total


def test_eight_http_requests_racing_one_client_id_answer_with_the_same_message():
    group, (alice,) = group_with_members(1)
    token = token_for(alice.user)
    payload = {"client_generated_id": str(uuid.uuid4()), "body": "once"}
    with asgi_server() as base:
        url = f"{base}/api/v1/groups/{group.pk}/messages"

        def send(_: int) -> tuple[int, str]:
            response = httpx.post(url, json=payload, headers={"Authorization": f"Token {token}"}, timeout=30)
            return response.status_code, response.json()["id"]

        answers = run_in_threads(send, 8)
    assert sorted(code for code, _ in answers) == [200] * 7 + [201]
    assert len({message_id for _, message_id in answers}) == 1
    assert Message.objects.filter(group=group).count() == 1
    assert Group.objects.get(pk=group.pk).last_seq == 1
