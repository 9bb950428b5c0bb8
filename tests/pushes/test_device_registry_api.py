"""POST /api/v1/devices and /devices/logout: upsert by token, reassignment, reactivation, 400s, races."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest
from django.db import connection

from pushes.models import UserDevice
from realtime.models import RealtimeEvent
from tests.factories import UserDeviceFactory, UserFactory, token_for

pytestmark = pytest.mark.django_db


def new_token() -> str:
    return f"fcm-{uuid.uuid4().hex}{uuid.uuid4().hex}:APA91b"


def register(client, token, platform="android", app_version="1.2.3"):
    return client.post("/api/v1/devices", {"platform": platform, "token": token, "app_version": app_version},
                       format="json")  # fmt: skip


def test_first_registration_creates_the_device_and_shows_the_token_truncated(api_client):
    user = UserFactory()
    token = new_token()
    response = register(api_client(user), token)
    assert response.status_code == 201
    body = response.json()
    assert body["token"] == token[:6] + "…"
    assert token not in response.content.decode()
    device = UserDevice.objects.get(token=token)
    assert (device.user, device.platform, device.app_version, device.active) == (user, "android", "1.2.3", True)


def test_registering_the_same_token_again_refreshes_it_with_200_and_no_duplicate(api_client):
    user = UserFactory()
    token = new_token()
    register(api_client(user), token, app_version="1.0.0")
    first_seen = UserDevice.objects.get(token=token).last_seen_at
    response = register(api_client(user), token, app_version="1.1.0")
    assert response.status_code == 200
    device = UserDevice.objects.get(token=token)
    assert UserDevice.objects.filter(token=token).count() == 1
    assert device.app_version == "1.1.0"
    assert device.last_seen_at >= first_seen


def test_a_token_that_moves_to_another_user_is_reassigned_not_duplicated(api_client):
    alice, bob = UserFactory(), UserFactory()
    token = new_token()
    register(api_client(alice), token)
    response = register(api_client(bob), token, platform="ios")
    assert response.status_code == 200
    device = UserDevice.objects.get(token=token)
    assert (device.user, device.platform) == (bob, "ios")


def test_a_deactivated_token_that_registers_again_becomes_active(api_client):
    device = UserDeviceFactory(active=False, deactivation_reason="UNREGISTERED")
    response = register(api_client(device.user), device.token)
    assert response.status_code == 200
    device.refresh_from_db()
    assert device.active and device.deactivated_at is None and device.deactivation_reason == ""


def test_registration_logs_the_seed_tag_with_the_first_six_chars_only(api_client, caplog):
    token = new_token()
    with caplog.at_level(logging.INFO, logger="pushwatch.push"):
        register(api_client(UserFactory()), token, platform="ios")
    assert f"[push] token:registered ios {token[:6]}…" in caplog.text
    assert token not in caplog.text


def test_registration_emits_a_realtime_event_without_the_token(api_client):
    user = UserFactory()
    token = new_token()
    register(api_client(user), token)
    event = RealtimeEvent.objects.get(event_type="device.registered")
    assert event.organization_id == user.organization_id
    assert token not in str(event.payload)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"platform": "windows", "token": "abcdefgh", "app_version": "1"}, "platform"),
        ({"platform": "android", "token": "", "app_version": "1"}, "token"),
        ({"platform": "android", "token": "   ", "app_version": "1"}, "token"),
        ({"platform": "android", "token": "x" * 4097, "app_version": "1"}, "token"),
        ({"platform": "android", "token": "ab\x00cd", "app_version": "1"}, "token"),
        ({"token": "abcdefgh", "app_version": "1"}, "platform"),
        ({"platform": "android", "app_version": "1"}, "token"),
        ({"platform": "android", "token": "abcdefgh"}, "app_version"),
        ({"platform": "android", "token": "abcdefgh", "app_version": "v" * 41}, "app_version"),
        ({"platform": ["android"], "token": {"a": 1}, "app_version": None}, "platform"),
    ],
)
def test_bad_registrations_are_400_with_the_field_named(api_client, body, field):
    response = api_client(UserFactory()).post("/api/v1/devices", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert UserDevice.objects.count() == 0


def test_a_token_with_a_lone_surrogate_is_400_not_500(api_client):
    raw = '{"platform": "android", "token": "abc\\ud800def", "app_version": "1"}'
    response = api_client(UserFactory()).post("/api/v1/devices", raw, content_type="application/json")
    assert response.status_code == 400
    assert "token" in response.json()["error"]["fields"]


def test_a_token_of_exactly_4096_characters_is_accepted(api_client):
    assert register(api_client(UserFactory()), "t" * 4096).status_code == 201


def test_non_object_bodies_and_anonymous_callers_are_refused_cleanly(api_client):
    client = api_client(UserFactory())
    assert client.post("/api/v1/devices", [1, 2], format="json").status_code == 400
    assert client.post("/api/v1/devices", "not json", content_type="application/json").status_code == 400
    assert api_client().post("/api/v1/devices", {}, format="json").status_code == 401


def test_logout_deactivates_all_of_the_callers_devices_and_only_theirs(api_client):
    user = UserFactory()
    mine = UserDeviceFactory.create_batch(2, user=user)
    UserDeviceFactory(user=user, active=False)
    other = UserDeviceFactory()
    response = api_client(user).post("/api/v1/devices/logout")
    assert response.status_code == 200
    assert response.json() == {"deactivated": 2}
    for device in mine:
        device.refresh_from_db()
        assert not device.active and device.deactivation_reason == "logout"
    other.refresh_from_db()
    assert other.active
    assert api_client(user).post("/api/v1/devices/logout").json() == {"deactivated": 0}


@pytest.mark.django_db(transaction=True)
def test_two_racing_registrations_of_one_token_make_one_row():
    from rest_framework.test import APIClient

    users = [UserFactory(), UserFactory()]
    keys = [token_for(u) for u in users]
    token = new_token()
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def worker(i: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {keys[i % 2]}")
        try:
            barrier.wait()
            statuses.append(register(client, token).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses).count(201) == 1 and sorted(statuses).count(200) == 7
    assert UserDevice.objects.filter(token=token).count() == 1
