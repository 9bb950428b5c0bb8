"""Sync of 200 messages from random cursors in one very large group: service level and over HTTP.

The group is filled set-based (INSERT ... SELECT generate_series) once and reused by later runs.
Measures messaging.queries.sync_after / history_before directly, then GET
/api/v1/groups/{id}/messages?after_seq=N through a real uvicorn process. Prints the EXPLAIN
(ANALYZE, BUFFERS) of one sync so the index range scan is visible.

    python -m bench.sync [--quick]        (quick: 100,000 messages; full: 1,000,000)
"""

from __future__ import annotations

import logging
import random
import time

from bench.common import Progress, parse_args, print_table, setup_django, summary_ms, write_result

CHUNK = 100_000
BATCH = 200


def ensure_big_group(size: int):
    """A group holding exactly `size` messages (seq 1..size), built once per size."""
    from django.db import connection

    from messaging.models import Group, GroupMember, Organization, User

    org, _ = Organization.objects.get_or_create(slug="bench-sync", defaults={"name": "Bench sync"})
    user, _ = User.objects.get_or_create(username=f"bench-sync-{org.pk}", defaults={"organization": org})
    group, _ = Group.objects.get_or_create(organization=org, name=f"bench-sync-{size}")
    GroupMember.objects.get_or_create(group=group, user=user)
    if group.last_seq == size:
        print(f"reusing group {group.pk} with {size:,} messages")
        return group, user
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM messaging_message WHERE group_id = %s", [group.pk])
        progress = Progress(f"filling {size:,} messages", size)
        for start in range(1, size + 1, CHUNK):
            end = min(start + CHUNK - 1, size)
            cursor.execute(
                """
                INSERT INTO messaging_message (id, group_id, sender_id, seq, client_generated_id, body, status,
                                               created_at)
                SELECT gen_random_uuid(), %s, %s, n, gen_random_uuid(), 'bench message ' || n, 'sent',
                       now() - make_interval(secs => %s - n)
                  FROM generate_series(%s, %s) AS n
                """,
                [group.pk, user.pk, size, start, end],
            )
            progress.advance(end - start + 1)
        cursor.execute("UPDATE messaging_group SET last_seq = %s WHERE id = %s", [size, group.pk])
        cursor.execute("VACUUM ANALYZE messaging_message")
    group.refresh_from_db()
    return group, user


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], [("--samples", {"type": int, "default": 200})])
    setup_django()
    import httpx
    from django.db import connection

    from messaging import queries
    from tests.factories import token_for
    from tests.processes import asgi_server, child_env

    size = 100_000 if args.quick else 1_000_000
    samples = args.samples
    group, user = ensure_big_group(size)
    rng = random.Random(42)
    cursors = [rng.randrange(0, size - BATCH) for _ in range(samples)]

    with connection.cursor() as cursor:
        sql, params = queries.after_queryset(group.pk, cursors[0], BATCH + 1).query.sql_with_params()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        plan = "\n".join(r[0] for r in cursor.fetchall())
    print("\nEXPLAIN (ANALYZE, BUFFERS) of one after_seq sync:\n" + plan)

    # The [sync] log lines are still built (their cost is measured) but not written to the console.
    sync_log = logging.getLogger("pushwatch.sync")
    sync_log.propagate, null = False, logging.NullHandler()
    sync_log.addHandler(null)
    results = []
    try:
        for name, call in (
            ("service sync_after", lambda c: queries.sync_after(group, c, BATCH)),
            ("service history_before", lambda c: queries.history_before(group, c + BATCH, BATCH)),
        ):
            call(cursors[0])  # warm the connection and caches
            timings, cpu = [], []
            progress = Progress(name, samples)
            for c in cursors:
                t0, c0 = time.perf_counter(), time.thread_time()
                page = call(c)
                timings.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
                assert len(page["messages"]) == BATCH
                progress.advance()
            # cpu_ms: this process's own CPU per call; wall minus cpu is waiting (database, scheduler).
            results.append({"level": name, **summary_ms(timings), "cpu_mean_ms": round(1000 * sum(cpu) / len(cpu), 3)})
    finally:
        sync_log.removeHandler(null)
        sync_log.propagate = True

    token = token_for(user)
    # The project default CONN_MAX_AGE=0 opens a database connection per request; the second row
    # shows the same server with persistent connections.
    for label, extra_env in (("HTTP uvicorn after_seq", {}), ("HTTP uvicorn, CONN_MAX_AGE=60", {"CONN_MAX_AGE": "60"})):
        with asgi_server(child_env(LOG_LEVEL="WARNING", **extra_env)) as base:
            url = f"{base}/api/v1/groups/{group.pk}/messages"
            with httpx.Client(headers={"Authorization": f"Token {token}"}, timeout=30) as client:
                client.get(url, params={"after_seq": 0})
                timings = []
                progress = Progress(label, samples)
                for c in cursors:
                    t0 = time.perf_counter()
                    response = client.get(url, params={"after_seq": c, "limit": BATCH})
                    timings.append(time.perf_counter() - t0)
                    assert response.status_code == 200 and len(response.json()["messages"]) == BATCH, response.text
                    progress.advance()
        results.append({"level": label, **summary_ms(timings)})

    print_table(f"sync of {BATCH} from {samples} random cursors, group of {size:,} messages", results)
    service_p99 = results[0]["p99_ms"]
    print(f"\nservice-level sync p99 {service_p99:.2f} ms (target <= 10 ms)")
    write_result(
        "sync",
        {"quick": args.quick, "group_size": size, "batch": BATCH, "samples": samples, "explain": plan},
        results,
        {"http_p50/service_p50": round(results[2]["p50_ms"] / results[0]["p50_ms"], 2)},
    )


if __name__ == "__main__":
    main()
