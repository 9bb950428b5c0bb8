"""What `make run` runs once the embedded (or real) services are up: migrate, seed, then the Procfile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def configure_fake_fcm(env: dict[str, str]) -> None:
    """Point web/worker at the Procfile's fake FCM unless the user chose an FCM, and create its
    service-account file now: web and worker may load it before the fake is up, and the fake reuses
    a file that already names its token_uri (same key), so both sides agree."""
    env.setdefault("FCM_BASE_URL", f"http://127.0.0.1:{env['PUSHWATCH_FAKEFCM_PORT']}")
    env.setdefault("FCM_SERVICE_ACCOUNT_FILE", str(ROOT / "var" / "fake-fcm-service-account.json"))
    env.setdefault("FCM_PROJECT_ID", "pushwatch-demo")
    if env["FCM_BASE_URL"].rstrip("/") == f"http://127.0.0.1:{env['PUSHWATCH_FAKEFCM_PORT']}":
        from pushes.fakefcm.service_account import ensure_service_account

        ensure_service_account(env["FCM_SERVICE_ACCOUNT_FILE"], env["FCM_BASE_URL"], env["FCM_PROJECT_ID"])


def main() -> int:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PUSHWATCH_PORT", "8000")
    env.setdefault("PUSHWATCH_FAKEFCM_PORT", "9099")
    configure_fake_fcm(env)
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
    honcho = subprocess.Popen([sys.executable, "-m", "honcho", "-f", procfile, "-d", str(ROOT), "start"], env=env)
    # Ctrl-C reaches honcho too (same process group) and honcho stops every process; this launcher just
    # waits for that instead of dying with a KeyboardInterrupt traceback halfway through the shutdown.
    signal.signal(signal.SIGINT, lambda *_: None)
    return honcho.wait()


if __name__ == "__main__":
    sys.exit(main())
