"""Flag writes. ``set_flag`` is the ONE write path: validated, locked, audited, broadcast, obeyed."""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from flags import cache
from flags.defaults import KILL_SWITCH, PUSH_RESYNC_ENABLED, SEED_BY_KEY
from flags.models import Flag, FlagChange
from flags.rules import rules_errors, value_errors

log = logging.getLogger("pushwatch.flags")

MAX_REASON_LENGTH = 2000
# A second sweep after every process has surely seen the change (> cache.CHECK_INTERVAL + slack):
# catches a push fanned out by a process that evaluated the flags just before the switch flipped.
RESWEEP_AFTER_SECONDS = 2.0


def set_flag(key: str, value: Any, *, changed_by, reason: str, rules: list | None = None) -> FlagChange:
    """Change a flag's value (and, when ``rules`` is given, replace its targeting rules).

    Raises ``ValidationError({field: [message]})`` for an unknown key, a wrong type, a value out of
    range, invalid rules, a blank reason or no change at all; the flag then keeps its value.
    On commit: every process's cache is invalidated, ``flag.changed`` is emitted, and turning the
    kill-switch on (or push_resync.enabled off) suppresses the pushes still pending.
    """
    errors: dict[str, list[str]] = {}
    reason_text = reason.strip() if isinstance(reason, str) else ""
    if not reason_text:
        errors["reason"] = ["A reason is required for every flag change."]
    elif len(reason_text) > MAX_REASON_LENGTH:
        errors["reason"] = [f"At most {MAX_REASON_LENGTH} characters."]
    if not isinstance(key, str) or not key:
        raise ValidationError({"key": ["Unknown flag."], **errors})
    user = changed_by if getattr(changed_by, "is_authenticated", False) else None

    with transaction.atomic():
        _ensure_seed_row(key)
        flag = Flag.objects.select_for_update().filter(key=key).first()
        if flag is None:
            raise ValidationError({"key": [f"Unknown flag {key!r}."], **errors})
        schema = flag.schema or {}
        if problems := value_errors(flag.type, schema, value):
            errors["value"] = problems
        new_rules = flag.rules if rules is None else rules
        if problems := rules_errors(flag.type, schema, new_rules):
            errors["rules"] = problems
        if errors:
            raise ValidationError(errors)
        if flag.type == "float":
            value = float(value)
        old = {"value": flag.value, "rules": flag.rules}
        new = {"value": value, "rules": new_rules}
        if old == new and type(old["value"]) is type(new["value"]):
            raise ValidationError({"value": ["The flag already has this value and these rules."]})

        flag.value, flag.rules = value, new_rules
        flag.save(update_fields=["value", "rules", "updated_at"])
        change = FlagChange.objects.create(flag=flag, old=old, new=new, changed_by=user, reason=reason_text)
        cache.mark_uncommitted_write()
        transaction.on_commit(functools.partial(_after_commit, change, _suppression_reason(key, old, new)), robust=True)

    log.info("[flags] changed key=%s by=%s change=%s", key, user.get_username() if user else "system", change.pk)
    return change


def ensure_seed_flags() -> None:
    """Create any missing seed-000 flag row (the data migration's job; for databases flushed by
    transactional tests). Existing rows are never touched."""
    for key in SEED_BY_KEY:
        _ensure_seed_row(key)


def _ensure_seed_row(key: str) -> None:
    """Recreate a seed-000 flag whose row is gone (a flushed test database); never touches an existing row."""
    seed = SEED_BY_KEY.get(key)
    if seed is not None:
        Flag.objects.get_or_create(
            key=key,
            defaults={
                "type": seed["type"],
                "value": seed["default"],
                "default": seed["default"],
                "description": seed["description"],
                "schema": seed["schema"],
            },
        )


def _suppression_reason(key: str, old: dict, new: dict) -> str | None:
    if key == KILL_SWITCH and old["value"] is not True and new["value"] is True:
        return "kill_switch"
    if key == PUSH_RESYNC_ENABLED and old["value"] is True and new["value"] is not True:
        return "flag_disabled"
    return None


def _after_commit(change: FlagChange, suppression_reason: str | None) -> None:
    # 1) every process (this one at once, the others within ~200 ms) stops serving the old value
    cache.clear_uncommitted_write()
    cache.bump_version()
    # 2) pushes already queued must not go out any more
    if suppression_reason:
        suppress_pending_pushes(suppression_reason)
        _schedule_resweep(suppression_reason)
    # 3) staff see it live
    _emit_changed(change)


def suppress_pending_pushes(reason: str) -> int:
    """Call the pushes app's suppression (lazily: flags must not import pushes at module load)."""
    try:
        from pushes.services import suppress_pending_pushes as suppress
    except ImportError:
        log.warning("[flags] pushes.services.suppress_pending_pushes not available; pending pushes left (%s)", reason)
        return 0
    try:
        count = suppress(reason)
    except Exception:
        log.exception("[flags] suppressing pending pushes failed reason=%s", reason)
        return 0
    log.info("[flags] suppressed pending pushes reason=%s count=%s", reason, count)
    return count


def _schedule_resweep(reason: str) -> None:
    try:
        from flags.tasks import resweep_pending_pushes

        resweep_pending_pushes.apply_async(args=[reason], countdown=RESWEEP_AFTER_SECONDS)
    except Exception:
        log.exception("[flags] could not schedule the pending-push re-sweep reason=%s", reason)


def _emit_changed(change: FlagChange) -> None:
    from realtime.services import emit

    user = change.changed_by
    emit(
        None,
        "flag.changed",
        "flag",
        change.flag.key,
        {
            "key": change.flag.key,
            "old": change.old,
            "new": change.new,
            "reason": change.reason,
            "changed_by": user.get_username() if user else None,
            "change_id": change.pk,
        },
        dedupe_key=f"flag.changed:{change.pk}",
    )
