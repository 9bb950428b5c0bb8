"""The incremental rollups: after any number of refreshes they equal a direct GROUP BY over the logs."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from dashboard import queries, services
from dashboard.models import DeliveryRollup, HistogramRollup
from tests.dashboard.factories import PushFactory, insert_log
from tests.factories import MessageFactory, OrganizationFactory, UserDeviceFactory, UserFactory

STATUSES = ["sent", "sent", "sent", "delivered", "delivered", "opened", "failed", "clicked"]
ERRORS = ["UNREGISTERED", "UNAVAILABLE", "INVALID_ARGUMENT"]


def make_world(n_users: int = 6):
    """Users in two organizations with android/ios devices, and a push with a message for each."""
    orgs = [OrganizationFactory(), OrganizationFactory()]
    world = []
    for i in range(n_users):
        user = UserFactory(organization=orgs[i % 2])
        device = UserDeviceFactory(user=user, platform="ios" if i % 3 == 0 else "android")
        message = MessageFactory(group__organization=user.organization)
        push = PushFactory(recipient=user, message=message, message_count=1 + i % 4)
        world.append((push, device))
    return orgs, world


def add_logs(world, n: int, rng: random.Random) -> int:
    """Insert up to n logs at random times over 9 days; returns how many were inserted."""
    now = timezone.now()
    inserted = 0
    for _ in range(n):
        push, device = rng.choice(world)
        status = rng.choice(STATUSES)
        when = now - timedelta(minutes=rng.randint(0, 60 * 24 * 9))
        inserted += insert_log(push, device if rng.random() > 0.05 else None, status, when,
                               rng.choice(ERRORS) if status == "failed" else "") is not None  # fmt: skip
    return inserted


DIRECT_GROUP_BY = """
    SELECT date_trunc(g.unit, l.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', g.unit, u.organization_id,
           COALESCE(d.platform, ''), l.status, COALESCE(l.details->>'error_code', ''), count(*)
    FROM pushes_pushdeliverylog l
    JOIN pushes_pushnotification p ON p.id = l.push_id
    JOIN messaging_user u ON u.id = p.recipient_id
    LEFT JOIN pushes_userdevice d ON d.id = l.device_id
    CROSS JOIN (VALUES ('hour'), ('day')) g(unit)
    GROUP BY 1, 2, 3, 4, 5, 6
"""


def direct_counts() -> dict:
    with connection.cursor() as cur:
        cur.execute(DIRECT_GROUP_BY)
        return {tuple(r[:6]): r[6] for r in cur.fetchall()}


def rollup_counts(scope: str = "org") -> dict:
    return {
        (r.bucket_start, r.granularity, r.organization_id, r.platform, r.status, r.error_code): r.count
        for r in DeliveryRollup.objects.filter(scope=scope)
    }


def all_scope_equals_the_sum_over_organizations() -> bool:
    summed: dict = {}
    for (bucket, granularity, _org, platform, status, code), n in rollup_counts("org").items():
        key = (bucket, granularity, None, platform, status, code)
        summed[key] = summed.get(key, 0) + n
    return rollup_counts("all") == summed


@pytest.mark.django_db
def test_rollups_equal_a_direct_group_by_after_several_incremental_runs():
    rng = random.Random(7)
    _, world = make_world()
    for batch in (40, 1, 0, 75, 13):
        add_logs(world, batch, rng)
        # A tiny chunk size forces each refresh through several chunks too.
        services.refresh_rollups(settle_seconds=0, chunk_rows=17, max_chunks=100)
        assert rollup_counts() == direct_counts()
        assert all_scope_equals_the_sum_over_organizations()
    assert queries.rollup_watermark()["last_id"] == max(
        connection.cursor().execute("SELECT max(id) FROM pushes_pushdeliverylog").fetchone()
    )


@pytest.mark.django_db
def test_histograms_count_every_sent_and_delivered_log_once():
    rng = random.Random(11)
    _, world = make_world()
    add_logs(world, 60, rng)
    services.refresh_rollups(settle_seconds=0, chunk_rows=25, max_chunks=100)
    add_logs(world, 30, rng)
    services.refresh_rollups(settle_seconds=0)
    with connection.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM pushes_pushdeliverylog GROUP BY status")
        by_status = dict(cur.fetchall())
        cur.execute(
            "SELECT sum(LEAST(p.message_count, 100)) FROM pushes_pushdeliverylog l"
            " JOIN pushes_pushnotification p ON p.id = l.push_id WHERE l.status = 'sent'"
        )
        (message_sum,) = cur.fetchone()
    day = HistogramRollup.objects.filter(granularity="day", scope="org")
    assert sum(r.count for r in HistogramRollup.objects.filter(granularity="hour", scope="all")) == sum(
        r.count for r in day
    )
    assert sum(r.count for r in day.filter(metric="accept_ms")) == by_status.get("sent", 0)
    assert sum(r.count for r in day.filter(metric="deliver_ms")) == by_status.get("delivered", 0)
    assert sum(r.count * r.upper_bound for r in day.filter(metric="msgs_per_push")) == message_sum


@pytest.mark.django_db
def test_a_refresh_with_nothing_new_changes_nothing():
    rng = random.Random(3)
    _, world = make_world()
    inserted = add_logs(world, 20, rng)
    assert services.refresh_rollups(settle_seconds=0) == inserted > 0
    before = rollup_counts()
    assert services.refresh_rollups(settle_seconds=0) == 0
    assert rollup_counts() == before


@pytest.mark.django_db
def test_rows_younger_than_the_settle_time_wait_for_the_next_refresh():
    _, world = make_world(2)
    push, device = world[0]
    insert_log(push, device, "sent", timezone.now() - timedelta(minutes=5))
    insert_log(push, device, "failed", timezone.now())
    assert services.refresh_rollups(settle_seconds=60) == 1
    assert services.refresh_rollups(settle_seconds=0) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_never_count_a_row_twice():
    rng = random.Random(5)
    _, world = make_world()
    add_logs(world, 120, rng)
    errors: list[BaseException] = []

    def refresh() -> None:
        try:
            services.refresh_rollups(settle_seconds=0, chunk_rows=10, max_chunks=100)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert rollup_counts() == direct_counts()
    assert all_scope_equals_the_sum_over_organizations()


@pytest.mark.django_db
def test_the_deliveries_chart_reads_the_rollups_with_an_organization_filter():
    now = timezone.now()
    orgs, world = make_world(4)
    (push_a, dev_a), (push_b, dev_b) = world[0], world[1]  # org 0 and org 1
    for status in ("sent", "sent", "delivered", "opened"):
        insert_log(push_a, dev_a, status, now)  # "sent" twice: a retry after a transient error
    insert_log(push_b, dev_b, "failed", now, "UNREGISTERED")
    services.refresh_rollups(settle_seconds=0)

    everything = queries.deliveries_chart("24h", None)
    assert everything["totals"] == {"sent": 2, "delivered": 1, "opened": 1, "failed": 1}
    assert everything["errors"] == {"UNREGISTERED": 1}
    assert everything["rate_by_platform"][dev_a.platform][-1] == 0.5
    assert everything["messages_per_push"]["counts"] == {str(push_a.message_count): 2}
    assert everything["latency_summary"]["accept_ms"]["p50"] is not None

    only_b = queries.deliveries_chart("7d", orgs[1].pk)
    assert only_b["totals"] == {"sent": 0, "delivered": 0, "opened": 0, "failed": 1}
    assert len(only_b["buckets"]) == 7


def test_histogram_percentile_is_the_upper_edge_of_the_bucket_holding_it():
    buckets = {10: 50, 100: 40, 1000: 10}
    assert queries.histogram_percentile(buckets, 50) == 10
    assert queries.histogram_percentile(buckets, 90) == 100
    assert queries.histogram_percentile(buckets, 99) == 1000
    assert queries.histogram_percentile({}, 50) is None


@pytest.mark.django_db
def test_the_beat_tasks_fold_settled_logs_and_evaluate_alerts():
    from dashboard import tasks

    _, world = make_world(2)
    push, device = world[0]
    insert_log(push, device, "sent", timezone.now() - timedelta(minutes=1))
    assert tasks.refresh_rollups.apply().get() == 1
    assert tasks.evaluate_alerts.apply().get() == 0
