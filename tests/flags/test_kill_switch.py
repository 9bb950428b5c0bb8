"""The server obeys the kill-switch: fan-out stops at once and pending pushes are suppressed for good."""

from __future__ import annotations

import uuid

import pytest

from flags.services import set_flag
from messaging.services import send_message
from pushes.models import PushNotification
from tests.factories import GroupFactory, GroupMemberFactory, UserDeviceFactory


@pytest.fixture
def chat(db):
    """A group of three, every member with an active device."""
    group = GroupFactory()
    members = GroupMemberFactory.create_batch(3, group=group)
    for member in members:
        UserDeviceFactory(user=member.user)
    return group, [m.user for m in members]


def send(group, sender, body="hi"):
    return send_message(sender=sender, group_id=group.id, client_generated_id=uuid.uuid4(), body=body)[0]


def push_statuses(group) -> list[tuple[str, str]]:
    return sorted(PushNotification.objects.filter(group=group).values_list("status", "status_reason"))


@pytest.mark.django_db(transaction=True)
def test_a_message_sent_right_after_the_kill_switch_goes_on_makes_no_push(admin, chat):
    group, (sender, *_) = chat
    set_flag("features.push_resync.killSwitch", True, changed_by=admin, reason="incident 12: FCM storm")
    send(group, sender)
    assert push_statuses(group) == [("suppressed", "kill_switch")] * 2


@pytest.mark.django_db(transaction=True)
def test_pushes_pending_when_the_kill_switch_goes_on_are_suppressed_and_not_sent_after_it_goes_off(admin, chat):
    group, (sender, *_) = chat
    send(group, sender)
    assert push_statuses(group) == [("pending", "")] * 2

    set_flag("features.push_resync.killSwitch", True, changed_by=admin, reason="incident 13")
    assert push_statuses(group) == [("suppressed", "kill_switch")] * 2

    set_flag("features.push_resync.killSwitch", False, changed_by=admin, reason="incident 13 resolved")
    assert push_statuses(group) == [("suppressed", "kill_switch")] * 2
    send(group, sender, "after")  # fan-out works again, with fresh pending pushes
    assert PushNotification.objects.filter(group=group, status="pending").count() == 2


@pytest.mark.django_db(transaction=True)
def test_turning_push_resync_off_suppresses_pending_pushes_with_flag_disabled(admin, chat):
    group, (sender, *_) = chat
    send(group, sender)
    set_flag("features.push_resync.enabled", False, changed_by=admin, reason="pause the rollout")
    send(group, sender, "while off")
    statuses = push_statuses(group)
    assert statuses and all(s == ("suppressed", "flag_disabled") for s in statuses)


@pytest.mark.django_db(transaction=True)
def test_a_kill_switch_change_rolled_back_suppresses_nothing(admin, chat):
    from django.db import transaction

    group, (sender, *_) = chat
    send(group, sender)
    with pytest.raises(RuntimeError), transaction.atomic():
        set_flag("features.push_resync.killSwitch", True, changed_by=admin, reason="misclick")
        raise RuntimeError
    assert push_statuses(group) == [("pending", "")] * 2
