"""The fold marks rows processed and keeps hourly counters equal to a direct count of the rows."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction

from telemetry import queries, services
from telemetry.models import TelemetryCounter, TelemetryFoldState, TelemetryLog
from telemetry.tasks import fold_telemetry_counters
from tests.factories import OrganizationFactory, UserDeviceFactory, UserFactory
from tests.telemetry.factories import entry, seed_entries

DIMENSIONS = "organization_id, platform, tag, action, reason"


def direct_counts() -> dict[tuple, int]:
    """Straight from the raw rows, with the same hour rule as the fold (client time, clamped to arrival)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT date_trunc('hour', LEAST(COALESCE(client_ts, created_at), created_at)), {DIMENSIONS}, count(*)"
            f" FROM telemetry_telemetrylog GROUP BY 1, 2, 3, 4, 5, 6"
        )
        return {tuple(row[:-1]): row[-1] for row in cursor.fetchall()}


def counter_counts() -> dict[tuple, int]:
    rows = TelemetryCounter.objects.values_list("hour", *[d.strip() for d in DIMENSIONS.split(",")], "count")
    return {tuple(row[:-1]): row[-1] for row in rows}


def make_users():
    north, south = OrganizationFactory(), OrganizationFactory()
    ios_user = UserFactory(organization=north)
    UserDeviceFactory(user=ios_user, platform="ios")
    android_user = UserFactory(organization=south)
    UserDeviceFactory(user=android_user, platform="android")
    deviceless_user = UserFactory(organization=north)
    return [ios_user, android_user, deviceless_user]


@pytest.mark.django_db
def test_counters_equal_a_direct_count_after_several_incremental_runs():
    users = make_users()
    total = 0
    for round_no in range(4):
        for n, user in enumerate(users):
            services.ingest_batch(user, seed_entries(13 * (round_no + 1) + n))
        total += sum(13 * (round_no + 1) + n for n in range(3))
        folded = services.fold_telemetry_counters(chunk_rows=17)  # small chunks: several statements per run
        assert folded == sum(13 * (round_no + 1) + n for n in range(3))
        assert counter_counts() == direct_counts()
    assert sum(counter_counts().values()) == total == TelemetryLog.objects.count()
    assert not TelemetryLog.objects.filter(processed_at__isnull=True).exists()
    assert TelemetryFoldState.objects.get(name="counters").last_id == TelemetryLog.objects.latest("id").id


@pytest.mark.django_db
def test_a_fold_with_nothing_new_changes_nothing():
    services.ingest_batch(make_users()[0], seed_entries(30))
    services.fold_telemetry_counters()
    before = counter_counts()
    assert services.fold_telemetry_counters() == 0
    assert counter_counts() == before


@pytest.mark.django_db
def test_a_client_clock_ahead_of_the_server_counts_in_the_arrival_hour():
    user = make_users()[0]
    services.ingest_batch(user, [entry(client_ts="2099-01-01T00:00:00Z")])
    services.fold_telemetry_counters()
    counter = TelemetryCounter.objects.get()
    assert counter.hour.year != 2099 and counter.hour <= dt.datetime.now(dt.UTC)


@pytest.mark.django_db
def test_the_celery_task_folds_and_returns_the_row_count():
    services.ingest_batch(make_users()[1], seed_entries(12))
    assert fold_telemetry_counters.apply().get() == 12


@pytest.mark.django_db(transaction=True)
def test_two_folds_at_once_count_every_row_exactly_once():
    users = make_users()
    for user in users:
        for _ in range(3):
            services.ingest_batch(user, seed_entries(120))
    start = threading.Barrier(2)

    def fold():
        try:
            start.wait()
            services.fold_telemetry_counters(chunk_rows=100)
        finally:
            connection.close()

    threads = [threading.Thread(target=fold) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counter_counts().values()) == 3 * 3 * 120
    assert counter_counts() == direct_counts()


