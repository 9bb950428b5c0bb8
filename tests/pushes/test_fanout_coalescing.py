"""Fan-out on message commit: one set-based upsert, coalescing, exclusions, suppression, message trace."""

from __future__ import annotations

import logging

import pytest

from flags import queries as flag_queries
from messaging.models import GroupMember
from pushes import queries, services
from pushes.models import PushNotification
from tests.factories import StaffUserFactory, UserDeviceFactory, UserFactory
from tests.pushes.factories import make_room, send

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_flags():
    flag_queries.clear_cache()
    yield
    flag_queries.clear_cache()


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run on-commit hooks (the fan-out) as a real commit would."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def set_flag(key: str, value, commit) -> None:
    from flags.services import set_flag as set_flag_service

    commit(set_flag_service, key, value, changed_by=StaffUserFactory(role="admins"), reason="push test")
    flag_queries.clear_cache()


def test_three_quick_messages_make_one_pending_push_per_recipient_naming_the_latest_and_count_3(commit):
    room = make_room(recipients=3, devices_each=2)
    messages = [commit(send, room, f"m{i}") for i in range(3)]
    pushes = PushNotification.objects.filter(group=room.group)
    assert pushes.count() == 3
    for push in pushes:
        assert push.status == "pending"
        assert push.message_count == 3
        assert push.message_id == messages[-1].id
        assert (push.first_seq, push.last_seq) == (messages[0].seq, messages[-1].seq)
        assert push.payload == {
            "type": "new_message",
            "group_id": str(room.group.id),
            "message_id": str(messages[-1].id),
            "created_at": messages[-1].created_at.isoformat(),
            "count": "3",
        }
        assert all(isinstance(v, str) for v in push.payload.values())
        assert "m2" not in str(push.payload)  # never the message text
        # The window starts at the first message.
        assert abs((push.not_before - messages[0].created_at).total_seconds() - 2.5) < 0.01


def test_sender_blocked_members_and_members_without_an_active_device_get_no_push(commit):
    room = make_room(recipients=2)
    blocked = UserFactory(organization=room.group.organization)
    GroupMember.objects.create(group=room.group, user=blocked, is_blocked=True)
    UserDeviceFactory(user=blocked)
    no_device = UserFactory(organization=room.group.organization)
    GroupMember.objects.create(group=room.group, user=no_device)
    UserDeviceFactory(user=no_device, active=False)
    commit(send, room)
    recipients = set(PushNotification.objects.values_list("recipient_id", flat=True))
    assert recipients == {u.pk for u in room.members}


def test_fanout_logs_the_seed_tag_with_the_recipient_count(commit, caplog):
    room = make_room(recipients=4)
    with caplog.at_level(logging.INFO, logger="pushwatch.push"):
        commit(send, room)
    assert f"[push] notify:fanout group={room.group.id} recipients=4" in caplog.text


def test_a_message_after_the_push_was_claimed_opens_a_new_push(commit):
    room = make_room(recipients=1)
    commit(send, room)
    PushNotification.objects.update(not_before=PushNotification.objects.get().created_at)
    assert len(services.claim_due_pushes(10)) == 1
    commit(send, room)
    assert sorted(PushNotification.objects.values_list("status", "message_count")) == [
        ("pending", 1),
        ("sending", 1),
    ]


def test_kill_switch_on_records_every_recipient_as_suppressed_with_the_reason(commit):
    room = make_room(recipients=2)
    set_flag("features.push_resync.killSwitch", True, commit)
    assert flag_queries.push_suppression_reason() == "kill_switch"
    message = commit(send, room)
    pushes = PushNotification.objects.filter(group=room.group)
    assert {(p.status, p.status_reason) for p in pushes} == {("suppressed", "kill_switch")}
    assert pushes.count() == 2
    assert services.claim_due_pushes(100) == []
    trace = {row["recipient_id"]: row for row in queries.trace_message(message)}
    for user in room.members:
        assert trace[user.pk]["outcome_text"] == "suppressed: kill_switch"


def test_push_resync_disabled_suppresses_with_flag_disabled(commit):
    room = make_room(recipients=1)
    set_flag("features.push_resync.enabled", False, commit)
    commit(send, room)
    assert PushNotification.objects.get().status_reason == "flag_disabled"


def test_turning_the_kill_switch_on_suppresses_pushes_already_pending(commit):
    room = make_room(recipients=3)
    commit(send, room)
    set_flag("features.push_resync.killSwitch", True, commit)
    assert set(PushNotification.objects.values_list("status", "status_reason")) == {("suppressed", "kill_switch")}


def test_suppress_pending_pushes_returns_the_count_and_spares_finished_pushes(commit):
    room = make_room(recipients=2)
    commit(send, room)
    finished = PushNotification.objects.first()
    PushNotification.objects.filter(pk=finished.pk).update(status="sent")
    assert services.suppress_pending_pushes("kill_switch") == 1
    assert PushNotification.objects.get(pk=finished.pk).status == "sent"


def test_message_trace_explains_every_member(commit):
    room = make_room(recipients=2)
    blocked = UserFactory(organization=room.group.organization, username="zz-blocked")
    GroupMember.objects.create(group=room.group, user=blocked, is_blocked=True)
    lonely = UserFactory(organization=room.group.organization)
    GroupMember.objects.create(group=room.group, user=lonely)
    first = commit(send, room, "one")
    last = commit(send, room, "two")
    by_user = {row["recipient_id"]: row for row in queries.trace_message(first)}
    assert by_user[room.sender.pk]["outcome"] == "sender"
    assert by_user[blocked.pk]["outcome"] == "blocked"
    assert by_user[lonely.pk]["outcome_text"] == "no active device"
    push = PushNotification.objects.get(recipient=room.members[0])
    assert by_user[room.members[0].pk]["outcome_text"] == f"coalesced into push {push.id} (pending)"
    latest = {row["recipient_id"]: row for row in queries.trace_message(last)}
    assert latest[room.members[0].pk]["outcome"] == "pushed"
    assert latest[room.members[0].pk]["push_id"] == str(push.id)


def test_queue_depth_and_active_devices_by_platform(commit):
    room = make_room(recipients=3, platforms=("android", "ios", "ios"))
    commit(send, room)
    depth = queries.queue_depth()
    assert depth["pending"] == 3 and depth["sending"] == 0 and depth["oldest_age_seconds"] >= 0
    assert queries.active_devices_by_platform() == {"android": 2, "ios": 2}  # + the sender's android
