"""Telemetry ingestion: the same rows four ways, in batches of 500 (one transaction per batch).

  copy        — bare psycopg COPY of the final column values, prepared in advance: the limit
  bulk_create — Django bulk_create of prepared TelemetryLog instances (what an ORM ingest would do)
  service     — telemetry.services.ingest_batch: validation, tag parsing, device lookup, COPY
  http        — POST /api/v1/telemetry/batch on a real uvicorn (auth, throttle in Redis, JSON, service)

The table is truncated before each way so each starts from the same index sizes. Entries cycle through
the seed-000/004 log tags with varying group ids, counts and cursors (realistic cardinality).

    python -m bench.telemetry [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import sys
import time
import uuid

from bench.common import Progress, parse_args, print_table, setup_django, write_result

BATCH = 500
HTTP_CONCURRENCY = 4

TEMPLATES = (
    "[push] wake reason={reason}",
    "[rt] rebuild channel=group:{group} status={status}",
    "[rt] degraded backoff={backoff}",
    "[auth] writes:ready",
    "[auth] writes:blocked reason=refresh_timeout",
    "[sync] start group={group} since={since}",
    "[sync] merged count={count}",
    "[outbox] drain start count={count}",
    "[outbox] deferred reason=auth_refresh",
    "[push] token:registered {platform} {token}…",
    "app resumed from background",
)


def make_entries(n: int, seed: int = 8) -> list[dict]:
    rng = random.Random(seed)
    groups = [uuid.UUID(int=rng.getrandbits(128)).hex[:12] for _ in range(40)]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)
    entries = []
    for i in range(n):
        message = rng.choice(TEMPLATES).format(
            reason=rng.choice(("data", "data", "notification_tap", "silent")),
            group=rng.choice(groups),
            status=rng.choice(("SUBSCRIBED", "SUBSCRIBED", "CHANNEL_ERROR", "TIMED_OUT")),
            backoff=rng.choice((1500, 3000, 6000)),
            since=rng.randrange(10_000),
            count=rng.randrange(60),
            platform=rng.choice(("android", "ios")),
            token=uuid.UUID(int=rng.getrandbits(128)).hex[:6],
        )
        entries.append(
            {
                "event_type": "log",
                "message": message,
                "metadata": {"app_version": "1.4.2", "screen": rng.choice(("chat", "list", "settings")), "n": i},
                "client_ts": (start + dt.timedelta(milliseconds=90 * i)).isoformat(),
            }
        )
    return entries


def batches(items: list, size: int = BATCH) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def fixtures():
    from rest_framework.authtoken.models import Token

    from messaging.models import Organization, User
    from pushes.models import UserDevice

    org, _ = Organization.objects.get_or_create(slug="bench-telemetry", defaults={"name": "Bench telemetry"})
    user, _ = User.objects.get_or_create(username="bench-telemetry", defaults={"organization": org})
    UserDevice.objects.get_or_create(
        token=f"bench-telemetry-device-{user.pk}",
        defaults={"user": user, "platform": "ios", "app_version": "1.4.2", "last_seen_at": dt.datetime.now(dt.UTC)},
    )
    return user, Token.objects.get_or_create(user=user)[0].key


def truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE telemetry_telemetrylog, telemetry_telemetrybatch")


def stored_rows() -> int:
    from telemetry.models import TelemetryLog

    return TelemetryLog.objects.count()


def prepared_rows(user, entries: list[dict]) -> list[tuple]:
    """The final column values (in the service's COPY column order), computed outside any timing."""
    from telemetry import services
    from telemetry.parsing import parse_log_line

    device_pk, platform = services.resolve_device(user.pk, None)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for chunk in batches(entries):
        batch_id = uuid.uuid4()
        for e in chunk:
            parsed = parse_log_line(e["message"])
            rows.append((batch_id, user.pk, device_pk, user.organization_id, platform, now, e["event_type"],
                         parsed.tag, parsed.action, parsed.reason, parsed.fields_json, e["message"],
                         json.dumps(e["metadata"], ensure_ascii=False),
                         dt.datetime.fromisoformat(e["client_ts"])))  # fmt: skip
    return rows


def preformatted_payloads(user, entries: list[dict]) -> list[str]:
    """The exact COPY text the service sends, per batch, computed outside any timing."""
    from telemetry import services

    device_pk, platform = services.resolve_device(user.pk, None)
    now = dt.datetime.now(dt.UTC).isoformat()
    payloads = []
    for chunk in batches(entries):
        prefix = "\t".join(str(v) for v in (uuid.uuid4(), user.pk, device_pk, user.organization_id, platform, now))
        payloads.append(prefix + "\t" + f"\n{prefix}\t".join(services.build_rows(chunk)) + "\n")
    return payloads


class CpuMeter:
    """CPU seconds of this process and of its PostgreSQL backend: where the time goes, even on a busy machine."""

    def __init__(self, extra_pid: int | None = None):
        from django.db import connection

        try:
            import psutil
        except ImportError:  # the CPU columns are then left empty
            psutil = None
        self.python = psutil.Process(extra_pid or os.getpid()) if psutil else None
        self.postgres = None
        if psutil and extra_pid is None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid(), inet_server_addr() IS NULL OR host(inet_server_addr()) "
                               "IN ('127.0.0.1', '::1')")  # fmt: skip
                backend, local = cursor.fetchone()
            if local:  # a remote server's backend is not a process of this machine
                with contextlib.suppress(psutil.Error):
                    self.postgres = psutil.Process(backend)
        self.start = self._now()

    def _now(self) -> tuple[float, float]:
        def cpu(p):
            if p is None:
                return float("nan")
            t = p.cpu_times()
            return t.user + t.system

        return cpu(self.python), cpu(self.postgres)

    def used(self) -> tuple[float, float]:
        py, pg = self._now()
        return py - self.start[0], pg - self.start[1]


