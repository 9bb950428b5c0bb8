"""POST /api/v1/telemetry/batch: validation, limits, COPY storage, idempotency, throttling."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from django.db import connection
from rest_framework.throttling import ScopedRateThrottle

from telemetry import services
from telemetry.models import TelemetryBatch, TelemetryLog
from tests.factories import UserDeviceFactory, UserFactory
from tests.telemetry.factories import entry, seed_entries

URL = "/api/v1/telemetry/batch"


def post(client, entries, **headers):
    return client.post(URL, data=json.dumps(entries), content_type="application/json", headers=headers)


@pytest.mark.django_db
def test_a_valid_batch_is_stored_with_parsed_columns_and_answers_202(api_client):
    user = UserFactory()
    UserDeviceFactory(user=user, platform="ios")
    response = post(api_client(user), seed_entries(26))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["accepted"] == 26
    rows = TelemetryLog.objects.filter(batch_id=body["batch_id"])
    assert rows.count() == 26
    wake = rows.filter(tag="push", action="wake").first()
    assert (wake.reason, wake.fields, wake.platform) == ("data", {"reason": "data"}, "ios")
    assert wake.organization_id == user.organization_id
    assert wake.metadata == {"i": 0} and wake.client_ts is not None and wake.processed_at is None


@pytest.mark.django_db
def test_platform_comes_from_the_requests_device_else_the_most_recent_active_one(api_client):
    user = UserFactory()
    ios = UserDeviceFactory(user=user, platform="ios")
    android = UserDeviceFactory(user=user, platform="android")  # seen last: the default
    UserDeviceFactory(platform="ios")  # someone else's
    batch_default = post(api_client(user), [entry()]).json()["batch_id"]
    batch_hinted = post(api_client(user), [entry()], **{"X-Device-Id": str(ios.id)}).json()["batch_id"]
    batch_garbled = post(api_client(user), [entry()], **{"X-Device-Id": "nope"}).json()["batch_id"]
    assert TelemetryLog.objects.get(batch_id=batch_default).device_id == android.id
    assert TelemetryLog.objects.get(batch_id=batch_hinted).platform == "ios"
    assert TelemetryLog.objects.get(batch_id=batch_garbled).platform == "android"


@pytest.mark.django_db
def test_a_user_without_devices_still_reports_with_an_empty_platform(api_client):
    user = UserFactory()
    assert post(api_client(user), [entry()]).status_code == 202
    assert TelemetryLog.objects.get(user=user).platform == ""


@pytest.mark.django_db
def test_one_bad_entry_stores_nothing_and_names_the_index(api_client):
    entries = seed_entries(10)
    entries[7]["client_ts"] = "yesterday-ish"
    response = post(api_client(UserFactory()), entries)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"] == {"7": {"client_ts": ["not an ISO 8601 timestamp"]}}
    assert TelemetryLog.objects.count() == 0


@pytest.mark.django_db
def test_a_bad_entry_late_in_a_full_batch_stores_nothing_though_earlier_rows_were_streamed(api_client):
    entries = seed_entries(500)
    entries[450]["metadata"] = {"blob": "y" * 2100}
    response = post(api_client(UserFactory()), entries)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"450": {"metadata": ["larger than 2048 bytes"]}}
    assert TelemetryLog.objects.count() == 0


@pytest.mark.django_db
def test_every_bad_index_and_field_is_named(api_client):
    entries = [
        entry(),
        entry(event_type=""),
        entry(metadata={"blob": "x" * 3000}),
        "not an object",
        entry(message=None, client_ts=12),
        entry(metadata=[1, 2]),
    ]
    error = post(api_client(UserFactory()), entries).json()["error"]
    assert set(error["fields"]) == {"1", "2", "3", "4", "5"}
    assert set(error["fields"]["1"]) == {"event_type"}
    assert set(error["fields"]["2"]) == {"metadata"}
    assert set(error["fields"]["4"]) == {"message", "client_ts"}
    assert set(error["fields"]["5"]) == {"metadata"}
    assert TelemetryLog.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw_entry",
    [
        '{"event_type": "log", "message": "nul \\u0000 here", "client_ts": "2026-11-21T05:00:00Z"}',
        '{"event_type": "log", "message": "lone \\ud800", "client_ts": "2026-11-21T05:00:00Z"}',
        '{"event_type": "log\\u0000", "message": "", "client_ts": "2026-11-21T05:00:00Z"}',
        '{"event_type": "log", "message": "", "metadata": {"k": "\\u0000"}, "client_ts": "2026-11-21T05:00:00Z"}',
        '{"event_type": "log", "message": "", "metadata": {"k": "\\udfff"}, "client_ts": "2026-11-21T05:00:00Z"}',
        '{"event_type": "log", "message": "", "metadata": {"k": NaN}, "client_ts": "2026-11-21T05:00:00Z"}',
        '{"event_type": "log", "message": "", "metadata": {"k": 1e999}, "client_ts": "2026-11-21T05:00:00Z"}',
        '{"event_type": "log", "message": "", "client_ts": "2026-02-30T05:00:00Z"}',
    ],
)
def test_values_postgresql_would_refuse_are_a_400_not_a_500(api_client, raw_entry):
    response = api_client(UserFactory()).post(URL, data=f"[{raw_entry}]", content_type="application/json")
    assert response.status_code == 400, response.content
    assert "0" in response.json()["error"]["fields"]
    assert TelemetryLog.objects.count() == 0


@pytest.mark.django_db
def test_metadata_postgresql_expands_past_its_backstop_is_a_400_not_a_500(api_client):
    # 1e-300 is 6 characters as JSON but ~300 as PostgreSQL numeric text: the database check refuses it.
    response = post(api_client(UserFactory()), [entry(), entry(metadata={"tiny": [1e-300] * 200})])
    assert response.status_code == 400, response.content
    assert TelemetryLog.objects.count() == 0


@pytest.mark.django_db
def test_tabs_newlines_and_backslashes_survive_copy_text_escaping(api_client):
    user = UserFactory()
    message = '[x] y k="tab\there" path=C:\\dir\nsecond line\r'
    metadata = {"quote": 'a "b"', "nl": "1\n2", "tab": "\t", "bs": "\\"}
    post(api_client(user), [entry(message=message, metadata=metadata, event_type="ev\tx")])
    row = TelemetryLog.objects.get(user=user)
    assert (row.message, row.metadata, row.event_type) == (message, metadata, "ev\tx")
    assert row.fields["k"] == "tab\there"


@pytest.mark.django_db
def test_an_escaped_backslash_before_u0000_is_ordinary_text(api_client):
    user = UserFactory()
    response = post(api_client(user), [entry(metadata={"path": "C:\\u0000dir"})])
    assert response.status_code == 202
    assert TelemetryLog.objects.get(user=user).metadata == {"path": "C:\\u0000dir"}


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["{not json", "", '{"event_type": "log"}', "[[[[[[[[[[" * 10000, "null"])
def test_malformed_bodies_are_400(api_client, body):
    response = api_client(UserFactory()).post(URL, data=body, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message", "fields"}


@pytest.mark.django_db
def test_501_entries_is_413_and_stores_nothing(api_client):
    response = post(api_client(UserFactory()), [entry()] * 501)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert TelemetryLog.objects.count() == 0


@pytest.mark.django_db
def test_500_entries_is_accepted(api_client):
    assert post(api_client(UserFactory()), [entry()] * 500).json()["accepted"] == 500


@pytest.mark.django_db
def test_a_body_over_one_megabyte_is_413(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024  # even if the site-wide limit is raised
    entries = [entry(message="x" * 4000) for _ in range(300)]  # ~1.3 MB, under 500 entries
    response = post(api_client(UserFactory()), entries)
    assert response.status_code == 413
    assert TelemetryLog.objects.count() == 0


@pytest.mark.django_db
def test_an_empty_flush_is_accepted_and_stores_nothing(api_client):
    response = post(api_client(UserFactory()), [])
    assert (response.status_code, response.json()["accepted"]) == (202, 0)


@pytest.mark.django_db
def test_telemetry_needs_a_token(api_client):
    assert post(api_client(), [entry()]).status_code == 401


@pytest.mark.django_db
def test_a_retried_flush_with_the_same_key_stores_one_copy(api_client):
    client, entries = api_client(UserFactory()), seed_entries(20)
    first = post(client, entries, **{"Idempotency-Key": "flush-0001"})
    retry = post(client, entries, **{"Idempotency-Key": "flush-0001"})
    assert first.status_code == retry.status_code == 202
    assert first.json() == retry.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert TelemetryLog.objects.count() == 20


@pytest.mark.django_db
def test_the_same_key_is_per_user(api_client):
    entries = seed_entries(3)
    post(api_client(UserFactory()), entries, **{"Idempotency-Key": "k1"})
    post(api_client(UserFactory()), entries, **{"Idempotency-Key": "k1"})
    assert TelemetryLog.objects.count() == 6


@pytest.mark.django_db
def test_a_reused_key_with_a_different_body_is_409_and_stores_nothing_more(api_client):
    client = api_client(UserFactory())
    post(client, seed_entries(3), **{"Idempotency-Key": "k1"})
    response = post(client, seed_entries(4), **{"Idempotency-Key": "k1"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert TelemetryLog.objects.count() == 3


@pytest.mark.django_db
def test_a_malformed_idempotency_key_is_400(api_client):
    response = post(api_client(UserFactory()), [entry()], **{"Idempotency-Key": "x" * 201})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]


@pytest.mark.django_db(transaction=True)
def test_racing_retries_with_the_same_key_store_one_copy():
    user = UserFactory()
    entries = seed_entries(50)
    start = threading.Barrier(6)
    results, errors = [], []

    def flush():
        try:
            start.wait()
            results.append(services.ingest_batch(user, entries, idempotency_key="race-1"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=flush) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.batch_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert TelemetryLog.objects.count() == 50
    assert TelemetryBatch.objects.count() == 1


@pytest.mark.django_db
def test_throttled_flushes_get_429_with_retry_after(api_client, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"telemetry": "3/min"})
    client = api_client(UserFactory())
    statuses = [post(client, [entry()]).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    throttled = post(client, [entry()])
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
    assert throttled.json()["error"]["code"] == "throttled"
    other_user = api_client(UserFactory())
    assert post(other_user, [entry()]).status_code == 202  # per user
    assert TelemetryLog.objects.count() == 4


@pytest.mark.django_db
def test_a_batch_id_is_a_uuid(api_client):
    uuid.UUID(post(api_client(UserFactory()), [entry()]).json()["batch_id"])
