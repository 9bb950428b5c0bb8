"""emit(): size cap, dedupe, best effort, the message.created receiver, retention."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from messaging.services import send_message
from realtime import queries, services
from realtime.models import RealtimeEvent
from tests.factories import GroupMemberFactory, OrganizationFactory

DEAD_LAYER = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"], "prefix": "pw:dead"},
    }
}


def stored_octets(event_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT octet_length(payload::text) FROM realtime_realtimeevent WHERE id = %s", [event_id])
        return cur.fetchone()[0]


@pytest.mark.django_db
def test_a_5kb_payload_is_stored_truncated_under_2048_bytes():
    org = OrganizationFactory()
    event_id = services.emit(org, "note.created", "note", 1, {"kind": "note", "text": "é" * 2600, "n": 7})
    event = RealtimeEvent.objects.get(pk=event_id)
    assert event.payload["truncated"] is True
    assert event.payload["kind"] == "note"
    assert event.payload["text"].startswith("éé")
    assert stored_octets(event_id) <= 2048


@pytest.mark.django_db
def test_a_payload_of_many_small_fields_keeps_the_fields_that_fit():
    org = OrganizationFactory()
    payload = {f"field_{i:03d}": i for i in range(400)}
    event_id = services.emit(org, "bulk", "thing", "x", payload)
    stored = RealtimeEvent.objects.get(pk=event_id).payload
    assert stored["truncated"] is True and stored["field_000"] == 0
    assert 10 < len(stored) < 400
    assert stored_octets(event_id) <= 2048


@pytest.mark.django_db
def test_a_small_payload_is_stored_unchanged():
    org = OrganizationFactory()
    event_id = services.emit(org, "device.registered", "device", uuid.uuid4(), {"platform": "ios"})
    assert RealtimeEvent.objects.get(pk=event_id).payload == {"platform": "ios"}


@pytest.mark.django_db
def test_a_repeated_dedupe_key_makes_one_event():
    org, other = OrganizationFactory(), OrganizationFactory()
    first = services.emit(org, "job.updated", "job", 1, {"v": 1}, dedupe_key="job.updated:1:minute-5")
    again = services.emit(org, "job.updated", "job", 1, {"v": 2}, dedupe_key="job.updated:1:minute-5")
    elsewhere = services.emit(other, "job.updated", "job", 1, {"v": 3}, dedupe_key="job.updated:1:minute-5")
    assert first is not None and again is None and elsewhere is not None
    assert RealtimeEvent.objects.filter(organization=org).count() == 1


@pytest.mark.django_db
def test_system_wide_events_dedupe_too():
    assert services.emit(None, "flag.changed", "flag", "sync.maxBatch", {}, dedupe_key="flag:1") is not None
    assert services.emit(None, "flag.changed", "flag", "sync.maxBatch", {}, dedupe_key="flag:1") is None
    assert RealtimeEvent.objects.filter(organization=None).count() == 1


@pytest.mark.django_db
def test_a_failed_write_returns_none_and_leaves_the_callers_transaction_usable():
    org = OrganizationFactory()
    before = queries.emit_failure_counts().get("write", 0)
    with transaction.atomic():
        assert services.emit(987654321, "x", "y", 1, {}) is None  # no such organization: FK violation
        # The caller's transaction still works (emit used a savepoint).
        assert services.emit(org, "x", "y", 2, {}) is not None
    assert queries.emit_failure_counts().get("write", 0) == before + 1
    assert RealtimeEvent.objects.filter(organization=org).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_new_message_emits_message_created_with_ids_and_seq_but_no_body():
    member = GroupMemberFactory()
    message, created = send_message(
        sender=member.user, group_id=member.group_id, client_generated_id=uuid.uuid4(), body="secret text"
    )
    event = RealtimeEvent.objects.get(event_type="message.created")
    assert created
    assert event.organization_id == member.group.organization_id
    assert event.entity_type == "message" and event.entity_id == str(message.id)
    assert event.payload == {"group_id": str(member.group_id), "seq": 1, "sender_id": member.user_id}
    assert "secret" not in str(event.payload)


@pytest.mark.django_db(transaction=True)
def test_sending_a_message_still_succeeds_when_redis_is_down(api_client):
    member = GroupMemberFactory()
    before = queries.emit_failure_counts().get("broadcast", 0)
    with override_settings(CHANNEL_LAYERS=DEAD_LAYER):
        response = api_client(member.user).post(
            f"/api/v1/groups/{member.group_id}/messages",
            {"client_generated_id": str(uuid.uuid4()), "body": "hello"},
            format="json",
        )
        assert services.wait_for_broadcasts(10)
    assert response.status_code == 201, response.content
    assert RealtimeEvent.objects.filter(event_type="message.created", entity_id=response.json()["id"]).exists()
    # The broadcast failed, was logged and counted; the send did not notice.
    assert queries.emit_failure_counts().get("broadcast", 0) >= before + 1
    assert queries.feed_loss_counters()["emit_failures"] >= 1


@pytest.mark.django_db(transaction=True)
def test_events_are_immutable_and_only_retention_deletes_them():
    org = OrganizationFactory()
    event_id = services.emit(org, "x", "y", 1, {"a": 1})
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cur:
        cur.execute("UPDATE realtime_realtimeevent SET event_type = 'z' WHERE id = %s", [event_id])
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM realtime_realtimeevent WHERE id = %s", [event_id])
    assert RealtimeEvent.objects.filter(pk=event_id).exists()


@pytest.mark.django_db(transaction=True)
def test_retention_deletes_only_events_older_than_24_hours_in_batches():
    org = OrganizationFactory()
    old_ids = [services.emit(org, "old", "y", i, {}) for i in range(5)]
    fresh_id = services.emit(org, "fresh", "y", 99, {})
    with connection.cursor() as cur:  # rows are immutable: age them by re-inserting with an old timestamp
        cur.execute(
            "INSERT INTO realtime_realtimeevent (organization_id, event_type, entity_type, entity_id, payload, "
            "created_at) SELECT organization_id, 'aged', entity_type, entity_id, payload, %s "
            "FROM realtime_realtimeevent WHERE id = ANY(%s)",
            [timezone.now() - timedelta(hours=25), old_ids],
        )
    deleted = services.delete_expired_events(batch_size=2)
    assert deleted == 5
    remaining = set(RealtimeEvent.objects.values_list("event_type", flat=True))
    assert remaining == {"old", "fresh"}
    assert RealtimeEvent.objects.filter(pk=fresh_id).exists()


@pytest.mark.django_db(transaction=True)
def test_the_retention_task_runs_under_its_beat_name():
    from realtime.tasks import delete_expired_events

    assert delete_expired_events.name == "realtime.tasks.delete_expired_events"
    assert delete_expired_events() == 0
