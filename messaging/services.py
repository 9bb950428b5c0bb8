"""Messaging writes: gapless per-group seq, idempotent send, read/delivered receipts.

Seq technique (DESIGN.md behaviour 1): one SQL statement increments ``Group.last_seq`` and inserts
the message with the returned number. A single statement is its own transaction, so

* the group row lock is held only for the server-side time of that statement plus its commit
  (no client round trip while the hot row is locked), and
* when the insert fails (the idempotency unique index fires) the whole statement rolls back,
  the increment with it: the number returns and no gap is left.

The next writer of the group waits on the row lock, and the lock is released only after the
commit is visible, so seq N is always visible before seq N+1 exists.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import IntegrityError, connection, transaction
from rest_framework import status as http

from config.errors import ApiError
from config.sql import execute_prepared
from messaging.models import Group, Message, MessageStatus, User
from messaging.queries import membership_for
from messaging.signals import message_committed

log = logging.getLogger("pushwatch.messaging")

MAX_BODY_CHARS = 4000
RECEIPT_STATUSES = ("delivered", "read")

# The counter-row insert. The UPDATE only matches when the sender is an unblocked member of the
# group in their own organization, so the happy path is one round trip; an empty result sends us
# to the (rare) diagnosis path for the 404/403. Shared verbatim with bench/seq_ingest.py.
SEND_SQL = """
WITH next AS (
    UPDATE messaging_group g
       SET last_seq = g.last_seq + 1
      FROM messaging_groupmember m
     WHERE g.id = %(group_id)s
       AND g.organization_id = %(organization_id)s
       AND m.group_id = g.id
       AND m.user_id = %(sender_id)s
       AND NOT m.is_blocked
 RETURNING g.last_seq, g.name, g.created_at
)
INSERT INTO messaging_message (id, group_id, sender_id, seq, client_generated_id, body, status, created_at)
SELECT %(id)s, %(group_id)s, %(sender_id)s, next.last_seq, %(client_generated_id)s, %(body)s, 'sent',
       statement_timestamp()
  FROM next
