"""Push writes: device registry, coalescing fan-out, the leased dispatcher, receipts (DESIGN.md 5-7).

CONTRACT (other apps call these; keep the signatures):
``suppress_pending_pushes(reason) -> int`` · ``deactivate_device(device, *, reason, by=None) -> bool`` ·
``send_test_push(device, *, by=None) -> PushNotification`` · ``claim_due_pushes(limit)`` ·
``dispatch_due_pushes(limit=500) -> int``.

A push waiting for a retry stays ``sending`` with ``lease_until = next_attempt_at``: a retry is a lease
deliberately left to expire at the backoff time, so one claim query serves due pushes, retries and the
pushes of a worker that died mid-send, and a retry never collides with the one-pending-per-(recipient,
group) index when newer messages already opened a fresh pending push.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from config.sql import execute_prepared
from messaging.models import GroupMember, Message, User
from pushes.errors import Action, Classification, backoff_delay, classify
from pushes.models import (
    DeliveryStatus,
    PushDeliveryLog,
    PushNotification,
    PushStatus,
    UserDevice,
    truncate_token,
)
from pushes.queries import CONFIG_ALARM_CACHE_KEY
from realtime.services import emit

log = logging.getLogger("pushwatch.push")

RECEIPT_STATUSES = (DeliveryStatus.DELIVERED, DeliveryStatus.OPENED, DeliveryStatus.CLICKED)

_PUSH = PushNotification._meta.db_table
_DEVICE = UserDevice._meta.db_table
_MEMBER = GroupMember._meta.db_table
_USER = User._meta.db_table
_LOG = PushDeliveryLog._meta.db_table


# --------------------------------------------------------------------------------------------- devices


def register_device(user: User, *, platform: str, token: str, app_version: str) -> tuple[UserDevice, bool]:
    """Upsert by token in one statement, so two racing registrations of one token make one row.

    A token that moves to another user is reassigned (the phone changed hands / accounts); a deactivated
    token that registers again becomes active. Returns (device, created).
    """
    sql = f"""
        INSERT INTO {_DEVICE} AS d (id, user_id, platform, token, app_version, last_seen_at, active,
                                    created_at, deactivated_at, deactivation_reason)
        VALUES (%s, %s, %s, %s, %s, now(), true, now(), NULL, '')
        ON CONFLICT (token) DO UPDATE SET
            user_id = EXCLUDED.user_id, platform = EXCLUDED.platform, app_version = EXCLUDED.app_version,
            last_seen_at = EXCLUDED.last_seen_at, active = true, deactivated_at = NULL, deactivation_reason = ''
        RETURNING d.id, (xmax = 0) AS inserted
    """  # xmax = 0 only on a freshly inserted row
    with connection.cursor() as cur:
        cur.execute(sql, [uuid.uuid4(), user.pk, platform, token, app_version])
        device_id, created = cur.fetchone()
    device = UserDevice.objects.get(pk=device_id)
    log.info("[push] token:registered %s %s", platform, truncate_token(token))
    emit(
        user.organization_id,
        "device.registered",
        "device",
        device.id,
        {"user_id": user.pk, "platform": platform, "token_prefix": device.token_prefix, "created": created},
    )
    return device, created


def deactivate_device(device: UserDevice, *, reason: str, by=None) -> bool:
    """Deactivate one device, keeping the reason. False if it was already inactive."""
    who = getattr(by, "username", None)
    full_reason = f"{reason} (by {who})" if who else reason
    return bool(_deactivate_devices([(device.pk, full_reason)], by=who))


def logout_devices(user: User) -> int:
    ids = list(UserDevice.objects.filter(user=user, active=True).values_list("id", flat=True))
    return len(_deactivate_devices([(i, "logout") for i in ids]))


def _deactivate_devices(id_reasons: list[tuple[Any, str]], by: str | None = None) -> list[uuid.UUID]:
    """One UPDATE for many devices; logs and emits device.deactivated for those that were active."""
    if not id_reasons:
        return []
    sql = f"""
        UPDATE {_DEVICE} d SET active = false, deactivated_at = now(), deactivation_reason = left(v.reason, 200)
        FROM unnest(%s::uuid[], %s::text[]) AS v(id, reason)
        WHERE d.id = v.id AND d.active
        RETURNING d.id, d.platform, left(d.token, 6), v.reason, (SELECT organization_id FROM {_USER} u
                                                                 WHERE u.id = d.user_id), d.user_id
    """
    with connection.cursor() as cur:
        cur.execute(sql, [[i for i, _ in id_reasons], [r for _, r in id_reasons]])
        rows = cur.fetchall()
    for device_id, platform, prefix, reason, org_id, user_id in rows:
        log.info("[push] token:deactivated %s %s… reason=%s", platform, prefix, reason)
        emit(
            org_id,
            "device.deactivated",
            "device",
            device_id,
            {"user_id": user_id, "platform": platform, "token_prefix": f"{prefix}…", "reason": reason, "by": by},
        )
    return [r[0] for r in rows]


# --------------------------------------------------------------------------------------------- fan-out


def on_message_committed(sender: Any = None, *, message: Message, **kwargs: Any) -> None:
    """Receiver of messaging.signals.message_committed (connected in PushesConfig.ready)."""
    fan_out_message(message)


def fan_out_message(message: Message) -> int:
    """Create or merge one pending push per recipient in ONE set-based upsert; returns recipients touched.

    Recipients = members - sender - blocked, with at least one active device. A pending push for the
    same (recipient, group) absorbs the message (count + 1, latest message, widened seq range); while the
    kill-switch is on or the feature flag is off the rows are written as suppressed with the reason.
    """
    from flags.queries import push_suppression_reason

    reason = push_suppression_reason()
    window = float(settings.PUSH_COALESCE_WINDOW_SECONDS)
    status = PushStatus.SUPPRESSED if reason else PushStatus.PENDING
    created_at = message.created_at
    sql = f"""
        INSERT INTO {_PUSH} AS p (id, recipient_id, group_id, message_id, message_count, collapse_key, status,
            status_reason, payload, not_before, lease_until, retry_count, delivery_attempts, last_retry_at,
            next_attempt_at, last_error, created_at, sent_at, first_seq, last_seq, target_device_id)
        SELECT gen_random_uuid(), gm.user_id, %(group_id)s::uuid, %(message_id)s::uuid, 1, %(collapse_key)s::text,
            %(status)s::text, %(reason)s::text,
            jsonb_build_object('type', 'new_message', 'group_id', %(group_id)s::text,
                               'message_id', %(message_id)s::text, 'created_at', %(created_at_iso)s::text,
                               'count', '1'),
            %(not_before)s::timestamptz, NULL, 0, 0, NULL, NULL, '', now(), NULL, %(seq)s::bigint, %(seq)s::bigint, NULL
        FROM {_MEMBER} gm
        WHERE gm.group_id = %(group_id)s::uuid AND gm.user_id <> %(sender_id)s::bigint AND NOT gm.is_blocked
          AND EXISTS (SELECT 1 FROM {_DEVICE} d WHERE d.user_id = gm.user_id AND d.active)
        ON CONFLICT (recipient_id, group_id) WHERE status = 'pending' DO UPDATE SET
            message_count = p.message_count + 1,
            message_id = CASE WHEN EXCLUDED.last_seq >= p.last_seq THEN EXCLUDED.message_id ELSE p.message_id END,
            first_seq = LEAST(p.first_seq, EXCLUDED.first_seq),
            last_seq = GREATEST(p.last_seq, EXCLUDED.last_seq),
            payload = (CASE WHEN EXCLUDED.last_seq >= p.last_seq THEN EXCLUDED.payload ELSE p.payload END)
                      || jsonb_build_object('count', (p.message_count + 1)::text)
    """
    params = {
        "group_id": message.group_id,
        "message_id": message.id,
        "collapse_key": f"group:{message.group_id}",
        "status": status,
        "reason": reason or "",
        "created_at_iso": created_at.isoformat(),
        "not_before": created_at + timedelta(seconds=window),
        "seq": message.seq,
        "sender_id": message.sender_id,
    }
    recipients = execute_prepared(sql, params)[1]
    if reason:
        log.info("[push] notify:fanout group=%s recipients=%d suppressed=%s", message.group_id, recipients, reason)
    else:
        log.info("[push] notify:fanout group=%s recipients=%d", message.group_id, recipients)
        if recipients:
            _schedule_dispatch(countdown=window)
    return recipients


def _schedule_dispatch(countdown: float) -> None:
    """Ask a worker to dispatch when the window closes; beat's 1 s tick is the safety net."""
    try:
        from pushes.tasks import dispatch_due_pushes as dispatch_task

        dispatch_task.apply_async(countdown=countdown, retry_policy={"max_retries": 1})
    except Exception:  # the broker being down must not break a message send; beat will catch up
        log.warning("[push] dispatch scheduling failed; beat will pick the push up", exc_info=True)


