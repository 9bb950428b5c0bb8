"""Chart rollups kept current by an incremental periodic task; charts never scan raw logs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Granularity(models.TextChoices):
    HOUR = "hour"
    DAY = "day"


class DeliveryRollup(models.Model):
    bucket_start = models.DateTimeField()
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    organization = models.ForeignKey("messaging.Organization", null=True, blank=True, on_delete=models.CASCADE)
    platform = models.CharField(max_length=10, blank=True, default="")
    status = models.CharField(max_length=10)
    error_code = models.CharField(max_length=64, blank=True, default="")
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bucket_start", "granularity", "organization", "platform", "status", "error_code"],
                nulls_distinct=False,
                name="delivery_rollup_bucket_unique",
            ),
            models.CheckConstraint(condition=Q(granularity__in=Granularity.values), name="delivery_rollup_granularity"),
            models.CheckConstraint(condition=Q(count__gte=0), name="delivery_rollup_count_nonnegative"),
        ]
        indexes = [models.Index(fields=["granularity", "bucket_start"], name="delivery_rollup_range_idx")]


class RollupWatermark(models.Model):
    """How far (by source row id) each incremental rollup has read."""

    name = models.CharField(max_length=64, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
