"""Every bad write is refused with a field error, and the flag keeps its value (no audit row)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from flags.models import Flag, FlagChange
from flags.queries import flag_value
from flags.services import set_flag

pytestmark = pytest.mark.django_db


def assert_refused(field: str, key: str, value, *, reason="because", rules=None, admin=None) -> list[str]:
    before = Flag.objects.filter(key=key).values_list("value", "rules").first()
    with pytest.raises(ValidationError) as exc:
        set_flag(key, value, changed_by=admin, reason=reason, rules=rules)
    assert field in exc.value.message_dict, exc.value.message_dict
    assert Flag.objects.filter(key=key).values_list("value", "rules").first() == before
    assert not FlagChange.objects.exists()
    return exc.value.message_dict[field]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("features.push_resync.killSwitch", "true"),
        ("features.push_resync.killSwitch", 1),
        ("features.push_resync.enabled", None),
        ("sync.maxBatch", "200"),
        ("sync.maxBatch", 200.5),
        ("sync.maxBatch", True),
        ("realtime.retryBackoff", 1500),
        ("realtime.retryBackoff", [1500, "3000"]),
        ("realtime.retryBackoff", [1500.0, 3000.0]),
        ("auth.refreshTimeoutMs", [1800]),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(admin, key, value):
    assert_refused("value", key, value, admin=admin)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sync.maxBatch", 0),
        ("sync.maxBatch", 1001),
        ("sync.maxBatch", -5),
        ("realtime.retryBackoff", []),
        ("realtime.retryBackoff", list(range(100, 1200, 100))),  # 11 steps
        ("realtime.retryBackoff", [3000, 1500]),
        ("realtime.retryBackoff", [1500, 1500, 3000]),
        ("realtime.retryBackoff", [0, 1500]),
        ("realtime.retryBackoff", [-1500, 3000]),
        ("auth.refreshTimeoutMs", 0),
        ("outbox.retryShortDelayMs", -700),
        ("outbox.retryShortDelayMs", 2**31),
    ],
)
def test_a_value_out_of_range_is_refused(admin, key, value):
    assert_refused("value", key, value, admin=admin)


def test_the_range_edges_are_accepted(admin):
    set_flag("sync.maxBatch", 1, changed_by=admin, reason="lower edge")
    set_flag("sync.maxBatch", 1000, changed_by=admin, reason="upper edge")
    set_flag("realtime.retryBackoff", [1], changed_by=admin, reason="one step")
    set_flag("realtime.retryBackoff", list(range(100, 1100, 100)), changed_by=admin, reason="ten steps")
    assert Flag.objects.get(key="sync.maxBatch").value == 1000
    assert Flag.objects.get(key="realtime.retryBackoff").value == list(range(100, 1100, 100))


@pytest.mark.parametrize("key", ["no.such.flag", "", "SYNC.MAXBATCH", None])
def test_an_unknown_key_is_refused(admin, key):
    with pytest.raises(ValidationError) as exc:
        set_flag(key, 1, changed_by=admin, reason="because")
    assert "key" in exc.value.message_dict
    assert not Flag.objects.filter(key="no.such.flag").exists()
    assert not FlagChange.objects.exists()


@pytest.mark.parametrize("reason", ["", "   ", "\n\t", None])
def test_a_change_without_a_reason_is_refused(admin, reason):
    assert_refused("reason", "sync.maxBatch", 300, reason=reason, admin=admin)
    assert flag_value("sync.maxBatch") == 200


def test_all_problems_are_reported_together(admin):
    with pytest.raises(ValidationError) as exc:
        set_flag("sync.maxBatch", 5000, changed_by=admin, reason=" ", rules="all")
    assert set(exc.value.message_dict) == {"value", "reason", "rules"}


@pytest.mark.parametrize(
    "rules",
    [
        [{"platform": "ios", "value": "300"}],  # rule value of the wrong type
        [{"platform": "ios", "value": 5000}],  # rule value out of range
        [{"platform": "windows", "value": 300}],
        [{"min_app_version": "not a version", "value": 300}],
        [{"percentage": 101, "value": 300}],
        [{"percentage": 12.5, "value": 300}],
        [{"value": 300}],  # no condition
        [{"platform": "ios"}],  # no value
        [{"platform": "ios", "value": 300, "country": "NL"}],
        ["ios"],
        {"platform": "ios", "value": 300},
    ],
)
def test_invalid_rules_are_refused(admin, rules):
    assert_refused("rules", "sync.maxBatch", 300, rules=rules, admin=admin)


def test_the_kill_switch_takes_no_targeting_rules(admin):
    messages = assert_refused(
        "rules", "features.push_resync.killSwitch", True, rules=[{"platform": "ios", "value": True}], admin=admin
    )
    assert "global" in messages[0]


def test_writing_the_current_value_again_is_refused_as_no_change(admin):
    assert_refused("value", "sync.maxBatch", 200, admin=admin)


def test_the_database_refuses_a_value_of_the_wrong_shape_even_past_the_service():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Flag.objects.filter(key="sync.maxBatch").update(value="lots")
    with pytest.raises(IntegrityError), transaction.atomic():
        Flag.objects.filter(key="sync.maxBatch").update(value=2.5)
    with pytest.raises(IntegrityError), transaction.atomic():
        Flag.objects.filter(key="features.push_resync.enabled").update(value=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Flag.objects.filter(key="sync.maxBatch").update(rules={"platform": "ios"})
