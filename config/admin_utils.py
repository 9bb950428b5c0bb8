"""Shared admin behaviour: append-only tables are read-only in the admin."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """For append-only tables: list and view, never add, change or delete."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
