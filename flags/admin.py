from django.contrib import admin

from config.admin_utils import ReadOnlyAdmin
from flags.models import Flag, FlagChange


@admin.register(Flag)
class FlagAdmin(ReadOnlyAdmin):
    # Read-only here on purpose: every change must go through the flags service (validated, audited).
    list_display = ("key", "type", "value", "default", "updated_at")
    list_filter = ("type",)
    search_fields = ("key", "description")


@admin.register(FlagChange)
class FlagChangeAdmin(ReadOnlyAdmin):
    list_display = ("flag", "old", "new", "changed_by", "reason", "created_at")
    list_filter = ("flag",)
    search_fields = ("flag__key", "reason")
