"""Asyncio front end of the fake FCM: HTTP/1.1 (httptools) and h2c with prior knowledge (h2) on one port.

The first bytes of a connection decide: the HTTP/2 connection preface means h2c (what the provider's
httpx client speaks to an http:// base URL with `http1=False, http2=True`), anything else HTTP/1.1 with
keep-alive and in-order pipelining (what the control API, firebase-admin over http:// and curl use).
No HTTP parsing is hand-written: httptools and h2 do it.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import httptools

from pushes.fakefcm.app import FakeFcm, Response, json_response

log = logging.getLogger("pushes.fakefcm")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REASONS = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found",
           429: b"Too Many Requests", 500: b"Internal Server Error", 503: b"Service Unavailable"}  # fmt: skip


class FakeFcmProtocol(asyncio.Protocol):
    def __init__(self, app: FakeFcm) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self._sniff = b""
        self._impl: _H1 | _H2 | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._impl is None:
            self._sniff += data
            if len(self._sniff) < len(H2_PREFACE) and H2_PREFACE.startswith(self._sniff):
                return  # could still be the h2 preface
            data, self._sniff = self._sniff, b""
            self._impl = _H2(self) if data.startswith(H2_PREFACE) else _H1(self)
        self._impl.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._impl is not None:
            self._impl.closed = True

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _H1:
    """HTTP/1.1 with keep-alive; pipelined answers go out in request order even when some are delayed."""

    def __init__(self, proto: FakeFcmProtocol) -> None:
        self.proto = proto
        self.closed = False
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._queue: collections.deque[asyncio.Future[bytes] | bytes] = collections.deque()
        self._close_after_flush = False

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        keep_alive = self.parser.should_keep_alive()
        result = _dispatch(self.proto.app, method, self._url.decode("latin-1"), self._headers, b"".join(self._body))
        if isinstance(result, Response):
            self._queue.append(_h1_bytes(result, keep_alive))
        else:
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._queue.append(future)

            async def finish() -> None:
                future.set_result(_h1_bytes(await _safe(result), keep_alive))
                self._flush()

            asyncio.ensure_future(finish())
        if not keep_alive:
            self._close_after_flush = True
        self._flush()

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.proto.write(_h1_bytes(json_response(400, {"error": "upgrade not supported"}), False))
            self.proto.close()
        except httptools.HttpParserError:
            self.proto.write(_h1_bytes(json_response(400, {"error": "bad request"}), False))
            self.proto.close()

    def _flush(self) -> None:
        out = []
        while self._queue:
            head = self._queue[0]
            if isinstance(head, bytes):
                out.append(head)
            elif head.done():
                out.append(head.result())
            else:
                break
            self._queue.popleft()
        if out:
            self.proto.write(b"".join(out))
        if self._close_after_flush and not self._queue:
            self.proto.close()


def _h1_bytes(resp: Response, keep_alive: bool) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (resp.status, REASONS.get(resp.status, b"Status"))]
    lines += [b"%s: %s" % (k, v) for k, v in resp.headers]
    lines.append(b"content-length: %d" % len(resp.body))
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + resp.body


class _H2:
    """h2c (prior knowledge): each stream is one request; responses are sent as soon as they are ready."""

    def __init__(self, proto: FakeFcmProtocol) -> None:
        self.proto = proto
        self.closed = False
        config = h2.config.H2Configuration(client_side=False, header_encoding=None, validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
            },
        )
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)  # connection-level receive window
        self._requests: dict[int, tuple[dict[bytes, bytes], list[bytes]]] = {}
        self._pending_out: dict[int, bytes] = {}  # response bodies waiting for flow-control window

    def feed(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._send()
            self.proto.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._requests[event.stream_id] = (dict(event.headers), [])
                if event.stream_ended:
                    self._complete(event.stream_id)
            elif isinstance(event, h2.events.DataReceived):
                if event.stream_id in self._requests:
                    self._requests[event.stream_id][1].append(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._complete(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._requests.pop(event.stream_id, None)
                self._pending_out.pop(event.stream_id, None)
            elif isinstance(event, h2.events.WindowUpdated):
                for stream_id in list(self._pending_out):
                    self._send_body(stream_id, self._pending_out.pop(stream_id))
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._send()
                self.proto.close()
                return
        self._send()

    def _complete(self, stream_id: int) -> None:
        request = self._requests.pop(stream_id, None)
        if request is None:
            return
        headers, body = request
        method = headers.get(b":method", b"GET").decode()
        path = headers.get(b":path", b"/").decode("latin-1")
        result = _dispatch(self.proto.app, method, path, headers, b"".join(body))
        if isinstance(result, Response):
            self._respond(stream_id, result)
        else:

            async def finish() -> None:
                resp = await _safe(result)
                if not self.closed:
                    self._respond(stream_id, resp)
                    self._send()

            asyncio.ensure_future(finish())

    def _respond(self, stream_id: int, resp: Response) -> None:
        try:
            self.conn.send_headers(
                stream_id,
                [
                    (b":status", str(resp.status).encode()),
                    *resp.headers,
                    (b"content-length", str(len(resp.body)).encode()),
                ],
            )
            self._send_body(stream_id, resp.body)
        except h2.exceptions.StreamClosedError:
            pass

    def _send_body(self, stream_id: int, body: bytes) -> None:
        try:
            if not body:
                self.conn.end_stream(stream_id)
                return
            while body:
                window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
                if window <= 0:
                    self._pending_out[stream_id] = body  # resumed on WindowUpdated
                    return
                chunk, body = body[:window], body[window:]
                self.conn.send_data(stream_id, chunk, end_stream=not body)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            pass

    def _send(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.proto.write(data)


def _dispatch(app: FakeFcm, method: str, target: str, headers: dict[bytes, bytes], body: bytes) -> Any:
    try:
        return app.handle(method, target, headers, body)
    except Exception:  # the fake must keep serving whatever a client sends
        log.exception("fakefcm: handler failed")
        return json_response(500, {"error": {"code": 500, "message": "fake crashed", "status": "INTERNAL"}})


async def _safe(result: Any) -> Response:
    try:
        return await result if inspect.isawaitable(result) else result
    except Exception:
        log.exception("fakefcm: delayed handler failed")
        return json_response(500, {"error": {"code": 500, "message": "fake crashed", "status": "INTERNAL"}})


async def serve(app: FakeFcm, host: str, port: int, ready_line: bool = True) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FakeFcmProtocol(app), host, port, backlog=1024, reuse_address=True)
    if ready_line:
        print(f"fakefcm listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def run(app: FakeFcm, host: str, port: int) -> None:
    """Run forever on uvloop when available (about twice the request rate of the default loop)."""
    try:
        import uvloop

        uvloop.run(serve(app, host, port))
    except ImportError:
        asyncio.run(serve(app, host, port))
