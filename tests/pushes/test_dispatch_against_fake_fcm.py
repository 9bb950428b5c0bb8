"""The leased dispatcher end to end: pushes.services -> FCM HTTP v1 provider -> the real fake FCM over HTTP."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from flags import queries as flag_queries
from pushes import queries, services
from pushes.models import PushDeliveryLog, PushNotification, UserDevice
from realtime.models import RealtimeEvent
from tests.factories import UserDeviceFactory
from tests.pushes.factories import device_token, make_room, send

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def push_settings(settings):
    settings.PUSH_COALESCE_WINDOW_SECONDS = 0  # due at once: the tests drive the dispatcher themselves
    flag_queries.clear_cache()
    from django.core.cache import cache

    cache.delete(services.CONFIG_ALARM_CACHE_KEY)
    yield settings
    flag_queries.clear_cache()


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def tokens_of(user) -> list[str]:
    return list(UserDevice.objects.filter(user=user).order_by("platform").values_list("token", flat=True))


def received_at(delivery: dict) -> datetime:
    return datetime.fromisoformat(delivery["received_at"].replace("Z", "+00:00"))


def test_three_quick_messages_reach_each_active_device_once_naming_the_latest_and_count_3(fake_fcm, commit):
    room = make_room(recipients=2, devices_each=2)
    messages = [commit(send, room, f"secret text {i}") for i in range(3)]
    assert services.dispatch_due_pushes() == 2

    for user in room.members:
        push = PushNotification.objects.get(recipient=user)
        assert push.status == "sent" and push.sent_at is not None
        for token in tokens_of(user):
            deliveries = fake_fcm.deliveries(token=token)
            assert len(deliveries) == 1
            message = deliveries[0]["message"]
            assert message["data"] == {
                "type": "new_message",
                "group_id": str(room.group.id),
                "message_id": str(messages[-1].id),
                "created_at": messages[-1].created_at.isoformat(),
                "count": "3",
                "push_id": str(push.id),
            }
            assert "secret text" not in str(message)
            if "android" in message:
                assert message["android"]["priority"] == "high"
            else:
                assert message["apns"]["headers"]["apns-priority"] == "5"
                assert message["apns"]["payload"]["aps"]["content-available"] == 1
    assert fake_fcm.deliveries(token=tokens_of(room.sender)[0]) == []
    assert fake_fcm.stats()["accepted"] == 4

    logs = PushDeliveryLog.objects.filter(status="sent")
    assert logs.count() == 4
    for entry in logs:
        assert len(entry.token_prefix) == 7 and entry.token_prefix.endswith("…")
        assert entry.details["message_name"].startswith(f"projects/{fake_fcm.project_id}/messages/")
        assert entry.details["http_status"] == 200 and entry.details["latency_ms"] >= 0
    # One realtime event per dispatcher batch, with counts, not one per device.
    batch_events = RealtimeEvent.objects.filter(event_type="push.batch")
    assert batch_events.count() == 1
    assert batch_events.get().payload["device_accepted"] == 4
    assert services.dispatch_due_pushes() == 0


def test_unregistered_token_deactivates_the_device_with_the_reason_and_is_never_sent_again(fake_fcm, commit):
    room = make_room(recipients=1, devices_each=2)
    dead, alive = tokens_of(room.members[0])
    fake_fcm.unregister([dead])
    commit(send, room)
    services.dispatch_due_pushes()

    device = UserDevice.objects.get(token=dead)
    assert not device.active and device.deactivation_reason == "UNREGISTERED" and device.deactivated_at
    assert UserDevice.objects.get(token=alive).active
    assert PushNotification.objects.get().status == "sent"  # the other device got it
    failed = PushDeliveryLog.objects.get(status="failed")
    assert failed.details["error_code"] == "UNREGISTERED" and failed.details["http_status"] == 404
    assert RealtimeEvent.objects.filter(event_type="device.deactivated", entity_id=str(device.id)).exists()

    commit(send, room)
    services.dispatch_due_pushes()
    assert fake_fcm.stats()["errors"].get("UNREGISTERED") == 1  # never asked again
    assert len(fake_fcm.deliveries(token=alive)) == 2


@pytest.mark.parametrize("error", ["SENDER_ID_MISMATCH", "INVALID_ARGUMENT_TOKEN"])
def test_other_dead_token_answers_deactivate_the_device(fake_fcm, commit, error):
    room = make_room(recipients=1)
    (token,) = tokens_of(room.members[0])
    fake_fcm.script(token, [{"error": error}])
    commit(send, room)
    services.dispatch_due_pushes()
    device = UserDevice.objects.get(token=token)
    assert not device.active
    push = PushNotification.objects.get()
    assert (push.status, push.status_reason) == ("failed", "no_active_device")


def test_503_with_retry_after_2_is_retried_no_sooner_than_2_seconds_and_then_succeeds(fake_fcm, commit):
    room = make_room(recipients=1)
    (token,) = tokens_of(room.members[0])
    fake_fcm.script(token, [{"error": "UNAVAILABLE", "retry_after": 2}])
    commit(send, room)
    services.dispatch_due_pushes()

    push = PushNotification.objects.get()
    failure = PushDeliveryLog.objects.get(push=push)
    assert failure.details["error_code"] == "UNAVAILABLE" and failure.status == "failed"
    assert push.status == "sending" and push.retry_count == 1
    assert push.next_attempt_at - failure.created_at >= timedelta(seconds=2)
    assert services.dispatch_due_pushes() == 0  # not due yet

    while timezone.now() < push.next_attempt_at:
        time.sleep(0.1)
    assert services.dispatch_due_pushes() == 1
    push.refresh_from_db()
    assert push.status == "sent" and push.delivery_attempts == 2
    (delivery,) = fake_fcm.deliveries(token=token)
    assert received_at(delivery) - failure.created_at >= timedelta(seconds=2)


def test_quota_exceeded_backs_off_at_least_60_seconds(fake_fcm, commit):
    room = make_room(recipients=1)
    (token,) = tokens_of(room.members[0])
    fake_fcm.script(token, [{"error": "QUOTA_EXCEEDED", "retry_after": 1}])
    commit(send, room)
    services.dispatch_due_pushes()
    push = PushNotification.objects.get()
    failure = PushDeliveryLog.objects.get(push=push)
    assert push.status == "sending"
    assert push.next_attempt_at - failure.created_at >= timedelta(seconds=60)


def test_after_the_last_attempt_the_push_fails_with_the_last_error(fake_fcm, commit, settings):
    settings.PUSH_MAX_ATTEMPTS = 1
    room = make_room(recipients=1)
    (token,) = tokens_of(room.members[0])
    fake_fcm.script(token, [{"error": "INTERNAL"}])
    commit(send, room)
    services.dispatch_due_pushes()
    push = PushNotification.objects.get()
    assert (push.status, push.status_reason) == ("failed", "max_attempts")
    assert push.last_error.startswith("INTERNAL")
    assert UserDevice.objects.get(token=token).active


def test_a_push_claimed_by_a_worker_that_dies_is_sent_once_after_the_lease_expires(fake_fcm, commit, settings):
    settings.PUSH_LEASE_SECONDS = 1
    room = make_room(recipients=1)
    (token,) = tokens_of(room.members[0])
    commit(send, room)
    (claimed,) = services.claim_due_pushes(10)  # ...and the worker dies here
    assert services.dispatch_due_pushes() == 0  # the lease still holds it
    while timezone.now() <= claimed.lease_until:
        time.sleep(0.1)
    assert services.dispatch_due_pushes() == 1
    assert services.dispatch_due_pushes() == 0
    assert len(fake_fcm.deliveries(token=token)) == 1
    push = PushNotification.objects.get()
    assert push.status == "sent" and push.delivery_attempts == 2


def test_a_push_whose_worker_dies_on_every_attempt_is_failed_not_claimed_forever(fake_fcm, commit, settings):
    settings.PUSH_LEASE_SECONDS = 1
    settings.PUSH_MAX_ATTEMPTS = 2
    room = make_room(recipients=1)
    commit(send, room)
    for _ in range(2):
        (claimed,) = services.claim_due_pushes(10)  # ...and the worker dies, twice
        while timezone.now() <= claimed.lease_until:
            time.sleep(0.1)
    assert services.dispatch_due_pushes() == 0
    push = PushNotification.objects.get()
    assert (push.status, push.status_reason) == ("failed", "max_attempts")


def test_an_invalid_argument_about_the_payload_fails_the_push_and_leaves_every_device_active(fake_fcm, commit):
    room = make_room(recipients=1, devices_each=2)
    for token in tokens_of(room.members[0]):
        fake_fcm.script(token, [{"error": "INVALID_ARGUMENT_PAYLOAD"}])
    commit(send, room)
    services.dispatch_due_pushes()
    push = PushNotification.objects.get()
    assert (push.status, push.status_reason) == ("failed", "payload_rejected")
    assert push.last_error.startswith("INVALID_ARGUMENT")
    assert UserDevice.objects.filter(active=False).count() == 0


def test_a_401_raises_the_configuration_alarm_and_deactivates_nothing(fake_fcm, commit):
    room = make_room(recipients=2)
    for user in room.members:
        fake_fcm.script(tokens_of(user)[0], [{"error": "THIRD_PARTY_AUTH_ERROR"}])
    assert queries.configuration_alarm() is None
    commit(send, room)
    services.dispatch_due_pushes()
    assert UserDevice.objects.filter(active=False).count() == 0
    alarm = queries.configuration_alarm()
    assert alarm["error_code"] == "THIRD_PARTY_AUTH_ERROR" and alarm["http_status"] == 401 and alarm["count"] == 2
    assert set(PushNotification.objects.values_list("status", flat=True)) == {"sending"}  # retried later

    other = make_room(recipients=1)  # a later batch that gets through clears the alarm
    commit(send, other)
    services.dispatch_due_pushes()
    assert queries.configuration_alarm() is None


def test_a_test_push_goes_to_that_one_device_through_the_same_pipeline(fake_fcm):
    device = UserDeviceFactory(token=device_token("tp"))
    sibling = UserDeviceFactory(user=device.user, token=device_token("sib"))
    push = services.send_test_push(device)
    assert push.group_id is None
    assert services.dispatch_due_pushes() == 1
    (delivery,) = fake_fcm.deliveries(token=device.token)
    assert delivery["message"]["data"]["type"] == "test"
    assert fake_fcm.deliveries(token=sibling.token) == []
    push.refresh_from_db()
    assert push.status == "sent"


def test_deactivate_device_keeps_the_reason_and_stops_pushes(fake_fcm, commit):
    room = make_room(recipients=1)
    device = UserDevice.objects.get(user=room.members[0])
    assert services.deactivate_device(device, reason="support: lost phone") is True
    assert services.deactivate_device(device, reason="again") is False
    commit(send, room)
    assert PushNotification.objects.count() == 0  # no active device: no push at all
    device.refresh_from_db()
    assert device.deactivation_reason == "support: lost phone"


def test_receipts_are_recorded_once_per_status_for_the_recipient_only(fake_fcm, commit, api_client):
    room = make_room(recipients=1)
    recipient = room.members[0]
    device = UserDevice.objects.get(user=recipient)
    commit(send, room)
    services.dispatch_due_pushes()
    push = PushNotification.objects.get()
    url = f"/api/v1/pushes/{push.id}/receipts"
    body = {"device_id": str(device.id), "status": "delivered", "details": {"latency_ms": 120}}
    for _ in range(2):
        assert api_client(recipient).post(url, body, format="json").status_code == 201
    assert PushDeliveryLog.objects.filter(push=push, status="delivered").count() == 1
    assert api_client(recipient).post(url, {**body, "status": "opened"}, format="json").status_code == 201
    assert api_client(room.sender).post(url, body, format="json").status_code == 404
    assert api_client(recipient).post(f"/api/v1/pushes/{device.id}/receipts", body, format="json").status_code == 404
    assert api_client(recipient).post("/api/v1/pushes/not-a-uuid/receipts", body, format="json").status_code == 404
    bad = api_client(recipient).post(url, {**body, "status": "read"}, format="json")
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]
    foreign = api_client(recipient).post(url, {**body, "device_id": str(UserDeviceFactory().id)}, format="json")
    assert foreign.status_code == 400
    huge = api_client(recipient).post(url, {**body, "details": {"x": "y" * 5000}}, format="json")
    assert huge.status_code == 400
    nul = api_client(recipient).post(url, {**body, "details": {"x": "a\x00b"}}, format="json")
    assert nul.status_code == 400

    stats = queries.delivery_stats(1)
    assert (stats["sent"], stats["delivered"], stats["opened"], stats["failed"]) == (1, 1, 1, 0)
    assert stats["delivery_rate"] == 1.0 and stats["open_rate"] == 1.0
    assert stats["by_platform"]["android"]["sent"] == 1 and stats["by_platform"]["ios"]["sent"] == 0


def test_support_reads_show_token_prefixes_only(fake_fcm, commit):
    room = make_room(recipients=1)
    device = UserDevice.objects.get(user=room.members[0])
    message = commit(send, room)
    services.dispatch_due_pushes()
    found = queries.device_search(device.token[:10])
    assert [d["id"] for d in found] == [str(device.id)]
    assert queries.device_search(room.members[0].username)[0]["token_prefix"] == device.token_prefix
    timeline = queries.device_timeline(device.id)
    assert timeline["logs"][0]["status"] == "sent" and timeline["pushes"][0]["status"] == "sent"
    trace = {r["recipient_id"]: r for r in queries.trace_message(message)}
    (delivery,) = trace[room.members[0].pk]["deliveries"]
    assert delivery["status"] == "sent" and delivery["token_prefix"] == device.token_prefix
    for blob in (found, timeline, trace):
        assert device.token not in str(blob)


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_racing_never_send_the_same_push_twice(fake_fcm, settings):
    from django.db import transaction

    rooms = [make_room(recipients=5) for _ in range(4)]
    for room in rooms:
        with transaction.atomic():
            send(room)
    total = PushNotification.objects.count()
    assert total == 20
    handled: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def dispatcher() -> None:
        try:
            barrier.wait()
            for _ in range(50):
                n = services.dispatch_due_pushes(limit=3)
                handled.append(n)
                if n == 0 and not PushNotification.objects.filter(status__in=["pending", "sending"]).exists():
                    break
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(handled) == total
    assert set(PushNotification.objects.values_list("status", flat=True)) == {"sent"}
    for room in rooms:
        for user in room.members:
            (token,) = tokens_of(user)
            assert len(fake_fcm.deliveries(token=token)) == 1
    assert PushDeliveryLog.objects.filter(status="sent").count() == total


def test_a_missing_service_account_file_retries_the_push_later_and_deactivates_nothing(
    fake_fcm, commit, settings, tmp_path
):
    from pushes.providers import reset_provider

    settings.FCM_SERVICE_ACCOUNT_FILE = str(tmp_path / "missing.json")
    reset_provider()
    room = make_room(recipients=1)
    commit(send, room)
    assert services.dispatch_due_pushes() == 1
    push = PushNotification.objects.get()
    assert push.status == "sending" and push.next_attempt_at is not None  # not stuck: retried with backoff
    assert PushDeliveryLog.objects.get(push=push).status == "failed"
    assert UserDevice.objects.filter(active=False).count() == 0


def first_attempt_rejected_by_one_device_and_busy_on_the_other(fake_fcm, commit) -> tuple[str, str, PushNotification]:
    """One push to a user with two devices, after its first attempt: (rejecting token, busy token, push)."""
    room = make_room(recipients=1, devices_each=2)
    rejecting, busy = tokens_of(room.members[0])
    fake_fcm.script(rejecting, [{"error": "INVALID_ARGUMENT_PAYLOAD"}])
    fake_fcm.script(busy, [{"error": "UNAVAILABLE", "retry_after": 1}])
    commit(send, room)
    services.dispatch_due_pushes()
    return rejecting, busy, PushNotification.objects.get()


def wait_until_due(push: PushNotification) -> None:
    while timezone.now() < push.next_attempt_at:
        time.sleep(0.1)


def test_a_device_that_rejected_a_push_for_good_is_not_sent_it_again_when_another_device_retries(fake_fcm, commit):
    rejecting, busy, push = first_attempt_rejected_by_one_device_and_busy_on_the_other(fake_fcm, commit)
    assert push.status == "sending"  # the busy device gets another try

    wait_until_due(push)
    assert services.dispatch_due_pushes() == 1
    push.refresh_from_db()
    assert push.status == "sent" and push.delivery_attempts == 2
    tried = list(PushDeliveryLog.objects.filter(push=push).values_list("device__token", "status"))
    assert sorted(tried) == sorted([(rejecting, "failed"), (busy, "failed"), (busy, "sent")])
    assert [d["token"] for d in fake_fcm.deliveries()] == [busy]


def test_a_push_whose_only_remaining_device_vanished_fails_with_the_earlier_rejection(fake_fcm, commit):
    rejecting, busy, push = first_attempt_rejected_by_one_device_and_busy_on_the_other(fake_fcm, commit)
    services.deactivate_device(UserDevice.objects.get(token=busy), reason="logged out")
    wait_until_due(push)
    services.dispatch_due_pushes()
    push.refresh_from_db()
    assert (push.status, push.status_reason) == ("failed", "payload_rejected")
    assert push.last_error.startswith("INVALID_ARGUMENT")
    assert PushDeliveryLog.objects.filter(push=push, device__token=rejecting).count() == 1
