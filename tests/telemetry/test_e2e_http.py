"""Through the real ASGI server (uvicorn) on loopback: flush, retry, fold, read the Client health series."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from telemetry import queries
from telemetry.models import TelemetryLog
from telemetry.tasks import fold_telemetry_counters
from tests.factories import UserDeviceFactory, UserFactory, token_for
from tests.processes import asgi_server, child_env
from tests.telemetry.factories import seed_entries

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_flush_over_real_http_is_stored_once_and_reaches_the_client_health_series():
    user = UserFactory()
    UserDeviceFactory(user=user, platform="android")
    headers = {"Authorization": f"Token {token_for(user)}", "Idempotency-Key": "flush-e2e-1"}
    entries = seed_entries(40)
    with asgi_server(child_env(THROTTLE_TELEMETRY_RATE="2/min")) as base:
        first = httpx.post(f"{base}/api/v1/telemetry/batch", json=entries, headers=headers, timeout=30)
        retry = httpx.post(f"{base}/api/v1/telemetry/batch", json=entries, headers=headers, timeout=30)
        throttled = httpx.post(f"{base}/api/v1/telemetry/batch", json=entries, headers=headers, timeout=30)
    assert first.status_code == retry.status_code == 202, first.text
    assert first.json() == retry.json()
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert TelemetryLog.objects.count() == 40

    assert fold_telemetry_counters() == 40
    series = queries.client_health_series(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), user.organization_id)
    assert sum(r["count"] for r in series) == 40
    assert {r["platform"] for r in series} == {"android"}
