"""The fake FCM's behaviour: OAuth token endpoint, messages:send, and the control API.

Transport-free: `FakeFcm.handle()` takes a parsed request and returns (status, headers, body), so the
HTTP/1.1 and h2c front ends in server.py share it. Everything runs on one event loop, so the state
needs no locks.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import json
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from google.auth import exceptions as google_auth_exceptions
from google.auth import jwt as google_jwt

MAX_DATA_BYTES = 4096
JSON_HEADERS = [(b"content-type", b"application/json; charset=UTF-8")]
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

# Scriptable error name -> (HTTP status, google.rpc status, FCM errorCode, message)
ERRORS: dict[str, tuple[int, str, str, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "INVALID_ARGUMENT_TOKEN": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "INVALID_ARGUMENT_PAYLOAD": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "Invalid payload: the message payload was rejected",
    ),
    "UNAVAILABLE": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    "QUOTA_EXCEEDED": (
        429,
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
        "Quota exceeded for quota metric 'Messages sent' of service 'fcm.googleapis.com'.",
    ),
    "THIRD_PARTY_AUTH_ERROR": (
        401,
        "UNAUTHENTICATED",
        "THIRD_PARTY_AUTH_ERROR",
        "Auth error from APNS or Web Push Service",
    ),
}
# Command-line error-mix keys -> scriptable error names.
MIX_KEYS = {
    "unregistered": "UNREGISTERED",
    "unavailable": "UNAVAILABLE",
    "quota": "QUOTA_EXCEEDED",
    "internal": "INTERNAL",
    "invalid_argument": "INVALID_ARGUMENT_PAYLOAD",
    "sender_id_mismatch": "SENDER_ID_MISMATCH",
    "third_party_auth": "THIRD_PARTY_AUTH_ERROR",
}
RETRY_AFTER_ERRORS = {"UNAVAILABLE", "QUOTA_EXCEEDED"}


def parse_error_mix(text: str) -> dict[str, float]:
    """'unregistered=0.02,unavailable=0.01' -> {"UNREGISTERED": 0.02, "UNAVAILABLE": 0.01}."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, _, value = part.partition("=")
        key = key.strip().lower()
        if key not in MIX_KEYS:
            raise ValueError(f"unknown error-mix key {key!r}; known: {', '.join(MIX_KEYS)}")
        rate = float(value)
        if not 0 <= rate <= 1:
            raise ValueError(f"error-mix rate for {key} must be within 0..1")
        mix[MIX_KEYS[key]] = rate
    if sum(mix.values()) > 1:
        raise ValueError("error-mix rates add up to more than 1")
    return mix


@dataclass
class FakeConfig:
    project_id: str = "pushwatch-demo"
    public_key_pem: str = ""  # verifies /token assertions
    success_rate: float = 1.0  # outside the error mix, a request fails with INTERNAL at 1 - success_rate
    error_mix: dict[str, float] = field(default_factory=dict)
    retry_after: float = 2.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    deliveries_capacity: int = 50_000


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: list(JSON_HEADERS))


def json_response(status: int, obj: Any, extra_headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode(), JSON_HEADERS + (extra_headers or []))


def fcm_error(name: str, retry_after: float | None = None, message: str | None = None) -> Response:
    status, rpc_status, error_code, default_message = ERRORS[name]
    body = {
        "error": {
            "code": status,
            "message": message or default_message,
            "status": rpc_status,
            "details": [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}],
        }
    }
    headers = []
    if name in RETRY_AFTER_ERRORS and retry_after is not None:
        headers.append((b"retry-after", _fmt_seconds(retry_after).encode()))
    return json_response(status, body, headers)


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def unauthenticated(message: str) -> Response:
    return json_response(
        401,
        {"error": {"code": 401, "message": message, "status": "UNAUTHENTICATED"}},
        [(b"www-authenticate", b"Bearer")],
    )


