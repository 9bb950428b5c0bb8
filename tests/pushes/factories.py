"""Push-test helpers: groups with members and devices, and sending through the real messaging path."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from messaging.models import Group, Message, User
from tests.factories import GroupFactory, GroupMemberFactory, UserDeviceFactory, UserFactory


def device_token(label: str = "t") -> str:
    """A realistic-length FCM-style token (unique)."""
    return f"{label}{uuid.uuid4().hex}:APA91b{uuid.uuid4().hex}{uuid.uuid4().hex}"


@dataclass
class Room:
    group: Group
    sender: User
    members: list[User] = field(default_factory=list)


def make_room(recipients: int = 2, devices_each: int = 1, platforms: tuple[str, ...] = ("android", "ios")) -> Room:
    """A group with a sender (one device) and ``recipients`` members with ``devices_each`` active devices."""
    group = GroupFactory()
    sender = UserFactory(organization=group.organization)
    GroupMemberFactory(group=group, user=sender)
    UserDeviceFactory(user=sender, token=device_token("snd"))
    room = Room(group=group, sender=sender)
    for i in range(recipients):
        user = UserFactory(organization=group.organization)
        GroupMemberFactory(group=group, user=user)
        for j in range(devices_each):
            UserDeviceFactory(user=user, platform=platforms[(i + j) % len(platforms)], token=device_token("rcp"))
        room.members.append(user)
    return room


def send(room: Room, body: str = "hello", sender: User | None = None) -> Message:
    """Send through messaging.services (its on-commit hook fires the fan-out)."""
    from messaging.services import send_message

    message, created = send_message(
        sender=sender or room.sender, group_id=room.group.id, client_generated_id=uuid.uuid4(), body=body
    )
    assert created
    return message
