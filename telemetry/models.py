"""Batched client telemetry (seed 004) and the hourly counters folded from its log tags."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

METADATA_MAX_BYTES = 2048
# The API measures metadata exactly (compact client JSON <= 2 KB); PostgreSQL's jsonb text form may
# normalise numbers differently, so the database backstop allows headroom rather than refuse a valid row.
METADATA_DB_MAX_BYTES = 4 * METADATA_MAX_BYTES


class TelemetryLog(models.Model):
    """One client log entry. Written only by ``services.ingest_batch`` (COPY), marked by the fold task.

    Why so few indexes and foreign keys: this is the highest-volume table, and measured with COPY each
    foreign key costs PostgreSQL ~4 µs and each index ~1-2 µs per row (bench/telemetry.py). The owner
    keeps a real foreign key (and the (user, created_at) index covers it); device and organization are
    denormalised attributes the service resolves from that same user in the same request, so they are
    kept without a database constraint or index (devices are deactivated, never deleted). Tag queries
    go to TelemetryCounter, never to these rows."""

    id = models.BigAutoField(primary_key=True)
    batch_id = models.UUIDField(db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    device = models.ForeignKey(
        "pushes.UserDevice",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    # Denormalised at ingest so the fold groups without joins (a user's organization does not move).
    organization = models.ForeignKey(
        "messaging.Organization",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    platform = models.CharField(max_length=10, blank=True, default="")  # "" when the user has no device
    event_type = models.CharField(max_length=100)
    tag = models.CharField(max_length=32, blank=True, default="")  # e.g. "push" from "[push] wake reason=data"
    action = models.CharField(max_length=64, blank=True, default="")  # "wake"
    reason = models.CharField(max_length=64, blank=True, default="")  # "data" (reason=, status= or backoff=)
    fields = models.JSONField(default=dict, blank=True)  # every key=value parsed from the message
    message = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    client_ts = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"], name="telemetry_user_created_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(event_type=""), name="telemetry_event_type_not_empty"),
            models.CheckConstraint(condition=Q(platform__in=["", "android", "ios"]), name="telemetry_platform_valid"),
        ]


class TelemetryBatch(models.Model):
    """A flush that carried an ``Idempotency-Key``: the unique (user, key) makes a retry store nothing twice."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # the batch_id answered
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=200)
    request_sha256 = models.CharField(max_length=64)  # a reused key with a different body is a 409
    accepted = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "idempotency_key"], name="telemetry_batch_idempotency_key_uniq"),
            models.CheckConstraint(condition=~Q(idempotency_key=""), name="telemetry_batch_key_not_empty"),
        ]
        indexes = [models.Index(fields=["created_at"], name="telemetry_batch_created_idx")]


class TelemetryCounter(models.Model):
    """Hourly count of client log lines per organization, platform, tag, action and reason."""

    id = models.BigAutoField(primary_key=True)
    hour = models.DateTimeField()
    organization = models.ForeignKey(
        "messaging.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    platform = models.CharField(max_length=10, blank=True, default="")
    tag = models.CharField(max_length=32, blank=True, default="")
    action = models.CharField(max_length=64, blank=True, default="")
    reason = models.CharField(max_length=64, blank=True, default="")
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            # NULLS NOT DISTINCT: staff (no organization) rows fold into one counter too (PostgreSQL 15+).
            models.UniqueConstraint(
                fields=["hour", "organization", "platform", "tag", "action", "reason"],
                name="telemetry_counter_bucket_uniq",
                nulls_distinct=False,
            ),
            models.CheckConstraint(condition=Q(count__gte=0), name="telemetry_counter_count_nonnegative"),
        ]
        indexes = [models.Index(fields=["hour"], name="telemetry_counter_hour_idx")]


class TelemetryFoldState(models.Model):
    """The fold's watermark: every log row with id <= last_id is in the counters. Row-locked while folding."""

    name = models.CharField(max_length=40, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
