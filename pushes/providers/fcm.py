"""FCM HTTP v1 provider: google-auth OAuth2 from a service-account file, httpx over HTTP/2, bounded streams."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import google.auth.exceptions
import google.auth.transport.requests
import httpx
from google.oauth2 import service_account

from pushes.models import truncate_token
from pushes.providers.base import OutgoingMessage, PushProvider, SendOutcome, build_fcm_message, validate_message

log = logging.getLogger("pushes.providers.fcm")

FCM_SCOPES = ["https://www.googleapis.com/auth/firebase.messaging"]
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
REQUEST_TIMEOUT_SECONDS = 10.0
REFRESH_FAILURE_REUSE_SECONDS = 1.0
STREAMS_PER_CONNECTION = 50


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def parse_fcm_error(status: int, body: bytes) -> tuple[str, str]:
    """(error_code, detail) from an FCM error body: details[].errorCode first, else error.status."""
    try:
        error = json.loads(body).get("error", {})
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    code = None
    for item in error.get("details") or []:
        if isinstance(item, dict) and item.get("errorCode") and item.get("@type", FCM_ERROR_TYPE) == FCM_ERROR_TYPE:
            code = str(item["errorCode"])
            break
    code = code or error.get("status") or f"HTTP_{status}"
    detail = str(error.get("message") or body[:200].decode("utf-8", "replace"))
    return code, detail


class _NoCookies(httpx.Cookies):
    """FCM sets no cookies; httpx's per-response cookie extraction (a urllib Request emulation) was
    ~6% of the CPU per send in a profile, so the provider's clients skip it."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


def _http2_client(*, cleartext: bool) -> httpx.AsyncClient:
    """httpx client speaking HTTP/2: prior knowledge (h2c) over http://, ALPN-negotiated over https://."""
    client = httpx.AsyncClient(
        http1=not cleartext,
        http2=True,
        timeout=httpx.Timeout(REQUEST_TIMEOUT_SECONDS),
        limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
    )
    client._cookies = _NoCookies()  # no public knob; the `cookies` setter copies into a plain jar
    return client


