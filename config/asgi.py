"""ASGI entry point: Django for HTTP, Channels for websockets (routes in each app's routing.py).

Websockets get the Django session user (``AuthMiddlewareStack``) for the staff feed; the client socket
authenticates by API token itself. Origin checks for the cookie-authenticated feed live in its consumer,
because mobile clients send no Origin header at all.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The web process pools its PostgreSQL connections (see DB_POOL in config/settings.py) unless told otherwise.
if "CONN_MAX_AGE" not in os.environ:
    os.environ.setdefault("DB_POOL", "1")
os.environ.setdefault("DB_APPLICATION_NAME", "pushwatch-web")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

import gc  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)

# Everything loaded so far lives as long as the process: move it out of the collector's reach, so a full
# collection scans only what requests and sockets create (Instagram's gc.freeze() recipe; it shortens the
# occasional pause that would otherwise stall every open websocket at once).
gc.freeze()
