"""What `make run` runs once the embedded (or real) services are up: migrate, seed, then the Procfile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PUSHWATCH_PORT", "8000")
    env.setdefault("PUSHWATCH_FAKEFCM_PORT", "9099")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input"], check=True, env=env, cwd=ROOT)
    subprocess.run([*manage, "seed_demo"], check=True, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{env['PUSHWATCH_PORT']}"
    print(
        "\n"
        f"  Pushwatch is starting at {url}/dashboard/  (admin: {url}/admin/, API docs: {url}/api/docs/)\n"
        "  Demo login: admin / pushwatch-demo   (also support / pushwatch-demo, manager / pushwatch-demo)\n"
        "  Ctrl-C stops every process.\n",
        flush=True,
    )
    procfile = env.get("PUSHWATCH_PROCFILE", str(ROOT / "Procfile"))
    return subprocess.call([sys.executable, "-m", "honcho", "-f", procfile, "-d", str(ROOT), "start"], env=env)


if __name__ == "__main__":
    sys.exit(main())
