"""Push providers: the FCM HTTP v1 provider and the shared message types (see base.py)."""

from pushes.providers.base import (
    MAX_DATA_BYTES,
    OutgoingMessage,
    PushProvider,
    SendOutcome,
    build_fcm_message,
    get_provider,
    reset_provider,
)

__all__ = [
    "MAX_DATA_BYTES",
    "OutgoingMessage",
    "PushProvider",
    "SendOutcome",
    "build_fcm_message",
    "get_provider",
    "reset_provider",
]
