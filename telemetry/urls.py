from django.urls import path

from telemetry.api import TelemetryBatchView

urlpatterns = [
    path("telemetry/batch", TelemetryBatchView.as_view(), name="telemetry-batch"),
]
