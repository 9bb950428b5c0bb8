"""The database itself refuses what must never be stored, whatever code path tries."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from flags.models import Flag, FlagChange
from pushes.models import PushDeliveryLog, PushNotification
from realtime.models import RealtimeEvent
from tests.factories import GroupFactory, OrganizationFactory, UserDeviceFactory, UserFactory

pytestmark = pytest.mark.django_db


def _payload_of_bytes(n: int) -> dict:
    # jsonb renders {"x": "<s>"} as 9 bytes plus the string.
    return {"x": "a" * (n - 9)}


def test_event_payload_of_2048_bytes_is_stored_and_2049_is_refused():
    org = OrganizationFactory()
    ok = RealtimeEvent.objects.create(organization=org, event_type="t", entity_type="e", entity_id="1",
                                      payload=_payload_of_bytes(2048))  # fmt: skip
    with connection.cursor() as cur:
        cur.execute("SELECT octet_length(payload::text) FROM realtime_realtimeevent WHERE id = %s", [ok.id])
        assert cur.fetchone()[0] == 2048
    with pytest.raises(IntegrityError), transaction.atomic():
        RealtimeEvent.objects.create(organization=org, event_type="t", entity_type="e", entity_id="1",
                                     payload=_payload_of_bytes(2049))  # fmt: skip


def test_database_refuses_update_of_a_realtime_event():
    event = RealtimeEvent.objects.create(
        organization=OrganizationFactory(), event_type="t", entity_type="e", entity_id="1", payload={}
    )
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        RealtimeEvent.objects.filter(id=event.id).update(event_type="changed")
    with pytest.raises(RuntimeError, match="immutable"):
        event.save()


def test_realtime_event_delete_needs_the_retention_switch():
    event = RealtimeEvent.objects.create(
        organization=OrganizationFactory(), event_type="t", entity_type="e", entity_id="1", payload={}
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        RealtimeEvent.objects.filter(id=event.id).delete()
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SET LOCAL pushwatch.allow_delete = 'on'")
        RealtimeEvent.objects.filter(id=event.id).delete()
    assert not RealtimeEvent.objects.filter(id=event.id).exists()


def test_database_refuses_a_second_device_with_the_same_token():
    device = UserDeviceFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        UserDeviceFactory(token=device.token)


def test_only_one_pending_push_per_recipient_and_group():
    group = GroupFactory()
    user = UserFactory(organization=group.organization)
    PushNotification.objects.create(recipient=user, group=group, not_before=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        PushNotification.objects.create(recipient=user, group=group, not_before=timezone.now())
    # A finished push does not block the next pending one.
    PushNotification.objects.filter(recipient=user).update(status="sent")
    PushNotification.objects.create(recipient=user, group=group, not_before=timezone.now())


def test_delivery_logs_and_flag_changes_are_append_only():
    device = UserDeviceFactory()
    push = PushNotification.objects.create(recipient=device.user, not_before=timezone.now())
    log = PushDeliveryLog.objects.create(push=push, device=device, token_prefix=device.token_prefix, status="sent")
    with pytest.raises(IntegrityError), transaction.atomic():
        PushDeliveryLog.objects.filter(id=log.id).update(status="failed")
    with pytest.raises(IntegrityError), transaction.atomic():
        PushDeliveryLog.objects.filter(id=log.id).delete()

    flag = Flag.objects.create(key="test.flag", type="bool", value=True, default=True)
    change = FlagChange.objects.create(flag=flag, old=True, new=False, reason="testing")
    with pytest.raises(IntegrityError), transaction.atomic():
        FlagChange.objects.filter(id=change.id).update(reason="rewritten")
    with pytest.raises(IntegrityError), transaction.atomic():
        FlagChange.objects.create(flag=flag, old=False, new=True, reason="   ")
