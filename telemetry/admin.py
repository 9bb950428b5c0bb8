from django.contrib import admin

from config.admin_utils import ReadOnlyAdmin
from telemetry.models import TelemetryLog


@admin.register(TelemetryLog)
class TelemetryLogAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "event_type", "tag", "client_ts", "created_at", "processed_at")
    list_filter = ("tag", "event_type")
    search_fields = ("user__username", "message")
