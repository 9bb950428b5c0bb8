"""Organizations, users, groups, members and messages (DESIGN.md data model)."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length

# Lets CHECK constraints say body__length (used for the 1..4000 character rule).
models.TextField.register_lookup(Length)


# Foreign keys marked db_index=False lead a composite index or unique constraint below, which
# serves their lookups and cascades; a second single-column index would only slow the hot inserts.


class Organization(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug


class User(AbstractUser):
    # Null only for staff/superusers who belong to no customer organization.
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="users"
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        indexes = [models.Index(fields=["organization", "username"])]


class Group(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="groups")
    name = models.CharField(max_length=200)
    # The seq counter: locked and incremented inside each message insert's transaction.
    last_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(last_seq__gte=0), name="group_last_seq_nonnegative")]
        indexes = [models.Index(fields=["organization", "name"])]

    def __str__(self) -> str:
        return self.name


class GroupMember(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="members", db_index=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    is_blocked = models.BooleanField(default=False)
    delivered_seq = models.BigIntegerField(default=0)
    read_seq = models.BigIntegerField(default=0)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "user"], name="group_member_unique"),
            models.CheckConstraint(
                condition=Q(delivered_seq__gte=0) & Q(read_seq__gte=0), name="group_member_watermarks_nonnegative"
            ),
        ]
        indexes = [models.Index(fields=["user", "group"])]


class MessageStatus(models.TextChoices):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="messages", db_index=False)
    sender = models.ForeignKey(User, on_delete=models.PROTECT, related_name="sent_messages", db_index=False)
    seq = models.BigIntegerField()
    client_generated_id = models.UUIDField()
    body = models.TextField()
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.SENT)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            # Also the (group, seq) index every sync and history range scan uses.
            models.UniqueConstraint(fields=["group", "seq"], name="message_group_seq_unique"),
            models.UniqueConstraint(fields=["sender", "client_generated_id"], name="message_sender_client_id_unique"),
            models.CheckConstraint(condition=Q(seq__gt=0), name="message_seq_positive"),
            models.CheckConstraint(condition=Q(status__in=MessageStatus.values), name="message_status_valid"),
            models.CheckConstraint(
                condition=Q(body__length__gte=1) & Q(body__length__lte=4000), name="message_body_length"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.group_id}#{self.seq}"
