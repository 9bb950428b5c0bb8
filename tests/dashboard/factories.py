"""Factories for dashboard tests: pushes, delivery logs, staff users by role."""

from __future__ import annotations

import factory
from django.utils import timezone

from pushes.models import PushDeliveryLog, PushNotification, truncate_token
from tests.factories import StaffUserFactory, UserDeviceFactory, UserFactory

PASSWORD = "pw-test-123"


class PushFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PushNotification

    recipient = factory.SubFactory(UserFactory)
    status = "sent"
    not_before = factory.LazyFunction(timezone.now)
    message_count = 1


class DeliveryLogFactory(factory.django.DjangoModelFactory):
    """Delivery logs are append-only; tests only ever create them."""

    class Meta:
        model = PushDeliveryLog

    push = factory.SubFactory(PushFactory)
    device = factory.SubFactory(UserDeviceFactory, user=factory.SelfAttribute("..push.recipient"))
    token_prefix = factory.LazyAttribute(lambda o: truncate_token(o.device.token) if o.device else "")
    status = "sent"
    details = factory.LazyFunction(dict)


def staff(role: str | None, **kwargs):
    """A staff user holding ``role`` ('admins', 'support', 'managers'), or none."""
    return StaffUserFactory(role=role, **kwargs)


def insert_log(push, device, status: str, created_at, error_code: str = "") -> int | None:
    """A delivery log row with an explicit created_at (auto_now_add would overwrite it on the ORM path).

    A receipt that already exists for (push, device, status) is skipped (None), as the API would.
    """
    import json

    from django.db import connection

    details = {"error_code": error_code} if error_code else {}
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO pushes_pushdeliverylog (push_id, device_id, token_prefix, status, details, created_at)"
            " VALUES (%s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT DO NOTHING RETURNING id",
            [push.pk, device.pk if device else None, "", status, json.dumps(details), created_at],
        )
        row = cur.fetchone()
        return row[0] if row else None