def suppress_pending_pushes(reason: str) -> int:
    """Kill-switch: everything not yet handed to a live worker becomes suppressed with ``reason``."""
    sql = f"""
        UPDATE {_PUSH} SET status = 'suppressed', status_reason = %s, lease_until = NULL, next_attempt_at = NULL
        WHERE status = 'pending'
           OR (status = 'sending' AND (next_attempt_at IS NOT NULL OR lease_until <= now()))
    """
    with connection.cursor() as cur:
        cur.execute(sql, [reason[:200]])
        n = cur.rowcount
    if n:
        log.info("[push] suppressed pending=%d reason=%s", n, reason)
    return n


def send_test_push(device: UserDevice, *, by=None) -> PushNotification:
    """A push with group NULL to this one device, through the same claim/send/record pipeline."""
    now = timezone.now()
    push = PushNotification.objects.create(
        recipient_id=device.user_id,
        group=None,
        message=None,
        target_device=device,
        collapse_key="test",
        status=PushStatus.PENDING,
        status_reason=f"test push by {getattr(by, 'username', 'system')}",
        payload={"type": "test", "created_at": now.isoformat(), "count": "1"},
        not_before=now,
    )
    log.info("[push] test push=%s device=%s", push.id, device.token_prefix)
    _schedule_dispatch(countdown=0)
    return push