def run_copy(rows: list[tuple]) -> float:
    from django.db import connection, transaction

    from telemetry.services import _COPY_SQL

    progress = Progress("copy write_row", len(rows))
    started = time.perf_counter()
    for chunk in batches(rows):
        with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(_COPY_SQL) as copy:
            for row in chunk:
                copy.write_row(row)
        progress.advance(len(chunk))
    return time.perf_counter() - started


def run_copy_text(payloads: list[str], n: int) -> float:
    from django.db import connection, transaction

    from telemetry.services import _COPY_SQL

    progress = Progress("copy text", n)
    started = time.perf_counter()
    for payload in payloads:
        with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(_COPY_SQL) as copy:
            copy.write(payload)
        progress.advance(payload.count("\n"))
    return time.perf_counter() - started


def run_bulk_create(rows: list[tuple]) -> float:
    from django.db import transaction

    from telemetry.models import TelemetryLog

    names = ("batch_id", "user_id", "device_id", "organization_id", "platform", "created_at", "event_type", "tag",
             "action", "reason", "fields", "message", "metadata", "client_ts")  # fmt: skip
    objects = []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        values["fields"], values["metadata"] = json.loads(values["fields"]), json.loads(values["metadata"])
        objects.append(TelemetryLog(**values))
    progress = Progress("bulk_create", len(objects))
    started = time.perf_counter()
    for chunk in batches(objects):
        with transaction.atomic():
            TelemetryLog.objects.bulk_create(chunk, batch_size=BATCH)
        progress.advance(len(chunk))
    return time.perf_counter() - started


def run_service(user, entries: list[dict]) -> float:
    from telemetry import services

    progress = Progress("service", len(entries))
    started = time.perf_counter()
    for chunk in batches(entries):
        services.ingest_batch(user, chunk)
        progress.advance(len(chunk))
    return time.perf_counter() - started


class HttpServer:
    """A real uvicorn (one process) on the bench database, throttle raised, kept up across rounds."""

    def __init__(self, stack, pool: bool):
        from tests.processes import ROOT, free_port, running

        self.pool = pool
        self.label = "pool" if pool else "no_pool"
        self.base = f"http://127.0.0.1:{free_port()}"
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1",
                   THROTTLE_TELEMETRY_RATE="100000000/min", DB_POOL="1" if pool else "0")  # fmt: skip
        env.pop("CONN_MAX_AGE", None)
        cmd = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
               "--port", self.base.rsplit(":", 1)[1], "--no-access-log", "--log-level", "warning"]  # fmt: skip
        log_path = ROOT / "var" / f"bench-telemetry-uvicorn-{self.label}.log"
        self.proc = stack.enter_context(running(cmd, env, ready_url=f"{self.base}/healthz", log_path=log_path))


