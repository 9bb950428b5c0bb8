"""Websocket helpers for the realtime tests: real consumers through config.asgi on the real Redis layer."""

from __future__ import annotations

import asyncio
import json
from unittest import mock
from urllib.parse import unquote, urlparse

from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.test import Client

from config.asgi import application
from realtime import services
from tests.factories import token_for


class WebsocketCommunicator(ApplicationCommunicator):
    """channels.testing.WebsocketCommunicator, minus its package import of daphne (not installed here)."""

    def __init__(self, app, path: str, headers=None, subprotocols=None):
        parsed = urlparse(path)
        self.scope = {"type": "websocket", "path": unquote(parsed.path), "query_string": parsed.query.encode(),
                      "headers": list(headers or []), "subprotocols": list(subprotocols or [])}  # fmt: skip
        super().__init__(app, self.scope)

    async def send_input(self, message):
        with mock.patch("channels.db.close_old_connections", lambda: None):
            return await super().send_input(message)

    async def receive_output(self, timeout=1):
        with mock.patch("channels.db.close_old_connections", lambda: None):
            return await super().receive_output(timeout)

    async def connect(self, timeout: float = 5):
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str) -> None:
        await self.send_input({"type": "websocket.receive", "text": text_data})

    async def send_json_to(self, data) -> None:
        await self.send_to(json.dumps(data))

    async def receive_json_from(self, timeout: float = 5) -> dict:
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", response
        return json.loads(response["text"])

    async def disconnect(self, code: int = 1000, timeout: float = 5) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


def session_cookie(user) -> list[tuple[bytes, bytes]]:
    """A Django session for ``user`` as the Cookie header a browser would send to the staff feed."""
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return [(b"cookie", f"{name}={client.cookies[name].value}".encode())]


async def client_socket(user, *, via: str = "subprotocol") -> WebsocketCommunicator:
    key = await sync_to_async(token_for)(user)
    if via == "query":
        return WebsocketCommunicator(application, f"/ws/v1/events?token={key}")
    return WebsocketCommunicator(application, "/ws/v1/events", subprotocols=["pushwatch.v1", f"token.{key}"])


async def feed_socket(user=None, query: str = "") -> WebsocketCommunicator:
    headers = await sync_to_async(session_cookie)(user) if user is not None else []
    return WebsocketCommunicator(application, f"/ws/dashboard/feed{query}", headers=headers)


async def receive_until(comm: WebsocketCommunicator, kind: str, timeout: float = 5.0) -> dict:
    """The next message of ``kind``, skipping others (hello, pongs...)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await comm.receive_json_from(timeout=max(0.05, deadline - loop.time()))
        if message.get("type") == kind:
            return message


def events_in(message: dict) -> list[dict]:
    """The events a frame carries: a client's ``event`` frame has one, a staff feed's ``events`` frame many."""
    if message.get("type") == "event":
        return [message["event"]]
    if message.get("type") == "events":
        return list(message["events"])
    return []


async def collect_events(comm: WebsocketCommunicator, count: int, timeout: float = 10.0) -> list[dict]:
    """At least ``count`` events (a staff frame may carry more: all of them are returned)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    events: list[dict] = []
    while len(events) < count:
        events += events_in(await comm.receive_json_from(timeout=max(0.05, deadline - loop.time())))
    return events


async def no_more_events(comm: WebsocketCommunicator, wait: float = 0.5) -> list[dict]:
    """Whatever events still arrive within ``wait`` seconds (expected: none). ``receive_nothing`` does not
    cancel the application on timeout, unlike ``receive_json_from``."""
    extra = []
    while not await comm.receive_nothing(timeout=wait):
        extra += events_in(await comm.receive_json_from())
    return extra


async def events_until_ready(comm: WebsocketCommunicator, timeout: float = 10.0) -> list[dict]:
    """The staff feed's backlog: every event sent before its ``ready`` message."""
    events = []
    while True:
        message = await comm.receive_json_from(timeout=timeout)
        if message["type"] == "ready":
            return events
        events += events_in(message)


def payload_bytes(payload: dict) -> int:
    return len(json.dumps(payload, ensure_ascii=False, separators=(", ", ": ")).encode())


async def flushed() -> None:
    """Wait until this process's publisher has handed every committed event to Redis."""
    await asyncio.to_thread(services.wait_for_broadcasts, 5.0)
