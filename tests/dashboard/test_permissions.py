"""The permission matrix: every dashboard view and action, for anonymous, a non-staff user and each role."""

from __future__ import annotations

import pytest
from django.urls import get_resolver, reverse

from dashboard import urls as dashboard_urls
from dashboard.models import AlertRule
from dashboard.permissions import VIEW_ROLES
from tests.dashboard.factories import staff
from tests.factories import UserDeviceFactory, UserFactory

PUBLIC = {"login", "logout", "plotly_js"}
POST_ONLY = {"device_deactivate", "device_test_push", "alert_create", "alert_delete"}

# The expected matrix, written out (not derived from VIEW_ROLES) so a change to the table is a test change.
ALLOWED = {
    "overview": {"admins", "support", "managers"},
    "deliveries": {"admins", "support", "managers"},
    "deliveries_data": {"admins", "support", "managers"},
    "deliveries_csv": {"admins", "support", "managers"},
    "alerts": {"admins", "support", "managers"},
    "client_health": {"admins", "support", "managers"},
    "alert_create": {"admins"},
    "alert_delete": {"admins"},
    "devices": {"admins", "support"},
    "device_detail": {"admins", "support"},
    "device_deactivate": {"admins", "support"},
    "device_test_push": {"admins", "support"},
    "trace": {"admins", "support"},
    "feed": {"admins", "support"},
    "flags": {"admins"},
    "flag_edit": {"admins"},
}
USERS = ["anonymous", "non_staff", "staff_without_role", "managers", "support", "admins", "superuser"]


def dashboard_url_names() -> set[str]:
    return {p.name for p in dashboard_urls.urlpatterns}


def test_every_dashboard_view_is_in_the_role_table_and_the_matrix():
    guarded = dashboard_url_names() - PUBLIC
    assert guarded == set(VIEW_ROLES) == set(ALLOWED)
    for pattern in dashboard_urls.urlpatterns:
        if pattern.name not in PUBLIC:
            assert getattr(pattern.callback, "dashboard_view_name", None) == pattern.name


def make_user(kind: str):
    if kind == "anonymous":
        return None
    if kind == "non_staff":
        return UserFactory()
    if kind == "staff_without_role":
        return staff(None)
    if kind == "superuser":
        return staff(None, is_superuser=True)
    return staff(kind)


def may(kind: str, view: str) -> bool:
    if kind == "superuser":
        return True
    return kind in ALLOWED[view]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", USERS)
def test_permission_matrix_over_every_view_and_action(client, kind):
    device = UserDeviceFactory()
    rule = AlertRule.objects.create(name="low", metric="delivery_rate", comparison="below", threshold=0.5)
    kwargs = {
        "device_detail": {"device_id": device.pk},
        "device_deactivate": {"device_id": device.pk},
        "device_test_push": {"device_id": device.pk},
        "flag_edit": {"key": "features.push_resync.killSwitch"},
        "alert_delete": {"rule_id": rule.pk},
    }
    user = make_user(kind)
    if user is not None:
        client.force_login(user)
    for view in sorted(ALLOWED):
        url = reverse(f"dashboard:{view}", kwargs=kwargs.get(view))
        response = client.post(url, {"reason": "matrix"}) if view in POST_ONLY else client.get(url)
        if kind == "anonymous":
            assert response.status_code == 302 and response["Location"].startswith("/dashboard/login/"), view
        elif may(kind, view):
            assert response.status_code not in (401, 403, 500), (view, response.status_code)
            assert not response.get("Location", "").startswith("/dashboard/login/"), view
        else:
            assert response.status_code == 403, (view, kind, response.status_code)


@pytest.mark.django_db
def test_actions_refuse_get_so_a_link_cannot_trigger_them(client):
    device = UserDeviceFactory()
    client.force_login(staff("admins"))
    for view in ("device_deactivate", "device_test_push"):
        assert client.get(reverse(f"dashboard:{view}", kwargs={"device_id": device.pk})).status_code == 405


@pytest.mark.django_db
def test_forms_are_csrf_protected(settings):
    from django.test import Client

    device = UserDeviceFactory()
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(staff("admins"))
    url = reverse("dashboard:device_deactivate", kwargs={"device_id": device.pk})
    assert csrf_client.post(url, {"reason": "no token"}).status_code == 403
    device.refresh_from_db()
    assert device.active


def test_resolver_has_dashboard_namespace():
    assert "dashboard" in get_resolver().namespace_dict
