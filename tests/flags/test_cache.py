"""The per-process cache: no query per evaluation, immediate in-process visibility, cross-process
invalidation through the Redis version counter, and no lingering rolled-back change."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from flags import cache
from flags.models import Flag
from flags.queries import evaluated_config, flag_value, push_suppression_reason
from flags.services import set_flag


@pytest.mark.django_db(transaction=True)
def test_steady_state_evaluation_makes_no_database_query(admin, django_assert_num_queries):
    flag_value("sync.maxBatch")  # warm
    with django_assert_num_queries(0):
        for _ in range(1000):
            flag_value("sync.maxBatch", user=7, platform="ios", app_version="1.2.3")
            push_suppression_reason()
            evaluated_config(None, "android", "2.0.0")


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_is_seen_at_once_by_the_process_that_made_it(admin):
    assert flag_value("sync.maxBatch") == 200
    set_flag("sync.maxBatch", 250, changed_by=admin, reason="r")
    assert flag_value("sync.maxBatch") == 250


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_bumps_the_shared_version_counter(admin):
    before = int(cache.redis_client().get(cache.VERSION_KEY) or 0)
    set_flag("sync.maxBatch", 250, changed_by=admin, reason="r")
    assert int(cache.redis_client().get(cache.VERSION_KEY)) == before + 1


@pytest.mark.django_db(transaction=True)
def test_a_change_written_by_another_process_is_picked_up_through_the_version_counter(admin):
    """Simulate another process: write the row behind this process's back, then bump the counter."""
    assert flag_value("sync.maxBatch") == 200
    Flag.objects.filter(key="sync.maxBatch").update(value=275)
    cache._state.checked_at = 0.0  # as if the 200 ms check interval had passed
    assert flag_value("sync.maxBatch") == 200, "same version: the cached snapshot is served"
    cache.redis_client().incr(cache.VERSION_KEY)
    cache._state.checked_at = 0.0
    assert flag_value("sync.maxBatch") == 275


@pytest.mark.django_db(transaction=True)
def test_a_thread_sees_its_own_uncommitted_change_and_no_other_thread_does(admin):
    seen_elsewhere = []
    with transaction.atomic():
        set_flag("sync.maxBatch", 321, changed_by=admin, reason="r")
        assert flag_value("sync.maxBatch") == 321
        reader = threading.Thread(
            target=lambda: (seen_elsewhere.append(flag_value("sync.maxBatch")), connection.close())
        )
        reader.start()
        reader.join()
    assert seen_elsewhere == [200]
    assert flag_value("sync.maxBatch") == 321


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_never_lingers_in_the_cache(admin):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        set_flag("features.push_resync.killSwitch", True, changed_by=admin, reason="oops")
        assert push_suppression_reason() == "kill_switch"
        raise Abort
    assert push_suppression_reason() is None
    assert flag_value("features.push_resync.enabled") is True


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_each_leave_an_audit_row_and_the_last_value_wins(admin):
    values = [300, 400, 500, 600]
    errors = []

    def write(value):
        try:
            set_flag("sync.maxBatch", value, changed_by=admin, reason=f"set {value}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = list(Flag.objects.get(key="sync.maxBatch").changes.order_by("id").values_list("old", "new"))
    assert len(history) == 4
    # The row lock serialises writers: each change's "old" is exactly the previous change's "new".
    assert history[0][0]["value"] == 200
    assert all(prev[1] == nxt[0] for prev, nxt in zip(history, history[1:], strict=False))
    assert flag_value("sync.maxBatch") == history[-1][1]["value"]


@pytest.mark.django_db(transaction=True)
def test_evaluation_still_answers_when_redis_is_unreachable(admin, monkeypatch):
    monkeypatch.setattr(cache._state, "redis_client", cache.make_redis_client("redis://127.0.0.1:1/0"))
    assert flag_value("sync.maxBatch") == 200  # straight from PostgreSQL
    Flag.objects.filter(key="sync.maxBatch").update(value=222)
    cache._state.checked_at = 0.0
    assert flag_value("sync.maxBatch") == 222


@pytest.mark.django_db(transaction=True)
def test_seed_defaults_answer_when_the_rows_are_missing(admin):
    Flag.objects.all().delete()
    assert flag_value("sync.maxBatch") == 200
    assert push_suppression_reason() is None


@pytest.mark.django_db(transaction=True)
def test_evaluation_from_async_code_reloads_without_breaking_the_event_loop(admin):
    import asyncio

    async def read():
        return flag_value("sync.maxBatch"), push_suppression_reason()

    assert asyncio.run(read()) == (200, None)
