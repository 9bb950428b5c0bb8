"""Every change leaves an append-only FlagChange (who, when, old, new incl. rules, why) and a flag.changed event."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from flags.defaults import SEED_FLAGS
from flags.models import Flag, FlagChange
from flags.queries import flag_history, list_flags
from flags.services import set_flag
from realtime.models import RealtimeEvent

pytestmark = pytest.mark.django_db


def test_the_six_seed_flags_exist_with_their_types_and_defaults():
    rows = {f["key"]: f for f in list_flags()}
    assert {k: (r["type"], r["value"], r["default"]) for k, r in rows.items()} == {
        "features.push_resync.enabled": ("bool", True, True),
        "features.push_resync.killSwitch": ("bool", False, False),
        "sync.maxBatch": ("int", 200, 200),
        "realtime.retryBackoff": ("json", [1500, 3000, 6000], [1500, 3000, 6000]),
        "auth.refreshTimeoutMs": ("int", 1800, 1800),
        "outbox.retryShortDelayMs": ("int", 700, 700),
    }
    assert rows["sync.maxBatch"]["schema"] == {"min": 1, "max": 1000}
    assert all(r["description"] for r in rows.values())
    assert rows["features.push_resync.killSwitch"]["is_kill_switch"]
    assert len(SEED_FLAGS) == 6


def test_every_change_records_who_old_new_and_why(admin):
    set_flag("sync.maxBatch", 300, changed_by=admin, reason="bigger pages for the beta")
    rules = [{"platform": "ios", "min_app_version": "1.10.0", "value": 500}]
    set_flag("sync.maxBatch", 400, changed_by=admin, reason="ios 1.10 handles more", rules=rules)
    set_flag("sync.maxBatch", 400, changed_by=None, reason="  rules off again  ", rules=[])

    history = flag_history("sync.maxBatch", limit=10)
    assert [(h["old"], h["new"], h["reason"], h["changed_by__username"]) for h in history] == [
        ({"value": 400, "rules": rules}, {"value": 400, "rules": []}, "rules off again", None),
        ({"value": 300, "rules": []}, {"value": 400, "rules": rules}, "ios 1.10 handles more", admin.username),
        ({"value": 200, "rules": []}, {"value": 300, "rules": []}, "bigger pages for the beta", admin.username),
    ]
    assert all(h["created_at"] is not None for h in history)
    assert flag_history("sync.maxBatch", limit=1)[0]["reason"] == "rules off again"
    assert Flag.objects.get(key="sync.maxBatch").value == 400


def test_set_flag_returns_the_audit_row(admin):
    change = set_flag("features.push_resync.killSwitch", True, changed_by=admin, reason="incident 42")
    assert isinstance(change, FlagChange)
    assert change.flag.key == "features.push_resync.killSwitch"
    assert (change.old["value"], change.new["value"], change.changed_by) == (False, True, admin)


def test_audit_rows_cannot_be_edited_or_deleted(admin):
    change = set_flag("sync.maxBatch", 300, changed_by=admin, reason="r")
    with pytest.raises(IntegrityError), transaction.atomic():
        FlagChange.objects.filter(pk=change.pk).update(reason="nothing happened")
    with pytest.raises(IntegrityError), transaction.atomic():
        FlagChange.objects.filter(pk=change.pk).delete()
    assert FlagChange.objects.get(pk=change.pk).reason == "r"


def test_a_committed_change_emits_one_system_wide_flag_changed_event(admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        change = set_flag("outbox.retryShortDelayMs", 900, changed_by=admin, reason="slower retries")
    event = RealtimeEvent.objects.get(event_type="flag.changed")
    assert event.organization_id is None  # staff only
    assert (event.entity_type, event.entity_id) == ("flag", "outbox.retryShortDelayMs")
    assert event.payload["old"] == {"value": 700, "rules": []}
    assert event.payload["new"] == {"value": 900, "rules": []}
    assert event.payload["reason"] == "slower retries"
    assert event.payload["changed_by"] == admin.username
    assert event.payload["change_id"] == change.pk


def test_a_refused_change_emits_nothing(admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Exception):  # noqa: B017
        set_flag("sync.maxBatch", 0, changed_by=admin, reason="r")
    assert callbacks == []
    assert not RealtimeEvent.objects.filter(event_type="flag.changed").exists()


def test_a_seed_flag_whose_row_is_gone_is_recreated_on_write(admin):
    Flag.objects.filter(key="auth.refreshTimeoutMs").delete()
    set_flag("auth.refreshTimeoutMs", 2500, changed_by=admin, reason="slow networks")
    flag = Flag.objects.get(key="auth.refreshTimeoutMs")
    assert (flag.value, flag.default, flag.type) == (2500, 1800, "int")
