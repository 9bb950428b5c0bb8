"""Push reads for the API and the dashboard (which reads this app only through these functions).

Every row a staff page can show carries ``token_prefix`` (first 6 chars + "…"), never a full token.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Q

from messaging.models import GroupMember, Message, User
from pushes.models import PushDeliveryLog, PushNotification, UserDevice, truncate_token

_PUSH = PushNotification._meta.db_table
_DEVICE = UserDevice._meta.db_table
_MEMBER = GroupMember._meta.db_table
_USER = User._meta.db_table
_LOG = PushDeliveryLog._meta.db_table

CONFIG_ALARM_CACHE_KEY = "pushwatch:push:configuration_alarm"  # written by pushes.services


def _rows(sql: str, params: Any) -> list[dict[str, Any]]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def push_for_recipient(push_id: uuid.UUID, user: User) -> PushNotification | None:
    return PushNotification.objects.filter(pk=push_id, recipient=user).first()


def device_of_user(device_id: uuid.UUID, user: User) -> UserDevice | None:
    return UserDevice.objects.filter(pk=device_id, user=user).first()


def configuration_alarm() -> dict[str, Any] | None:
    """The provider credentials alarm (THIRD_PARTY_AUTH_ERROR / 401) or None; cleared by a good batch."""
    try:
        return cache.get(CONFIG_ALARM_CACHE_KEY)
    except Exception:
        return None


def _device_row(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(d["id"]),
        "user_id": d["user_id"],
        "username": d.get("username"),
        "organization_id": d.get("organization_id"),
        "platform": d["platform"],
        "token_prefix": truncate_token(d.pop("token_head", "") or ""),
        "app_version": d["app_version"],
        "active": d["active"],
        "last_seen_at": _iso(d["last_seen_at"]),
        "created_at": _iso(d["created_at"]),
        "deactivated_at": _iso(d["deactivated_at"]),
        "deactivation_reason": d["deactivation_reason"],
    }


_DEVICE_COLUMNS = f"""d.id, d.user_id, u.username, u.organization_id, d.platform, left(d.token, 6) AS token_head,
    d.app_version, d.active, d.last_seen_at, d.created_at, d.deactivated_at, d.deactivation_reason
    FROM {_DEVICE} d JOIN {_USER} u ON u.id = d.user_id"""


def device_search(q: str, limit: int = 50) -> list[dict[str, Any]]:
    """Devices by device id, token prefix, username or email (staff search box)."""
    q = (q or "").strip()
    if not q:
        return []
    try:
        device_id = uuid.UUID(q)
    except ValueError:
        device_id = None
    if device_id is not None:
        return [_device_row(r) for r in _rows(f"SELECT {_DEVICE_COLUMNS} WHERE d.id = %s", [device_id])]
    pattern = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    sql = f"""SELECT {_DEVICE_COLUMNS}
        WHERE d.token LIKE %s OR u.username ILIKE %s OR u.email ILIKE %s
        ORDER BY d.active DESC, d.last_seen_at DESC LIMIT %s"""
    return [_device_row(r) for r in _rows(sql, [pattern + "%", pattern + "%", pattern + "%", int(limit)])]


def user_devices(user_id: int) -> list[dict[str, Any]]:
    sql = f"SELECT {_DEVICE_COLUMNS} WHERE d.user_id = %s ORDER BY d.active DESC, d.last_seen_at DESC"
    return [_device_row(r) for r in _rows(sql, [user_id])]


def device_timeline(device_id: uuid.UUID | str, limit: int = 200) -> dict[str, Any] | None:
    """One device, its delivery log lines (with their push), and the user's recent pushes
    (a suppressed push has no log line but still explains a missing notification)."""
    try:
        device_id = uuid.UUID(str(device_id))
    except ValueError:
        return None
    found = _rows(f"SELECT {_DEVICE_COLUMNS} WHERE d.id = %s", [device_id])
    if not found:
        return None
    device = _device_row(found[0])
    logs = _rows(
        f"""SELECT l.id, l.push_id, l.status, l.details, l.created_at, l.token_prefix,
                   p.status AS push_status, p.status_reason AS push_status_reason, p.group_id
            FROM {_LOG} l JOIN {_PUSH} p ON p.id = l.push_id
            WHERE l.device_id = %s ORDER BY l.created_at DESC, l.id DESC LIMIT %s""",
        [device_id, int(limit)],
    )
    pushes = _rows(
        f"""SELECT id, group_id, message_id, message_count, status, status_reason, last_error, delivery_attempts,
                   created_at, sent_at, target_device_id
            FROM {_PUSH} WHERE recipient_id = %s ORDER BY created_at DESC LIMIT %s""",
        [device["user_id"], int(limit)],
    )
    for r in logs:
        r.update(push_id=str(r["push_id"]), group_id=str(r["group_id"]) if r["group_id"] else None,
                 created_at=_iso(r["created_at"]))  # fmt: skip
    for p in pushes:
        p.update(
            id=str(p["id"]),
            group_id=str(p["group_id"]) if p["group_id"] else None,
            message_id=str(p["message_id"]) if p["message_id"] else None,
            target_device_id=str(p["target_device_id"]) if p["target_device_id"] else None,
            created_at=_iso(p["created_at"]),
            sent_at=_iso(p["sent_at"]),
        )
    return {"device": device, "logs": logs, "pushes": pushes}


def push_detail(push_id: uuid.UUID | str) -> dict[str, Any] | None:
    push = PushNotification.objects.filter(pk=push_id).values().first()
    if push is None:
        return None
    push["logs"] = list(
        PushDeliveryLog.objects.filter(push_id=push["id"])
        .order_by("created_at", "id")
        .values("id", "device_id", "token_prefix", "status", "details", "created_at")
    )
    return push


def queue_depth() -> dict[str, Any]:
    """Unfinished pushes: pending (in or past their window), sending (incl. waiting for a retry),
    and the age of the oldest one."""
    row = _rows(
        f"""SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                   count(*) FILTER (WHERE status = 'pending' AND not_before <= now()) AS pending_due,
                   count(*) FILTER (WHERE status = 'sending' AND next_attempt_at IS NULL) AS sending,
                   count(*) FILTER (WHERE status = 'sending' AND next_attempt_at IS NOT NULL) AS retrying,
                   extract(epoch FROM now() - min(created_at)) AS oldest_age_seconds
            FROM {_PUSH} WHERE status IN ('pending', 'sending')""",
        [],
    )[0]
    age = row["oldest_age_seconds"]
    row["oldest_age_seconds"] = round(float(age), 3) if age is not None else None
    return row


def active_devices_by_platform() -> dict[str, int]:
    counts = {"android": 0, "ios": 0}
    for r in _rows(f"SELECT platform, count(*) AS n FROM {_DEVICE} WHERE active GROUP BY platform", []):
        counts[r["platform"]] = r["n"]
    return counts


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def delivery_stats(days: int = 7) -> dict[str, Any]:
    """Seed 004's get_push_delivery_stats: device sends accepted (sent), failed, delivered, opened
    (client receipts) and rates over the last ``days``, overall and by platform.
    delivery_rate = delivered / sent, open_rate = opened / delivered, failure_rate = failed / attempts."""
    days = max(1, min(int(days), 3660))
    rows = _rows(
        f"""SELECT coalesce(d.platform, 'unknown') AS platform,
                   count(*) FILTER (WHERE l.status = 'sent') AS sent,
                   count(*) FILTER (WHERE l.status = 'failed') AS failed,
                   count(*) FILTER (WHERE l.status = 'delivered') AS delivered,
                   count(*) FILTER (WHERE l.status = 'opened') AS opened,
                   count(*) FILTER (WHERE l.status = 'clicked') AS clicked
            FROM {_LOG} l LEFT JOIN {_DEVICE} d ON d.id = l.device_id
            WHERE l.created_at >= now() - make_interval(days => %s)
            GROUP BY 1 ORDER BY 1""",
        [days],
    )
    pushes = _rows(
        f"""SELECT status, count(*) AS n FROM {_PUSH}
            WHERE created_at >= now() - make_interval(days => %s) GROUP BY status""",
        [days],
    )

    def with_rates(c: dict[str, int]) -> dict[str, Any]:
        return {
            **c,
            "delivery_rate": _rate(c["delivered"], c["sent"]),
            "open_rate": _rate(c["opened"], c["delivered"]),
            "failure_rate": _rate(c["failed"], c["sent"] + c["failed"]),
        }

    keys = ("sent", "failed", "delivered", "opened", "clicked")
    total = {k: sum(r[k] for r in rows) for k in keys}
    by_platform = {p: with_rates(dict.fromkeys(keys, 0)) for p in ("android", "ios")}
    for r in rows:
        by_platform[r["platform"]] = with_rates({k: r[k] for k in keys})
    by_status = {r["status"]: r["n"] for r in pushes}
    return {
        "days": days,
        "total_pushes": sum(by_status.values()),
        "pushes_by_status": by_status,
        **with_rates(total),
        "by_platform": by_platform,
    }


def trace_message(message: Message) -> list[dict[str, Any]]:
    """Every member of the message's group with what happened to them for this message:
    sender / blocked / pushed / coalesced into push X / suppressed: reason / no active device,
    plus the covering push's per-device delivery log lines (token prefix only)."""
    members = _rows(
        f"""SELECT gm.user_id, u.username, gm.is_blocked,
                   (SELECT count(*) FROM {_DEVICE} d WHERE d.user_id = gm.user_id AND d.active) AS active_devices,
                   p.id AS push_id, p.status AS push_status, p.status_reason, p.message_id AS push_message_id,
                   p.message_count, p.last_error, p.created_at AS push_created_at, p.sent_at, p.delivery_attempts
            FROM {_MEMBER} gm JOIN {_USER} u ON u.id = gm.user_id
            LEFT JOIN LATERAL (
                SELECT * FROM {_PUSH} p
                WHERE p.group_id = gm.group_id AND p.recipient_id = gm.user_id
                  AND p.first_seq <= %(seq)s AND p.last_seq >= %(seq)s
                ORDER BY p.created_at LIMIT 1
            ) p ON true
            WHERE gm.group_id = %(group_id)s
            ORDER BY u.username""",
        {"group_id": message.group_id, "seq": message.seq},
    )
    push_ids = [m["push_id"] for m in members if m["push_id"]]
    logs_by_push: dict[Any, list[dict[str, Any]]] = {}
    for entry in (
        PushDeliveryLog.objects.filter(push_id__in=push_ids)
        .order_by("created_at", "id")
        .values("push_id", "device_id", "token_prefix", "status", "details", "created_at")
    ):
        details = entry["details"] or {}
        logs_by_push.setdefault(entry["push_id"], []).append(
            {
                "device_id": str(entry["device_id"]) if entry["device_id"] else None,
                "token_prefix": entry["token_prefix"],
                "status": entry["status"],
                "error_code": details.get("error_code"),
                "http_status": details.get("http_status"),
                "created_at": _iso(entry["created_at"]),
            }
        )
    out = []
    for m in members:
        if m["user_id"] == message.sender_id:
            code, text = "sender", "sender"
        elif m["push_id"] is None and m["is_blocked"]:
            code, text = "blocked", "blocked"
        elif m["push_id"] is None:
            code, text = "no_active_device", "no active device"
        elif m["push_status"] == "suppressed":
            code, text = "suppressed", f"suppressed: {m['status_reason'] or 'unknown'}"
        elif m["push_message_id"] == message.id:
            code, text = "pushed", f"pushed ({m['push_status']})"
        else:
            code, text = "coalesced", f"coalesced into push {m['push_id']} ({m['push_status']})"
        out.append(
            {
                "recipient_id": m["user_id"],
                "username": m["username"],
                "outcome": code,
                "outcome_text": text,
                "is_blocked": m["is_blocked"],
                "active_devices": m["active_devices"],
                "push_id": str(m["push_id"]) if m["push_id"] else None,
                "push_status": m["push_status"],
                "push_status_reason": m["status_reason"],
                "message_count": m["message_count"],
                "delivery_attempts": m["delivery_attempts"],
                "last_error": m["last_error"],
                "push_created_at": _iso(m["push_created_at"]),
                "sent_at": _iso(m["sent_at"]),
                "deliveries": logs_by_push.get(m["push_id"], []),
            }
        )
    return out


def recent_pushes_for_user(user_id: int, limit: int = 50) -> list[dict[str, Any]]:
    return list(
        PushNotification.objects.filter(Q(recipient_id=user_id))
        .order_by("-created_at")
        .values("id", "group_id", "status", "status_reason", "message_count", "last_error", "created_at", "sent_at")[
            :limit
        ]
    )


# --- reads for the dashboard ---


def count_pushes_since(since) -> int:
    """Push notifications created at or after ``since`` (index on created_at); the dashboard's pushes/min."""
    return PushNotification.objects.filter(created_at__gte=since).count()


def staff_device(device_id) -> UserDevice | None:
    """One device with its user, for the dashboard's actions (which take the model); None if unknown."""
    try:
        device_id = uuid.UUID(str(device_id))
    except ValueError:
        return None
    return UserDevice.objects.select_related("user", "user__organization").filter(pk=device_id).first()
