"""Every API failure answers in DESIGN.md's error shape, never as HTML or a 500."""

import pytest

from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.foundation.urls")]


def _assert_error(response, status: int, code: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_missing_token_is_401_in_error_shape(api_client):
    _assert_error(api_client().post("/api/v1/echo", {"name": "x"}, format="json"), 401, "not_authenticated")


def test_bad_token_is_401(api_client):
    client = api_client()
    client.credentials(HTTP_AUTHORIZATION="Token nope")
    _assert_error(client.post("/api/v1/echo", {}, format="json"), 401, "authentication_failed")


def test_malformed_json_is_400(api_client):
    response = api_client(UserFactory()).post("/api/v1/echo", data="{not json", content_type="application/json")
    _assert_error(response, 400, "malformed_json")


def test_validation_error_names_the_field(api_client):
    error = _assert_error(api_client(UserFactory()).post("/api/v1/echo", {"name": "x" * 20}, format="json"), 400)
    assert "name" in error["fields"]


def test_wrong_method_is_405(api_client):
    _assert_error(api_client(UserFactory()).get("/api/v1/echo"), 405, "method_not_allowed")


def test_unknown_api_path_is_json_404(api_client):
    _assert_error(api_client(UserFactory()).get("/api/v1/no-such-thing"), 404, "not_found")


def test_oversized_body_is_413(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api_client(UserFactory()).post("/api/v1/echo", {"name": "x" * 5000}, format="json")
    _assert_error(response, 413, "payload_too_large")


def test_openapi_schema_is_served(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content


def test_api_docs_page_uses_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"cdn.jsdelivr" not in response.content
