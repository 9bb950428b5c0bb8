"""Browser tests: Playwright (sync API) driving Debian's Chromium against the real uvicorn server.

Each test logs in through the login form. Screenshots land in $PUSHWATCH_SCREENSHOT_DIR (make screenshots:
docs/screenshots) or a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.dashboard.factories import PASSWORD, PushFactory, insert_log, staff
from tests.factories import GroupMemberFactory, UserDeviceFactory
from tests.processes import asgi_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# `make screenshots` refreshes the README's pictures in docs/screenshots; a plain test run keeps its own copy
# out of the work tree.
SCREENSHOTS = Path(os.environ.get("PUSHWATCH_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "pushwatch-screenshots")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
KILL = "features.push_resync.killSwitch"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls in these tests are
    # plain synchronous setup and teardown, so tell Django's async guard that this is intended.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield b
            b.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def server(browser):
    with asgi_server() as base:
        yield base


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def seed_flags():
    """The seed-000 flags as migration flags/0003 creates them: an earlier transactional test's flush
    may have emptied the table (serialized_rollback restores it only when the test DB was serialized)."""
    from flags.defaults import SEED_FLAGS
    from flags.models import Flag

    for seed in SEED_FLAGS:
        Flag.objects.get_or_create(
            key=seed["key"],
            defaults={"type": seed["type"], "value": seed["default"], "default": seed["default"],
                      "description": seed["description"], "schema": seed["schema"], "rules": []},
        )  # fmt: skip


def login(page, base: str, user) -> None:
    page.goto(f"{base}/dashboard/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/$"))


def shot(page, name: str, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


@pytest.mark.parametrize("role", ["admins", "support", "managers"])
def test_each_role_logs_in_and_sees_only_its_pages(server, page, role):
    user = staff(role)
    if role == "admins":
        page.goto(f"{server}/dashboard/login/")
        shot(page, "login")
    login(page, server, user)
    nav = page.locator("nav.nav").inner_text()
    assert "Overview" in nav and "Deliveries" in nav
    assert ("Flags" in nav) == (role == "admins")
    assert ("Devices" in nav) == (role in ("admins", "support"))
    if role == "admins":
        shot(page, "overview_empty")


def test_a_manager_cannot_reach_the_flag_editor(server, page):
    login(page, server, staff("managers"))
    response = page.goto(f"{server}/dashboard/flags/{KILL}/edit")
    assert response.status == 403
    response = page.goto(f"{server}/dashboard/flags/")
    assert response.status == 403


def test_an_admin_flips_the_kill_switch_with_a_reason_and_sees_it_in_the_history(server, page, seed_flags):
    login(page, server, staff("admins", username="ada"))
    page.goto(f"{server}/dashboard/flags/")
    assert page.inner_text("[data-testid=kill-switch-state]") == "off"
    page.click("text=Turn kill-switch on")
    page.fill("input[name=reason]", "FCM incident: stop all pushes")
    page.check("input[name=confirm]")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#flag-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/flags/$"))
    assert page.inner_text("[data-testid=kill-switch-state]") == "ON"
    history = page.inner_text("[data-testid=flag-history]")
    assert "FCM incident: stop all pushes" in history and "ada" in history
    shot(page, "flags")


def test_the_live_feed_shows_a_new_messages_event_within_two_seconds(server, page):
    from messaging.services import send_message

    member = GroupMemberFactory()
    login(page, server, staff("support"))
    page.goto(f"{server}/dashboard/feed/")
    page.wait_for_selector("#feed-status.live", timeout=10_000)
    message, _ = send_message(sender=member.user, group_id=member.group_id, client_generated_id=uuid.uuid4(),
                              body="hello feed")  # fmt: skip
    started = time.monotonic()
    page.wait_for_selector(f"#feed-rows tr:has-text('message {str(message.pk)[:13]}')", timeout=2_000)
    assert time.monotonic() - started < 2.0 + 0.5  # the wait above already bounds it at 2 s
    shot(page, "feed")


def test_the_live_feed_shows_every_event_of_a_burst_even_when_ids_arrive_out_of_order(server, page):
    """Events commit in a different order than their ids were taken: a lower id arriving after a higher
    one is new, not a replay, and must get its row."""
    from concurrent.futures import ThreadPoolExecutor

    from channels.layers import get_channel_layer

    from realtime import services
    from realtime.models import RealtimeEvent
    from tests.factories import OrganizationFactory

    org = OrganizationFactory()
    login(page, server, staff("support"))
    page.goto(f"{server}/dashboard/feed/")
    page.wait_for_selector("#feed-status.live", timeout=10_000)
    burst = [services.emit(org, "burst.test", "n", i, {"i": i}) for i in range(120)]
    services.wait_for_broadcasts(5)
    page.wait_for_function("document.querySelectorAll('#feed-rows tr').length >= 120", timeout=5_000)
    # Two committed events whose broadcasts reach the server highest id first.
    early, late = (RealtimeEvent.objects.create(organization=org, event_type="late.commit", entity_type="n",
                                                entity_id=str(i)) for i in (1, 2))  # fmt: skip
    wire = [services.event_item(services_event(e)) for e in (late, early)]
    message = {"type": "rt.events", "events": wire, "pub": "browser-test", "pseq": 1, "grp": services.GROUP_ALL}
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        pool.submit(asyncio.run, get_channel_layer().group_send(services.GROUP_ALL, message)).result(10)
    page.wait_for_selector(f"#feed-rows tr:has-text('late.commit') >> text='{early.id}'", timeout=5_000)
    ids = [int(t) for t in page.locator("#feed-rows tr td:first-child").all_inner_texts()]
    assert set(burst) <= set(ids) and {early.id, late.id} <= set(ids)
    assert len(ids) == len(set(ids))  # no row twice
    page.wait_for_timeout(1200)  # let the events/s counter tick
    shot(page, "feed_burst", full_page=False)


def services_event(event) -> dict:
    from realtime.queries import serialize_event

    fields = ("id", "organization_id", "event_type", "entity_type", "entity_id", "payload", "created_at")
    return serialize_event({f: getattr(event, f) for f in fields})


def seed_deliveries() -> None:
    """A day of deliveries on two platforms with some failures, folded into the rollups."""
    from dashboard.services import refresh_rollups
    from pushes.models import PushNotification

    now = timezone.now()
    devices = [UserDeviceFactory(platform=p) for p in ("android", "ios", "android")]
    codes = ["UNREGISTERED", "UNAVAILABLE", "QUOTA_EXCEEDED"]
    for hour in range(24):
        for i, device in enumerate(devices):
            for k in range(1 + (hour + i) % 3):
                push = PushFactory(recipient=device.user, message_count=1 + (hour + k) % 3)
                at = now - timedelta(hours=hour, minutes=k)
                # Latency counts from the push's creation when there is no message: backdate it.
                accepted = at - timedelta(milliseconds=800 + 90 * ((hour * 7 + k) % 11))
                created = accepted - timedelta(milliseconds=40 + 35 * ((hour + i + k) % 9))
                PushNotification.objects.filter(pk=push.pk).update(created_at=created)
                insert_log(push, device, "sent", accepted)
                if (hour + k) % 5:
                    insert_log(push, device, "delivered", at)
                    if (hour + k) % 2:
                        insert_log(push, device, "opened", at + timedelta(seconds=30))
                else:
                    insert_log(push, device, "failed", at, codes[(hour + i) % 3])
    refresh_rollups(settle_seconds=0)


def test_the_deliveries_page_renders_plotly_traces(server, page):
    seed_deliveries()
    login(page, server, staff("managers"))
    page.goto(f"{server}/dashboard/deliveries/?range=24h")
    page.wait_for_selector("#charts[data-rendered='1']", timeout=15_000)
    for chart in ("funnel", "rate_by_platform", "errors", "latency", "messages_per_push"):
        assert page.locator(f"#chart-{chart}.js-plotly-plot").count() == 1, chart
    assert page.locator("#chart-funnel g.trace").count() == 3
    assert page.locator("#chart-rate_by_platform g.trace").count() == 2
    shot(page, "deliveries")


def test_support_screens_devices_and_trace(server, page):
    """Screenshots of the support pages with data on them (and the devices page answering a search)."""
    from messaging.services import send_message

    member = GroupMemberFactory(user__username="carol")
    other = GroupMemberFactory(group=member.group, user__username="dave")
    device = UserDeviceFactory(user=other.user, platform="ios")
    push = PushFactory(recipient=other.user)
    insert_log(push, device, "sent", timezone.now())
    message, _ = send_message(sender=member.user, group_id=member.group_id, client_generated_id=uuid.uuid4(),
                              body="trace me")  # fmt: skip
    login(page, server, staff("support"))
    page.goto(f"{server}/dashboard/devices/?q=dave")
    assert device.token not in page.content()
    shot(page, "devices")
    page.click(f"a[href='/dashboard/devices/{device.pk}/']")
    page.wait_for_selector("[data-testid=timeline]")
    assert device.token not in page.content()
    shot(page, "device_detail")
    page.goto(f"{server}/dashboard/trace/?message={message.pk}")
    assert "dave" in page.inner_text("main")
    shot(page, "trace")


def test_admin_screens_alerts_and_client_health(server, page):
    from dashboard.services import create_alert_rule, evaluate_alerts

    seed_deliveries()
    create_alert_rule(name="Delivery rate under 95 %", metric="delivery_rate", comparison="below", threshold=0.95,
                      window_minutes=24 * 60, min_volume=10)  # fmt: skip
    create_alert_rule(name="Errors over 50 %", metric="error_rate", comparison="above", threshold=0.5,
                      window_minutes=60, min_volume=10)  # fmt: skip
    evaluate_alerts()
    login(page, server, staff("admins"))
    shot(page, "overview")
    page.goto(f"{server}/dashboard/alerts/")
    assert "Alert firing: Delivery rate under 95 %" in page.inner_text("[data-testid=firing-alerts]")
    shot(page, "alerts")
    seed_client_counters()
    page.goto(f"{server}/dashboard/client-health/")
    page.wait_for_selector("#chart-health.js-plotly-plot")
    shot(page, "client_health")


def seed_client_counters() -> None:
    """Hourly client log-tag counters as the telemetry fold would leave them (for the screenshot)."""
    from telemetry.models import TelemetryCounter

    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    series = [("android", "push", "wake", "data", 40), ("ios", "push", "wake", "data", 25),
              ("ios", "rt", "rebuild", "", 6), ("android", "auth", "writes:blocked", "", 3),
              ("android", "sync", "merged", "", 55)]  # fmt: skip
    TelemetryCounter.objects.bulk_create(
        TelemetryCounter(
            hour=hour - timedelta(hours=h),
            platform=platform,
            tag=tag,
            action=action,
            reason=reason,
            count=base + (h * 7) % 13,
        )  # fmt: skip
        for h in range(24)
        for platform, tag, action, reason, base in series
    )
