from django.contrib import admin

from config.admin_utils import ReadOnlyAdmin
from telemetry.models import TelemetryBatch, TelemetryCounter, TelemetryLog


@admin.register(TelemetryLog)
class TelemetryLogAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "platform", "event_type", "tag", "action", "reason", "client_ts", "processed_at")
    list_filter = ("tag", "platform", "event_type")
    search_fields = ("user__username", "message")
    list_select_related = ("user",)


@admin.register(TelemetryCounter)
class TelemetryCounterAdmin(ReadOnlyAdmin):
    list_display = ("hour", "organization", "platform", "tag", "action", "reason", "count")
    list_filter = ("tag", "platform")
    date_hierarchy = "hour"


@admin.register(TelemetryBatch)
class TelemetryBatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "idempotency_key", "accepted", "created_at")
    search_fields = ("idempotency_key", "user__username")