class FcmHttpV1Provider(PushProvider):
    """`send_many` runs on whichever loop calls it; the client, semaphore and lock are (re)built per loop
    because httpx connections belong to the loop that opened them. `send_many_sync` always uses the
    provider's own background loop, so dispatcher batches share one HTTP/2 connection and one token."""

    def __init__(
        self,
        *,
        project_id: str,
        service_account_file: str,
        base_url: str,
        max_concurrent_streams: int = 100,
        streams_per_connection: int = STREAMS_PER_CONNECTION,
    ) -> None:
        super().__init__()
        self.project_id = project_id
        self.service_account_file = service_account_file
        self.base_url = base_url.rstrip("/")
        self.send_url = f"{self.base_url}/v1/projects/{project_id}/messages:send"
        self._send_url = httpx.URL(self.send_url)  # parsed once: httpx URL parsing is a visible per-request cost
        self.max_concurrent_streams = max(1, int(max_concurrent_streams))
        self.streams_per_connection = max(1, int(streams_per_connection))
        self._credentials: service_account.Credentials | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # One client (= one HTTP/2 connection) per slice of the stream budget, each with its semaphore.
        self._clients: list[httpx.AsyncClient] = []
        self._semaphores: list[asyncio.Semaphore] = []
        self._next_slot = 0
        self._token_lock: asyncio.Lock | None = None
        self._refresh_failure: tuple[float, Exception | None] = (0.0, None)

    @classmethod
    def from_settings(cls) -> FcmHttpV1Provider:
        from django.conf import settings

        return cls(
            project_id=settings.FCM_PROJECT_ID,
            service_account_file=settings.FCM_SERVICE_ACCOUNT_FILE,
            base_url=settings.FCM_BASE_URL,
            max_concurrent_streams=settings.FCM_MAX_CONCURRENT_STREAMS,
        )

    # ----- per-loop resources ------------------------------------------------------------------
    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._clients:
            return
        self._loop = loop
        # http:// means an FCM stand-in (the fake): HTTP/2 with prior knowledge (h2c), since httpx
        # only negotiates HTTP/2 through TLS ALPN. https:// negotiates h2 as usual.
        cleartext = self.base_url.startswith("http://")
        # The stream budget is split over a few HTTP/2 connections (50 streams each): httpcore
        # serialises reads per connection, and one GOAWAY/reset then stalls only part of a batch.
        connections = max(1, math.ceil(self.max_concurrent_streams / self.streams_per_connection))
        base, extra = divmod(self.max_concurrent_streams, connections)
        self._clients = [_http2_client(cleartext=cleartext) for _ in range(connections)]
        self._semaphores = [asyncio.Semaphore(base + (1 if i < extra else 0)) for i in range(connections)]
        self._token_lock = asyncio.Lock()

    # ----- OAuth2 (google-auth does the JWT assertion and the token exchange) ------------------
    def _load_credentials(self) -> service_account.Credentials:
        if self._credentials is None:
            self._credentials = service_account.Credentials.from_service_account_file(
                self.service_account_file, scopes=FCM_SCOPES
            )
        return self._credentials

    async def _access_token(self, force_refresh: bool = False) -> str:
        assert self._token_lock is not None
        async with self._token_lock:  # one refresh at a time; the others wait and reuse its result
            creds = self._credentials
            # `valid` turns False within google-auth's refresh threshold before expiry: refresh early.
            if creds is None or force_refresh or not creds.valid:
                failed_at, error = self._refresh_failure
                if error is not None and time.monotonic() - failed_at < REFRESH_FAILURE_REUSE_SECONDS:
                    raise error  # a batch waiting on a failed refresh fails fast instead of hammering /token
                try:
                    creds = await asyncio.to_thread(self._refresh, force_refresh)
                except Exception as exc:
                    self._refresh_failure = (time.monotonic(), exc)
                    log.warning("[push] fcm oauth token refresh failed: %s", type(exc).__name__)
                    raise
                self._refresh_failure = (0.0, None)
            return creds.token

    def _refresh(self, force: bool) -> service_account.Credentials:
        creds = self._load_credentials()
        if force or not creds.valid:
            creds.refresh(google.auth.transport.requests.Request())
        return creds

    def _invalidate_token(self, token: str) -> None:
        if self._credentials is not None and self._credentials.token == token:
            self._credentials.token = None

    # ----- sending -----------------------------------------------------------------------------
    async def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendOutcome]:
        if not messages:
            return []
        self._bind_loop()
        return list(await asyncio.gather(*(self._send_one(m) for m in messages)))

    async def _send_one(self, msg: OutgoingMessage) -> SendOutcome:
        refused = validate_message(msg)
        if refused is not None:
            log.info("[push] send refused token=%s: %s", truncate_token(msg.token), refused.detail)
            return refused
        body = json.dumps(build_fcm_message(msg), separators=(",", ":")).encode()
        slot = self._next_slot = (self._next_slot + 1) % len(self._clients)
        client = self._clients[slot]
        async with self._semaphores[slot]:
            started = time.perf_counter()
            try:
                outcome = await self._post(client, body)
                if outcome.http_status == 401 and outcome.error_code == "UNAUTHENTICATED":
                    # Our access token was rejected (revoked, server restarted): refresh once and retry.
                    outcome = await self._post(client, body)  # _post invalidated it: the first waiter refreshes
            except (httpx.HTTPError, OSError, google.auth.exceptions.TransportError) as exc:
                outcome = SendOutcome(False, 0, "UNAVAILABLE", f"transport error: {type(exc).__name__}: {exc}")
            except google.auth.exceptions.RefreshError as exc:
                # The token endpoint refused our service account: a configuration problem, not the device's.
                outcome = SendOutcome(False, 401, "UNAUTHENTICATED", f"OAuth token refresh refused: {exc}")
            except Exception as exc:  # a per-message failure must never break the batch
                outcome = SendOutcome(False, 0, "UNAVAILABLE", f"send error: {type(exc).__name__}: {exc}")
            outcome.latency_ms = (time.perf_counter() - started) * 1000
        outcome.device_id = msg.device_id
        if not outcome.ok:
            log.debug("[push] fcm error token=%s code=%s", truncate_token(msg.token), outcome.error_code)
        return outcome

    async def _post(self, client: httpx.AsyncClient, body: bytes, force_refresh: bool = False) -> SendOutcome:
        token = await self._access_token(force_refresh)
        response = await client.post(
            self._send_url,
            content=body,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json; charset=UTF-8"},
        )
        content = response.content
        if response.status_code == 200:
            try:
                name = json.loads(content).get("name")
            except (ValueError, AttributeError):
                name = None
            return SendOutcome(True, 200, None, "", None, name)
        code, detail = parse_fcm_error(response.status_code, content)
        if response.status_code == 401 and code == "UNAUTHENTICATED":
            self._invalidate_token(token)
        return SendOutcome(
            False, response.status_code, code, detail, parse_retry_after(response.headers.get("retry-after"))
        )

    async def aclose(self) -> None:
        clients, self._clients, self._semaphores = self._clients, [], []
        self._loop = None
        for client in clients:
            await client.aclose()

    def __repr__(self) -> str:  # never shows credentials
        return f"<FcmHttpV1Provider {self.send_url} streams={self.max_concurrent_streams}>"