def run_http(server: HttpServer, token: str, entries: list[dict]) -> tuple[float, dict, float]:
    """Returns (seconds, statuses, uvicorn CPU seconds)."""
    import httpx

    bodies = [json.dumps(chunk).encode() for chunk in batches(entries)]  # serialised outside the timing
    statuses: dict[int, int] = {}
    progress = Progress(f"http {server.label}", len(entries))

    async def drive() -> tuple[float, float]:
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=HTTP_CONCURRENCY)
        async with httpx.AsyncClient(base_url=server.base, headers=headers, limits=limits, timeout=60) as client:
            for _ in range(HTTP_CONCURRENCY):  # warm-up: imports, first connections
                await client.post("/api/v1/telemetry/batch", content=b"[]")
            queue = list(enumerate(bodies))
            meter = CpuMeter(extra_pid=server.proc.pid)
            started = time.perf_counter()

            async def worker():
                while queue:
                    i, body = queue.pop()
                    response = await client.post("/api/v1/telemetry/batch", content=body)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    progress.advance(len(entries[i * BATCH : (i + 1) * BATCH]))

            await asyncio.gather(*(worker() for _ in range(HTTP_CONCURRENCY)))
            return time.perf_counter() - started, meter.used()[0]

    elapsed, server_cpu = asyncio.run(drive())
    return elapsed, statuses, server_cpu


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], [("--rounds", {"type": int, "default": None})])
    setup_django()
    n = 20_000 if args.quick else 200_000
    rounds = args.rounds or (2 if args.quick else 3)
    user, token = fixtures()
    entries = make_entries(n)
    rows = prepared_rows(user, entries)
    payloads = preformatted_payloads(user, entries)
    best: dict[str, dict] = {}

    def keep(way: str, seconds: float, py_cpu: float, pg_cpu: float | None, note: str) -> None:
        stored = stored_rows()
        assert stored == n, f"{way}: stored {stored} rows, expected {n}"
        row = {"way": way, "rows": n, "seconds": round(seconds, 3), "rows_per_s": round(n / seconds),
               "py_cpu_us_per_row": round(py_cpu / n * 1e6, 2),
               "pg_cpu_us_per_row": None if pg_cpu is None else round(pg_cpu / n * 1e6, 2), "note": note}  # fmt: skip
        if way not in best or seconds < best[way]["seconds"]:
            best[way] = row

    in_process = [
        ("copy", lambda: run_copy(rows), "bare psycopg write_row, values prepared: the limit"),
        ("copy_text", lambda: run_copy_text(payloads, n), "bare COPY of the service's exact text, prepared"),
        ("bulk_create", lambda: run_bulk_create(rows), "Django ORM, instances prepared"),
        ("service", lambda: run_service(user, entries), "ingest_batch: validate, parse, device, COPY"),
    ]
    with contextlib.ExitStack() as stack:
        # The web process's default (a connection pool) and a new database connection per request.
        servers = [HttpServer(stack, pool) for pool in (True, False)]
        for round_no in range(1, rounds + 1):  # interleaved rounds, best kept: the machine is shared
            print(f"round {round_no}/{rounds}")
            for way, run, note in in_process:
                truncate()
                meter = CpuMeter()
                seconds = run()
                keep(way, seconds, *meter.used(), note)
            for server in servers:
                truncate()
                seconds, statuses, server_cpu = run_http(server, token, entries)
                assert statuses == {202: len(payloads)}, statuses
                what = "DB_POOL (default)" if server.pool else "no pool: a connection per request"
                note = f"uvicorn x1, {HTTP_CONCURRENCY} clients, {what}; py = server"
                keep(f"http_{server.label}", seconds, server_cpu, None, note)
    truncate()

    results = list(best.values())
    rate = {r["way"]: r["rows_per_s"] for r in results}
    cpu = {r["way"]: r["py_cpu_us_per_row"] + (r["pg_cpu_us_per_row"] or 0) for r in results}
    best_http = rate["http_pool"]
    ratios = {
        "service / copy": round(rate["service"] / rate["copy"], 3),
        "service / copy_text": round(rate["service"] / rate["copy_text"], 3),
        "service / bulk_create": round(rate["service"] / rate["bulk_create"], 2),
        "http (default: pool) rows/s": rate["http_pool"],
        "http (no pool) rows/s": rate["http_no_pool"],
        "cpu per row: copy / service": round(cpu["copy"] / cpu["service"], 3),
        "cpu per row: bulk_create / service": round(cpu["bulk_create"] / cpu["service"], 2),
    }
    targets = {
        "service >= 50% of copy": ratios["service / copy"] >= 0.5,
        "http >= 20,000 rows/s": best_http >= 20_000,
        "service >= 5x bulk_create": ratios["service / bulk_create"] >= 5,
    }
    columns = ["way", "rows", "seconds", "rows_per_s", "py_cpu_us_per_row", "pg_cpu_us_per_row", "note"]
    title = f"Telemetry ingestion, {n:,} entries in batches of {BATCH} (one transaction each), best of {rounds}"
    print_table(title, results, columns)
    print_table("Ratios and targets", [{"ratio": k, "value": v} for k, v in ratios.items()]
                + [{"ratio": k, "value": "met" if ok else "MISSED"} for k, ok in targets.items()])  # fmt: skip
    write_result(
        "telemetry",
        {
            "entries": n,
            "batch": BATCH,
            "rounds": rounds,
            "http_concurrency": HTTP_CONCURRENCY,
            "quick": args.quick,
            "load_average_1m_at_end": os.getloadavg()[0],
        },  # fmt: skip
        results,
        {**ratios, "targets": targets},
    )


if __name__ == "__main__":
    main()