RETURNING seq, created_at, (SELECT name FROM next), (SELECT created_at FROM next)
"""

IDEMPOTENCY_CONSTRAINT = "message_sender_client_id_unique"


class _IdempotentReplay(Exception):
    """The insert hit (sender, client_generated_id): the first message already exists."""


def _execute_one(sql: str, params: dict[str, Any]) -> tuple | None:
    # Skips Django's client-side interpolation, and the statement gets prepared (config.sql).
    return execute_prepared(sql, params)[0]


def _run_in_own_transaction(sql: str, params: dict[str, Any]) -> tuple | None:
    """Run one statement as its own transaction (autocommit), or in a savepoint inside a caller's
    transaction, so a unique violation never poisons the caller."""
    try:
        if connection.in_atomic_block:
            with transaction.atomic():
                return _execute_one(sql, params)
        return _execute_one(sql, params)
    except IntegrityError as exc:
        diag = getattr(exc.__cause__, "diag", None)
        if diag is not None and diag.constraint_name == IDEMPOTENCY_CONSTRAINT:
            raise _IdempotentReplay from exc
        raise


def _validate_body(body: Any) -> None:
    if not isinstance(body, str) or not 1 <= len(body) <= MAX_BODY_CHARS:
        raise ApiError(
            http.HTTP_400_BAD_REQUEST,
            "invalid",
            "The request has invalid fields.",
            {"body": [f"Must be 1 to {MAX_BODY_CHARS} characters."]},
        )


def send_message(
    *, sender: User, group_id: uuid.UUID | str, client_generated_id: uuid.UUID | str, body: str
) -> tuple[Message, bool]:
    """Append a message to a group; returns (message, created).

    A repeated (sender, client_generated_id) returns the first message with created=False, also
    when the requests race. After the commit, ``message_committed`` is sent once per new message.
    Raises ApiError 404 (not a member / other organization), 403 (blocked member), 409 (the client
    id was already used in another group), 400 (body).
    """
    _validate_body(body)
    group_id = uuid.UUID(str(group_id))
    client_generated_id = uuid.UUID(str(client_generated_id))
    if sender.organization_id is None:
        raise ApiError(http.HTTP_404_NOT_FOUND, "not_found", "Group not found.")
    message_id = uuid.uuid4()
    params = {
        "id": message_id,
        "group_id": group_id,
        "organization_id": sender.organization_id,
        "sender_id": sender.pk,
        "client_generated_id": client_generated_id,
        "body": body,
    }
    try:
        row = _run_in_own_transaction(SEND_SQL, params)
    except _IdempotentReplay:
        return _first_message(sender, group_id, client_generated_id), False
    if row is None:
        # Nothing inserted: not a member (404) or blocked (403). A replay from a member who has
        # since been blocked still gets its first message back.
        member = membership_for(sender, group_id)
        if member.is_blocked:
            existing = _existing_message(sender, group_id, client_generated_id)
            if existing is not None:
                return existing, False
            raise ApiError(http.HTTP_403_FORBIDDEN, "member_blocked", "You are blocked from sending to this group.")
        raise ApiError(http.HTTP_404_NOT_FOUND, "not_found", "Group not found.")  # pragma: no cover - raced delete

    seq, created_at, group_name, group_created_at = row
    group = Group(
        id=group_id,
        organization_id=sender.organization_id,
        name=group_name,
        last_seq=seq,
        created_at=group_created_at,
    )
    group._state.adding, group._state.db = False, connection.alias
    message = Message(
        id=message_id,
        group=group,
        sender=sender,
        seq=seq,
        client_generated_id=client_generated_id,
        body=body,
        status=MessageStatus.SENT,
        created_at=created_at,
    )
    message._state.adding, message._state.db = False, connection.alias
    # The single hand-off point: push fan-out and realtime emit connect to this signal. In
    # autocommit mode on_commit runs at once (the statement has committed); inside a caller's
    # transaction it waits for that transaction's commit and is dropped on rollback.
    transaction.on_commit(lambda: _announce(message))
    return message, True


def _announce(message: Message) -> None:
    for receiver, result in message_committed.send_robust(sender=Message, message=message):
        if isinstance(result, Exception):
            log.error(
                "message_committed receiver %r failed for message %s: %r",
                receiver,
                message.id,
                result,
                exc_info=(type(result), result, result.__traceback__),
            )


def _existing_message(sender: User, group_id: uuid.UUID, client_generated_id: uuid.UUID) -> Message | None:
    message = (
        Message.objects.select_related("group", "sender")
        .filter(sender=sender, client_generated_id=client_generated_id)
        .first()
    )
    if message is not None and message.group_id != group_id:
        raise ApiError(
            http.HTTP_409_CONFLICT,
            "client_id_reused",
            "This client_generated_id was already used for a message in another group.",
            {"client_generated_id": ["Already used in another group."]},
        )
    return message


def _first_message(sender: User, group_id: uuid.UUID, client_generated_id: uuid.UUID) -> Message:
    message = _existing_message(sender, group_id, client_generated_id)
    if message is None:  # pragma: no cover - the unique index just said it exists
        raise ApiError(http.HTTP_409_CONFLICT, "conflict", "The message could not be stored; retry.")
    return message


# Watermarks only move forward (GREATEST) and never past the group's last seq (LEAST). Reading
# implies delivery, so delivered_seq is raised to at least the new read_seq. The FROM-subquery
# with FOR UPDATE hands back the old values, which bound the message range the status update
# has to look at.
RECEIPT_SQL = """
UPDATE messaging_groupmember m
   SET delivered_seq = GREATEST(m.delivered_seq, LEAST(%(up_to_seq)s, old.last_seq)),
       read_seq = CASE WHEN %(status)s = 'read'
                       THEN GREATEST(m.read_seq, LEAST(%(up_to_seq)s, old.last_seq))
                       ELSE m.read_seq END
  FROM (SELECT gm.id, gm.delivered_seq, gm.read_seq, g.last_seq
          FROM messaging_groupmember gm
          JOIN messaging_group g ON g.id = gm.group_id
         WHERE gm.group_id = %(group_id)s AND gm.user_id = %(user_id)s
           AND g.organization_id = %(organization_id)s
           FOR UPDATE OF gm) AS old
 WHERE m.id = old.id
