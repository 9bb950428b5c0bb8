"""Flag evaluation cost (cached vs. a query per evaluation), /api/v1/config, and how fast a change
reaches another process. `python -m bench.flags [--quick]` (uses DATABASE_URL/REDIS_URL; restores the flag)."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import threading
import time

from bench.common import Progress, parse_args, print_table, setup_django, summary_ms, write_result

KEY = "sync.maxBatch"


def time_calls(label: str, fn, n: int) -> dict:
    progress = Progress(label, n)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if i % 1000 == 999 or i == n - 1:
            progress.advance(min(1000, n - progress.done))
    row = {"case": label, **summary_ms(samples)}
    row["mean_us"] = round(sum(samples) / n * 1e6, 2)
    row["calls_per_s"] = round(n / sum(samples))
    return row


def watch(key: str) -> None:
    """Child mode: print (value, wall time) every time this process's evaluation of ``key`` changes."""
    setup_django()
    from flags.queries import flag_value

    last = object()
    print(json.dumps({"ready": True}), flush=True)
    while True:
        value = flag_value(key)
        if value != last:
            print(json.dumps({"value": value, "t": time.time()}), flush=True)
            last = value
        time.sleep(0.001)


def propagation(flips: int) -> tuple[list[float], list[float]]:
    from flags.services import set_flag

    child = subprocess.Popen(
        [sys.executable, "-m", "bench.flags", "--watch", KEY], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    seen: dict = {}
    arrived = threading.Condition()

    def reader() -> None:
        for line in child.stdout:
            msg = json.loads(line)
            with arrived:
                seen[msg.get("value", "ready")] = msg.get("t")
                arrived.notify_all()

    threading.Thread(target=reader, daemon=True).start()
    delays, writes = [], []
    rng = random.Random(5)
    progress = Progress("propagation flips", flips)
    try:
        with arrived:
            arrived.wait_for(lambda: "ready" in seen and len(seen) > 1, timeout=60)
        for i in range(flips):
            value = 300 + i
            time.sleep(rng.uniform(0.2, 0.6))  # random phase against the child's 200 ms check
            t0 = time.time()
            set_flag(KEY, value, changed_by=None, reason=f"bench.flags propagation {i}")
            writes.append(time.time() - t0)
            with arrived:
                if not arrived.wait_for(lambda v=value: v in seen, timeout=10):
                    raise TimeoutError(f"child never saw {value}")
            delays.append(seen[value] - t0)
            progress.advance()
    finally:
        child.terminate()
        child.wait(10)
    return delays, writes


def main() -> None:
    args = parse_args(__doc__, extra=[("--watch", {"default": None, "help": "internal: child watcher mode"})])
    if args.watch:
        watch(args.watch)
        return
    setup_django()
    logging.getLogger("pushwatch.flags").setLevel(logging.WARNING)
    from django.db import connection
    from rest_framework.test import APIClient

    from flags import queries
    from flags.cache import CHECK_INTERVAL
    from flags.models import Flag
    from flags.rules import compile_rules
    from flags.services import ensure_seed_flags, set_flag
    from tests.factories import UserFactory, token_for

    n = 20_000 if args.quick else 200_000
    n_db = 2_000 if args.quick else 10_000
    n_http = 300 if args.quick else 2_000
    flips = 8 if args.quick else 30

    ensure_seed_flags()
    original = Flag.objects.get(key=KEY)
    rules = [{"platform": "ios", "min_app_version": "1.10.0", "value": 500}, {"percentage": 30, "value": 300}]
    set_flag(KEY, 200, changed_by=None, reason="bench.flags: realistic rules", rules=rules)
    queries.flag_value(KEY)

    def uncached() -> None:
        # What evaluation would cost without the cache: one query per call, then the same rules.
        row = Flag.objects.values_list("value", "rules").get(key=KEY)
        for rule in compile_rules(row[1]):
            if rule.matches(KEY, 42, "ios", None):
                return
        return

    user = UserFactory(password=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    etag = client.get("/api/v1/config", {"platform": "ios", "app_version": "1.10.0"})["ETag"]

    rows = [
        time_calls(
            "flag_value (cached)", lambda: queries.flag_value(KEY, user=42, platform="ios", app_version="1.10.0"), n
        ),
        time_calls("push_suppression_reason (cached)", queries.push_suppression_reason, n),
        time_calls("flag_value, one query per call", uncached, n_db),
        time_calls(
            "evaluated_config + etag",
            lambda: queries.config_etag(queries.evaluated_config(user, "ios", "1.10.0")),
            n // 10,
        ),
        time_calls("GET /api/v1/config -> 200", lambda: client.get("/api/v1/config", {"platform": "ios"}), n_http),
        time_calls(
            "GET /api/v1/config -> 304",
            lambda: client.get("/api/v1/config", {"platform": "ios", "app_version": "1.10.0"}, HTTP_IF_NONE_MATCH=etag),
            n_http,
        ),
    ]
    print_table("flag evaluation", rows, ["case", "n", "mean_us", "p50_ms", "p99_ms", "calls_per_s"])

    delays, writes = propagation(flips)
    prop = {"case": "set_flag -> seen by another process", **summary_ms(delays), "max_ms": round(max(delays) * 1000, 1)}
    write_row = {"case": "set_flag (validate, lock, audit, emit, INCR)", **summary_ms(writes)}
    print_table(
        f"propagation (check interval {CHECK_INTERVAL * 1000:.0f} ms; promise: < 1000 ms)",
        [prop, write_row],
        ["case", "n", "p50_ms", "p99_ms", "max_ms", "mean_ms"],
    )

    set_flag(KEY, original.value, changed_by=None, reason="bench.flags: restore", rules=original.rules)
    user.delete()
    connection.close()
    cached, db = rows[0]["mean_ms"], rows[2]["mean_ms"]
    write_result(
        "flags",
        {"quick": args.quick, "evaluations": n, "db_evaluations": n_db, "http_requests": n_http, "flips": flips},
        rows + [prop, write_row],
        {
            "uncached_over_cached_eval": round(db / cached, 1) if cached else None,
            "propagation_max_over_promise": round(max(delays), 3),
        },
    )


if __name__ == "__main__":
    main()
