from django.urls import path

from flags.api import ConfigView

urlpatterns = [
    path("config", ConfigView.as_view(), name="config"),
]