RETURNING old.delivered_seq, old.read_seq, m.delivered_seq, m.read_seq
"""

# One set-based UPDATE: within the range this receipt moved, a message becomes delivered (read)
# once every non-sender, unblocked member's delivered_seq (read_seq) has reached it. Never
# downgrades: read stays read. A group with nobody but the sender leaves the message "sent".
STATUS_SQL = """
WITH senders AS (
    SELECT DISTINCT sender_id FROM messaging_message
     WHERE group_id = %(group_id)s AND seq > %(lo)s AND seq <= %(hi)s
), floor AS (
    SELECT s.sender_id, MIN(gm.delivered_seq) AS delivered, MIN(gm.read_seq) AS read
      FROM senders s
      JOIN messaging_groupmember gm
        ON gm.group_id = %(group_id)s AND gm.user_id <> s.sender_id AND NOT gm.is_blocked
     GROUP BY s.sender_id
)
UPDATE messaging_message msg
   SET status = CASE WHEN msg.seq <= floor.read THEN 'read' ELSE 'delivered' END
  FROM floor
 WHERE msg.group_id = %(group_id)s AND msg.seq > %(lo)s AND msg.seq <= %(hi)s
   AND msg.sender_id = floor.sender_id
   AND msg.seq <= floor.delivered
   AND msg.status <> 'read'
   AND msg.status <> CASE WHEN msg.seq <= floor.read THEN 'read' ELSE 'delivered' END
"""


def record_receipt(*, user: User, group_id: uuid.UUID | str, status: str, up_to_seq: int) -> dict[str, int]:
    """Advance the caller's delivered/read watermark of a group; returns the watermarks.

    ``up_to_seq`` beyond the group's latest seq is clamped to it (a watermark never points at a
    message that does not exist); a lower value than the current watermark changes nothing.
    404 for a non-member / other organization.
    """
    if status not in RECEIPT_STATUSES:
        raise ApiError(http.HTTP_400_BAD_REQUEST, "invalid", "The request has invalid fields.",
                       {"status": ["Must be delivered or read."]})  # fmt: skip
    if isinstance(up_to_seq, bool) or not isinstance(up_to_seq, int) or up_to_seq < 0:
        raise ApiError(http.HTTP_400_BAD_REQUEST, "invalid", "The request has invalid fields.",
                       {"up_to_seq": ["Must be a non-negative integer."]})  # fmt: skip
    if user.organization_id is None:
        raise ApiError(http.HTTP_404_NOT_FOUND, "not_found", "Group not found.")
    group_id = uuid.UUID(str(group_id))
    params = {
        "group_id": group_id,
        "user_id": user.pk,
        "organization_id": user.organization_id,
        "status": status,
        "up_to_seq": min(up_to_seq, 2**63 - 1),
    }
    # Two statements, each its own transaction (or both in the caller's), in this order: the
    # status UPDATE starts after this member's watermark committed, so of two members reporting
    # at once, the later one's status UPDATE sees both watermarks and nothing is left "sent".
    row = _run_in_own_transaction(RECEIPT_SQL, params)
    if row is None:
        raise ApiError(http.HTTP_404_NOT_FOUND, "not_found", "Group not found.")
    old_delivered, old_read, delivered_seq, read_seq = row
    # Only messages inside the span a watermark just crossed can change status.
    moved = [(old, new) for old, new in ((old_delivered, delivered_seq), (old_read, read_seq)) if new > old]
    if moved:
        _run_status_update(group_id, lo=min(old for old, _ in moved), hi=max(new for _, new in moved))
    return {"delivered_seq": delivered_seq, "read_seq": read_seq}


def _run_status_update(group_id: uuid.UUID, *, lo: int, hi: int) -> None:
    _run_in_own_transaction(STATUS_SQL, {"group_id": group_id, "lo": lo, "hi": hi})
