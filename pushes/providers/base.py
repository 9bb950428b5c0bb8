"""Provider-neutral push types and the FCM HTTP v1 message builder (shared contract with pushes.services).

`get_provider()` returns the process-wide provider (the FCM HTTP v1 provider pointed at
`settings.FCM_BASE_URL`). Every provider offers:
- `async send_many(messages) -> list[SendOutcome]` (same order as input, bounded concurrency,
  never raises for a per-message failure),
- `send_many_sync(messages)` (runs on a provider-owned background event loop, so the HTTP/2
  connection and the OAuth token are reused across dispatcher batches),
- `async aclose()` / `close()`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

# FCM's documented limit for the data payload (keys + values).
MAX_DATA_BYTES = 4096

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    device_id: Any  # UserDevice.id (uuid); opaque to the provider, echoed back for bookkeeping
    token: str
    platform: str  # "android" | "ios"
    data: dict[str, str]
    collapse_key: str | None = None


@dataclass(slots=True)
class SendOutcome:
    ok: bool
    http_status: int  # 0 when no HTTP answer (refused locally or transport error)
    error_code: str | None = None  # FCM errorCode/status, e.g. "UNREGISTERED", "INVALID_ARGUMENT"
    detail: str = ""
    retry_after: float | None = None  # seconds, from the Retry-After header
    message_name: str | None = None  # "projects/P/messages/ID" on success
    latency_ms: float = 0.0
    device_id: Any = field(default=None)  # copied from the OutgoingMessage

    @property
    def token_is_invalid(self) -> bool:
        """INVALID_ARGUMENT that blames the registration token (dead token), not our payload."""
        return self.error_code == "INVALID_ARGUMENT" and "registration token" in self.detail.lower()


def data_size_bytes(data: dict[str, Any]) -> int:
    """Bytes FCM counts against the 4096 limit: UTF-8 keys plus values."""
    return sum(len(str(k).encode()) + len(str(v).encode()) for k, v in data.items())


def validate_message(msg: OutgoingMessage) -> SendOutcome | None:
    """A local INVALID_ARGUMENT outcome when FCM would refuse the payload anyway (no HTTP call), else None."""
    if not isinstance(msg.data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in msg.data.items()
    ):
        return SendOutcome(
            ok=False,
            http_status=0,
            error_code="INVALID_ARGUMENT",
            detail="Invalid payload: data values must all be strings",
            device_id=msg.device_id,
        )
    size = data_size_bytes(msg.data)
    if size > MAX_DATA_BYTES:
        return SendOutcome(
            ok=False,
            http_status=0,
            error_code="INVALID_ARGUMENT",
            detail=f"Invalid payload: payload too large ({size} bytes of data > {MAX_DATA_BYTES})",
            device_id=msg.device_id,
        )
    return None


def build_fcm_message(msg: OutgoingMessage) -> dict[str, Any]:
    """The FCM HTTP v1 request body for a data message (DESIGN.md behaviour 6)."""
    message: dict[str, Any] = {"token": msg.token, "data": dict(msg.data)}
    if msg.platform == "android":
        android: dict[str, Any] = {"priority": "high"}
        if msg.collapse_key:
            android["collapse_key"] = msg.collapse_key
        message["android"] = android
    elif msg.platform == "ios":
        # FCM rejects high-priority data-only messages to Apple devices: background push, priority 5.
        headers = {"apns-priority": "5", "apns-push-type": "background"}
        if msg.collapse_key:
            headers["apns-collapse-id"] = msg.collapse_key[:64]
        message["apns"] = {"headers": headers, "payload": {"aps": {"content-available": 1}}}
    return {"message": message}


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (less per-request overhead under many concurrent streams), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class BackgroundLoop:
    """One asyncio loop on a daemon thread; sync callers submit coroutines and wait for the result."""

    def __init__(self, name: str = "push-provider-loop") -> None:
        self.loop = _new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class PushProvider:
    """Base class: subclasses implement `send_many` and `aclose`; the sync bridge lives here."""

    def __init__(self) -> None:
        self._bg: BackgroundLoop | None = None
        self._bg_lock = threading.Lock()

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendOutcome]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None

    def _background(self) -> BackgroundLoop:
        with self._bg_lock:
            if self._bg is None:
                self._bg = BackgroundLoop()
            return self._bg

    def send_many_sync(self, messages: Sequence[OutgoingMessage]) -> list[SendOutcome]:
        """Blocking `send_many` for Celery tasks/services; all calls share one loop, client and token."""
        if not messages:
            return []
        return self._background().run(self.send_many(list(messages)))

    def close(self) -> None:
        """Close the HTTP client (on the loop that owns it) and stop the background loop."""
        with self._bg_lock:
            bg, self._bg = self._bg, None
        if bg is not None:
            try:
                bg.run(self.aclose(), timeout=10)
            finally:
                bg.stop()


_provider: PushProvider | None = None
_provider_lock = threading.Lock()


def get_provider() -> PushProvider:
    """The process-wide provider (cached), built from settings on first use."""
    global _provider
    with _provider_lock:
        if _provider is None:
            from pushes.providers.fcm import FcmHttpV1Provider

            _provider = FcmHttpV1Provider.from_settings()
        return _provider


def reset_provider() -> None:
    """Drop the cached provider (tests and settings changes); closes its client and loop."""
    global _provider
    with _provider_lock:
        old, _provider = _provider, None
    if old is not None:
        try:
            old.close()
        except Exception:  # closing a half-broken provider must not break a test teardown
            pass
