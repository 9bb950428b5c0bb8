"""Devices, push notifications and their append-only delivery logs (DESIGN.md data model)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


def truncate_token(token: str) -> str:
    """The only form of a device token that may reach a log, a page or a staff API: 6 chars + '…'."""
    return f"{token[:6]}…" if token else ""


# Foreign keys marked db_index=False lead a composite index or unique constraint below, which
# serves their lookups and cascades; a second single-column index would only slow the hot inserts.


class Platform(models.TextChoices):
    ANDROID = "android"
    IOS = "ios"


class UserDevice(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="devices", db_index=False)
    platform = models.CharField(max_length=10, choices=Platform.choices)
    token = models.CharField(max_length=4096, unique=True)
    app_version = models.CharField(max_length=40, blank=True, default="")
    last_seen_at = models.DateTimeField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivation_reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(platform__in=Platform.values), name="device_platform_valid"),
            models.CheckConstraint(condition=~Q(token=""), name="device_token_not_empty"),
        ]
        indexes = [
            models.Index(fields=["user", "active"], name="device_user_active_idx"),
            # Token-prefix search in the dashboard (LIKE 'abc%') needs a pattern-ops index.
            models.Index(fields=["token"], name="device_token_prefix_idx", opclasses=["varchar_pattern_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.token_prefix}"

    @property
    def token_prefix(self) -> str:
        return truncate_token(self.token)


class PushStatus(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class PushNotification(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pushes", db_index=False
    )
    # Null for test pushes sent from the dashboard.
    group = models.ForeignKey("messaging.Group", null=True, blank=True, on_delete=models.CASCADE, db_index=False)
    message = models.ForeignKey(
        "messaging.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )  # the latest message this push covers
    message_count = models.PositiveIntegerField(default=1)
    collapse_key = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=12, choices=PushStatus.choices, default=PushStatus.PENDING)
    # Why it is suppressed/failed in words a trace can show (kill_switch, flag_disabled, ...).
    status_reason = models.CharField(max_length=200, blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    not_before = models.DateTimeField()  # end of the coalescing window
    lease_until = models.DateTimeField(null=True, blank=True)
    retry_count = models.PositiveIntegerField(default=0)
    delivery_attempts = models.PositiveIntegerField(default=0)
    last_retry_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # The seq range of the group's messages this push covers (coalescing widens it), so a message
    # trace can say which push carried which message. Null for test pushes.
    first_seq = models.BigIntegerField(null=True, blank=True)
    last_seq = models.BigIntegerField(null=True, blank=True)
    # Set only for a dashboard test push: it goes to this one device instead of all of the recipient's.
    target_device = models.ForeignKey(
        "pushes.UserDevice", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            # Coalescing is one upsert: at most one pending push per (recipient, group).
            models.UniqueConstraint(
                fields=["recipient", "group"],
                condition=Q(status="pending"),
                name="push_one_pending_per_recipient_group",
            ),
            models.CheckConstraint(condition=Q(status__in=PushStatus.values), name="push_status_valid"),
            models.CheckConstraint(condition=Q(message_count__gte=1), name="push_message_count_positive"),
            models.CheckConstraint(
                condition=Q(first_seq__isnull=True) | Q(last_seq__gte=models.F("first_seq")),
                name="push_seq_range_ordered",
            ),
        ]
        indexes = [
            # The dispatcher's claim scan only ever looks at unfinished pushes.
            models.Index(
                fields=["not_before"],
                condition=Q(status__in=["pending", "sending"]),
                name="push_due_idx",
            ),
            models.Index(fields=["recipient", "created_at"], name="push_recipient_created_idx"),
            models.Index(fields=["group", "created_at"], name="push_group_created_idx"),
            # Message trace: which of a group's pushes covers seq N (first_seq <= N <= last_seq).
            models.Index(fields=["group", "last_seq"], name="push_group_last_seq_idx"),
            models.Index(fields=["created_at"], name="push_created_idx"),
        ]


class DeliveryStatus(models.TextChoices):
    SENT = "sent"
    FAILED = "failed"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    UNKNOWN = "unknown"


class PushDeliveryLog(models.Model):
    """Append-only: a database trigger refuses UPDATE and DELETE."""

    id = models.BigAutoField(primary_key=True)
    push = models.ForeignKey(
        PushNotification, on_delete=models.DO_NOTHING, related_name="delivery_logs", db_index=False
    )
    device = models.ForeignKey(
        UserDevice, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="delivery_logs", db_index=False
    )
    token_prefix = models.CharField(max_length=16, blank=True, default="")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=DeliveryStatus.values), name="delivery_log_status_valid"),
            # Client receipts are idempotent per (push, device, status).
            models.UniqueConstraint(
                fields=["push", "device", "status"],
                condition=Q(status__in=["delivered", "opened", "clicked"]),
                name="delivery_log_one_receipt_per_status",
            ),
        ]
        indexes = [
            models.Index(fields=["push", "created_at"], name="delivery_log_push_idx"),
            models.Index(fields=["device", "created_at"], name="delivery_log_device_idx"),
            models.Index(fields=["created_at"], name="delivery_log_created_idx"),
        ]
