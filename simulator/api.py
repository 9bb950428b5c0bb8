"""A thin async client for Pushwatch's public API and the fake FCM server's control API.

Every call returns an ``ApiResult`` instead of raising: the simulator must survive 4xx/5xx answers and a
server that is down, and it counts each outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "/api/v1"


@dataclass
class ApiResult:
    status: int  # 0 = no answer (connection refused, timeout, dropped)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def server_error(self) -> bool:
        return self.status >= 500

    @property
    def no_answer(self) -> bool:
        return self.status == 0


Observer = Any  # callable(method, path, ApiResult) -> None


class ApiClient:
    """One authenticated API user (``Authorization: Token <key>``) over a shared httpx.AsyncClient."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str, observer: Observer | None = None):
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.observer = observer

    async def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                      headers: dict[str, str] | None = None, auth: bool = True) -> ApiResult:  # fmt: skip
        all_headers = {"Authorization": f"Token {self.api_key}"} if auth else {}
        all_headers.update(headers or {})
        try:
            response = await self.http.request(
                method, self.base_url + path, json=json, params=params, headers=all_headers
            )
        except httpx.HTTPError as exc:
            result = ApiResult(0, error=f"{type(exc).__name__}: {exc}")
        else:
            try:
                body = response.json() if response.content else None
            except ValueError:
                body = response.text[:200]
            result = ApiResult(response.status_code, body, dict(response.headers))
        if self.observer is not None:
            self.observer(method, path, result)
        return result

    # --- the DESIGN.md API table ---------------------------------------------------------------------------
    async def healthz(self) -> ApiResult:
        return await self.request("GET", "/healthz", auth=False)

    async def register_device(self, platform: str, token: str, app_version: str) -> ApiResult:
        body = {"platform": platform, "token": token, "app_version": app_version}
        return await self.request("POST", f"{API}/devices", json=body)

    async def logout_devices(self) -> ApiResult:
        return await self.request("POST", f"{API}/devices/logout")

    async def groups(self) -> ApiResult:
        return await self.request("GET", f"{API}/groups")

    async def send_message(self, group_id: str, client_generated_id: uuid.UUID | str, body: str) -> ApiResult:
        payload = {"client_generated_id": str(client_generated_id), "body": body}
        return await self.request("POST", f"{API}/groups/{group_id}/messages", json=payload)

    async def messages_after(self, group_id: str, after_seq: int, limit: int) -> ApiResult:
        params = {"after_seq": after_seq, "limit": limit}
        return await self.request("GET", f"{API}/groups/{group_id}/messages", params=params)

    async def group_receipt(self, group_id: str, status: str, up_to_seq: int) -> ApiResult:
        body = {"status": status, "up_to_seq": up_to_seq}
        return await self.request("POST", f"{API}/groups/{group_id}/receipts", json=body)

    async def unread(self, group_id: str) -> ApiResult:
        return await self.request("GET", f"{API}/groups/{group_id}/unread")

    async def push_receipt(self, push_id: str, device_id: str, status: str, details: dict | None = None) -> ApiResult:
        body = {"device_id": device_id, "status": status, "details": details or {}}
        return await self.request("POST", f"{API}/pushes/{push_id}/receipts", json=body)

    async def events(self, since: int = 0, limit: int = 100) -> ApiResult:
        return await self.request("GET", f"{API}/events", params={"since": since, "limit": limit})

    async def config(self, platform: str, app_version: str, etag: str | None = None) -> ApiResult:
        headers = {"If-None-Match": etag} if etag else {}
        params = {"platform": platform, "app_version": app_version}
        return await self.request("GET", f"{API}/config", params=params, headers=headers)

    async def telemetry_batch(self, entries: list[dict], idempotency_key: str) -> ApiResult:
        headers = {"Idempotency-Key": idempotency_key}
        return await self.request("POST", f"{API}/telemetry/batch", json=entries, headers=headers)


class FakeFcmControl:
    """The fake FCM server's control API (``/__fake__/…``), see the fake FCM contract."""

    def __init__(self, http: httpx.AsyncClient, base_url: str):
        self.http = http
        self.base_url = base_url.rstrip("/")

    async def _call(self, method: str, path: str, **kwargs: Any) -> ApiResult:
        try:
            response = await self.http.request(method, self.base_url + path, **kwargs)
        except httpx.HTTPError as exc:
            return ApiResult(0, error=f"{type(exc).__name__}: {exc}")
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        return ApiResult(response.status_code, body, dict(response.headers))

    async def deliveries(self, after: int, limit: int = 500, token: str | None = None) -> ApiResult:
        params: dict[str, Any] = {"after": after, "limit": limit}
        if token:
            params["token"] = token
        return await self._call("GET", "/__fake__/deliveries", params=params)

    async def unregister(self, tokens: list[str]) -> ApiResult:
        return await self._call("POST", "/__fake__/unregister", json={"tokens": tokens})

    async def script(self, token: str, responses: list[dict]) -> ApiResult:
        return await self._call("POST", "/__fake__/script", json={"token": token, "responses": responses})

    async def stats(self) -> ApiResult:
        return await self._call("GET", "/__fake__/stats")


def items(body: Any, *keys: str) -> list:
    """The list inside an answer that is either a bare list or ``{key: [...]}`` (tolerant of both shapes)."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in keys:
            if isinstance(body.get(key), list):
                return body[key]
    return []
