"""GET /api/v1/events: own organization only, ascending, cursor, validation."""

from __future__ import annotations

import pytest

from realtime import services
from tests.factories import StaffUserFactory, UserFactory


@pytest.mark.django_db
def test_a_client_never_receives_another_organizations_event_over_http(api_client):
    alice, mallory = UserFactory(), UserFactory()
    mine = [services.emit(alice.organization, "note", "n", i, {"i": i}) for i in range(3)]
    services.emit(mallory.organization, "note", "n", 9, {"secret": True})
    services.emit(None, "flag.changed", "flag", "k", {})
    body = api_client(alice).get("/api/v1/events").json()
    assert [e["id"] for e in body["events"]] == mine
    assert all(e["organization_id"] == alice.organization_id for e in body["events"])
    assert body["next"] == mine[-1]


@pytest.mark.django_db
def test_the_cursor_pages_forward_in_ascending_order(api_client):
    user = UserFactory()
    ids = [services.emit(user.organization, "note", "n", i, {}) for i in range(5)]
    client = api_client(user)
    first = client.get("/api/v1/events", {"limit": 2}).json()
    second = client.get("/api/v1/events", {"since": first["next"], "limit": 2}).json()
    third = client.get("/api/v1/events", {"since": second["next"], "limit": 2}).json()
    done = client.get("/api/v1/events", {"since": third["next"]}).json()
    assert [e["id"] for e in first["events"] + second["events"] + third["events"]] == ids
    assert done == {"events": [], "next": ids[-1]}


@pytest.mark.django_db
@pytest.mark.parametrize("query", [{"since": "abc"}, {"since": "-1"}, {"limit": "0"}, {"limit": "501"},
                                   {"since": "99999999999999999999999"}, {"limit": "ten"}])  # fmt: skip
def test_bad_cursors_and_limits_are_400_with_the_error_shape(api_client, query):
    response = api_client(UserFactory()).get("/api/v1/events", query)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


@pytest.mark.django_db
def test_events_need_a_token(api_client):
    assert api_client().get("/api/v1/events").status_code == 401


@pytest.mark.django_db
def test_a_staff_account_without_an_organization_is_refused(api_client):
    response = api_client(StaffUserFactory()).get("/api/v1/events")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_organization"
