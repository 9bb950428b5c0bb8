# The <uuid:> converter makes a malformed push id an unmatched URL: a JSON 404, never a 500.
from django.urls import path

from pushes import api

urlpatterns: list = [
    path("devices", api.DeviceRegisterView.as_view(), name="devices"),
    path("devices/logout", api.DeviceLogoutView.as_view(), name="devices-logout"),
    path("pushes/<uuid:push_id>/receipts", api.PushReceiptView.as_view(), name="push-receipts"),
]