# ------------------------------------------------------------------------------------------ dispatcher


def claim_due_pushes(limit: int) -> list[PushNotification]:
    """Claim up to ``limit`` due pushes (pending past their window, or sending with an expired lease:
    a retry whose backoff elapsed or a dead worker's) with FOR UPDATE SKIP LOCKED, leasing them."""
    # clock_timestamp() (real time, read once), not now(): the claim must be honest even inside a caller's
    # long transaction; every claimed row gets the same lease_until, which fences our final update.
    sql = f"""
        WITH t AS MATERIALIZED (SELECT clock_timestamp() AS ts),
        due AS (
            SELECT id FROM {_PUSH}, t
            WHERE (status = 'pending' AND not_before <= t.ts)
               OR (status = 'sending' AND lease_until <= t.ts)
            ORDER BY not_before
            LIMIT %s
            FOR UPDATE OF {_PUSH} SKIP LOCKED
        )
        UPDATE {_PUSH} p SET
            status = 'sending',
            lease_until = t.ts + make_interval(secs => %s),
            next_attempt_at = NULL,
            delivery_attempts = p.delivery_attempts + 1,
            last_retry_at = CASE WHEN p.delivery_attempts > 0 THEN t.ts ELSE p.last_retry_at END
        FROM due, t WHERE p.id = due.id
        RETURNING p.*
    """
    _give_up_on_lost_pushes()
    with transaction.atomic():  # raw() maps the returned rows straight to models: no second query
        claimed = list(PushNotification.objects.raw(sql, [int(limit), float(settings.PUSH_LEASE_SECONDS)]))
    return claimed


def _give_up_on_lost_pushes() -> int:
    """A push whose worker died on every one of its PUSH_MAX_ATTEMPTS attempts (a poison push) is not
    claimed forever: it ends sent if some device accepted it before the crash, else failed."""
    sql = f"""
        UPDATE {_PUSH} p SET
            status = CASE WHEN EXISTS (SELECT 1 FROM {_LOG} l WHERE l.push_id = p.id AND l.status = 'sent')
                          THEN 'sent' ELSE 'failed' END,
            status_reason = 'max_attempts',
            last_error = CASE WHEN p.last_error = '' THEN 'the worker was lost (lease expired) on every attempt'
                              ELSE p.last_error END,
            lease_until = NULL
        WHERE p.status = 'sending' AND p.next_attempt_at IS NULL AND p.lease_until <= clock_timestamp()
          AND p.delivery_attempts >= %s
    """
    with connection.cursor() as cur:
        cur.execute(sql, [int(settings.PUSH_MAX_ATTEMPTS)])
        if cur.rowcount:
            log.warning(
                "[push] gave up on %d pushes lost by workers %s times", cur.rowcount, settings.PUSH_MAX_ATTEMPTS
            )
        return cur.rowcount


