"""Ingest with a gapless per-group seq: messaging.services.send_message vs two references.

Designs, each at 1/4/16/64 concurrent writers, on one hot group and spread over 64 groups:
  service  — messaging.services.send_message (counter row + insert in one statement, via Django)
  bare     — the very same SQL statement run with bare psycopg (no Django): the raw limit
  maxplus1 — seed 002's design: a BEFORE INSERT trigger setting seq = MAX(seq)+1, built in a scratch
             schema (no unique index on (group, seq), so the duplicates it makes are visible)
Every writer is a thread with its own database connection. After each run the seqs written are
checked for gaps and duplicates. message_committed receivers (push fan-out, realtime emit) are
detached for the core comparison; one extra row shows the send with them attached.

    python -m bench.seq_ingest [--quick]
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from bench.common import Progress, parse_args, print_table, setup_django, summary_ms, write_result

SCRATCH = "bench_seq_maxplus1"
N_GROUPS = 64
N_USERS = 64


def conninfo() -> str:
    from django.db import connection

    d = connection.settings_dict
    parts = {"dbname": d["NAME"], "user": d.get("USER") or "postgres", "host": d.get("HOST") or "",
             "port": str(d.get("PORT") or ""), "password": d.get("PASSWORD") or ""}  # fmt: skip
    return " ".join(f"{k}='{v}'" for k, v in parts.items() if v)


def build_fixtures() -> tuple[list, list]:
    """64 users and 64 groups of one bench organization; every user is a member of every group."""
    from django.db import connection

    from messaging.models import Group, Organization, User

    org, _ = Organization.objects.get_or_create(slug="bench-seq-ingest", defaults={"name": "Bench seq ingest"})
    users = list(User.objects.filter(organization=org).order_by("id"))
    for i in range(len(users), N_USERS):
        users.append(User.objects.create(username=f"bench-seq-{org.pk}-{i}", organization=org))
    groups = list(Group.objects.filter(organization=org).order_by("name"))
    for i in range(len(groups), N_GROUPS):
        groups.append(Group.objects.create(organization=org, name=f"bench-seq-{i:02d}"))
    with connection.cursor() as cursor:  # set-based membership fill
        cursor.execute(
            """
            INSERT INTO messaging_groupmember (group_id, user_id, is_blocked, delivered_seq, read_seq, joined_at)
            SELECT g.id, u.id, false, 0, 0, now()
              FROM messaging_group g CROSS JOIN messaging_user u
             WHERE g.organization_id = %s AND u.organization_id = %s
            ON CONFLICT (group_id, user_id) DO NOTHING
            """,
            [org.pk, org.pk],
        )
    return users[:N_USERS], groups[:N_GROUPS]


def build_scratch_schema() -> None:
    """Seed 002's assign_message_seq(): a BEFORE INSERT trigger with seq = MAX(seq) + 1."""
    import psycopg

    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCRATCH}")
        conn.execute(
            f"""
            CREATE TABLE {SCRATCH}.messages (
                id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                run_id int NOT NULL,
                group_id uuid NOT NULL,
                sender_id bigint NOT NULL,
                seq bigint,
                client_generated_id uuid NOT NULL,
                body text NOT NULL,
                status text NOT NULL DEFAULT 'sent',
                created_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (sender_id, client_generated_id)
            );
            CREATE INDEX ON {SCRATCH}.messages (group_id, seq);
            CREATE FUNCTION {SCRATCH}.assign_message_seq() RETURNS trigger AS $$
            BEGIN
                SELECT COALESCE(MAX(seq), 0) + 1 INTO NEW.seq
                  FROM {SCRATCH}.messages WHERE group_id = NEW.group_id;
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER assign_message_seq BEFORE INSERT ON {SCRATCH}.messages
                FOR EACH ROW EXECUTE FUNCTION {SCRATCH}.assign_message_seq();
            """
        )


def run_writers(n_writers: int, per_writer: int, make_sender: Callable[[int], tuple], progress: Progress) -> dict:
    """Start n_writers threads; each opens its connection, waits at a barrier, sends per_writer messages."""
    barrier = threading.Barrier(n_writers + 1)
    latencies: list[list[float]] = [[] for _ in range(n_writers)]
    errors: list[str] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        send, close = None, None
        try:
            send, close = make_sender(i)
        except Exception as exc:  # e.g. too many connections on a shared server
            errors.append(f"connect: {exc!r}"[:200])
        barrier.wait()
        if send is None:
            return
        mine = latencies[i]
        try:
            for k in range(per_writer):
                t0 = time.perf_counter()
                try:
                    send(k)
                except Exception as exc:
                    errors.append(repr(exc)[:200])
                    continue
                mine.append(time.perf_counter() - t0)
                if k % 10 == 9:
                    with lock:
                        progress.advance(10)
        finally:
            close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n_writers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = [x for lat in latencies for x in lat]
    return {"elapsed": elapsed, "latencies": flat, "errors": errors}