@pytest.mark.django_db(transaction=True)
def test_a_fold_never_skips_a_batch_that_commits_after_a_later_one():
    """Batch A draws its ids first but commits last; a fold running in between must not move past it."""
    user = make_users()[0]
    a_has_written, release_a = threading.Event(), threading.Event()

    def slow_batch_a():
        try:
            with transaction.atomic():
                services.ingest_batch(user, seed_entries(40))
                a_has_written.set()
                release_a.wait(30)
        finally:
            connection.close()

    def fold():
        try:
            services.fold_telemetry_counters()
        finally:
            connection.close()

    writer = threading.Thread(target=slow_batch_a)
    writer.start()
    assert a_has_written.wait(30)
    services.ingest_batch(user, seed_entries(25))  # batch B: larger ids, committed first
    folder = threading.Thread(target=fold)
    folder.start()
    time.sleep(0.3)  # let the fold reach its horizon lock while A is still open (not an assertion)
    release_a.set()
    writer.join()
    folder.join()
    services.fold_telemetry_counters()
    assert sum(counter_counts().values()) == 65
    assert counter_counts() == direct_counts()


@pytest.mark.django_db
def test_client_health_series_and_summary_read_the_counters():
    ios_user, android_user, _ = make_users()
    services.ingest_batch(ios_user, [entry("[push] wake reason=data")] * 3 + [entry("[rt] degraded backoff=1500")])
    services.ingest_batch(
        android_user, [entry("[push] wake reason=data"), entry("[outbox] deferred reason=auth_refresh")]
    )
    assert queries.client_health_series(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) == []  # nothing folded yet
    services.fold_telemetry_counters()
    TelemetryLog.objects.all().delete()  # the reads must not need raw rows

    since = dt.datetime(2026, 11, 21, 4, 30, tzinfo=dt.UTC)
    series = queries.client_health_series(since)
    wakes = [r for r in series if (r["tag"], r["action"]) == ("push", "wake")]
    assert {(r["platform"], r["reason"], r["count"]) for r in wakes} == {("ios", "data", 3), ("android", "data", 1)}
    assert set(series[0]) == {"hour", "platform", "tag", "action", "reason", "count"}
    assert all(r["hour"] == dt.datetime(2026, 11, 21, 5, tzinfo=dt.UTC) for r in series)

    north_only = queries.client_health_series(since, organization_id=ios_user.organization_id)
    assert sum(r["count"] for r in north_only) == 4

    summary = queries.client_health_summary(since)
    assert summary["total"] == 6
    assert summary["by_tag"] == {"push": 4, "rt": 1, "outbox": 1}
    assert summary["by_platform"] == {"ios": 4, "android": 2}
    assert summary["tiles"]["push_wakes"] == 4
    assert summary["tiles"]["rt_degraded_steps"] == 1
    assert summary["tiles"]["outbox_deferred"] == 1
    assert summary["tiles"]["auth_writes_blocked"] == 0
    assert {"tag": "push", "action": "wake", "count": 4} in summary["by_tag_action"]
    assert queries.client_health_summary(dt.datetime(2026, 11, 21, 6, tzinfo=dt.UTC))["total"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_fold_that_cannot_get_its_horizon_skips_the_tick_and_loses_nothing(monkeypatch):
    user = make_users()[0]
    services.ingest_batch(user, seed_entries(10))
    holding, release = threading.Event(), threading.Event()

    def stuck_ingest():
        try:
            with transaction.atomic():
                services.ingest_batch(user, seed_entries(5))  # holds the shared ingest lock until released
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    writer = threading.Thread(target=stuck_ingest)
    writer.start()
    assert holding.wait(30)
    monkeypatch.setattr(services, "FOLD_LOCK_TIMEOUT_MS", 50)
    try:
        assert services.fold_telemetry_counters() == 0
        assert TelemetryCounter.objects.count() == 0
    finally:
        release.set()
        writer.join()
    assert services.fold_telemetry_counters() == 15
    assert counter_counts() == direct_counts()
