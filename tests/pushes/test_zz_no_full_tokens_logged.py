"""No log record holds a full device token: not in this flow, not anywhere in the test run so far.

The run-wide handler (tests/log_capture.py, kept on the root logger by tests/conftest.py) sees every record
the whole run emits and fails the session on a leak; this file is named to run last in tests/pushes.
The flow below exercises every token-touching path at DEBUG level: register, reassign, fan-out, dispatch
with each provider error, deactivation, test push, receipts and the staff reads.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from flags import queries as flag_queries
from pushes import queries, services
from pushes.models import UserDevice
from tests.factories import UserFactory
from tests.log_capture import RUN_RECORDS, TOKEN_SHAPES
from tests.pushes.factories import make_room, send


def leaks(texts: list[tuple[str, str]], tokens: list[str]) -> list[tuple[str, str]]:
    return [(name, text[:200]) for name, text in texts
            if TOKEN_SHAPES.search(text) or any(t in text for t in tokens)]  # fmt: skip


@pytest.mark.django_db
def test_no_log_record_in_a_full_push_flow_or_the_whole_run_holds_a_full_token(
    fake_fcm, settings, api_client, django_capture_on_commit_callbacks, caplog
):
    settings.PUSH_COALESCE_WINDOW_SECONDS = 0
    settings.PUSH_MAX_ATTEMPTS = 1
    flag_queries.clear_cache()
    caplog.set_level(logging.DEBUG)  # every logger, every level, for this flow

    room = make_room(recipients=4, devices_each=2)
    newcomer = UserFactory(organization=room.group.organization)
    registered = f"{uuid.uuid4().hex}{uuid.uuid4().hex}:APA91bFlowToken"
    assert (
        api_client(newcomer)
        .post("/api/v1/devices", {"platform": "ios", "token": registered, "app_version": "2.0"}, format="json")
        .status_code
        == 201
    )
    api_client(room.members[0]).post(
        "/api/v1/devices", {"platform": "android", "token": registered, "app_version": "2.1"}, format="json"
    )
    tokens = list(UserDevice.objects.values_list("token", flat=True))
    errors = ["UNREGISTERED", "SENDER_ID_MISMATCH", "INVALID_ARGUMENT_TOKEN", "INVALID_ARGUMENT_PAYLOAD",
              "UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED", "THIRD_PARTY_AUTH_ERROR"]  # fmt: skip
    recipient_tokens = [t for t in tokens if not UserDevice.objects.filter(token=t, user=room.sender).exists()]
    for token, error in zip(recipient_tokens, errors, strict=False):
        fake_fcm.script(token, [{"error": error, "retry_after": 1}])

    with django_capture_on_commit_callbacks(execute=True):
        message = send(room)
    services.dispatch_due_pushes()
    device = UserDevice.objects.filter(active=True).exclude(user=room.sender).first()
    services.deactivate_device(device, reason="support")
    services.dispatch_due_pushes()
    services.send_test_push(UserDevice.objects.filter(active=True).first())
    services.dispatch_due_pushes()
    services.suppress_pending_pushes("kill_switch")
    api_client(room.members[0]).post("/api/v1/devices/logout")
    for row in (queries.trace_message(message), queries.device_search(tokens[0][:8]),
                queries.device_timeline(device.id), queries.delivery_stats(1)):  # fmt: skip
        assert not any(t in str(row) for t in tokens)

    assert caplog.records, "the flow logged nothing: the capture is broken"
    assert any("token:registered" in r.getMessage() for r in caplog.records)
    flow = [(r.name, r.getMessage()) for r in caplog.records]
    assert leaks(flow, tokens) == []
    assert RUN_RECORDS.seen, "the run-wide capture saw nothing"
    assert RUN_RECORDS.leaks == []
