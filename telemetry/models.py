"""Batched client telemetry (seed 004) and the hourly counters folded from its log tags."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TelemetryLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    batch_id = models.UUIDField(db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey("pushes.UserDevice", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    event_type = models.CharField(max_length=100)
    tag = models.CharField(max_length=32, blank=True, default="")  # e.g. "push" from "[push] wake reason=data"
    message = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    client_ts = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "created_at"], name="telemetry_user_created_idx"),
            models.Index(fields=["tag", "created_at"], name="telemetry_tag_created_idx"),
        ]