def check_seqs(rows: list[tuple]) -> tuple[int, int]:
    """rows: (group, seq) written in one run; gaps = missing numbers inside each group's range."""
    by_group: dict = {}
    for group_id, seq in rows:
        by_group.setdefault(group_id, []).append(seq)
    gaps = dups = 0
    for seqs in by_group.values():
        distinct = set(seqs)
        dups += len(seqs) - len(distinct)
        gaps += (max(distinct) - min(distinct) + 1) - len(distinct)
    return gaps, dups


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], [("--writers", {"default": "1,4,16,64"})])
    setup_django()
    import psycopg
    from django.db import connection

    from messaging import services
    from messaging.models import Group, Message
    from messaging.signals import message_committed

    writer_counts = [int(x) for x in args.writers.split(",")]
    total_per_run = 300 if args.quick else 2000
    users, groups = build_fixtures()
    build_scratch_schema()
    info = conninfo()
    group_ids = [g.pk for g in groups]
    org_id = groups[0].organization_id

    def group_for(mode: str, i: int):
        return group_ids[0] if mode == "hot" else group_ids[i % N_GROUPS]

    def service_sender(mode: str):
        def make(i: int):
            user = users[i % N_USERS]
            group_id = group_for(mode, i)
            connection.ensure_connection()

            def send(k: int) -> None:
                services.send_message(sender=user, group_id=group_id, client_generated_id=uuid.uuid4(), body="bench")

            return send, connection.close

        return make

    def bare_sender(mode: str):
        def make(i: int):
            conn = psycopg.connect(info, autocommit=True)
            params = {"group_id": group_for(mode, i), "organization_id": org_id, "sender_id": users[i % N_USERS].pk,
                      "body": "bench"}  # fmt: skip

            def send(k: int) -> None:
                row = conn.execute(
                    services.SEND_SQL, {**params, "id": uuid.uuid4(), "client_generated_id": uuid.uuid4()}
                ).fetchone()
                assert row is not None

            return send, conn.close

        return make

    def maxplus1_sender(mode: str, run_id: int):
        def make(i: int):
            conn = psycopg.connect(info, autocommit=True)
            group_id, sender_id = group_for(mode, i), users[i % N_USERS].pk
            sql = (f"INSERT INTO {SCRATCH}.messages (run_id, group_id, sender_id, client_generated_id, body) "
                   "VALUES (%s, %s, %s, %s, 'bench') RETURNING seq")  # fmt: skip

            def send(k: int) -> None:
                conn.execute(sql, (run_id, group_id, sender_id, uuid.uuid4())).fetchone()

            return send, conn.close

        return make

    def counters() -> dict:
        return dict(Group.objects.filter(pk__in=group_ids).values_list("pk", "last_seq"))

    def written_since(before: dict) -> list[tuple]:
        rows = []
        for gid, last in before.items():
            rows += list(Message.objects.filter(group_id=gid, seq__gt=last).values_list("group_id", "seq"))
        return rows

    saved_receivers = list(message_committed.receivers)
    results: list[dict] = []
    plan = [(mode, w, design) for mode in ("hot", "spread") for w in writer_counts
            for design in ("service", "bare", "maxplus1")]  # fmt: skip
    plan.append(("hot", 16, "service+receivers"))
    for run_id, (mode, n_writers, design) in enumerate(plan, 1):
        per_writer = max(total_per_run // n_writers, 5)
        progress = Progress(f"{design:<17} {mode:<6} writers={n_writers:<2}", n_writers * (per_writer // 10) * 10)
        message_committed.receivers = saved_receivers if design == "service+receivers" else []
        before = counters()
        if design.startswith("service"):
            maker = service_sender(mode)
        elif design == "bare":
            maker = bare_sender(mode)
        else:
            maker = maxplus1_sender(mode, run_id)
        outcome = run_writers(n_writers, per_writer, maker, progress)
        message_committed.receivers = saved_receivers
        if progress.done < progress.total:
            print()
        if design == "maxplus1":
            with psycopg.connect(info, autocommit=True) as conn:
                rows = conn.execute(f"SELECT group_id, seq FROM {SCRATCH}.messages WHERE run_id = %s",
                                    (run_id,)).fetchall()  # fmt: skip
        else:
            rows = written_since(before)
            after = counters()
            # the counter must equal the rows actually written: a gap would show here too
            assert sum(after[g] - before[g] for g in group_ids) == len(rows), "counter and rows disagree"
        gaps, dups = check_seqs(rows)
        lat = summary_ms(outcome["latencies"])
        results.append({
            "mode": mode, "writers": n_writers, "design": design, "messages": len(outcome["latencies"]),
            "msgs_per_s": round(len(outcome["latencies"]) / outcome["elapsed"], 1),
            "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "gaps": gaps, "dups": dups,
            "errors": len(outcome["errors"]), "first_error": (outcome["errors"] or [""])[0][:80],
        })  # fmt: skip

    ratios: dict = {}
    for mode in ("hot", "spread"):
        for w in writer_counts:
            by = {r["design"]: r for r in results if r["mode"] == mode and r["writers"] == w}
            ratios[f"service/bare {mode} w={w}"] = round(by["service"]["msgs_per_s"] / by["bare"]["msgs_per_s"], 3)
            ratios[f"service/maxplus1 {mode} w={w}"] = round(
                by["service"]["msgs_per_s"] / max(by["maxplus1"]["msgs_per_s"], 1e-9), 3
            )
    for row in results:
        if row["design"] in ("service", "service+receivers"):
            bare = next(r for r in results if r["design"] == "bare" and r["mode"] == row["mode"]
                        and r["writers"] == row["writers"])  # fmt: skip
            row["vs_bare"] = round(row["msgs_per_s"] / bare["msgs_per_s"], 2)
    columns = ["mode", "writers", "design", "messages", "msgs_per_s", "p50_ms", "p99_ms", "gaps", "dups", "errors",
               "vs_bare", "first_error"]  # fmt: skip
    print_table("seq ingest (gaps/dups counted per group over the seqs each run wrote)", results, columns)
    core = [v for k, v in ratios.items() if k.startswith("service/bare")]
    ratios["service/bare min"] = min(core)
    print(f"\nservice / bare psycopg throughput: min {min(core):.2f}, per config {core}")
    write_result(
        "seq_ingest",
        {"quick": args.quick, "writers": writer_counts, "messages_per_run": total_per_run, "groups_spread": N_GROUPS},
        results,
        ratios,
    )
    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE")


if __name__ == "__main__":
    main()
