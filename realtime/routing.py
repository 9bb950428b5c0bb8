from django.urls import path

from realtime.consumers import ClientEventsConsumer, StaffFeedConsumer

websocket_urlpatterns = [
    path("ws/v1/events", ClientEventsConsumer.as_asgi()),
    path("ws/dashboard/feed", StaffFeedConsumer.as_asgi()),
]
