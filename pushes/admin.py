from django.contrib import admin

from config.admin_utils import ReadOnlyAdmin
from pushes.models import PushDeliveryLog, PushNotification, UserDevice


@admin.register(UserDevice)
class UserDeviceAdmin(admin.ModelAdmin):
    # The full token is never rendered: not in the list, not in the form.
    list_display = ("token_prefix", "user", "platform", "app_version", "active", "last_seen_at")
    list_filter = ("platform", "active")
    search_fields = ("user__username", "user__email")
    exclude = ("token",)
    readonly_fields = ("token_prefix", "created_at", "deactivated_at")
    raw_id_fields = ("user",)
    list_select_related = ("user",)
    actions = ["deactivate_selected"]

    @admin.action(description="Deactivate selected devices (reason: admin)")
    def deactivate_selected(self, request, queryset):
        from pushes.services import deactivate_device

        # Through the service, so the reason is kept and device.deactivated is emitted.
        n = sum(deactivate_device(d, reason="admin", by=request.user) for d in queryset.filter(active=True))
        self.message_user(request, f"{n} device(s) deactivated.")


@admin.register(PushNotification)
class PushNotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "recipient", "group", "status", "status_reason", "message_count", "delivery_attempts",
                    "created_at")  # fmt: skip
    list_filter = ("status",)
    search_fields = ("id", "recipient__username")
    raw_id_fields = ("recipient", "group", "message", "target_device")
    list_select_related = ("recipient", "group")


@admin.register(PushDeliveryLog)
class PushDeliveryLogAdmin(ReadOnlyAdmin):
    list_display = ("id", "push_id", "token_prefix", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("push__id", "token_prefix")
