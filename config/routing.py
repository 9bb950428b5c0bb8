"""All websocket routes; each app contributes its own list."""

from realtime.routing import websocket_urlpatterns as realtime_routes

websocket_urlpatterns = [*realtime_routes]
