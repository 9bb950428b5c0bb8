"""Realtime events: small immutable signals, org-scoped, kept 24 h (DESIGN.md behaviour 8, seed 001)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

MAX_PAYLOAD_BYTES = 2048


# Foreign keys marked db_index=False lead a composite index or unique constraint below, which
# serves their lookups and cascades; a second single-column index would only slow the hot inserts.


class RealtimeEvent(models.Model):
    """Immutable: the model refuses saves of existing rows and a trigger refuses UPDATE."""

    id = models.BigAutoField(primary_key=True)
    # Null for system-wide events (e.g. flag.changed), which only staff see.
    organization = models.ForeignKey(
        "messaging.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    event_type = models.CharField(max_length=64)
    entity_type = models.CharField(max_length=64)
    entity_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(payload__isnull=False), name="realtime_event_payload_not_null"
            ),  # the 2 KB octet_length CHECK is added in SQL (migration 0002)
            models.UniqueConstraint(
                fields=["organization", "dedupe_key"],
                condition=Q(dedupe_key__isnull=False),
                nulls_distinct=False,
                name="realtime_event_dedupe_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="rt_event_org_created_idx"),
            models.Index(fields=["organization", "id"], name="rt_event_org_id_idx"),
            models.Index(fields=["entity_type", "entity_id"], name="rt_event_entity_idx"),
            models.Index(fields=["event_type"], name="rt_event_type_idx"),
            models.Index(fields=["created_at"], name="rt_event_created_idx"),
        ]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise RuntimeError("realtime events are immutable")
        super().save(*args, **kwargs)