class FakeFcm:
    def __init__(self, config: FakeConfig) -> None:
        self._startup_config = config
        self.config = dataclasses.replace(config)
        self._rng = random.Random()
        self._access_tokens: set[bytes] = set()
        self._cursor = itertools.count(1)
        self.reset()

    # ----- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        self.config = dataclasses.replace(self._startup_config, error_mix=dict(self._startup_config.error_mix))
        self.scripts: dict[str, collections.deque[dict[str, Any]]] = {}
        self.unregistered: set[str] = set()
        self.requests = 0
        self.accepted = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.token_requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.deliveries: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.config.deliveries_capacity)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "errors": dict(self.errors),
            "token_requests": self.token_requests,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }

    # ----- routing -----------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[bytes, bytes], body: bytes) -> Response | Any:
        """Returns a Response, or an awaitable of one when the send is given artificial latency."""
        path, _, query = target.partition("?")
        if method == "POST" and path.startswith("/v1/projects/") and path.endswith("/messages:send"):
            return self.send(path, headers, body)
        if path == "/healthz" and method in ("GET", "HEAD"):
            return json_response(200, {"status": "ok"})
        if path == "/token" and method == "POST":
            return self.issue_token(body)
        if path.startswith("/__fake__/"):
            return self.control(method, path, parse_qs(query), body)
        return json_response(404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}})

    # ----- OAuth2 ------------------------------------------------------------------------------
    def issue_token(self, body: bytes) -> Response:
        self.token_requests += 1
        form = parse_qs(body.decode("utf-8", "replace"))
        grant = (form.get("grant_type") or [""])[0]
        assertion = (form.get("assertion") or [""])[0]
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not assertion:
            return json_response(400, {"error": "unsupported_grant_type", "error_description": "JWT bearer expected"})
        try:
            claims = google_jwt.decode(assertion, certs=self.config.public_key_pem, clock_skew_in_seconds=60)
        except (ValueError, google_auth_exceptions.GoogleAuthError) as exc:
            return json_response(400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"})
        if "firebase.messaging" not in str(claims.get("scope", "")) and "cloud-platform" not in str(
            claims.get("scope", "")
        ):
            return json_response(
                400, {"error": "invalid_scope", "error_description": "firebase.messaging scope needed"}
            )
        token = f"ya29.fake-{secrets.token_urlsafe(24)}"
        self._access_tokens.add(f"Bearer {token}".encode())
        return json_response(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    # ----- messages:send -----------------------------------------------------------------------
    def send(self, path: str, headers: dict[bytes, bytes], body: bytes) -> Response | Any:
        self.requests += 1
        if headers.get(b"authorization") not in self._access_tokens:
            self.errors["UNAUTHENTICATED"] += 1
            return unauthenticated(
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential."
            )
        project = path[len("/v1/projects/") : -len("/messages:send")]
        if project != self.config.project_id:
            self.errors["SENDER_ID_MISMATCH"] += 1
            return fcm_error("SENDER_ID_MISMATCH", message=f"Project {project} does not match the sender")
        response = self._decide(project, body)
        if self.config.latency_ms or self.config.latency_jitter_ms:
            return self._delayed(response)
        return response

    async def _delayed(self, response: Response) -> Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            delay = self.config.latency_ms + self._rng.uniform(0, self.config.latency_jitter_ms)
            await asyncio.sleep(max(0.0, delay) / 1000)
            return response
        finally:
            self.in_flight -= 1

    def _invalid(self, why: str) -> Response:
        self.errors["INVALID_ARGUMENT"] += 1
        return fcm_error("INVALID_ARGUMENT_PAYLOAD", message=f"Invalid payload: {why}")

    def _decide(self, project: str, body: bytes) -> Response:
        try:
            request = json.loads(body)
        except ValueError:
            return self._invalid("Invalid JSON payload received.")
        message = request.get("message") if isinstance(request, dict) else None
        if not isinstance(message, dict):
            return self._invalid("'message' is required")
        token = message.get("token")
        if not isinstance(token, str) or not token:
            self.errors["INVALID_ARGUMENT"] += 1
            return fcm_error("INVALID_ARGUMENT_TOKEN")
        problem = self._shape_problem(message)
        if problem:
            return self._invalid(problem)

        error_name, retry_after = self._scripted_or_random(token)
        if error_name:
            status, _, error_code, _ = ERRORS[error_name]
            self.errors[error_code] += 1
            return fcm_error(error_name, retry_after=retry_after)

        name = f"projects/{project}/messages/0:{time.time_ns()}%{secrets.token_hex(8)}"
        if not request.get("validate_only"):
            self.accepted += 1
            self.deliveries.append(
                {
                    "cursor": next(self._cursor),
                    "token": token,
                    "message": message,
                    "name": name,
                    "received_at": datetime.now(UTC).isoformat(),
                }
            )
        return json_response(200, {"name": name})

    @staticmethod
    def _shape_problem(message: dict[str, Any]) -> str | None:
        data = message.get("data", {})
        if not isinstance(data, dict):
            return "'data' must be a map of strings"
        size = 0
        for key, value in data.items():
            if not isinstance(value, str):
                return f"data value for key {key!r} must be a string"
            size += len(key.encode()) + len(value.encode())
        if size > MAX_DATA_BYTES:
            return f"data payload too large ({size} bytes > {MAX_DATA_BYTES})"
        android = message.get("android")
        if android is not None:
            if not isinstance(android, dict):
                return "'android' must be an object"
            if android.get("priority", "normal").lower() not in ("normal", "high"):
                return "android.priority must be NORMAL or HIGH"
        apns = message.get("apns")
        if apns is not None:
            if not isinstance(apns, dict):
                return "'apns' must be an object"
            apns_headers = apns.get("headers", {})
            if not isinstance(apns_headers, dict) or not all(isinstance(v, str) for v in apns_headers.values()):
                return "apns.headers must be a map of strings"
            priority = apns_headers.get("apns-priority")
            if priority is not None and priority not in ("1", "5", "10"):
                return "apns-priority must be 1, 5 or 10"
            # What real FCM/APNs does: a background (data-only) push must not be high priority.
            if apns_headers.get("apns-push-type") == "background" and priority == "10":
                return "apns-priority 10 is not allowed for background (content-available) messages"
        return None

    def _scripted_or_random(self, token: str) -> tuple[str | None, float | None]:
        script = self.scripts.get(token)
        if script:
            step = script.popleft()
            if not script:
                del self.scripts[token]
            error = step.get("error")
            return (error or None), float(step.get("retry_after", self.config.retry_after))
        if token in self.unregistered:
            return "UNREGISTERED", None
        roll = self._rng.random()
        for name, rate in self.config.error_mix.items():
            if roll < rate:
                if name == "UNREGISTERED":
                    self.unregistered.add(token)  # an uninstalled app stays uninstalled
                return name, self.config.retry_after
            roll -= rate
        if self.config.success_rate < 1 and self._rng.random() >= self.config.success_rate:
            return "INTERNAL", None
        return None, None

    # ----- control API -------------------------------------------------------------------------
    def control(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Response:
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return json_response(400, {"error": "invalid JSON"})
        if method == "GET" and path == "/__fake__/stats":
            return json_response(200, self.stats())
        if method == "GET" and path == "/__fake__/deliveries":
            return self._deliveries(query)
        if method == "POST" and path == "/__fake__/reset":
            self.reset()
            return json_response(200, {"reset": True})
        if method == "POST" and path == "/__fake__/revoke_tokens":
            # Like a restarted fake / revoked credentials: every issued access token stops working.
            revoked = len(self._access_tokens)
            self._access_tokens.clear()
            return json_response(200, {"revoked": revoked})
        if method == "POST" and path == "/__fake__/config":
            return self._configure(payload)
        if method == "POST" and path == "/__fake__/unregister":
            tokens = payload.get("tokens")
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                return json_response(400, {"error": "'tokens' must be a list of strings"})
            self.unregistered.update(tokens)
            return json_response(200, {"unregistered": len(tokens)})
        if method == "POST" and path == "/__fake__/script":
            token, responses = payload.get("token"), payload.get("responses")
            if not isinstance(token, str) or not isinstance(responses, list):
                return json_response(400, {"error": "'token' (string) and 'responses' (list) are required"})
            for step in responses:
                error = step.get("error") if isinstance(step, dict) else None
                if not isinstance(step, dict) or (error and error not in ERRORS):
                    return json_response(400, {"error": f"unknown scripted error {error!r}; known: {list(ERRORS)}"})
            self.scripts.setdefault(token, collections.deque()).extend(responses)
            return json_response(200, {"scripted": len(responses)})
        return json_response(404, {"error": "unknown control endpoint"})

    def _configure(self, payload: dict[str, Any]) -> Response:
        """Change the command-line behaviour at run time (tests, simulator); /__fake__/reset restores it."""
        try:
            if "error_mix" in payload:
                mix = payload["error_mix"]
                self.config.error_mix = parse_error_mix(
                    mix if isinstance(mix, str) else ",".join(f"{k}={v}" for k, v in mix.items())
                )
            for key in ("success_rate", "retry_after", "latency_ms", "latency_jitter_ms"):
                if key in payload:
                    value = float(payload[key])
                    if value < 0 or (key == "success_rate" and value > 1):
                        raise ValueError(f"{key} out of range")
                    setattr(self.config, key, value)
        except (TypeError, ValueError, AttributeError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(
            200, {"config": {k: v for k, v in dataclasses.asdict(self.config).items() if k != "public_key_pem"}}
        )

    def _deliveries(self, query: dict[str, list[str]]) -> Response:
        try:
            after = int((query.get("after") or ["0"])[0])
            limit = max(1, min(int((query.get("limit") or ["1000"])[0]), 10_000))
        except ValueError:
            return json_response(400, {"error": "after and limit must be integers"})
        token = (query.get("token") or [None])[0]
        ring = self.deliveries
        start = 0
        if ring:
            start = min(max(0, after - ring[0]["cursor"] + 1), len(ring))  # cursors are consecutive
        found: list[dict[str, Any]] = []
        for item in itertools.islice(ring, start, None):
            if token is None or item["token"] == token:
                found.append(item)
                if len(found) >= limit:
                    break
        next_cursor = (
            found[-1]["cursor"] if found else max(after, ring[-1]["cursor"] if ring and token is None else after)
        )
        return json_response(200, {"deliveries": found, "next": next_cursor})
