"""GET /api/v1/config: evaluated flags for the caller, ETag / 304, 400 on bad input."""

from __future__ import annotations

import pytest

from flags.services import set_flag
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/config"


@pytest.fixture
def client(api_client):
    return api_client(UserFactory())


def test_config_answers_the_evaluated_flags_with_an_etag(client):
    response = client.get(URL, {"platform": "android", "app_version": "1.4.0"})
    assert response.status_code == 200
    assert response.json() == {
        "flags": {
            "auth.refreshTimeoutMs": 1800,
            "features.push_resync.enabled": True,
            "features.push_resync.killSwitch": False,
            "outbox.retryShortDelayMs": 700,
            "realtime.retryBackoff": [1500, 3000, 6000],
            "sync.maxBatch": 200,
        },
        "kill_switch": False,
    }
    assert response["ETag"].startswith('"') and response["ETag"].endswith('"')
    assert "private" in response["Cache-Control"]


def test_if_none_match_with_the_current_etag_answers_304_without_a_body(client):
    etag = client.get(URL, {"platform": "ios"})["ETag"]
    again = client.get(URL, {"platform": "ios"}, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    assert client.get(URL, {"platform": "ios"}, HTTP_IF_NONE_MATCH=f'"other", W/{etag}').status_code == 304
    assert client.get(URL, {"platform": "ios"}, HTTP_IF_NONE_MATCH='"stale"').status_code == 200


def test_a_flag_change_changes_the_etag_and_the_answer(client, admin):
    etag = client.get(URL)["ETag"]
    set_flag("sync.maxBatch", 350, changed_by=admin, reason="bigger pages")
    response = client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["flags"]["sync.maxBatch"] == 350
    assert response["ETag"] != etag


def test_targeting_rules_shape_the_answer_per_caller(client, admin):
    set_flag("sync.maxBatch", 200, changed_by=admin, reason="new ios clients",
             rules=[{"platform": "ios", "min_app_version": "1.10.0", "value": 500}])  # fmt: skip
    new_ios = client.get(URL, {"platform": "ios", "app_version": "1.10.0"})
    old_ios = client.get(URL, {"platform": "ios", "app_version": "1.9.2"})
    assert new_ios.json()["flags"]["sync.maxBatch"] == 500
    assert old_ios.json()["flags"]["sync.maxBatch"] == 200
    assert new_ios["ETag"] != old_ios["ETag"]


def test_with_the_kill_switch_on_the_answer_says_so_and_push_resync_is_off(client, admin):
    set_flag("features.push_resync.killSwitch", True, changed_by=admin, reason="incident 7")
    body = client.get(URL, {"platform": "ios", "app_version": "9.0.0"}).json()
    assert body["kill_switch"] is True
    assert body["flags"]["features.push_resync.enabled"] is False


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"platform": "windows"}, "platform"),
        ({"platform": "iOS"}, "platform"),
        ({"app_version": "one point two"}, "app_version"),
        ({"app_version": "1." * 100}, "app_version"),
        ({"platform": "web", "app_version": "x"}, "platform"),
    ],
)
def test_a_bad_platform_or_version_is_a_400_in_the_error_shape(client, params, field):
    response = client.get(URL, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]


def test_config_needs_a_token(api_client):
    response = api_client().get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
