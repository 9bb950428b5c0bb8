"""The fake FCM server itself: OAuth, FCM's request/response shapes, control API (real subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from pushes.fakefcm.app import parse_error_mix
from pushes.fakefcm.service_account import build_service_account, ensure_service_account

from .conftest import FakeFcmServer

SCOPES = ["https://www.googleapis.com/auth/firebase.messaging"]


def access_token(service_account_file: str) -> str:
    creds = service_account.Credentials.from_service_account_file(service_account_file, scopes=SCOPES)
    creds.refresh(Request())
    return creds.token


def send(server: FakeFcmServer, body: dict, token: str | None, http2: bool = False) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(http1=not http2, http2=http2) as client:
        return client.post(
            f"{server.base_url}/v1/projects/{server.project_id}/messages:send", json=body, headers=headers
        )


def fcm_body(token: str = "device-token-1", **message: object) -> dict:
    return {"message": {"token": token, "data": {"type": "new_message"}, **message}}


def test_google_auth_gets_a_bearer_token_from_the_service_account_file(fake_fcm: FakeFcmServer) -> None:
    info = json.loads(Path(fake_fcm.service_account_file).read_text())
    assert info["token_uri"] == f"{fake_fcm.base_url}/token"
    assert access_token(fake_fcm.service_account_file).startswith("ya29.")
    assert fake_fcm.stats()["token_requests"] == 1


def test_token_endpoint_refuses_an_assertion_signed_by_another_key(fake_fcm: FakeFcmServer, tmp_path) -> None:
    stranger = tmp_path / "stranger.json"
    stranger.write_text(json.dumps(build_service_account(fake_fcm.base_url, fake_fcm.project_id)))
    creds = service_account.Credentials.from_service_account_info(json.loads(stranger.read_text()), scopes=SCOPES)
    with pytest.raises(Exception, match="invalid_grant"):
        creds.refresh(Request())


def test_send_without_a_valid_bearer_token_is_401_unauthenticated(fake_fcm: FakeFcmServer) -> None:
    for token in (None, "made-up"):
        response = send(fake_fcm, fcm_body(), token)
        assert response.status_code == 401
        assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_the_same_port_serves_http1_and_h2c_prior_knowledge(fake_fcm: FakeFcmServer) -> None:
    token = access_token(fake_fcm.service_account_file)
    h1 = send(fake_fcm, fcm_body("t-h1"), token)
    h2 = send(fake_fcm, fcm_body("t-h2"), token, http2=True)
    assert (h1.http_version, h1.status_code) == ("HTTP/1.1", 200)
    assert (h2.http_version, h2.status_code) == ("HTTP/2", 200)
    assert h2.json()["name"].startswith(f"projects/{fake_fcm.project_id}/messages/")


def test_unregistered_token_gets_fcms_real_404_body(fake_fcm: FakeFcmServer) -> None:
    token = access_token(fake_fcm.service_account_file)
    fake_fcm.unregister(["gone-token"])
    for _ in range(2):  # stays unregistered
        response = send(fake_fcm, fcm_body("gone-token"), token)
        assert response.status_code == 404
        assert response.json() == {
            "error": {
                "code": 404,
                "message": "Requested entity was not found.",
                "status": "NOT_FOUND",
                "details": [
                    {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}
                ],
            }
        }
    assert fake_fcm.stats()["errors"] == {"UNREGISTERED": 2}


def test_unavailable_and_quota_carry_retry_after(fake_fcm: FakeFcmServer) -> None:
    token = access_token(fake_fcm.service_account_file)
    fake_fcm.script("busy", [{"error": "UNAVAILABLE", "retry_after": 3}, {"error": "QUOTA_EXCEEDED"}])
    first = send(fake_fcm, fcm_body("busy"), token)
    second = send(fake_fcm, fcm_body("busy"), token)
    third = send(fake_fcm, fcm_body("busy"), token)
    assert (first.status_code, first.headers["retry-after"]) == (503, "3")
    assert (second.status_code, second.json()["error"]["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert "retry-after" in second.headers
    assert third.status_code == 200


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (fcm_body(data={"count": 3}), "must be a string"),
        (fcm_body(data={"blob": "x" * 4096}), "too large"),
        (fcm_body(android={"priority": "urgent"}), "priority"),
        (fcm_body(apns={"headers": {"apns-priority": "10", "apns-push-type": "background"}}), "apns-priority 10"),
        ({"nomessage": True}, "'message' is required"),
    ],
)
def test_bad_payloads_are_invalid_argument_that_blame_the_payload(fake_fcm: FakeFcmServer, body, says) -> None:
    response = send(fake_fcm, body, access_token(fake_fcm.service_account_file))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and says in error["message"]
    assert "registration token" not in error["message"]


def test_missing_token_is_invalid_argument_about_the_registration_token(fake_fcm: FakeFcmServer) -> None:
    response = send(fake_fcm, fcm_body(token=""), access_token(fake_fcm.service_account_file))
    assert response.status_code == 400
    assert "The registration token is not a valid FCM registration token" in response.json()["error"]["message"]


def test_deliveries_page_by_cursor_and_filter_by_token(fake_fcm: FakeFcmServer) -> None:
    token = access_token(fake_fcm.service_account_file)
    for i in range(5):
        assert send(fake_fcm, fcm_body(f"tok-{i % 2}"), token).status_code == 200
    everything = fake_fcm.deliveries()
    assert [d["cursor"] for d in everything] == sorted(d["cursor"] for d in everything)
    assert len(everything) == 5
    assert [d["token"] for d in fake_fcm.deliveries(after=everything[2]["cursor"])] == ["tok-1", "tok-0"]
    assert len(fake_fcm.deliveries(token="tok-0")) == 3
    page = httpx.get(f"{fake_fcm.base_url}/__fake__/deliveries", params={"limit": 2}).json()
    assert len(page["deliveries"]) == 2 and page["next"] == page["deliveries"][-1]["cursor"]


def test_error_mix_set_at_run_time_applies_and_reset_restores_the_startup_mix(fake_fcm: FakeFcmServer) -> None:
    token = access_token(fake_fcm.service_account_file)
    fake_fcm.configure(error_mix="internal=1")
    assert send(fake_fcm, fcm_body(), token).status_code == 500
    fake_fcm.reset()
    assert send(fake_fcm, fcm_body(), token).status_code == 200
    stats = fake_fcm.stats()
    assert (stats["requests"], stats["accepted"], stats["errors"]) == (1, 1, {})


def test_control_api_rejects_unknown_scripted_errors(fake_fcm: FakeFcmServer) -> None:
    response = httpx.post(f"{fake_fcm.base_url}/__fake__/script", json={"token": "t", "responses": [{"error": "NOPE"}]})
    assert response.status_code == 400


def test_error_mix_parser_knows_the_command_line_keys() -> None:
    assert parse_error_mix("unregistered=0.02,unavailable=0.01,quota=0.002") == {
        "UNREGISTERED": 0.02,
        "UNAVAILABLE": 0.01,
        "QUOTA_EXCEEDED": 0.002,
    }
    with pytest.raises(ValueError):
        parse_error_mix("bogus=1")
    with pytest.raises(ValueError):
        parse_error_mix("internal=0.8,quota=0.5")


def test_service_account_file_is_reused_when_it_already_points_at_the_same_fake(tmp_path) -> None:
    path = tmp_path / "sa.json"
    first = ensure_service_account(path, "http://127.0.0.1:9", "p")
    assert ensure_service_account(path, "http://127.0.0.1:9", "p") == first
    assert ensure_service_account(path, "http://127.0.0.1:10", "p")["private_key"] != first["private_key"]
