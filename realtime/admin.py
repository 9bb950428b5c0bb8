from django.contrib import admin

from config.admin_utils import ReadOnlyAdmin
from realtime.models import RealtimeEvent


@admin.register(RealtimeEvent)
class RealtimeEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "organization", "event_type", "entity_type", "entity_id", "created_at")
    list_filter = ("event_type", "entity_type", "organization")
    search_fields = ("entity_id", "dedupe_key")
