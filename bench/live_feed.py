"""Live feed: N staff websocket clients on /ws/dashboard/feed over a real uvicorn, events emitted via emit().

Per client: received ÷ emitted (target 1.0: nothing lost); emit→receive latency p50/p99 (target p99 < 250 ms);
server CPU (psutil on the uvicorn pid). Runs once per channel layer (``--layers pubsub,lists``).

    DATABASE_URL=... REDIS_URL=... python -m bench.live_feed [--quick] [--layers pubsub,lists]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import signal
import sys
import time

from bench.common import Progress, parse_args, percentile, print_table, setup_django, summary_ms, write_result

EVENT_TYPE = "bench.live"


# --------------------------------------------------------------------------- client processes


def _clients_main(url: str, cookie: str, count: int, ready, start_draining, emitted_total, results) -> None:
    """One process holding ``count`` websocket clients; reports per-client counts and latencies."""
    import gc

    import psutil
    import websockets

    # The measuring tool must not add its own pauses: with ~750,000 latencies held, its full garbage
    # collections took 100-190 ms and showed up as server latency. Parsed frames hold no cycles, so
    # reference counting frees them anyway.
    gc.disable()

    async def one_client(index: int, connected: asyncio.Event, stats: list) -> None:
        state = {"received": 0, "frames": 0, "duplicates": 0, "latencies": [], "closed_early": False,
                 "last": time.monotonic()}  # fmt: skip
        ids: set[int] = set()
        async with websockets.connect(url, additional_headers=[("Cookie", cookie)], max_queue=None,
                                      open_timeout=30, ping_interval=None) as ws:  # fmt: skip
            while json.loads(await ws.recv())["type"] != "ready":
                pass
            connected.set()

            async def stop_when_done() -> None:
                # Polls instead of a timeout per recv(): a wait_for per message costs the client more than the frame.
                while True:
                    await asyncio.sleep(0.5)
                    idle = time.monotonic() - state["last"]
                    if start_draining.is_set() and (state["received"] >= emitted_total.value or idle > 5):
                        await ws.close()
                        return

            stopper = asyncio.create_task(stop_when_done())
            try:
                async for raw in ws:
                    now = time.time()
                    state["last"] = time.monotonic()
                    message = json.loads(raw)
                    kind = message.get("type")
                    if kind == "events":
                        state["frames"] += 1
                        events = message["events"]
                    elif kind == "event":
                        state["frames"] += 1
                        events = [message["event"]]
                    else:
                        continue
                    for event in events:
                        if event["id"] in ids:
                            state["duplicates"] += 1
                            continue
                        ids.add(event["id"])
                        state["received"] += 1
                        state["latencies"].append(now - event["payload"]["t"])
            except websockets.ConnectionClosed:
                state["closed_early"] = True  # e.g. a missed keepalive pong on an overloaded machine
            stopper.cancel()
        del state["last"]
        stats.append(state)

    async def main() -> None:
        stats: list = []
        events = [asyncio.Event() for _ in range(count)]
        tasks = [asyncio.create_task(one_client(i, events[i], stats)) for i in range(count)]
        await asyncio.gather(*(e.wait() for e in events))
        ready.release()
        cpu0 = psutil.Process().cpu_times()
        await asyncio.gather(*tasks)
        cpu1 = psutil.Process().cpu_times()
        stats[0]["client_cpu_s"] = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        results.put(stats)

    asyncio.run(main())


# --------------------------------------------------------------------------- the emitter process


def _emitter_main(organization_id: int, rate: float, seconds: float, emitted_total, out, show: bool) -> None:
    setup_django()
    from realtime.services import emit, wait_for_broadcasts

    total = int(rate * seconds)
    started = time.monotonic()
    durations = []
    progress = Progress("emitting (one of the emitters)", total) if show else None
    for i in range(total):
        if time.monotonic() - started > seconds * 1.2:
            break  # an overloaded machine cannot keep the rate: stop on time, report the achieved rate
        due = started + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        if emit(organization_id, EVENT_TYPE, "bench", i, {"t": time.time(), "i": i}) is not None:
            with emitted_total.get_lock():
                emitted_total.value += 1
        durations.append(time.perf_counter() - t0)
        if progress:
            progress.advance()
    if progress:
        print(flush=True)
    wait_for_broadcasts(30)
    out.put({"wall_s": time.monotonic() - started, "durations": durations})


# --------------------------------------------------------------------------- one run


def run_layer(layer: str, clients: int, rate: int, seconds: float, client_procs: int, emitters: int) -> dict:
    import psutil
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore

    from messaging.models import Organization, User
    from realtime.services import redis_client
    from tests.processes import child_env, free_port, running

    # Group memberships left by an earlier interrupted run would make the list layer fill dead channels.
    for key in redis_client().scan_iter(f"{settings.CHANNEL_PREFIX}:group:*"):
        redis_client().delete(key)
    org, _ = Organization.objects.get_or_create(slug="bench-live", defaults={"name": "Bench live"})
    staff, _ = User.objects.get_or_create(username="bench-live-staff", defaults={"is_staff": True})
    session = SessionStore()
    session["_auth_user_id"] = str(staff.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = staff.get_session_auth_hash()
    session.create()
    cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"

    port = free_port()
    env = child_env(CHANNEL_LAYER=layer)
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL", env["DATABASE_URL"])
    cmd = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log", "--log-level", "warning"]  # fmt: skip
    os.environ["CHANNEL_LAYER"] = layer  # the spawned emitter publishes on the same layer
    ctx = mp.get_context("spawn")
    with running(cmd, env, ready_url=f"http://127.0.0.1:{port}/healthz") as server:
        url = f"ws://127.0.0.1:{port}/ws/dashboard/feed?organization={org.pk}&types={EVENT_TYPE}"
        ready, start_draining = ctx.Semaphore(0), ctx.Event()
        emitted_total, results, emitter_out = ctx.Value("l", 0), ctx.Queue(), ctx.Queue()
        sizes = [clients // client_procs + (1 if i < clients % client_procs else 0) for i in range(client_procs)]
        procs = [ctx.Process(target=_clients_main, args=(url, cookie, n, ready, start_draining, emitted_total,
                                                         results)) for n in sizes if n]  # fmt: skip
        for p in procs:
            p.start()
        for _ in procs:
            if not ready.acquire(timeout=60):
                raise RuntimeError("clients did not connect")
        server_proc = psutil.Process(server.pid)
        cpu0, wall0 = server_proc.cpu_times(), time.monotonic()
        # Several emitter processes (each its own publisher), as several web/worker processes would be.
        loss_before = _loss_snapshot()
        emitter_procs = [
            ctx.Process(
                target=_emitter_main, args=(org.pk, rate / emitters, seconds, emitted_total, emitter_out, i == 0)
            )  # fmt: skip
            for i in range(emitters)
        ]
        for p in emitter_procs:
            p.start()
        emitter_runs = [emitter_out.get(timeout=seconds * 4 + 120) for _ in emitter_procs]
        for p in emitter_procs:
            p.join()
        emitter_stats = {
            "emitted": emitted_total.value,
            "wall_s": max(r["wall_s"] for r in emitter_runs),
            "emit": summary_ms([d for r in emitter_runs for d in r["durations"]]),
        }
        start_draining.set()
        stats = [s for _ in procs for s in results.get(timeout=120)]
        cpu1, wall1 = server_proc.cpu_times(), time.monotonic()
        for p in procs:
            p.join(30)
    emitted = emitter_stats["emitted"]
    ratios = [s["received"] / emitted if emitted else 0.0 for s in stats]
    latencies = [x for s in stats for x in s["latencies"]]
    lat = summary_ms(latencies)
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    loss_after = _loss_snapshot()
    return {
        "layer": layer,
        "clients": len(stats),
        "rate_target": rate,
        "rate_achieved": round(emitted / emitter_stats["wall_s"], 1),
        "emitted": emitted,
        "recv_ratio_min": round(min(ratios), 4),
        "recv_ratio_mean": round(sum(ratios) / len(ratios), 4),
        "duplicates": sum(s["duplicates"] for s in stats),
        "events_per_frame": round(sum(s["received"] for s in stats) / max(1, sum(s["frames"] for s in stats)), 1),
        "closed_early": sum(s["closed_early"] for s in stats),
        "client_cpu_pct": round(100 * sum(s.get("client_cpu_s", 0) for s in stats) / (wall1 - wall0), 1),
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "emit_p50_ms": emitter_stats["emit"]["p50_ms"],
        "emit_p99_ms": emitter_stats["emit"]["p99_ms"],
        "server_cpu_pct": round(100 * cpu_s / (wall1 - wall0), 1),
        "loss_gaps": loss_after["gaps"] - loss_before["gaps"],
        "loss_missed": loss_after["missed"] - loss_before["missed"],
        "emitters": emitters,
        "p99_under_250ms": lat["p99_ms"] < 250 if latencies else False,
        "p999_ms": round(percentile([x * 1000 for x in latencies], 99.9), 1) if latencies else None,
    }


def _loss_snapshot() -> dict:
    from realtime.queries import feed_loss_counters

    return feed_loss_counters()


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        [
            ("--layers", {"default": "pubsub,lists", "help": "comma list of pubsub / lists"}),
            ("--clients", {"type": int, "default": None}),
            ("--rate", {"type": int, "default": None}),
            ("--seconds", {"type": float, "default": None}),
            ("--emitters", {"type": int, "default": None, "help": "emitter processes"}),
        ],
    )
    # SIGTERM/timeout: unwind so the uvicorn and client processes are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    setup_django()
    clients = args.clients or (10 if args.quick else 50)
    rate = args.rate or (200 if args.quick else 1000)
    seconds = args.seconds or (8 if args.quick else 30)
    client_procs = 1 if clients <= 10 else 2
    emitters = args.emitters or (2 if args.quick else 4)
    params = {"clients": clients, "rate": rate, "seconds": seconds, "client_processes": client_procs,
              "emitters": emitters, "quick": args.quick}  # fmt: skip
    rows = []
    for layer in args.layers.split(","):
        print(f"layer={layer}: {clients} clients, {rate} events/s for {seconds:g} s")
        rows.append(run_layer(layer, clients, rate, seconds, client_procs, emitters))
    columns = ["layer", "clients", "rate_achieved", "emitted", "recv_ratio_min", "recv_ratio_mean", "duplicates",
               "closed_early", "loss_missed", "events_per_frame", "p50_ms", "p99_ms", "max_ms", "emit_p99_ms",
               "server_cpu_pct", "client_cpu_pct"]  # fmt: skip
    print_table("live feed: emit() -> staff websocket clients", rows, columns)
    by_layer = {r["layer"]: r for r in rows}
    ratios = {}
    if {"pubsub", "lists"} <= by_layer.keys() and by_layer["pubsub"]["p99_ms"]:
        ratios["lists_p99_over_pubsub_p99"] = round(by_layer["lists"]["p99_ms"] / by_layer["pubsub"]["p99_ms"], 2)
        ratios["lists_cpu_over_pubsub_cpu"] = round(
            by_layer["lists"]["server_cpu_pct"] / max(by_layer["pubsub"]["server_cpu_pct"], 0.1), 2
        )
    write_result("live_feed", params, rows, ratios)


if __name__ == "__main__":
    main()
