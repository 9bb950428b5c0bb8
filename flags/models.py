"""Typed feature flags and their append-only change history (DESIGN.md behaviour 9)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class FlagType(models.TextChoices):
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    JSON = "json"


class Flag(models.Model):
    key = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=8, choices=FlagType.choices)
    value = models.JSONField()
    default = models.JSONField()
    description = models.TextField(blank=True, default="")
    # Validation bounds, e.g. {"min": 1, "max": 1000} or {"list_of": "int", "min_len": 1, ...}.
    schema = models.JSONField(default=dict, blank=True)
    # Targeting rules: [{"platform": "ios", "min_app_version": "1.10.0", "percentage": 25, "value": ...}]
    rules = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(type__in=FlagType.values), name="flag_type_valid")]

    def __str__(self) -> str:
        return self.key


class FlagChange(models.Model):
    """Append-only: a database trigger refuses UPDATE and DELETE."""

    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="changes")
    old = models.JSONField(null=True)
    new = models.JSONField(null=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # CHECK (btrim(reason) <> '') and the append-only trigger are added in SQL (migration 0002).
        indexes = [models.Index(fields=["flag", "-created_at"], name="flag_change_flag_idx")]