@dataclass
class _PushResult:
    targets: int = 0
    accepted: bool = False  # some device accepted it (now or on an earlier attempt)
    retry: list[Classification] = field(default_factory=list)
    permanent: Classification | None = None
    dead: Classification | None = None
    rejected_before: tuple[str, str] | None = None  # (Action, reason) of a permanent rejection earlier


def dispatch_due_pushes(limit: int = 500) -> int:
    """Claim, send to every active device through the provider, record; returns pushes handled."""
    from flags.queries import push_suppression_reason

    reason = push_suppression_reason()
    if reason:
        return suppress_pending_pushes(reason)
    pushes = claim_due_pushes(limit)
    if not pushes:
        return 0
    _send_and_record(pushes)
    return len(pushes)


def _outgoing_data(push: PushNotification) -> dict[str, str]:
    # All values strings, no message text; push_id lets the client post its receipt.
    data = {str(k): str(v) for k, v in (push.payload or {}).items()}
    data["push_id"] = str(push.id)
    return data


def _send_and_record(pushes: list[PushNotification]) -> dict[str, Any]:
    """Send one claimed batch and record it; returns the batch summary (also emitted as push.batch)."""
    from pushes.providers.base import OutgoingMessage

    started = time.perf_counter()
    lease = pushes[0].lease_until  # every row of one claim shares it: it fences our final update
    by_id = {p.id: p for p in pushes}
    recipients = {p.recipient_id for p in pushes if p.target_device_id is None}
    targeted = {p.target_device_id for p in pushes if p.target_device_id is not None}
    devices_by_user: dict[int, list[UserDevice]] = defaultdict(list)
    device_by_id: dict[uuid.UUID, UserDevice] = {}
    for d in UserDevice.objects.filter(active=True, user_id__in=recipients).only("id", "user_id", "platform", "token"):
        devices_by_user[d.user_id].append(d)
    for d in UserDevice.objects.filter(active=True, id__in=targeted).only("id", "user_id", "platform", "token"):
        device_by_id[d.id] = d
    # Devices already done with this push are not sent it again: those that accepted it (an earlier attempt,
    # or a worker that died after sending) and those that rejected it for good (a permanent error for this
    # push: a retry meant for another device must not repeat it).
    done = PushDeliveryLog.objects.filter(push_id__in=list(by_id)).filter(
        Q(status=DeliveryStatus.SENT)
        | Q(status=DeliveryStatus.FAILED, details__action__in=[Action.FAIL.value, Action.PAYLOAD_ERROR.value])
    )
    already: set[tuple[uuid.UUID, uuid.UUID]] = set()
    accepted_before: set[uuid.UUID] = set()
    rejected_before: dict[uuid.UUID, tuple[str, str]] = {}
    for push_id, device_id, status, details in done.values_list("push_id", "device_id", "status", "details"):
        already.add((push_id, device_id))
        if status == DeliveryStatus.SENT:
            accepted_before.add(push_id)
        else:
            details = details or {}
            reason = f"{details.get('error_code') or 'rejected'}: {details.get('detail') or ''}".strip(": ")
            rejected_before[push_id] = (str(details.get("action") or Action.FAIL), reason)
    results = {
        p.id: _PushResult(accepted=p.id in accepted_before, rejected_before=rejected_before.get(p.id)) for p in pushes
    }
    sends: list[tuple[PushNotification, UserDevice]] = []
    for push in pushes:
        if push.target_device_id is not None:
            devices = [device_by_id[push.target_device_id]] if push.target_device_id in device_by_id else []
        else:
            devices = devices_by_user.get(push.recipient_id, [])
        devices = [d for d in devices if (push.id, d.id) not in already]
        results[push.id].targets = len(devices)
        sends.extend((push, d) for d in devices)

    messages = [
        OutgoingMessage(
            device_id=str(d.id), token=d.token, platform=d.platform, data=_outgoing_data(p), collapse_key=p.collapse_key
        )
        for p, d in sends
    ]
    loaded = time.perf_counter()
    outcomes = _send_many(messages)
    sent_at = time.perf_counter()

    logs: list[PushDeliveryLog] = []
    dead_devices: list[tuple[uuid.UUID, str]] = []
    alarms: list[tuple[Classification, Any]] = []
    for (push, device), outcome in zip(sends, outcomes, strict=True):
        c = classify(outcome)
        r = results[push.id]
        logs.append(
            PushDeliveryLog(
                push_id=push.id,
                device_id=device.id,
                token_prefix=device.token_prefix,
                status=DeliveryStatus.SENT if c.action is Action.SENT else DeliveryStatus.FAILED,
                details={
                    "attempt": push.delivery_attempts,
                    "http_status": outcome.http_status,
                    "error_code": c.error_code or None,
                    "action": str(c.action),
                    "detail": (outcome.detail or "")[:300] or None,
                    "latency_ms": round(float(outcome.latency_ms or 0.0), 2),
                    "message_name": outcome.message_name,
                    "platform": device.platform,
                },
            )
        )
        if c.action is Action.SENT:
            r.accepted = True
        elif c.action is Action.DEACTIVATE:
            dead_devices.append((device.id, c.reason))
            r.dead = c
        elif c.action in (Action.RETRY, Action.CONFIG_ALARM):
            r.retry.append(c)
            if c.action is Action.CONFIG_ALARM:
                alarms.append((c, outcome))
        else:  # PAYLOAD_ERROR, FAIL: the device is fine, this push is not
            r.permanent = c

    updates = [_final_state(by_id[pid], r) for pid, r in results.items()]
    with transaction.atomic():
        PushDeliveryLog.objects.bulk_create(logs, batch_size=1000)
        _deactivate_devices(dead_devices)
        _apply_push_updates(updates, lease)
    recorded = time.perf_counter()
    sent_devices = sum(1 for entry in logs if entry.status == DeliveryStatus.SENT)
    _record_configuration_alarm(alarms, any_accepted=sent_devices > 0)

    counts: dict[str, int] = defaultdict(int)
    for u in updates:
        counts["retrying" if u[1] == PushStatus.SENDING else str(u[1])] += 1
    summary = {
        "pushes": len(pushes),
        **dict(counts),
        "device_sends": len(logs),
        "device_accepted": sent_devices,
        "device_failed": len(logs) - sent_devices,
        "deactivated": len(dead_devices),
        "load_ms": round((loaded - started) * 1000, 1),
        "send_ms": round((sent_at - loaded) * 1000, 1),
        "record_ms": round((recorded - sent_at) * 1000, 1),
    }
    log.info("[push] dispatch batch %s", " ".join(f"{k}={v}" for k, v in summary.items()))
    emit(None, "push.batch", "push_batch", uuid.uuid4(), summary)
    return summary


