"""Targeting: platform, minimum app version (real version ordering) and stable user percentages."""

from __future__ import annotations

import pytest

from flags.queries import flag_value, push_suppression_reason
from flags.rules import parse_version, percentage_bucket
from flags.services import set_flag
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("newer", "older"),
    [("1.10.0", "1.9.2"), ("2.0.0", "1.99.99"), ("1.0.10", "1.0.9"), ("1.2", "1.1.9"), ("2.0.0", "2.0.0rc1")],
)
def test_versions_compare_as_versions_not_strings(newer, older):
    assert parse_version(newer) > parse_version(older)


def test_min_app_version_rule_uses_version_ordering(admin):
    rules = [{"min_app_version": "1.10.0", "value": 500}]
    set_flag("sync.maxBatch", 200, changed_by=admin, reason="new clients page further", rules=rules)
    assert flag_value("sync.maxBatch", app_version="1.10.0") == 500
    assert flag_value("sync.maxBatch", app_version="1.10.1") == 500
    assert flag_value("sync.maxBatch", app_version="2.0") == 500
    assert flag_value("sync.maxBatch", app_version="1.9.2") == 200  # a string compare would say "1.9.2" > "1.10.0"
    assert flag_value("sync.maxBatch", app_version=None) == 200
    assert flag_value("sync.maxBatch", app_version="garbage") == 200


def test_platform_rule_targets_one_platform(admin):
    set_flag("realtime.retryBackoff", [1500, 3000, 6000], changed_by=admin, reason="ios backs off longer",
             rules=[{"platform": "ios", "value": [2000, 4000, 8000, 16000]}])  # fmt: skip
    assert flag_value("realtime.retryBackoff", platform="ios") == [2000, 4000, 8000, 16000]
    assert flag_value("realtime.retryBackoff", platform="android") == [1500, 3000, 6000]
    assert flag_value("realtime.retryBackoff") == [1500, 3000, 6000]


def test_all_conditions_of_a_rule_must_hold_and_the_first_matching_rule_wins(admin):
    rules = [
        {"platform": "ios", "min_app_version": "3.0.0", "value": 900},
        {"platform": "ios", "value": 600},
    ]
    set_flag("sync.maxBatch", 200, changed_by=admin, reason="ios tiers", rules=rules)
    assert flag_value("sync.maxBatch", platform="ios", app_version="3.1.0") == 900
    assert flag_value("sync.maxBatch", platform="ios", app_version="2.9.0") == 600
    assert flag_value("sync.maxBatch", platform="android", app_version="3.1.0") == 200


def test_percentage_buckets_are_stable_and_spread_evenly():
    buckets = [percentage_bucket("sync.maxBatch", user_id) for user_id in range(10_000)]
    assert buckets == [percentage_bucket("sync.maxBatch", user_id) for user_id in range(10_000)]
    assert all(0 <= b < 100 for b in buckets)
    share_in_first_quarter = sum(b < 25 for b in buckets) / len(buckets)
    assert 0.22 < share_in_first_quarter < 0.28
    # Flags bucket independently: being in one flag's first 10 % says nothing about another's.
    other = [percentage_bucket("auth.refreshTimeoutMs", user_id) for user_id in range(10_000)]
    assert sum(a < 10 and b < 10 for a, b in zip(buckets, other, strict=True)) < 200


def test_a_user_inside_the_percentage_stays_inside_as_it_grows(admin):
    user_ids = range(1, 501)  # flag_value takes a User or its id; ids keep the test free of password hashing
    included_by_percentage = {}
    for pct in (0, 10, 25, 50, 100):
        set_flag("outbox.retryShortDelayMs", 700, changed_by=admin, reason=f"ramp to {pct}%",
                 rules=[{"percentage": pct, "value": 400}])  # fmt: skip
        included_by_percentage[pct] = {
            uid for uid in user_ids if flag_value("outbox.retryShortDelayMs", user=uid) == 400
        }
    assert included_by_percentage[0] == set()
    assert included_by_percentage[100] == set(user_ids)
    steps = [included_by_percentage[p] for p in (0, 10, 25, 50, 100)]
    assert all(smaller <= larger for smaller, larger in zip(steps, steps[1:], strict=False))
    assert 0 < len(included_by_percentage[10]) < len(included_by_percentage[50]) < 500


def test_a_user_object_and_its_id_evaluate_the_same(admin):
    user = UserFactory()
    set_flag("sync.maxBatch", 200, changed_by=admin, reason="half", rules=[{"percentage": 50, "value": 300}])
    assert flag_value("sync.maxBatch", user=user) == flag_value("sync.maxBatch", user=user.pk)


def test_a_percentage_rule_leaves_anonymous_callers_out_unless_it_is_100(admin):
    set_flag("sync.maxBatch", 200, changed_by=admin, reason="half", rules=[{"percentage": 99, "value": 300}])
    assert flag_value("sync.maxBatch") == 200
    set_flag("sync.maxBatch", 200, changed_by=admin, reason="all", rules=[{"percentage": 100, "value": 300}])
    assert flag_value("sync.maxBatch") == 300


def test_the_kill_switch_turns_push_resync_off_for_everyone_whatever_the_rules(admin):
    set_flag("features.push_resync.enabled", False, changed_by=admin, reason="ios only",
             rules=[{"platform": "ios", "value": True}])  # fmt: skip
    assert flag_value("features.push_resync.enabled", platform="ios") is True
    assert flag_value("features.push_resync.enabled", platform="android") is False
    assert push_suppression_reason() == "flag_disabled"

    set_flag("features.push_resync.killSwitch", True, changed_by=admin, reason="incident")
    assert flag_value("features.push_resync.enabled", platform="ios") is False
    assert push_suppression_reason() == "kill_switch"


def test_push_suppression_reason_follows_the_flags(admin):
    assert push_suppression_reason() is None
    set_flag("features.push_resync.enabled", False, changed_by=admin, reason="pause rollout")
    assert push_suppression_reason() == "flag_disabled"
    set_flag("features.push_resync.killSwitch", True, changed_by=admin, reason="incident")
    assert push_suppression_reason() == "kill_switch"


def test_an_unknown_key_raises_key_error_on_read():
    with pytest.raises(KeyError):
        flag_value("no.such.flag")
