"""DESIGN.md behaviour 6, to the letter: what each provider answer does (pure unit tests, no server)."""

from __future__ import annotations

import random

import pytest

from pushes.errors import QUOTA_MIN_BACKOFF_SECONDS, Action, backoff_delay, classify
from pushes.providers.base import SendOutcome


def outcome(http_status: int, error_code: str | None, detail: str = "", retry_after: float | None = None):
    return SendOutcome(ok=False, http_status=http_status, error_code=error_code, detail=detail, retry_after=retry_after)


def test_accepted_send_is_sent():
    assert classify(SendOutcome(ok=True, http_status=200, message_name="projects/p/messages/1")).action is Action.SENT


@pytest.mark.parametrize("code,status", [("UNREGISTERED", 404), ("SENDER_ID_MISMATCH", 403)])
def test_dead_token_codes_deactivate_with_the_code_as_reason(code, status):
    c = classify(outcome(status, code, "Requested entity was not found."))
    assert c.action is Action.DEACTIVATE
    assert c.reason == code


def test_invalid_argument_blaming_the_registration_token_deactivates():
    c = classify(outcome(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"))
    assert c.action is Action.DEACTIVATE
    assert "invalid registration token" in c.reason


@pytest.mark.parametrize(
    "detail",
    [
        'Invalid JSON payload received. Unknown name "priority"',
        "Invalid payload: data values must all be strings",
        "Android message is too big",
        "",
    ],
)
def test_any_other_invalid_argument_is_a_payload_error_that_leaves_the_device_alone(detail):
    assert classify(outcome(400, "INVALID_ARGUMENT", detail)).action is Action.PAYLOAD_ERROR


@pytest.mark.parametrize("code,status", [("UNAVAILABLE", 503), ("INTERNAL", 500)])
def test_unavailable_and_internal_retry_no_sooner_than_retry_after(code, status):
    c = classify(outcome(status, code, "try later", retry_after=2))
    assert c.action is Action.RETRY
    assert c.min_delay == 2


def test_quota_exceeded_waits_at_least_sixty_seconds_even_with_a_short_retry_after():
    c = classify(outcome(429, "QUOTA_EXCEEDED", "quota", retry_after=1))
    assert c.action is Action.RETRY
    assert c.min_delay == QUOTA_MIN_BACKOFF_SECONDS
    assert classify(outcome(429, "QUOTA_EXCEEDED", "quota", retry_after=120)).min_delay == 120


@pytest.mark.parametrize(
    "code,status", [("THIRD_PARTY_AUTH_ERROR", 401), ("UNAUTHENTICATED", 401), (None, 401), ("PROVIDER_CONFIG", 0)]
)
def test_auth_errors_raise_a_configuration_alarm_never_a_deactivation(code, status):
    assert classify(outcome(status, code, "auth")).action is Action.CONFIG_ALARM


@pytest.mark.parametrize("status", [0, 502, 504])
def test_transport_errors_without_an_fcm_body_are_retried(status):
    assert classify(outcome(status, None, "connection reset")).action is Action.RETRY


def test_unknown_client_error_fails_the_push_without_touching_the_device():
    assert classify(outcome(400, "FAILED_PRECONDITION", "?")).action is Action.FAIL


def test_backoff_grows_exponentially_with_full_jitter():
    rng = random.Random(7)
    for attempt in range(1, 8):
        ceiling = min(300.0, 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # spread over the whole range, not fixed
    assert max(backoff_delay(30, rng=rng) for _ in range(100)) <= 300.0


def test_backoff_is_never_shorter_than_the_minimum_delay():
    rng = random.Random(1)
    assert all(backoff_delay(1, min_delay=2.0, rng=rng) >= 2.0 for _ in range(100))
    assert all(backoff_delay(3, min_delay=60.0, rng=rng) >= 60.0 for _ in range(100))
