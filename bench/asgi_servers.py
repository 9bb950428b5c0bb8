"""Which ASGI server runs `web`: uvicorn vs Daphne, side by side, on the same endpoint and load; and what
the web process's PostgreSQL connection pool (DB_POOL, on by default in config/asgi.py) is worth: uvicorn
once more with DB_POOL=0, a new database connection per request.

  python -m bench.asgi_servers [--quick]

Each server runs `config.asgi:application` as one process on loopback; a keep-alive HTTP/1.1 load
generator (raw asyncio streams, so the client costs less than the server) sends
`GET /api/v1/config` with a token: DRF token auth plus the flag cache, a typical small API read.
Reported: requests/s, latency percentiles, and the server process's CPU per request.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import parse_args, print_table, setup_django, summary_ms, write_result

ROOT = Path(__file__).resolve().parent.parent

SERVERS = {
    "uvicorn": lambda port: [
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ],  # fmt: skip
    "daphne": lambda port: [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "-v",
        "0",
        "config.asgi:application",
    ],  # fmt: skip
}
# Rows: (label, server, environment overrides).
RUNS = [("uvicorn", "uvicorn", {}), ("daphne", "daphne", {}), ("uvicorn, no pool", "uvicorn", {"DB_POOL": "0"})]


def bench_token() -> str:
    from rest_framework.authtoken.models import Token

    from messaging.models import Organization, User

    org, _ = Organization.objects.get_or_create(slug="bench-asgi", defaults={"name": "Bench ASGI"})
    user, _ = User.objects.get_or_create(username="bench-asgi-user", defaults={"organization": org})
    return Token.objects.get_or_create(user=user)[0].key


async def _one_connection(port: int, request: bytes, deadline: float, latencies: list[float], errors: list[int]):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _load(port: int, token: str, connections: int, seconds: float) -> tuple[list[float], list[int], float]:
    request = (
        f"GET /api/v1/config?platform=android&app_version=1.2.0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Token {token}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_one_connection(port, request, deadline, latencies, errors) for _ in range(connections)))
    return latencies, errors, time.perf_counter() - started


def measure(label: str, name: str, env: dict, token: str, connections: int, seconds: float, warmup: float) -> dict:
    import psutil

    from tests.processes import free_port, wait_for_http

    port = free_port()
    proc = subprocess.Popen(SERVERS[name](port), cwd=ROOT, env=dict(os.environ) | env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", 30, proc)
        asyncio.run(_load(port, token, connections, warmup))
        server = psutil.Process(proc.pid)
        cpu_before = server.cpu_times()
        latencies, errors, elapsed = asyncio.run(_load(port, token, connections, seconds))
        cpu_after = server.cpu_times()
    finally:
        proc.terminate()
        proc.wait(10)
    server_cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {
        "server": label,
        "requests": len(latencies),
        "req_per_s": round(len(latencies) / elapsed, 1),
        **summary_ms(latencies),
        "non_200": len(errors),
        "server_cpu_ms_per_req": round(1000 * server_cpu / max(len(latencies), 1), 3),
    }


def main() -> None:
    args = parse_args(__doc__)
    setup_django()
    params = {"connections": 32 if args.quick else 64, "seconds": 5 if args.quick else 20, "warmup_s": 2,
              "endpoint": "GET /api/v1/config (token auth)", "processes_per_server": 1}  # fmt: skip
    token = bench_token()
    rows = []
    for label, name, env in RUNS:
        print(f"  {label}: {params['connections']} keep-alive connections for {params['seconds']} s ...", flush=True)
        rows.append(measure(label, name, env, token, params["connections"], params["seconds"], params["warmup_s"]))
    print_table("ASGI servers, one process each", rows)
    by = {r["server"]: r for r in rows}
    ratios = {
        "uvicorn_over_daphne_req_per_s": round(by["uvicorn"]["req_per_s"] / max(by["daphne"]["req_per_s"], 1e-9), 2),
        "daphne_over_uvicorn_cpu_per_req": round(
            by["daphne"]["server_cpu_ms_per_req"] / max(by["uvicorn"]["server_cpu_ms_per_req"], 1e-9), 2
        ),
        "pool_over_no_pool_req_per_s": round(
            by["uvicorn"]["req_per_s"] / max(by["uvicorn, no pool"]["req_per_s"], 1e-9), 2
        ),
    }
    print(f"\nuvicorn / daphne throughput: {ratios['uvicorn_over_daphne_req_per_s']}x; "
          f"connection pool / no pool: {ratios['pool_over_no_pool_req_per_s']}x")  # fmt: skip
    write_result("asgi_servers", params, rows, ratios)


if __name__ == "__main__":
    main()
