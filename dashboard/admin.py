from django.contrib import admin

from config.admin_utils import ReadOnlyAdmin
from dashboard.models import AlertRule, DeliveryRollup, HistogramRollup, RollupWatermark


@admin.register(DeliveryRollup)
class DeliveryRollupAdmin(ReadOnlyAdmin):
    list_display = ("bucket_start", "granularity", "scope", "organization", "platform", "status", "error_code", "count")
    list_filter = ("granularity", "scope", "platform", "status")
    search_fields = ("error_code",)


@admin.register(HistogramRollup)
class HistogramRollupAdmin(ReadOnlyAdmin):
    list_display = (
        "bucket_start",
        "granularity",
        "scope",
        "organization",
        "platform",
        "metric",
        "upper_bound",
        "count",
    )
    list_filter = ("granularity", "scope", "metric", "platform")


@admin.register(RollupWatermark)
class RollupWatermarkAdmin(ReadOnlyAdmin):
    list_display = ("name", "last_id", "updated_at")
    search_fields = ("name",)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "metric", "comparison", "threshold", "window_minutes", "enabled", "firing", "last_value")
    list_filter = ("metric", "enabled", "firing")
    search_fields = ("name",)
    readonly_fields = ("firing", "fired_at", "last_value", "last_volume", "last_evaluated_at", "created_by")
