"""`python -m bench [--quick]`: run every benchmark module in bench/ one after another.

They run on a database of their own, ``<name>_bench`` on the same server as DATABASE_URL (created and migrated
here when missing): benchmarks create and truncate rows, which must never touch `make run`'s demo data or
yours. ``python -m bench.<name>`` alone uses DATABASE_URL as given.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SKIP = {"__main__", "common"}
ROOT = Path(__file__).resolve().parent.parent


def bench_database_url(url: str) -> str:
    """The same server, database ``<name>_bench``; created and migrated if it does not exist yet."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "pushwatch"
    bench_name = name if name.endswith("_bench") else f"{name}_bench"
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (bench_name,)).fetchone() is None:
            print(f"creating the benchmark database {bench_name}", flush=True)
            conn.execute(f'CREATE DATABASE "{bench_name}"')
    bench_url = urlunsplit(parts._replace(path=f"/{bench_name}"))
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--no-input", "-v", "0"], check=True,
                   env=dict(os.environ, DATABASE_URL=bench_url), cwd=ROOT)  # fmt: skip
    return bench_url


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name not in SKIP)
    env = dict(os.environ)
    if env.get("DATABASE_URL"):
        env["DATABASE_URL"] = bench_database_url(env["DATABASE_URL"])
    failed = []
    for i, name in enumerate(names, 1):
        print(f"\n=== [{i}/{len(names)}] bench.{name}", flush=True)
        # charts wants an empty delivery log; this database is the benchmarks' own, so it may clear it.
        extra = ["--force-truncate"] if name == "charts" and env.get("DATABASE_URL") else []
        if subprocess.call([sys.executable, "-m", f"bench.{name}", *sys.argv[1:], *extra], env=env) != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
