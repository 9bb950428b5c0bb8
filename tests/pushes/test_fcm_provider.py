"""The FCM HTTP v1 provider against the real fake FCM server over HTTP (no mocks)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

import httpx
import pytest

from pushes.providers import MAX_DATA_BYTES, OutgoingMessage, get_provider, reset_provider

from .conftest import FakeFcmServer


def make_token() -> str:
    # Long and unique like a real FCM registration token.
    return f"fcm{uuid.uuid4().hex}:{uuid.uuid4().hex}{uuid.uuid4().hex}"


def message(platform: str = "android", token: str | None = None, **data: str) -> OutgoingMessage:
    return OutgoingMessage(
        device_id=uuid.uuid4(),
        token=token or make_token(),
        platform=platform,
        data=data or {"type": "new_message", "group_id": str(uuid.uuid4()), "count": "1"},
        collapse_key="group-1",
    )


def test_accepted_send_returns_the_fcm_message_name_and_reaches_the_fake(fake_fcm: FakeFcmServer) -> None:
    msg = message()
    [outcome] = get_provider().send_many_sync([msg])
    assert outcome.ok and outcome.http_status == 200 and outcome.error_code is None
    assert outcome.message_name.startswith(f"projects/{fake_fcm.project_id}/messages/")
    assert outcome.device_id == msg.device_id
    [delivery] = fake_fcm.deliveries(token=msg.token)
    assert delivery["message"]["data"] == msg.data
    assert delivery["name"] == outcome.message_name


def test_android_gets_high_priority_and_ios_a_background_apns_push(fake_fcm: FakeFcmServer) -> None:
    android, ios = message("android"), message("ios")
    assert all(o.ok for o in get_provider().send_many_sync([android, ios]))
    android_sent = fake_fcm.deliveries(token=android.token)[0]["message"]
    ios_sent = fake_fcm.deliveries(token=ios.token)[0]["message"]
    assert android_sent["android"] == {"priority": "high", "collapse_key": "group-1"}
    assert "apns" not in android_sent
    assert ios_sent["apns"]["headers"]["apns-priority"] == "5"
    assert ios_sent["apns"]["headers"]["apns-push-type"] == "background"
    assert ios_sent["apns"]["payload"] == {"aps": {"content-available": 1}}
    assert "android" not in ios_sent
    assert all(isinstance(v, str) for v in ios_sent["data"].values())


@pytest.mark.parametrize(
    ("scripted", "http_status", "error_code", "token_is_invalid"),
    [
        ("UNREGISTERED", 404, "UNREGISTERED", False),
        ("SENDER_ID_MISMATCH", 403, "SENDER_ID_MISMATCH", False),
        ("INVALID_ARGUMENT_TOKEN", 400, "INVALID_ARGUMENT", True),
        ("INVALID_ARGUMENT_PAYLOAD", 400, "INVALID_ARGUMENT", False),
        ("UNAVAILABLE", 503, "UNAVAILABLE", False),
        ("INTERNAL", 500, "INTERNAL", False),
        ("QUOTA_EXCEEDED", 429, "QUOTA_EXCEEDED", False),
        ("THIRD_PARTY_AUTH_ERROR", 401, "THIRD_PARTY_AUTH_ERROR", False),
    ],
)
def test_each_fcm_error_body_is_parsed_into_its_error_code(
    fake_fcm: FakeFcmServer, scripted: str, http_status: int, error_code: str, token_is_invalid: bool
) -> None:
    msg = message()
    fake_fcm.script(msg.token, [{"error": scripted}])
    [outcome] = get_provider().send_many_sync([msg])
    assert not outcome.ok
    assert (outcome.http_status, outcome.error_code) == (http_status, error_code)
    assert outcome.token_is_invalid is token_is_invalid
    assert outcome.detail  # FCM's message is kept for the delivery log


def test_retry_after_header_is_read_for_unavailable_and_quota(fake_fcm: FakeFcmServer) -> None:
    unavailable, quota = message(), message()
    fake_fcm.script(unavailable.token, [{"error": "UNAVAILABLE", "retry_after": 2}])
    fake_fcm.script(quota.token, [{"error": "QUOTA_EXCEEDED", "retry_after": 60}])
    first, second = get_provider().send_many_sync([unavailable, quota])
    assert (first.error_code, first.retry_after) == ("UNAVAILABLE", 2.0)
    assert (second.error_code, second.retry_after) == ("QUOTA_EXCEEDED", 60.0)


def test_script_is_consumed_then_the_token_succeeds_again(fake_fcm: FakeFcmServer) -> None:
    msg = message()
    fake_fcm.script(msg.token, [{"error": "UNAVAILABLE", "retry_after": 1}])
    provider = get_provider()
    assert provider.send_many_sync([msg])[0].error_code == "UNAVAILABLE"
    assert provider.send_many_sync([msg])[0].ok


def test_oauth_token_is_fetched_once_and_reused_across_batches(fake_fcm: FakeFcmServer) -> None:
    provider = get_provider()
    for _ in range(3):
        outcomes = provider.send_many_sync([message() for _ in range(20)])
        assert all(o.ok for o in outcomes)
    stats = fake_fcm.stats()
    assert stats["token_requests"] == 1
    assert stats["accepted"] == 60


def test_concurrent_streams_never_exceed_the_setting(fake_fcm: FakeFcmServer, settings) -> None:
    settings.FCM_MAX_CONCURRENT_STREAMS = 4
    reset_provider()
    fake_fcm.configure(latency_ms=30)
    outcomes = get_provider().send_many_sync([message() for _ in range(40)])
    assert all(o.ok for o in outcomes)
    stats = fake_fcm.stats()
    assert 1 < stats["max_in_flight"] <= 4  # the fake counts requests it holds at once


def test_outcomes_come_back_in_input_order_with_failures_mixed_in(fake_fcm: FakeFcmServer) -> None:
    msgs = [message() for _ in range(12)]
    for msg in msgs[::3]:
        fake_fcm.script(msg.token, [{"error": "UNREGISTERED"}])
    outcomes = get_provider().send_many_sync(msgs)
    assert [o.device_id for o in outcomes] == [m.device_id for m in msgs]
    assert [o.ok for o in outcomes] == [i % 3 != 0 for i in range(12)]


def test_data_over_4096_bytes_is_refused_without_a_request(fake_fcm: FakeFcmServer) -> None:
    too_big = message(type="new_message", blob="x" * MAX_DATA_BYTES)
    [outcome] = get_provider().send_many_sync([too_big])
    assert not outcome.ok and outcome.http_status == 0
    assert outcome.error_code == "INVALID_ARGUMENT"
    assert "payload too large" in outcome.detail
    assert not outcome.token_is_invalid  # a payload bug must never read as a dead token
    assert fake_fcm.stats()["requests"] == 0


def test_data_of_exactly_4096_bytes_is_sent(fake_fcm: FakeFcmServer) -> None:
    exact = message(t="x" * (MAX_DATA_BYTES - 1))
    assert get_provider().send_many_sync([exact])[0].ok


def test_unreachable_server_is_an_unavailable_outcome_not_an_exception(fake_fcm: FakeFcmServer, settings) -> None:
    provider = get_provider()
    assert provider.send_many_sync([message()])[0].ok  # token cached
    from tests.processes import free_port

    settings.FCM_BASE_URL = f"http://127.0.0.1:{free_port()}"
    reset_provider()
    outcomes = get_provider().send_many_sync([message(), message()])
    assert [o.error_code for o in outcomes] == ["UNAVAILABLE", "UNAVAILABLE"]
    assert all(o.http_status == 0 and o.detail for o in outcomes)


def test_async_send_many_runs_on_the_callers_loop_too(fake_fcm: FakeFcmServer) -> None:
    provider = get_provider()

    async def send() -> list:
        return await provider.send_many([message(), message("ios")])

    assert all(o.ok for o in asyncio.run(send()))
    assert all(o.ok for o in provider.send_many_sync([message()]))  # the background loop still works


def test_no_log_record_holds_a_full_token(fake_fcm: FakeFcmServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    msgs = [message() for _ in range(6)] + [message(blob="x" * 5000)]
    for msg, error in zip(msgs, ["UNREGISTERED", "UNAVAILABLE", "INVALID_ARGUMENT_TOKEN", "INTERNAL"], strict=False):
        fake_fcm.script(msg.token, [{"error": error}])
    get_provider().send_many_sync(msgs)
    assert caplog.records  # the provider did log something about those failures
    for record in caplog.records:
        text = record.getMessage()
        for msg in msgs:
            assert msg.token not in text
            assert msg.token[6:] not in text


def test_token_close_to_expiry_is_refreshed_before_the_next_send(fake_fcm: FakeFcmServer) -> None:
    from google.auth import _helpers

    provider = get_provider()
    assert provider.send_many_sync([message()])[0].ok
    # 30 s left is inside google-auth's refresh threshold: the provider must not send with it.
    provider._credentials.expiry = _helpers.utcnow() + timedelta(seconds=30)
    assert all(o.ok for o in provider.send_many_sync([message() for _ in range(10)]))
    assert fake_fcm.stats()["token_requests"] == 2  # one refresh for the whole batch


def test_a_rejected_access_token_is_refreshed_once_and_the_send_retried(fake_fcm: FakeFcmServer) -> None:
    provider = get_provider()
    assert provider.send_many_sync([message()])[0].ok
    httpx.post(f"{fake_fcm.base_url}/__fake__/revoke_tokens", timeout=10).raise_for_status()
    outcomes = provider.send_many_sync([message() for _ in range(5)])
    assert all(o.ok for o in outcomes)
    stats = fake_fcm.stats()
    assert stats["accepted"] == 6
    assert stats["token_requests"] == 2  # one refresh shared by the five rejected sends


def test_retry_after_accepts_seconds_and_http_dates_and_ignores_junk() -> None:
    from pushes.providers.fcm import parse_retry_after

    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("inf") is None
