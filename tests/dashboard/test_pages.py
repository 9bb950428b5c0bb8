"""Dashboard pages and actions through Django's test client (real PostgreSQL and Redis)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from dashboard import services
from dashboard.models import AlertRule
from flags.models import FlagChange
from flags.queries import flag_value
from realtime.models import RealtimeEvent
from tests.dashboard.factories import PASSWORD, PushFactory, insert_log, staff
from tests.factories import MessageFactory, UserDeviceFactory

KILL = "features.push_resync.killSwitch"
PAGES = ["overview", "deliveries", "devices", "trace", "flags", "feed", "alerts", "client_health"]


@pytest.fixture
def admin_client(client):
    client.force_login(staff("admins"))
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_an_empty_state_on_an_empty_database(admin_client, name):
    response = admin_client.get(reverse(f"dashboard:{name}"))
    assert response.status_code == 200
    assert b"Traceback" not in response.content


@pytest.mark.django_db
def test_nav_shows_only_the_pages_a_manager_may_use(client):
    client.force_login(staff("managers"))
    html = client.get(reverse("dashboard:overview")).content.decode()
    assert 'href="/dashboard/deliveries/"' in html
    assert 'href="/dashboard/flags/"' not in html
    assert 'href="/dashboard/devices/"' not in html


@pytest.mark.django_db
def test_repeated_failed_logins_are_throttled_even_with_the_right_password_afterwards(client):
    cache.clear()
    user = staff("admins")
    url = reverse("dashboard:login")
    for _ in range(5):
        assert client.post(url, {"username": user.username, "password": "wrong"}).status_code == 200
    response = client.post(url, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    cache.clear()
    assert client.post(url, {"username": user.username, "password": PASSWORD}).status_code == 302


@pytest.mark.django_db
def test_logout_is_a_post_and_ends_the_session(admin_client):
    assert admin_client.post(reverse("dashboard:logout")).status_code == 302
    assert admin_client.get(reverse("dashboard:overview")).status_code == 302


@pytest.mark.django_db
def test_device_search_and_detail_never_show_a_full_token(client):
    client.force_login(staff("support"))
    device = UserDeviceFactory(user__username="alice")
    search = client.get(reverse("dashboard:devices"), {"q": "ali"}).content.decode()
    assert device.token_prefix in search and device.token not in search
    search_by_prefix = client.get(reverse("dashboard:devices"), {"q": device.token[:8]}).content.decode()
    assert str(device.pk) in search_by_prefix
    insert_log(PushFactory(recipient=device.user), device, "failed", timezone.now(), "UNREGISTERED")
    detail = client.get(reverse("dashboard:device_detail", kwargs={"device_id": device.pk})).content.decode()
    assert device.token_prefix in detail and device.token not in detail
    assert "UNREGISTERED" in detail  # the log line's error code on the timeline


@pytest.mark.django_db
def test_support_deactivates_a_device_with_a_reason_that_is_kept_and_emitted(client):
    client.force_login(staff("support", username="sam"))
    device = UserDeviceFactory()
    url = reverse("dashboard:device_deactivate", kwargs={"device_id": device.pk})
    assert client.post(url, {"reason": ""}).status_code == 302
    device.refresh_from_db()
    assert device.active  # no reason, no deactivation
    client.post(url, {"reason": "user reported a stolen phone"})
    device.refresh_from_db()
    assert not device.active and "stolen phone" in device.deactivation_reason
    assert RealtimeEvent.objects.filter(event_type="device.deactivated", entity_id=str(device.pk)).exists()


@pytest.mark.django_db
def test_a_test_push_is_queued_for_that_one_device(client, django_capture_on_commit_callbacks):
    from pushes.models import PushNotification

    client.force_login(staff("support"))
    device = UserDeviceFactory()
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("dashboard:device_test_push", kwargs={"device_id": device.pk}))
    push = PushNotification.objects.get(target_device=device)
    assert push.group_id is None and push.recipient_id == device.user_id


@pytest.mark.django_db
def test_unknown_device_is_a_404(admin_client):
    import uuid

    assert admin_client.get(reverse("dashboard:device_detail", kwargs={"device_id": uuid.uuid4()})).status_code == 404


@pytest.mark.django_db
def test_message_trace_lists_every_other_member_with_an_outcome(client):
    from tests.factories import GroupMemberFactory

    client.force_login(staff("support"))
    message = MessageFactory()
    GroupMemberFactory(group=message.group, user=message.sender)
    GroupMemberFactory(group=message.group, user__username="bob")
    html = client.get(reverse("dashboard:trace"), {"message": str(message.pk)}).content.decode()
    assert "bob" in html and "no_active_device" in html
    assert "No message with id" in client.get(reverse("dashboard:trace"), {"message": "nope"}).content.decode()


@pytest.mark.django_db
def test_kill_switch_needs_confirmation_and_a_reason_then_shows_in_history(admin_client):
    url = reverse("dashboard:flag_edit", kwargs={"key": KILL})
    assert admin_client.get(url).status_code == 200
    refused = admin_client.post(url, {"value": "true", "reason": "incident 42"})
    assert refused.status_code == 400 and flag_value(KILL) is False
    no_reason = admin_client.post(url, {"value": "true", "reason": " ", "confirm": "on"})
    assert no_reason.status_code == 400 and flag_value(KILL) is False
    done = admin_client.post(url, {"value": "true", "reason": "incident 42", "confirm": "on"})
    assert done.status_code == 302
    change = FlagChange.objects.get(flag__key=KILL)
    assert change.reason == "incident 42" and change.new["value"] is True
    html = admin_client.get(reverse("dashboard:flags")).content.decode()
    assert "incident 42" in html and 'data-testid="kill-switch-state">ON' in html


@pytest.mark.django_db
def test_a_badly_typed_flag_value_is_shown_as_a_form_error(admin_client):
    url = reverse("dashboard:flag_edit", kwargs={"key": "sync.maxBatch"})
    response = admin_client.post(url, {"value": '"lots"', "reason": "try"})
    assert response.status_code == 400
    assert admin_client.post(url, {"value": "{not json", "reason": "try"}).status_code == 400


@pytest.mark.django_db
def test_csv_export_has_the_rows_the_chart_shows(admin_client):
    device = UserDeviceFactory()
    push = PushFactory(recipient=device.user)
    insert_log(push, device, "sent", timezone.now())
    insert_log(push, device, "failed", timezone.now(), "UNAVAILABLE")
    services.refresh_rollups(settle_seconds=0)
    url = reverse("dashboard:deliveries_csv")
    funnel = list(csv.reader(io.StringIO(admin_client.get(url, {"range": "24h", "chart": "funnel"}).content.decode())))
    assert funnel[0] == ["bucket_start", "sent", "delivered", "opened", "failed"]
    assert len(funnel) == 25 and funnel[-1][1:] == ["1", "0", "0", "1"]
    errors = list(csv.reader(io.StringIO(admin_client.get(url, {"range": "30d", "chart": "errors"}).content.decode())))
    assert errors == [["error_code", "count"], ["UNAVAILABLE", "1"]]
    assert admin_client.get(url, {"chart": "nope"}).status_code == 404


@pytest.mark.django_db
def test_chart_data_ignores_junk_parameters(admin_client):
    response = admin_client.get(reverse("dashboard:deliveries_data"), {"range": "<x>", "organization": "'; drop"})
    assert response.status_code == 200 and response.json()["range"] == "7d"


@pytest.mark.django_db
def test_a_firing_alert_shows_on_every_page_and_is_emitted_as_an_event(client):
    device = UserDeviceFactory()
    now = timezone.now()
    for i in range(30):
        push = PushFactory(recipient=device.user)
        insert_log(push, device, "sent", now - timedelta(seconds=i))
        if i < 10:
            insert_log(push, device, "delivered", now)
    services.refresh_rollups(settle_seconds=0)
    admin = staff("admins")
    client.force_login(admin)
    client.post(
        reverse("dashboard:alert_create"),
        {"name": "delivery dip", "metric": "delivery_rate", "comparison": "below", "threshold": "0.9",
         "window_minutes": "60", "min_volume": "20", "organization_id": ""},
    )  # fmt: skip
    rule = AlertRule.objects.get(name="delivery dip")
    assert [r.pk for r in services.evaluate_alerts()] == [rule.pk]
    rule.refresh_from_db()
    assert rule.firing and rule.last_value == pytest.approx(10 / 30, abs=1e-3)
    assert RealtimeEvent.objects.filter(event_type="alert.firing", entity_id=str(rule.pk)).exists()
    client.force_login(staff("managers"))
    for name in ("overview", "deliveries", "alerts", "client_health"):
        assert "Alert firing: delivery dip" in client.get(reverse(f"dashboard:{name}")).content.decode()
    assert services.evaluate_alerts() == []  # still firing: no second event


@pytest.mark.django_db
def test_an_alert_below_its_minimum_volume_does_not_fire(admin_client):
    device = UserDeviceFactory()
    insert_log(PushFactory(recipient=device.user), device, "sent", timezone.now())
    services.refresh_rollups(settle_seconds=0)
    services.create_alert_rule(name="r", metric="delivery_rate", comparison="below", threshold=0.9,
                               window_minutes=60, min_volume=20)  # fmt: skip
    assert services.evaluate_alerts() == []


@pytest.mark.django_db
def test_plotly_is_served_locally(admin_client):
    response = admin_client.get(reverse("dashboard:plotly_js"))
    assert response.status_code == 200
    assert b"plotly" in b"".join(response.streaming_content)[:2000].lower()


@pytest.mark.django_db
def test_live_feed_backlog_shows_payloads_as_json_like_the_live_rows(admin_client):
    event = RealtimeEvent.objects.create(
        organization=None, event_type="push.batch", entity_type="push_batch", entity_id="b1", payload={"sent": 7}
    )
    response = admin_client.get(reverse("dashboard:feed"))
    assert response.status_code == 200
    assert str(event.id).encode() in response.content
    assert b"{&quot;sent&quot;: 7}" in response.content
    assert b"{&#x27;sent&#x27;" not in response.content
