"""The messaging REST API: status codes, error shape, access rules, bad input writes nothing."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from messaging import services
from messaging.models import Group, GroupMember, Message
from tests.factories import GroupMemberFactory, UserFactory
from tests.messaging.helpers import group_with_members

pytestmark = pytest.mark.django_db


def _url(group_id, tail: str = "messages") -> str:
    return f"/api/v1/groups/{group_id}/{tail}"


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def _post(client, url: str, payload) -> object:
    return client.post(url, data=json.dumps(payload), content_type="application/json")


def _fill(member, n: int) -> None:
    for i in range(n):
        services.send_message(sender=member.user, group_id=member.group_id, client_generated_id=uuid.uuid4(),
                              body=f"m{i}")  # fmt: skip


def test_send_answers_201_then_200_for_the_replay_with_same_id_and_seq(api_client):
    _, (alice,) = group_with_members(1)
    client = api_client(alice.user)
    payload = {"client_generated_id": str(uuid.uuid4()), "body": "hello"}
    first = _post(client, _url(alice.group_id), payload)
    again = _post(client, _url(alice.group_id), payload)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["seq"] == again.json()["seq"] == 1
    assert first.json()["id"] == again.json()["id"]
    assert set(first.json()) >= {"id", "seq", "status", "created_at", "group_id", "client_generated_id", "body"}


BAD_SEND_BODIES = {
    "missing_client_id": {"body": "x"},
    "invalid_uuid": {"client_generated_id": "not-a-uuid", "body": "x"},
    "uuid_as_number": {"client_generated_id": 12345, "body": "x"},
    "missing_body": {"client_generated_id": str(uuid.uuid4())},
    "empty_body": {"client_generated_id": str(uuid.uuid4()), "body": ""},
    "null_body": {"client_generated_id": str(uuid.uuid4()), "body": None},
    "body_over_4000": {"client_generated_id": str(uuid.uuid4()), "body": "x" * 4001},
    "body_with_nul": {"client_generated_id": str(uuid.uuid4()), "body": "a\x00b"},
    "body_lone_surrogate": {"client_generated_id": str(uuid.uuid4()), "body": "\ud800"},
    "not_an_object": ["x"],
}


@pytest.mark.parametrize("case", BAD_SEND_BODIES)
def test_each_bad_send_input_is_400_and_writes_nothing(api_client, case):
    group, (alice,) = group_with_members(1)
    _error(_post(api_client(alice.user), _url(group.pk), BAD_SEND_BODIES[case]), 400)
    assert not Message.objects.exists()
    group.refresh_from_db()
    assert group.last_seq == 0


def test_malformed_json_send_is_400_and_writes_nothing(api_client):
    group, (alice,) = group_with_members(1)
    response = api_client(alice.user).post(_url(group.pk), data='{"body": "x",', content_type="application/json")
    assert _error(response, 400)["code"] == "malformed_json"
    assert not Message.objects.exists()


def test_exactly_4000_characters_is_accepted(api_client):
    _, (alice,) = group_with_members(1)
    payload = {"client_generated_id": str(uuid.uuid4()), "body": "é" * 4000}
    assert _post(api_client(alice.user), _url(alice.group_id), payload).status_code == 201


BAD_CURSORS = [
    "after_seq=-1",
    "before_seq=-5",
    "before_seq=0",
    "after_seq=abc",
    "after_seq=1.5",
    "after_seq=",
    "after_seq=99999999999999999999999",
    "after_seq=1&before_seq=5",
    "after_seq=1&after_seq=2",
    "limit=0",
    "limit=-3",
    "limit=ten",
]


@pytest.mark.parametrize("query", BAD_CURSORS)
def test_each_bad_cursor_is_400(api_client, query):
    _, (alice,) = group_with_members(1)
    _error(api_client(alice.user).get(f"{_url(alice.group_id)}?{query}"), 400)


BAD_RECEIPTS = {
    "missing_status": {"up_to_seq": 1},
    "unknown_status": {"status": "opened", "up_to_seq": 1},
    "negative": {"status": "read", "up_to_seq": -1},
    "fraction": {"status": "read", "up_to_seq": 1.5},
    "text": {"status": "read", "up_to_seq": "five"},
    "huge": {"status": "read", "up_to_seq": 10**30},
    "missing_seq": {"status": "read"},
}


@pytest.mark.parametrize("case", BAD_RECEIPTS)
def test_each_bad_receipt_is_400_and_moves_no_watermark(api_client, case):
    group, (alice, bob) = group_with_members(2)
    _fill(alice, 3)
    _error(_post(api_client(bob.user), _url(group.pk, "receipts"), BAD_RECEIPTS[case]), 400)
    bob.refresh_from_db()
    assert (bob.delivered_seq, bob.read_seq) == (0, 0)
    assert set(Message.objects.values_list("status", flat=True)) == {"sent"}


def test_invalid_group_uuid_in_the_path_is_a_json_404(api_client):
    client = api_client(UserFactory())
    for tail in ("messages", "receipts", "unread"):
        _error(client.get(f"/api/v1/groups/not-a-uuid/{tail}"), 404)
    _error(_post(client, "/api/v1/groups/not-a-uuid/messages", {"body": "x"}), 404)


def test_non_member_and_other_organization_get_404_everywhere(api_client):
    group, (alice,) = group_with_members(1)
    _fill(alice, 1)
    for outsider in (UserFactory(organization=group.organization), UserFactory()):
        client = api_client(outsider)
        _error(client.get(_url(group.pk)), 404)
        _error(client.get(_url(group.pk, "unread")), 404)
        _error(_post(client, _url(group.pk, "receipts"), {"status": "read", "up_to_seq": 1}), 404)
        _error(_post(client, _url(group.pk), {"client_generated_id": str(uuid.uuid4()), "body": "x"}), 404)
    assert Message.objects.count() == 1


def test_unknown_group_is_404(api_client):
    _error(api_client(UserFactory()).get(_url(uuid.uuid4())), 404)


def test_blocked_member_gets_403_on_send_and_nothing_is_written(api_client):
    group, _ = group_with_members(1)
    blocked = GroupMemberFactory(group=group, is_blocked=True)
    response = _post(api_client(blocked.user), _url(group.pk), {"client_generated_id": str(uuid.uuid4()), "body": "x"})
    assert _error(response, 403)["code"] == "member_blocked"
    assert not Message.objects.exists()


def test_missing_token_is_401(api_client):
    _error(api_client().get("/api/v1/groups"), 401)


def test_groups_list_shows_latest_seq_and_unread(api_client):
    group, (alice, bob) = group_with_members(2)
    _fill(alice, 5)
    services.record_receipt(user=bob.user, group_id=group.pk, status="read", up_to_seq=2)
    GroupMemberFactory(user=bob.user, group__organization=group.organization)  # a second, empty group
    body = api_client(bob.user).get("/api/v1/groups").json()
    by_id = {g["id"]: g for g in body["groups"]}
    assert by_id[str(group.pk)]["latest_seq"] == 5 and by_id[str(group.pk)]["unread"] == 3
    assert len(by_id) == 2
    assert api_client(bob.user).get(_url(group.pk, "unread")).json() == {"unread": 3, "latest_seq": 5}


def test_sync_after_seq_pages_in_order_with_has_more_and_latest_seq(api_client, caplog):
    group, (alice,) = group_with_members(1)
    _fill(alice, 5)
    client = api_client(alice.user)
    with caplog.at_level(logging.INFO, logger="pushwatch.sync"):
        page = client.get(f"{_url(group.pk)}?after_seq=1&limit=3").json()
    assert [m["seq"] for m in page["messages"]] == [2, 3, 4]
    assert page["has_more"] is True and page["latest_seq"] == 5
    assert f"[sync] start group={group.pk} since=1" in caplog.text
    assert "[sync] merged count=3" in caplog.text
    last = client.get(f"{_url(group.pk)}?after_seq=4").json()
    assert [m["seq"] for m in last["messages"]] == [5] and last["has_more"] is False


def test_history_before_seq_pages_backwards(api_client):
    group, (alice,) = group_with_members(1)
    _fill(alice, 5)
    client = api_client(alice.user)
    page = client.get(f"{_url(group.pk)}?before_seq=5&limit=2").json()
    assert [m["seq"] for m in page["messages"]] == [3, 4] and page["has_more"] is True
    oldest = client.get(f"{_url(group.pk)}?before_seq=3&limit=2").json()
    assert [m["seq"] for m in oldest["messages"]] == [1, 2] and oldest["has_more"] is False


def test_sync_is_bounded_by_the_max_batch_flag(api_client, monkeypatch):
    group, (alice,) = group_with_members(1)
    _fill(alice, 6)
    monkeypatch.setattr("messaging.queries.flag_value", lambda key, **kw: 4 if key == "sync.maxBatch" else None)
    page = api_client(alice.user).get(f"{_url(group.pk)}?after_seq=0&limit=100").json()
    assert len(page["messages"]) == 4 and page["has_more"] is True


def test_watermarks_never_regress(api_client):
    group, (alice, bob) = group_with_members(2)
    _fill(alice, 10)
    client = api_client(bob.user)
    receipts = _url(group.pk, "receipts")
    assert _post(client, receipts, {"status": "read", "up_to_seq": 7}).json() == {"delivered_seq": 7, "read_seq": 7}
    assert _post(client, receipts, {"status": "read", "up_to_seq": 3}).json() == {"delivered_seq": 7, "read_seq": 7}
    assert _post(client, receipts, {"status": "delivered", "up_to_seq": 2}).json() == {
        "delivered_seq": 7,
        "read_seq": 7,
    }
    assert _post(client, receipts, {"status": "delivered", "up_to_seq": 9}).json() == {
        "delivered_seq": 9,
        "read_seq": 7,
    }
    member = GroupMember.objects.get(pk=bob.pk)
    assert (member.delivered_seq, member.read_seq) == (9, 7)


def test_receipt_beyond_the_latest_seq_is_clamped_to_it(api_client):
    group, (alice, bob) = group_with_members(2)
    _fill(alice, 3)
    body = _post(api_client(bob.user), _url(group.pk, "receipts"), {"status": "read", "up_to_seq": 1000}).json()
    assert body == {"delivered_seq": 3, "read_seq": 3}


def test_message_status_advances_only_when_every_other_member_has_passed_it():
    group, (alice, bob, carol) = group_with_members(3)
    _fill(alice, 4)
    services.send_message(sender=bob.user, group_id=group.pk, client_generated_id=uuid.uuid4(), body="bob's")

    def statuses() -> list[str]:
        return list(Message.objects.filter(group=group).order_by("seq").values_list("status", flat=True))

    services.record_receipt(user=bob.user, group_id=group.pk, status="read", up_to_seq=5)
    assert statuses() == ["sent"] * 5  # carol has seen nothing yet
    services.record_receipt(user=carol.user, group_id=group.pk, status="delivered", up_to_seq=3)
    assert statuses() == ["delivered"] * 3 + ["sent"] * 2
    services.record_receipt(user=carol.user, group_id=group.pk, status="read", up_to_seq=2)
    assert statuses() == ["read", "read", "delivered", "sent", "sent"]
    services.record_receipt(user=carol.user, group_id=group.pk, status="read", up_to_seq=5)
    # seq 5 is bob's: it also needs alice, who has not reported.
    assert statuses() == ["read"] * 4 + ["sent"]
    services.record_receipt(user=alice.user, group_id=group.pk, status="delivered", up_to_seq=5)
    assert statuses() == ["read"] * 4 + ["delivered"]
    services.record_receipt(user=carol.user, group_id=group.pk, status="delivered", up_to_seq=1)
    assert statuses() == ["read"] * 4 + ["delivered"]  # a late, lower receipt downgrades nothing


def test_blocked_members_do_not_hold_back_message_status():
    group, (alice, bob) = group_with_members(2)
    GroupMemberFactory(group=group, is_blocked=True)
    _fill(alice, 2)
    services.record_receipt(user=bob.user, group_id=group.pk, status="read", up_to_seq=2)
    assert set(Message.objects.values_list("status", flat=True)) == {"read"}


def test_group_counter_is_unchanged_after_refused_sends(api_client):
    group, (alice,) = group_with_members(1)
    client = api_client(alice.user)
    for payload in BAD_SEND_BODIES.values():
        _post(client, _url(group.pk), payload)
    assert Group.objects.get(pk=group.pk).last_seq == 0


def test_schema_documents_the_messaging_endpoints(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/api/v1/groups", "/api/v1/groups/{group_id}/messages", "/api/v1/groups/{group_id}/receipts",
                 "/api/v1/groups/{group_id}/unread"):  # fmt: skip
        assert path in schema


def test_sync_renders_messages_exactly_like_the_send_answer(api_client):
    group, (alice,) = group_with_members(1)
    client = api_client(alice.user)
    sent = _post(client, _url(group.pk), {"client_generated_id": str(uuid.uuid4()), "body": "same"}).json()
    synced = client.get(f"{_url(group.pk)}?after_seq=0").json()["messages"][0]
    assert synced == {k: v for k, v in sent.items() if k != "group_id"}
