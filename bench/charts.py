"""Deliveries chart from rollups vs. the same chart from a raw GROUP BY over the delivery logs.

    DATABASE_URL=postgres://.../pw_bench REDIS_URL=redis://127.0.0.1:6379/8 python -m bench.charts [--quick]

1. COPY N delivery logs (10,000,000; --quick 100,000; or --logs N) for ~N/4 pushes to users with an android and an
   ios device, spread over 30 days (sent, failed with FCM error codes, delivered, opened).
2. Build the rollups from scratch (dashboard.services.refresh_rollups), timed.
3. Time the chart endpoint (GET /dashboard/deliveries/data.json as a manager, through Django's full
   request stack) p50/p99 for 24h/7d/30d, against the raw ``GROUP BY date_trunc`` over the logs.
4. COPY 10,000 then 100,000 new logs and time one incremental refresh after each (proportionality).
5. TRUNCATE what it created. It refuses to start when the delivery-log table already has rows
   (pass --force-truncate on a bench database to clear it first).
"""

from __future__ import annotations

import io
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.common import Progress, parse_args, print_table, setup_django, summary_ms, write_result

ERROR_CODES = ["UNAVAILABLE", "UNREGISTERED", "QUOTA_EXCEEDED", "INTERNAL", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH"]
LOGS_PER_PUSH = 4.19  # 2 devices x (1 attempt + 0.92*0.85 delivered + 0.92*0.85*0.4 opened)


def _copy_rows(cursor, table: str, columns: str, rows, progress: Progress | None = None, block: int = 20_000) -> None:
    """COPY an iterator of tab-separated lines in blocks."""
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buf = io.StringIO()
        n = 0
        for line in rows:
            buf.write(line)
            n += 1
            if n % block == 0:
                copy.write(buf.getvalue())
                buf = io.StringIO()
                if progress:
                    progress.advance(block)
        copy.write(buf.getvalue())
        if progress and n % block:
            progress.advance(n % block)


class World:
    """Organizations, users with one android and one ios device each; pushes and logs generated lazily."""

    def __init__(self, users: int, orgs: int, seed: int = 1):
        self.rng = random.Random(seed)
        self.n_users = users
        self.n_orgs = orgs
        self.user_ids: list[int] = []
        self.devices: list[tuple[str, str]] = []  # (android id, ios id) per user index

    def create_people(self, cur) -> None:
        run = uuid.uuid4().hex[:6]
        cur.execute(
            "INSERT INTO messaging_organization (slug, name, created_at)"
            " SELECT 'bench-charts-' || %s || '-' || i, 'Bench org ' || i, now()"
            " FROM generate_series(1, %s) i RETURNING id",
            [run, self.n_orgs],
        )
        org_ids = [r[0] for r in cur.fetchall()]
        cur.execute(
            """INSERT INTO messaging_user (password, is_superuser, username, first_name, last_name, email, is_staff,
                   is_active, date_joined, organization_id)
               SELECT '!', false, 'bench-charts-' || %s || '-' || i, '', '', '', false, true, now(),
                      (%s::bigint[])[1 + i %% %s]
               FROM generate_series(1, %s) i RETURNING id""",
            [run, org_ids, len(org_ids), self.n_users],
        )
        self.user_ids = [r[0] for r in cur.fetchall()]
        now = datetime.now(UTC).isoformat()
        rows = []
        for uid in self.user_ids:
            pair = (str(uuid.uuid4()), str(uuid.uuid4()))
            self.devices.append(pair)
            for device_id, platform in zip(pair, ("android", "ios"), strict=True):
                rows.append(f"{device_id}\t{uid}\t{platform}\tbench{uuid.uuid4().hex}\t1.0.0\t{now}\tt\t{now}\t\n")
        _copy_rows(cur, "pushes_userdevice",
                   "id, user_id, platform, token, app_version, last_seen_at, active, created_at, deactivation_reason",
                   iter(rows))  # fmt: skip

    def copy_deliveries(self, cur, n_logs: int, start: datetime, span_seconds: float, label: str) -> int:
        """COPY pushes and then exactly ``n_logs`` delivery logs with created_at in [start, start + span]."""
        rng = self.rng
        progress = Progress(label, n_logs)
        written = 0
        while written < n_logs:
            pushes: list[str] = []
            logs: list[str] = []
            while len(logs) < min(200_000, n_logs - written):
                self._one_push(rng, start, span_seconds, pushes, logs)
            logs = logs[: n_logs - written]
            _copy_rows(cur, "pushes_pushnotification",
                       "id, recipient_id, message_count, collapse_key, status, status_reason, payload, not_before,"
                       " retry_count, delivery_attempts, last_error, created_at", iter(pushes))  # fmt: skip
            _copy_rows(cur, "pushes_pushdeliverylog", "push_id, device_id, token_prefix, status, details, created_at",
                       iter(logs), progress)  # fmt: skip
            written += len(logs)
        return written

    def _one_push(self, rng: random.Random, start: datetime, span_seconds: float, pushes: list[str],
                  logs: list[str]) -> None:  # fmt: skip
        """One push to a random user's two devices: an attempt each (8 % fail), then receipts."""
        push_id = str(uuid.uuid4())
        u = rng.randrange(self.n_users)
        created = start + timedelta(seconds=rng.random() * span_seconds)
        message_count = 1 if rng.random() < 0.7 else rng.randint(2, 6)
        at = created.isoformat()
        pushes.append(f"{push_id}\t{self.user_ids[u]}\t{message_count}\t\tsent\t\t{{}}\t{at}\t0\t1\t\t{at}\n")
        for device_id, prefix in zip(self.devices[u], ("benchA…", "benchI…"), strict=True):
            accepted = created + timedelta(milliseconds=rng.lognormvariate(5.3, 0.7))
            if rng.random() < 0.08:
                code = rng.choice(ERROR_CODES)
                logs.append(f'{push_id}\t{device_id}\t{prefix}\tfailed\t{{"error_code": "{code}"}}\t'
                            f"{accepted.isoformat()}\n")  # fmt: skip
                continue
            logs.append(f"{push_id}\t{device_id}\t{prefix}\tsent\t{{}}\t{accepted.isoformat()}\n")
            if rng.random() < 0.85:
                delivered = accepted + timedelta(milliseconds=rng.lognormvariate(7.0, 1.0))
                logs.append(f"{push_id}\t{device_id}\t{prefix}\tdelivered\t{{}}\t{delivered.isoformat()}\n")
                if rng.random() < 0.4:
                    opened = delivered + timedelta(seconds=rng.lognormvariate(3.5, 1.2))
                    logs.append(f"{push_id}\t{device_id}\t{prefix}\topened\t{{}}\t{opened.isoformat()}\n")


RAW_SQL = """
    SELECT date_trunc(%(unit)s, l.created_at AT TIME ZONE 'UTC') AS bucket, COALESCE(d.platform, '') AS platform,
           l.status, COALESCE(l.details->>'error_code', '') AS error_code, count(*)
    FROM pushes_pushdeliverylog l
    LEFT JOIN pushes_userdevice d ON d.id = l.device_id
    WHERE l.created_at >= %(start)s AND l.created_at < %(end)s
    GROUP BY 1, 2, 3, 4
"""


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], [
        ("--logs", {"type": int, "default": None, "help": "delivery logs to generate (default 10M; quick 200k)"}),
        ("--force-truncate", {"action": "store_true", "help": "clear existing logs first (bench database only)"}),
    ])  # fmt: skip
    setup_django()
    from django.contrib.auth.models import Group as Role
    from django.db import connection
    from django.test import Client

    from dashboard import queries, services
    from messaging.models import User

    n_logs = args.logs or (100_000 if args.quick else 10_000_000)
    chart_reps = 40 if args.quick else 300
    raw_reps = 3
    increments = [1_000, 10_000] if args.quick else [10_000, 100_000]
    n_users = 2_000 if args.quick else min(50_000, max(2_000, n_logs // 200))

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM (SELECT 1 FROM pushes_pushdeliverylog LIMIT 1) x")
        if cur.fetchone()[0] and not args.force_truncate:
            print("pushes_pushdeliverylog has rows: run on an empty bench database or pass --force-truncate",
                  file=sys.stderr)  # fmt: skip
            return 2
    truncate()

    print(f"generating {n_logs:,} delivery logs via COPY for {n_users:,} users x 2 devices ...")
    world = World(users=n_users, orgs=20)
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        world.create_people(cur)
        world.copy_deliveries(cur, n_logs, now - timedelta(days=30), 30 * 86400 - 120, "logs")
        cur.execute("ANALYZE pushes_pushdeliverylog; ANALYZE pushes_pushnotification; ANALYZE pushes_userdevice")
    load_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    folded = services.refresh_rollups(settle_seconds=0, chunk_rows=1_000_000, max_chunks=10_000)
    build_s = time.perf_counter() - t0
    with connection.cursor() as cur:
        cur.execute("ANALYZE dashboard_deliveryrollup; ANALYZE dashboard_histogramrollup")
        cur.execute("SELECT count(*) FROM dashboard_deliveryrollup")
        rollup_rows = cur.fetchone()[0]
    print(f"rollups built: {folded:,} logs -> {rollup_rows:,} rollup rows in {build_s:.1f} s")

    manager, _ = User.objects.get_or_create(username="bench-charts-manager", defaults={"is_staff": True})
    manager.groups.add(Role.objects.get_or_create(name="managers")[0])
    client = Client()
    client.force_login(manager)

    results = []
    ratios = {}
    for range_key in ("24h", "7d", "30d"):
        url = f"/dashboard/deliveries/data.json?range={range_key}"
        assert client.get(url).status_code == 200  # warm
        timings = []
        progress = Progress(f"chart {range_key}", chart_reps)
        for _ in range(chart_reps):
            t = time.perf_counter()
            response = client.get(url)
            timings.append(time.perf_counter() - t)
            progress.advance()
        assert response.status_code == 200
        rng = queries.parse_range(range_key)
        start, end = rng.window()
        raw = []
        for _ in range(raw_reps):
            t = time.perf_counter()
            with connection.cursor() as cur:
                cur.execute(RAW_SQL, {"unit": rng.granularity, "start": start, "end": end})
                cur.fetchall()
            raw.append(time.perf_counter() - t)
        chart, raw_s = summary_ms(timings), summary_ms(raw)
        results.append({"what": f"chart endpoint {range_key} (rollups, full HTTP stack)", **chart})
        results.append({"what": f"raw GROUP BY date_trunc {range_key} over logs", **raw_s})
        ratios[f"raw_p50_over_endpoint_p50_{range_key}"] = round(raw_s["p50_ms"] / chart["p50_ms"], 1)
        ratios[f"endpoint_p99_ms_{range_key}"] = chart["p99_ms"]

    refresh_rows = []
    for n in increments:
        with connection.cursor() as cur:
            world.copy_deliveries(cur, n, datetime.now(UTC) - timedelta(hours=1), 3000, f"+{n:,} logs")
        t = time.perf_counter()
        result = services.refresh_rollups_once(settle_seconds=0, chunk_rows=10 * n)
        elapsed = time.perf_counter() - t
        assert result.rows == n, result
        refresh_rows.append({"new_logs": n, "refresh_ms": round(elapsed * 1000, 1),
                             "us_per_log": round(elapsed * 1e6 / n, 2)})  # fmt: skip
    ratios["refresh_time_ratio_for_10x_rows"] = round(refresh_rows[1]["refresh_ms"] / refresh_rows[0]["refresh_ms"], 2)

    print_table(f"Deliveries chart: rollups vs raw logs ({n_logs:,} logs)", results,
                ["what", "n", "p50_ms", "p99_ms", "mean_ms"])  # fmt: skip
    print_table("Incremental rollup refresh", refresh_rows)
    print_table("Ratios", [{"ratio": k, "value": v} for k, v in ratios.items()])
    write_result(
        "charts",
        {"logs": n_logs, "users": n_users, "devices": 2 * n_users, "chart_reps": chart_reps, "raw_reps": raw_reps,
         "quick": args.quick, "load_seconds": round(load_s, 1), "rollup_build_seconds": round(build_s, 1),
         "rollup_rows": rollup_rows},
        {"chart": results, "refresh": refresh_rows},
        ratios,
    )  # fmt: skip
    truncate()
    return 0


def truncate() -> None:
    """Remove everything the bench created (bench database only)."""
    from django.db import connection

    with connection.cursor() as cur:
        # CASCADE: rows elsewhere that point at bench devices/pushes (e.g. telemetry) go too. Bench DB only.
        cur.execute(
            "TRUNCATE pushes_pushdeliverylog, pushes_pushnotification, pushes_userdevice,"
            " dashboard_deliveryrollup, dashboard_histogramrollup, dashboard_rollupwatermark RESTART IDENTITY CASCADE"
        )
        # Only this benchmark's people: other benchmarks' users (tokens, messages) may share the database.
        bench = ["bench-charts-%"]
        cur.execute("DELETE FROM messaging_user_groups WHERE user_id IN"
                    " (SELECT id FROM messaging_user WHERE username LIKE %s)", bench)  # fmt: skip
        cur.execute("DELETE FROM django_session")
        cur.execute("DELETE FROM messaging_user WHERE username LIKE %s", bench)
        cur.execute("DELETE FROM messaging_organization WHERE slug LIKE %s", bench)


if __name__ == "__main__":
    sys.exit(main())
