"""Messaging reads: the caller's groups, sync after a cursor, history before a cursor, unread.

Sync and history are keyset range scans on the (group, seq) unique index
(``message_group_seq_unique``): ``WHERE group_id = g AND seq > n ORDER BY seq LIMIT k`` and its
mirror; no OFFSET, no sort. Both are bounded by the ``sync.maxBatch`` flag.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db.models import F, QuerySet
from rest_framework import status as http

from config.errors import ApiError
from flags.queries import flag_value
from messaging.models import Group, GroupMember, Message, User

sync_log = logging.getLogger("pushwatch.sync")

MESSAGE_FIELDS = ("id", "seq", "sender_id", "client_generated_id", "body", "status", "created_at")
DEFAULT_MAX_BATCH = 200


def max_batch() -> int:
    """The ``sync.maxBatch`` flag (seed default 200), guarded against a nonsensical value."""
    try:
        value = int(flag_value("sync.maxBatch"))
    except Exception:  # a broken flag must not break sync
        sync_log.warning("[sync] sync.maxBatch unreadable; using %s", DEFAULT_MAX_BATCH)
        return DEFAULT_MAX_BATCH
    return value if value > 0 else DEFAULT_MAX_BATCH


def membership_for(user: User, group_id: uuid.UUID | str) -> GroupMember:
    """The user's membership (with its group) of a group in their own organization, else 404."""
    member = None
    if user.organization_id is not None:
        member = (
            GroupMember.objects.select_related("group")
            .filter(group_id=group_id, user=user, group__organization_id=user.organization_id)
            .first()
        )
    if member is None:
        raise ApiError(http.HTTP_404_NOT_FOUND, "not_found", "Group not found.")
    return member


def groups_for_user(user: User) -> list[dict[str, Any]]:
    """Every group the user is a member of (own organization), newest activity first."""
    if user.organization_id is None:
        return []
    rows = (
        GroupMember.objects.filter(user=user, group__organization_id=user.organization_id)
        .order_by("-group__last_seq", "group__name")
        .values(
            "group_id",
            "group__name",
            "group__last_seq",
            "delivered_seq",
            "read_seq",
            "is_blocked",
        )
    )
    return [
        {
            "id": row["group_id"],
            "name": row["group__name"],
            "latest_seq": row["group__last_seq"],
            "unread": max(row["group__last_seq"] - row["read_seq"], 0),
            "delivered_seq": row["delivered_seq"],
            "read_seq": row["read_seq"],
            "is_blocked": row["is_blocked"],
        }
        for row in rows
    ]


def _bounded_limit(limit: int | None) -> int:
    ceiling = max_batch()
    return ceiling if limit is None else max(1, min(limit, ceiling))


def _latest_seq(group: Group, messages: list[dict]) -> int:
    # group.last_seq was read when access was checked; a message committed since can be newer.
    return max(group.last_seq, messages[-1]["seq"] if messages else 0)


def after_queryset(group_id: uuid.UUID, after_seq: int, fetch: int) -> QuerySet:
    """Keyset page forwards: a range scan of (group_id, seq) from after_seq, in index order."""
    return Message.objects.filter(group_id=group_id, seq__gt=after_seq).order_by("seq").values(*MESSAGE_FIELDS)[:fetch]


def before_queryset(group_id: uuid.UUID, before_seq: int, fetch: int) -> QuerySet:
    """Keyset page backwards: the same index read in reverse from before_seq."""
    return (
        Message.objects.filter(group_id=group_id, seq__lt=before_seq).order_by("-seq").values(*MESSAGE_FIELDS)[:fetch]
    )


def sync_after(group: Group, after_seq: int, limit: int | None = None) -> dict[str, Any]:
    """Messages with seq > after_seq in seq order, at most min(limit, sync.maxBatch)."""
    limit = _bounded_limit(limit)
    sync_log.info("[sync] start group=%s since=%s", group.pk, after_seq)
    rows = list(after_queryset(group.pk, after_seq, limit + 1))
    has_more = len(rows) > limit
    messages = rows[:limit]
    sync_log.info("[sync] merged count=%s", len(messages))
    return {"messages": messages, "has_more": has_more, "latest_seq": _latest_seq(group, messages)}


def history_before(group: Group, before_seq: int, limit: int | None = None) -> dict[str, Any]:
    """The page of messages just below before_seq (newest page first), returned in seq order;
    has_more says older ones remain."""
    limit = _bounded_limit(limit)
    sync_log.info("[sync] history group=%s before=%s", group.pk, before_seq)
    rows = list(before_queryset(group.pk, before_seq, limit + 1))
    has_more = len(rows) > limit
    messages = rows[:limit][::-1]
    latest = max(group.last_seq, messages[-1]["seq"] if messages else 0)
    return {"messages": messages, "has_more": has_more, "latest_seq": latest}


def unread_for(user: User, group: Group) -> dict[str, int]:
    """unread = latest seq − the user's read watermark (DESIGN.md behaviour 4)."""
    row = (
        GroupMember.objects.filter(group_id=group.pk, user=user)
        .annotate(latest_seq=F("group__last_seq"))
        .values("latest_seq", "read_seq")
        .first()
    )
    if row is None:
        raise ApiError(http.HTTP_404_NOT_FOUND, "not_found", "Group not found.")
    return {"unread": max(row["latest_seq"] - row["read_seq"], 0), "latest_seq": row["latest_seq"]}


def message_count(group_id: uuid.UUID | str) -> int:
    """How many messages a group holds (for tests and the dashboard)."""
    return Message.objects.filter(group_id=group_id).count()


# --- reads for the dashboard ---


def count_messages_since(since) -> int:
    """Messages created at or after ``since`` (index on created_at); the dashboard's messages/min."""
    return Message.objects.filter(created_at__gte=since).count()


def organization_choices() -> list[tuple[int, str]]:
    """(id, name) of every organization, for the dashboard's organization filters."""
    from messaging.models import Organization

    return list(Organization.objects.order_by("name").values_list("id", "name"))


def message_for_trace(message_id) -> Message | None:
    """One message with its group and sender for the dashboard's trace; None for an unknown or malformed id."""
    try:
        message_id = uuid.UUID(str(message_id))
    except ValueError:
        return None
    return Message.objects.select_related("group", "sender").filter(pk=message_id).first()
