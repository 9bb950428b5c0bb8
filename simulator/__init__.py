"""The traffic simulator behind ``python manage.py simulate``: simulated phones running the seed-000 client
against the public HTTP API, the client websocket and the fake FCM server (see docs/simulator.md)."""
