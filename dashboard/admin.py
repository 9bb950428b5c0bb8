from django.contrib import admin

from config.admin_utils import ReadOnlyAdmin
from dashboard.models import DeliveryRollup, RollupWatermark


@admin.register(DeliveryRollup)
class DeliveryRollupAdmin(ReadOnlyAdmin):
    list_display = ("bucket_start", "granularity", "organization", "platform", "status", "error_code", "count")
    list_filter = ("granularity", "platform", "status")
    search_fields = ("error_code",)


@admin.register(RollupWatermark)
class RollupWatermarkAdmin(ReadOnlyAdmin):
    list_display = ("name", "last_id", "updated_at")
    search_fields = ("name",)
