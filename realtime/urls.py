from django.urls import path

from realtime.api import EventsView

urlpatterns = [path("events", EventsView.as_view(), name="realtime-events")]
