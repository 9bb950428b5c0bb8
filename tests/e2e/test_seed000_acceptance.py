"""Seed 000's manual acceptance checks, automated against the real processes on loopback (ASGI server,
Celery worker and beat, fake FCM), plus a 60-second run of the traffic simulator.

Clients here talk to the server only over HTTP/websocket, like the phones would; the database is read only to
check the server's promises (seq without gaps, one row per client id, every recipient's push outcome)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from django.db.models import Q

from messaging.models import Group, GroupMember, Message
from pushes.models import PushDeliveryLog, PushNotification, UserDevice
from telemetry.models import TelemetryLog
from tests.e2e.conftest import COALESCE_WINDOW_SECONDS
from tests.factories import GroupFactory, OrganizationFactory, UserFactory, token_for
from tests.processes import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UNFINISHED = ("pending", "sending")


# --- a phone, as far as the tests need one ------------------------------------------------------------------
class Phone:
    """A seed-000 client talking to the real server: its API token, one registered device, a local cursor."""

    def __init__(self, stack, user, platform: str = "android") -> None:
        self.stack = stack
        self.user = user
        self.key = token_for(user)
        self.http = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Token {self.key}"}, timeout=15)
        self.platform = platform
        self.fcm_token = f"{uuid.uuid4().hex[:22]}:APA91b{uuid.uuid4().hex}{uuid.uuid4().hex}"
        self.device_id: str | None = None

    def register(self) -> None:
        r = self.http.post("/api/v1/devices", json={"platform": self.platform, "token": self.fcm_token,
                                                     "app_version": "2.0.1"})  # fmt: skip
        assert r.status_code == 201, r.text
        self.device_id = r.json()["id"]

    def send(self, group: Group, body: str, client_id: uuid.UUID | None = None) -> httpx.Response:
        payload = {"client_generated_id": str(client_id or uuid.uuid4()), "body": body}
        return self.http.post(f"/api/v1/groups/{group.id}/messages", json=payload)

    def max_batch(self) -> int:
        r = self.http.get("/api/v1/config", params={"platform": self.platform, "app_version": "2.0.1"})
        assert r.status_code == 200, r.text
        body = r.json()
        flags = body.get("flags", body) if isinstance(body.get("flags"), dict) else body
        return int(flags.get("sync.maxBatch", 200))

    def sync(self, group: Group, after_seq: int, limit: int) -> list[dict]:
        """syncMissed: after_seq pages of ``limit`` until has_more is false."""
        merged: list[dict] = []
        cursor = after_seq
        while True:
            r = self.http.get(f"/api/v1/groups/{group.id}/messages", params={"after_seq": cursor, "limit": limit})
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["messages"]) <= limit
            merged += page["messages"]
            if page["messages"]:
                cursor = page["messages"][-1]["seq"]
            if not page["has_more"]:
                return merged

    def close(self) -> None:
        self.http.close()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0, stack=None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{stack.logs()}" if stack else ""))


def pushes_settled(user) -> bool:
    return not PushNotification.objects.filter(recipient=user, status__in=UNFINISHED).exists()


@pytest.fixture
def chat(e2e_stack):
    """An organization with one group whose members are alice and bob (phones, not yet registered)."""
    org = OrganizationFactory()
    group = GroupFactory(organization=org)
    alice, bob = (UserFactory(organization=org) for _ in range(2))
    for user in (alice, bob):
        GroupMember.objects.create(group=group, user=user)
    phones = {"alice": Phone(e2e_stack, alice), "bob": Phone(e2e_stack, bob)}
    yield group, phones["alice"], phones["bob"]
    for phone in phones.values():
        phone.close()


# --- 1. foreground reconnect ----------------------------------------------------------------------------------
def test_a_client_that_was_away_resyncs_every_message_sent_meanwhile_exactly_once(e2e_stack, chat):
    group, alice, bob = chat
    bob.register()
    before = [alice.send(group, f"before {i}").json() for i in range(2)]
    bob_cursor = bob.sync(group, 0, bob.max_batch())[-1]["seq"]
    assert bob_cursor == before[-1]["seq"] == 2

    # Bob locks his phone (socket gone); alice keeps writing.
    meanwhile = [alice.send(group, f"meanwhile {i}") for i in range(7)]
    assert [r.status_code for r in meanwhile] == [201] * 7
    sent_ids = [r.json()["id"] for r in meanwhile]

    # Unlock: resync in small pages (as with a small sync.maxBatch) from his cursor.
    merged = bob.sync(group, bob_cursor, limit=3)
    assert [m["id"] for m in merged] == sent_ids
    assert [m["seq"] for m in merged] == list(range(3, 10))

    # …and the rebuilt realtime channel carries what comes next live.
    async def live_event_after_rebuild() -> dict:
        url = e2e_stack.ws_url(f"/ws/v1/events?token={bob.key}")
        async with websockets.connect(url, open_timeout=10) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert str(group.id) in hello.get("groups", [])
            sent = await asyncio.to_thread(alice.send, group, "live after rebuild")
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if frame.get("type") == "event" and frame["event"]["event_type"] == "message.created":
                    return {"frame": frame, "sent": sent.json()}

    live = asyncio.run(live_event_after_rebuild())
    assert live["frame"]["event"]["payload"]["group_id"] == str(group.id)
    assert live["frame"]["event"]["payload"]["seq"] == live["sent"]["seq"] == 10
    assert [m["seq"] for m in bob.sync(group, 9, bob.max_batch())] == [10]


# --- 2. background push wake ---------------------------------------------------------------------------------
def test_three_quick_messages_make_one_push_per_device_and_the_woken_device_pulls_all_three_once(e2e_stack, chat):
    group, alice, bob = chat
    bob.register()
    bob_ios = Phone(e2e_stack, bob.user, platform="ios")
    bob_ios.register()
    # Three quick messages: sent at once, as a burst from a chatty sender (the seq decides which is latest).
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda i: alice.send(group, f"quick {i}"), range(3)))
    assert [r.status_code for r in answers] == [201] * 3
    sent = sorted((r.json() for r in answers), key=lambda m: m["seq"])
    committed = sorted(Message.objects.filter(group=group).values_list("created_at", flat=True))
    spread = (committed[-1] - committed[0]).total_seconds()
    assert spread < float(COALESCE_WINDOW_SECONDS), f"machine too slow: the burst took {spread:.2f}s"

    wait_until(lambda: pushes_settled(bob.user) and len(e2e_stack.deliveries(bob_ios.fcm_token)) >= 1,
               "the coalesced push to be dispatched", stack=e2e_stack)  # fmt: skip
    # Fan-out runs when each send commits, so once nothing is pending every push for the burst has gone out.
    android, ios = e2e_stack.deliveries(bob.fcm_token), e2e_stack.deliveries(bob_ios.fcm_token)
    assert len(android) == 1 and len(ios) == 1, e2e_stack.logs()
    assert PushNotification.objects.filter(recipient=bob.user).count() == 1
    assert not PushNotification.objects.filter(recipient=alice.user).exists()  # never the sender

    data = android[0]["message"]["data"]
    assert data["type"] == "new_message" and data["group_id"] == str(group.id)
    assert data["message_id"] == sent[-1]["id"] and data["count"] == "3"
    assert all(isinstance(v, str) for v in data.values())
    assert not any("quick" in v for v in data.values())  # no message text in a push
    assert android[0]["message"]["android"]["priority"].lower() == "high"
    apns = ios[0]["message"]["apns"]
    assert apns["headers"]["apns-priority"] == "5" and apns["headers"]["apns-push-type"] == "background"
    assert apns["payload"]["aps"]["content-available"] == 1

    # The woken app pulls everything after its cursor with maxBatch: all three, no duplicates.
    merged = bob.sync(group, 0, bob.max_batch())
    assert [m["id"] for m in merged] == [m["id"] for m in sent]
    r = bob.http.post(f"/api/v1/groups/{group.id}/receipts", json={"status": "delivered", "up_to_seq": 3})
    assert r.status_code == 200 and r.json()["delivered_seq"] == 3
    bob_ios.close()


# --- 3. outbox safety ----------------------------------------------------------------------------------------
def _send_and_drop_the_connection(stack, phone: Phone, group: Group, client_id: uuid.UUID) -> None:
    """The request reaches the server, the answer never reaches the phone (poor network after unlock)."""
    body = json.dumps({"client_generated_id": str(client_id), "body": "sent into the void"}).encode()
    host, port = stack.base_url.removeprefix("http://").split(":")
    head = (f"POST /api/v1/groups/{group.id}/messages HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Token {phone.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(head + body)
        raw.shutdown(socket.SHUT_RDWR)


def test_a_send_retried_after_a_dropped_response_leaves_exactly_one_message(e2e_stack, chat):
    group, alice, _bob = chat
    client_id = uuid.uuid4()
    _send_and_drop_the_connection(e2e_stack, alice, group, client_id)

    # The outbox replays with the same client id — twice at once, as a resume and a push wake can race.
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: alice.send(group, "sent into the void", client_id), range(2)))
    # 201 if the dropped request never reached the database, else 200: never two new messages.
    assert all(r.status_code in (200, 201) for r in answers), [r.text for r in answers]
    assert [r.status_code for r in answers].count(201) <= 1
    assert len({r.json()["id"] for r in answers}) == 1
    again = alice.send(group, "sent into the void", client_id)
    assert again.status_code == 200 and again.json()["id"] == answers[0].json()["id"]
    assert Message.objects.filter(sender=alice.user, client_generated_id=client_id).count() == 1

    # An offline outbox of three drains, then drains again after a lost acknowledgement: still three.
    outbox = [uuid.uuid4() for _ in range(3)]
    first = [alice.send(group, f"outbox {i}", cid) for i, cid in enumerate(outbox)]
    second = [alice.send(group, f"outbox {i}", cid) for i, cid in enumerate(outbox)]
    assert [r.status_code for r in first] == [201] * 3 and [r.status_code for r in second] == [200] * 3
    assert [r.json()["id"] for r in first] == [r.json()["id"] for r in second]
    assert list(Message.objects.filter(group=group).order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4]


# --- 4. kill app → push → tap ------------------------------------------------------------------------------------
def test_a_tapped_push_to_a_killed_app_records_an_opened_receipt_that_the_trace_shows(e2e_stack, chat):
    from pushes.queries import trace_message

    group, alice, bob = chat
    bob.register()  # then the app is killed: no socket, nothing running but FCM
    sent = alice.send(group, "are you there?").json()

    delivery = wait_until(lambda: e2e_stack.deliveries(bob.fcm_token), "the push to reach bob", stack=e2e_stack)[0]
    data = delivery["message"]["data"]
    assert data["message_id"] == sent["id"]
    push_id = data.get("push_id")
    assert push_id, f"the push payload must name its push so the app can send receipts: {data}"

    # Tap: the app opens the group from the push and reports the push opened.
    receipt = {"device_id": bob.device_id, "status": "opened", "details": {"via": "tap"}}
    opened = bob.http.post(f"/api/v1/pushes/{push_id}/receipts", json=receipt)
    assert opened.status_code == 201, opened.text
    shown = bob.sync(group, 0, bob.max_batch())
    assert [m["id"] for m in shown] == [sent["id"]]  # the target group shows the message, no empty state

    trace = trace_message(Message.objects.get(pk=sent["id"]))
    (bob_row,) = [row for row in trace if row["recipient_id"] == bob.user.pk]
    assert bob_row["outcome"] == "pushed" and bob_row["push_id"] == push_id, bob_row
    statuses = {(d["device_id"], d["status"]) for d in bob_row["deliveries"]}
    assert {(bob.device_id, "sent"), (bob.device_id, "opened")} <= statuses, bob_row
    assert all(len(d["token_prefix"]) <= 7 for d in bob_row["deliveries"])  # never the full token


# --- the simulator for 60 s ---------------------------------------------------------------------------------
def test_sixty_seconds_of_simulated_traffic_leave_no_5xx_no_seq_gap_and_an_outcome_for_every_recipient(
    e2e_stack, tmp_path
):
    from pushes.queries import trace_message

    summary_path = tmp_path / "simulator-summary.json"
    cmd = [sys.executable, str(ROOT / "manage.py"), "simulate", "--base-url", e2e_stack.base_url,
           "--fake-fcm-url", e2e_stack.fcm_url, "--orgs", "2", "--groups", "2", "--users", "4", "--rate", "3",
           "--duration", "60", "--offline-prob", "0.02", "--uninstall-prob", "0.004", "--seed", "9",
           "--summary-json", str(summary_path)]  # fmt: skip
    run = subprocess.run(cmd, env=e2e_stack.env, cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(summary_path.read_text())

    assert summary["server_errors"] == 0, summary["server_error_samples"]
    assert summary["sent"] >= 30 and summary["synced"] > 0 and summary["pushes_seen"] > 0, summary
    assert summary["client_seq_gaps"] == 0 and summary["client_duplicates"] == 0
    assert summary["idempotency_mismatches"] == 0
    # The phones acted on their pushes and reported back: receipts (the payload names its push) and telemetry.
    assert summary["push_receipts"] > 0 and summary["push_receipts_without_push_id"] == 0
    assert PushDeliveryLog.objects.filter(status="delivered").exists()
    assert {"push", "sync", "auth", "rt"} <= set(TelemetryLog.objects.values_list("tag", flat=True).distinct())

    # No seq gap (and no duplicate) in any group: seqs are exactly 1..last_seq.
    sim_groups = Group.objects.filter(organization__slug__startswith="sim-org-")
    for group in sim_groups:
        seqs = list(Message.objects.filter(group=group).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, group.last_seq + 1)), f"gap or duplicate in {group.name}"

    # Every accepted message, per recipient: pushed, coalesced or suppressed with a reason (or a stated reason
    # why no push was due, e.g. no active device). Pushes still inside their window get time to settle.
    wait_until(lambda: not PushNotification.objects.filter(group__in=sim_groups, status="pending").exists(),
               "the last coalescing windows to close", timeout=20, stack=e2e_stack)  # fmt: skip
    messages = list(Message.objects.filter(group__in=sim_groups).select_related("group", "sender"))
    assert len(messages) >= summary["sent"]
    unexplained = [
        problem for message in messages for row in trace_message(message) if (problem := _unexplained(message, row))
    ]
    assert not unexplained, unexplained[:10]


def _unexplained(message: Message, row: dict) -> dict | None:
    """None when this member's outcome for the message is accounted for, else what is wrong with it."""
    outcome = row["outcome"]
    if outcome in ("sender", "blocked"):
        return None
    if outcome == "suppressed":
        ok = bool(row["push_status_reason"])
    elif outcome in ("pushed", "coalesced"):
        # Sent, or finished with the provider's error recorded (e.g. UNREGISTERED after an uninstall).
        ok = row["push_status"] == "sent" or (row["push_status"] == "failed" and bool(row["last_error"]))
        ok = ok or (row["push_status"] in UNFINISHED and row["delivery_attempts"] > 0)  # a retry is scheduled
    elif outcome == "no_active_device":
        # Only true if no device of the recipient was active when the message committed.
        committed = message.created_at
        ok = not UserDevice.objects.filter(
            Q(deactivated_at__isnull=True) | Q(deactivated_at__gt=committed + timedelta(seconds=2)),
            user_id=row["recipient_id"],
            created_at__lt=committed - timedelta(seconds=1),
        ).exists()
    else:
        ok = False
    return None if ok else {"message": str(message.pk), "seq": message.seq, **row}
