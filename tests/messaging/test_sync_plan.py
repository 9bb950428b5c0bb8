"""Sync and history are index range scans on (group, seq), proved with EXPLAIN on realistic data."""

from __future__ import annotations

import pytest
from django.db import connection

from messaging import queries
from tests.messaging.helpers import group_with_members

pytestmark = pytest.mark.django_db

SEQ_INDEX = "message_group_seq_unique"


def _fill_groups(groups_and_senders: list[tuple], per_group: int) -> None:
    """Set-based: one INSERT ... generate_series per group, then ANALYZE so the planner knows the sizes."""
    with connection.cursor() as cursor:
        for group, sender_id in groups_and_senders:
            cursor.execute(
                """
                INSERT INTO messaging_message (id, group_id, sender_id, seq, client_generated_id, body, status,
                                               created_at)
                SELECT gen_random_uuid(), %s, %s, n, gen_random_uuid(), 'm' || n, 'sent', now()
                  FROM generate_series(1, %s) AS n
                """,
                [group.pk, sender_id, per_group],
            )
            cursor.execute("UPDATE messaging_group SET last_seq = %s WHERE id = %s", [per_group, group.pk])
        cursor.execute("ANALYZE messaging_message")


def test_sync_after_and_history_before_use_an_index_range_scan_on_group_seq():
    groups = [group_with_members(1) for _ in range(20)]
    _fill_groups([(g, members[0].user_id) for g, members in groups], per_group=2000)
    group = groups[7][0]
    plans = {
        "after": queries.after_queryset(group.pk, 1000, 201).explain(),
        "before": queries.before_queryset(group.pk, 1500, 201).explain(),
    }
    for direction, plan in plans.items():
        assert SEQ_INDEX in plan, (direction, plan)
        assert "Index Scan" in plan or "Index Only Scan" in plan, (direction, plan)
        assert "Seq Scan" not in plan and "Sort" not in plan, (direction, plan)
    assert "Backward" in plans["before"]
    page = queries.sync_after(group, 1000, 200)
    assert [m["seq"] for m in page["messages"]] == list(range(1001, 1201)) and page["has_more"]
