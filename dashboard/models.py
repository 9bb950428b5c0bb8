"""Chart rollups kept current by an incremental periodic task; charts never scan raw logs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Granularity(models.TextChoices):
    HOUR = "hour"
    DAY = "day"


class Scope(models.TextChoices):
    """``org`` rows are per organization (NULL = users without one); ``all`` rows sum every organization,
    so the unfiltered charts read a table 1/orgs the size."""

    ORG = "org"
    ALL = "all"


class DeliveryRollup(models.Model):
    bucket_start = models.DateTimeField()
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    scope = models.CharField(max_length=3, choices=Scope.choices, default=Scope.ORG)
    organization = models.ForeignKey("messaging.Organization", null=True, blank=True, on_delete=models.CASCADE)
    platform = models.CharField(max_length=10, blank=True, default="")
    status = models.CharField(max_length=10)
    error_code = models.CharField(max_length=64, blank=True, default="")
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bucket_start", "granularity", "scope", "organization", "platform", "status", "error_code"],
                nulls_distinct=False,
                name="delivery_rollup_bucket_unique",
            ),
            models.CheckConstraint(
                condition=Q(scope="org") | Q(scope="all", organization__isnull=True), name="delivery_rollup_scope"
            ),
            models.CheckConstraint(condition=Q(granularity__in=Granularity.values), name="delivery_rollup_granularity"),
            models.CheckConstraint(condition=Q(count__gte=0), name="delivery_rollup_count_nonnegative"),
        ]
        indexes = [models.Index(fields=["granularity", "scope", "bucket_start"], name="delivery_rollup_range_idx")]


class RollupWatermark(models.Model):
    """How far (by source row id) each incremental rollup has read."""

    name = models.CharField(max_length=64, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class HistogramMetric(models.TextChoices):
    ACCEPT_MS = "accept_ms"  # message commit -> provider accepted (a "sent" log)
    DELIVER_MS = "deliver_ms"  # message commit -> device delivered (a "delivered" receipt)
    MESSAGES_PER_PUSH = "msgs_per_push"  # PushNotification.message_count of each sent push


class HistogramRollup(models.Model):
    """Histogram buckets per time bucket: percentiles are read from these, never from raw logs.

    ``upper_bound`` is the bucket's inclusive upper edge (ms, or messages); the last bucket's edge is
    the largest value seen that we can represent (see ``dashboard.rollups.LATENCY_EDGES_MS``).
    """

    bucket_start = models.DateTimeField()
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    scope = models.CharField(max_length=3, choices=Scope.choices, default=Scope.ORG)
    organization = models.ForeignKey("messaging.Organization", null=True, blank=True, on_delete=models.CASCADE)
    platform = models.CharField(max_length=10, blank=True, default="")
    metric = models.CharField(max_length=16, choices=HistogramMetric.choices)
    upper_bound = models.BigIntegerField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bucket_start", "granularity", "scope", "organization", "platform", "metric", "upper_bound"],
                nulls_distinct=False,
                name="histogram_rollup_bucket_unique",
            ),
            models.CheckConstraint(
                condition=Q(granularity__in=Granularity.values), name="histogram_rollup_granularity"
            ),
            models.CheckConstraint(condition=Q(metric__in=HistogramMetric.values), name="histogram_rollup_metric"),
            models.CheckConstraint(condition=Q(count__gte=0), name="histogram_rollup_count_nonnegative"),
            models.CheckConstraint(
                condition=Q(scope="org") | Q(scope="all", organization__isnull=True), name="histogram_rollup_scope"
            ),
        ]
        indexes = [models.Index(fields=["granularity", "scope", "bucket_start"], name="histogram_rollup_range_idx")]


class AlertMetric(models.TextChoices):
    DELIVERY_RATE = "delivery_rate", "delivery rate (delivered / sent)"
    ERROR_RATE = "error_rate", "error rate (failed / attempted)"


class AlertComparison(models.TextChoices):
    BELOW = "below"
    ABOVE = "above"


class AlertRule(models.Model):
    """A threshold on a rate over a trailing window, evaluated by ``dashboard.tasks.evaluate_alerts``."""

    name = models.CharField(max_length=100, unique=True)
    metric = models.CharField(max_length=16, choices=AlertMetric.choices)
    comparison = models.CharField(max_length=5, choices=AlertComparison.choices)
    threshold = models.FloatField(help_text="a fraction between 0 and 1, e.g. 0.9")
    window_minutes = models.PositiveIntegerField(default=60)
    # Below this many attempts in the window a rate is noise: the rule neither fires nor resolves.
    min_volume = models.PositiveIntegerField(default=20)
    organization = models.ForeignKey("messaging.Organization", null=True, blank=True, on_delete=models.CASCADE)
    enabled = models.BooleanField(default=True)
    firing = models.BooleanField(default=False)
    fired_at = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_volume = models.BigIntegerField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(metric__in=AlertMetric.values), name="alert_rule_metric_valid"),
            models.CheckConstraint(condition=Q(comparison__in=AlertComparison.values), name="alert_rule_comparison"),
            models.CheckConstraint(condition=Q(threshold__gte=0) & Q(threshold__lte=1), name="alert_rule_threshold"),
            models.CheckConstraint(
                condition=Q(window_minutes__gte=5) & Q(window_minutes__lte=7 * 24 * 60), name="alert_rule_window"
            ),
        ]
        indexes = [models.Index(fields=["firing"], condition=Q(firing=True), name="alert_rule_firing_idx")]

    def __str__(self) -> str:
        return self.name