def _send_many(messages: list) -> list:
    """The provider's outcomes; if the provider cannot even be built (credentials file missing or bad)
    every send is a configuration alarm, and if it raises every send is retried later."""
    from pushes.providers import get_provider

    if not messages:
        return []
    try:
        provider = get_provider()
    except Exception as exc:
        log.exception("[push] provider could not be set up")
        return [_synthetic_failure("PROVIDER_CONFIG", f"provider not configured: {type(exc).__name__}")] * len(messages)
    try:
        return provider.send_many_sync(messages)
    except Exception as exc:  # the provider should not raise; if it does, every send is retried later
        log.exception("[push] provider send_many failed")
        return [_synthetic_failure("UNAVAILABLE", f"provider error: {type(exc).__name__}")] * len(messages)


def _synthetic_failure(error_code: str, detail: str) -> SimpleNamespace:
    return SimpleNamespace(
        ok=False,
        http_status=0,
        error_code=error_code,
        detail=detail,
        retry_after=None,
        message_name=None,
        latency_ms=0.0,
    )


def _final_state(push: PushNotification, r: _PushResult) -> tuple:
    """(id, status, status_reason, last_error, retry delay in seconds or None) for one push after one attempt."""
    if r.retry:
        last = r.retry[-1]
        if push.delivery_attempts < int(settings.PUSH_MAX_ATTEMPTS):
            delay = max(backoff_delay(push.delivery_attempts, min_delay=c.min_delay) for c in r.retry)
            return (push.id, PushStatus.SENDING, "retrying", last.reason, delay)
        if r.accepted:  # some devices got it; the others ran out of attempts
            return (push.id, PushStatus.SENT, "partially_sent", last.reason, None)
        return (push.id, PushStatus.FAILED, "max_attempts", last.reason, None)
    if r.accepted:
        return (push.id, PushStatus.SENT, "", "", None)
    if r.permanent is not None:
        reason = "payload_rejected" if r.permanent.action is Action.PAYLOAD_ERROR else "provider_rejected"
        return (push.id, PushStatus.FAILED, reason, r.permanent.reason, None)
    if r.rejected_before is not None:  # nothing left to try, and an earlier answer was final
        action, last_error = r.rejected_before
        reason = "payload_rejected" if action == Action.PAYLOAD_ERROR else "provider_rejected"
        return (push.id, PushStatus.FAILED, reason, last_error, None)
    if r.dead is not None:  # every device it went to turned out dead
        return (push.id, PushStatus.FAILED, "no_active_device", r.dead.reason, None)
    return (push.id, PushStatus.SUPPRESSED, "no_active_device", "", None)


