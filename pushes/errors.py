"""What to do about one provider answer (DESIGN.md behaviour 6, to the letter) and how long to back off.

Pure functions of a ``SendOutcome``-shaped object (``ok, http_status, error_code, detail, retry_after``),
so they are unit-tested without a server and the dispatcher stays a thin loop around them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# A retry that hit the quota must wait at least this long (FCM asks for >= 60 s on QUOTA_EXCEEDED).
QUOTA_MIN_BACKOFF_SECONDS = 60.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0


class Action(StrEnum):
    SENT = "sent"  # accepted by the provider
    DEACTIVATE = "deactivate"  # the token is dead: deactivate the device, keep the reason
    PAYLOAD_ERROR = "payload_error"  # our message is wrong: fail the push, never touch the device
    RETRY = "retry"  # transient: try again later (backoff, never sooner than min_delay)
    CONFIG_ALARM = "config_alarm"  # our credentials/APNs setup is wrong: alarm, retry later, deactivate nothing
    FAIL = "fail"  # permanent for this push, device untouched


@dataclass(frozen=True)
class Classification:
    action: Action
    error_code: str  # "" when sent
    reason: str  # short words for last_error / deactivation_reason
    min_delay: float = 0.0  # seconds a retry must wait at least (Retry-After, quota floor)


DEAD_TOKEN_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
TRANSIENT_CODES = frozenset({"UNAVAILABLE", "INTERNAL"})
# PROVIDER_CONFIG: our own code for "the provider could not be built" (service-account file missing/bad).
AUTH_CODES = frozenset({"THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED", "PERMISSION_DENIED", "PROVIDER_CONFIG"})


def is_invalid_token_detail(detail: str) -> bool:
    """FCM says "The registration token is not a valid FCM registration token" for a bad token;
    every other INVALID_ARGUMENT is about our payload."""
    text = (detail or "").lower()
    return "registration token" in text and ("not a valid" in text or "invalid" in text)


def classify(outcome: Any) -> Classification:
    if outcome.ok:
        return Classification(Action.SENT, "", "")
    code = (outcome.error_code or "").upper()
    status = outcome.http_status or 0
    detail = (outcome.detail or "")[:300]
    retry_after = float(outcome.retry_after or 0.0)
    if not code:
        # No FCM error body (transport error, proxy page): infer from the HTTP status.
        code = {401: "UNAUTHENTICATED", 429: "QUOTA_EXCEEDED", 500: "INTERNAL", 503: "UNAVAILABLE"}.get(status, "")
        if not code and (status == 0 or status >= 500):
            code = "UNAVAILABLE"
    if code in DEAD_TOKEN_CODES:
        return Classification(Action.DEACTIVATE, code, code)
    if code == "INVALID_ARGUMENT":
        if is_invalid_token_detail(detail):
            return Classification(Action.DEACTIVATE, code, "INVALID_ARGUMENT: invalid registration token")
        return Classification(Action.PAYLOAD_ERROR, code, f"INVALID_ARGUMENT: {detail}".strip())
    if code in TRANSIENT_CODES:
        return Classification(Action.RETRY, code, f"{code}: {detail}".strip(), min_delay=retry_after)
    if code == "QUOTA_EXCEEDED":
        return Classification(
            Action.RETRY, code, f"{code}: {detail}".strip(), min_delay=max(QUOTA_MIN_BACKOFF_SECONDS, retry_after)
        )
    if code in AUTH_CODES or status == 401:
        return Classification(Action.CONFIG_ALARM, code or "UNAUTHENTICATED", f"{code}: {detail}".strip())
    return Classification(Action.FAIL, code or f"HTTP_{status}", f"{code or status}: {detail}".strip())


def backoff_delay(attempt: int, *, min_delay: float = 0.0, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter (uniform in [0, base * 2^(attempt-1)], capped), but never
    shorter than ``min_delay`` (Retry-After, or the quota floor). ``attempt`` counts from 1."""
    rng = rng or random
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2 ** max(0, attempt - 1)))
    return max(rng.uniform(0.0, ceiling), min_delay)