def _apply_push_updates(updates: list[tuple], lease: datetime | None) -> None:
    """One UPDATE for the whole batch, fenced by our lease so a re-claimed push is not overwritten."""
    if not updates:
        return
    # The retry time is taken from the clock at this write, after the provider answered and after the
    # batch's log lines: a retry is never sooner than Retry-After counted from the error.
    sql = f"""
        WITH t AS MATERIALIZED (SELECT clock_timestamp() AS ts)
        UPDATE {_PUSH} p SET
            status = v.status, status_reason = left(v.status_reason, 200), last_error = left(v.last_error, 2000),
            sent_at = CASE WHEN v.status = 'sent' THEN t.ts ELSE p.sent_at END,
            next_attempt_at = t.ts + make_interval(secs => v.delay),
            lease_until = t.ts + make_interval(secs => v.delay),
            retry_count = p.retry_count + CASE WHEN v.status = 'sending' THEN 1 ELSE 0 END
        FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::float8[])
             AS v(id, status, status_reason, last_error, delay), t
        WHERE p.id = v.id AND p.status = 'sending' AND p.lease_until = %s
    """
    columns = list(zip(*updates, strict=True))
    with connection.cursor() as cur:
        cur.execute(sql, [list(columns[0]), [str(s) for s in columns[1]], list(columns[2]), list(columns[3]),
                          list(columns[4]), lease])  # fmt: skip
        if cur.rowcount != len(updates):
            log.warning("[push] %d of %d pushes were re-claimed before we finished", len(updates) - cur.rowcount,
                        len(updates))  # fmt: skip


def _record_configuration_alarm(alarms: list[tuple[Classification, Any]], *, any_accepted: bool) -> None:
    """THIRD_PARTY_AUTH_ERROR / 401: a dashboard alarm in Redis (shared by every process), no deactivation.
    Cleared by the next batch that gets sends accepted without an auth error."""
    try:
        if alarms:
            c, outcome = alarms[-1]
            previous = cache.get(CONFIG_ALARM_CACHE_KEY) or {}
            cache.set(
                CONFIG_ALARM_CACHE_KEY,
                {
                    "error_code": c.error_code,
                    "http_status": outcome.http_status,
                    "detail": (outcome.detail or "")[:300],
                    "since": previous.get("since") or timezone.now().isoformat(),
                    "last_seen": timezone.now().isoformat(),
                    "count": int(previous.get("count", 0)) + len(alarms),
                },
                timeout=None,
            )
            log.error("[push] config:alarm %s sends=%d detail=%s", c.error_code, len(alarms), c.reason)
        elif any_accepted:
            cache.delete(CONFIG_ALARM_CACHE_KEY)
    except Exception:  # Redis trouble must not lose the batch's records
        log.warning("[push] could not store the configuration alarm", exc_info=True)


# -------------------------------------------------------------------------------------------- receipts


def record_receipt(push: PushNotification, device: UserDevice, *, status: str, details: dict) -> bool:
    """Client receipt; idempotent per (push, device, status) through the partial unique index.
    Returns True if this call recorded it."""
    sql = f"""
        INSERT INTO {_LOG} (push_id, device_id, token_prefix, status, details, created_at)
        VALUES (%s, %s, %s, %s, %s::jsonb, now())
        ON CONFLICT (push_id, device_id, status) WHERE status IN ('delivered', 'opened', 'clicked') DO NOTHING
    """
    with connection.cursor() as cur:
        cur.execute(sql, [push.pk, device.pk, device.token_prefix, status, json.dumps(details)])
        return cur.rowcount == 1
