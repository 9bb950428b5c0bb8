"""Fan-out benchmark: one message to a group of N members x 2 devices, through the real pipeline.

  python -m bench.fanout [--quick]

Measures, against `manage.py fakefcm` on loopback:
1. pipeline: `messaging.services.send_message` (commit + set-based fan-out) then
   `pushes.services.dispatch_due_pushes` until nothing is left: commit -> last accepted send, sends/s,
   pushes created per message. Coalescing window overridden to 0 s for the bench (settings).
2. the official SDK: the same sends via `firebase_admin.messaging.send_each_async` in batches of 500
   (its cap), pointed at the same fake by setting `_MessagingService.FCM_URL` (benchmark only).
3. the fake's own ceiling: a trivial load generator (pipelined HTTP/1.1 and h2c streams, requests
   prebuilt) so the fake is shown not to be the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import Progress, parse_args, print_table, setup_django, write_result

ROOT = Path(__file__).resolve().parent.parent
PROJECT_ID = "pushwatch-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fake_fcm_server(tmp: Path):
    from pushes.fakefcm.service_account import ensure_service_account

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sa_file = str(tmp / "sa.json")
    ensure_service_account(sa_file, base, PROJECT_ID)
    cmd = [sys.executable, "manage.py", "fakefcm", "--port", str(port), "--project-id", PROJECT_ID,
           "--service-account-out", sa_file, "--deliveries-capacity", "20000"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import httpx

        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("fakefcm did not start")
        yield base, sa_file, proc
    finally:
        proc.terminate()
        proc.wait(10)


def fake(base: str, path: str, payload: dict | None = None) -> dict:
    import httpx

    if payload is None:
        return httpx.get(f"{base}{path}", timeout=30).json()
    return httpx.post(f"{base}{path}", json=payload, timeout=30).json()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------- 1. pipeline


def build_group(members: int) -> tuple:
    """An organization, a group of `members` users and two devices each (one android, one ios)."""
    from django.contrib.auth.hashers import make_password

    from messaging.models import Group, GroupMember, Organization, User
    from pushes.models import UserDevice

    run = uuid.uuid4().hex[:8]
    org = Organization.objects.create(slug=f"bench-fanout-{run}", name=f"Bench fan-out {run}")
    group = Group.objects.create(organization=org, name=f"bench-{members}")
    password = make_password(None)  # unusable; no hashing cost per user
    users = User.objects.bulk_create(
        [User(username=f"bf-{run}-{i}", organization=org, password=password) for i in range(members)],
        batch_size=2000,
    )
    GroupMember.objects.bulk_create([GroupMember(group=group, user=u) for u in users], batch_size=2000)
    from django.utils import timezone

    now = timezone.now()
    UserDevice.objects.bulk_create(
        [
            UserDevice(
                user=u,
                platform=platform,
                token=f"bench{run}{platform}{i:06d}:{uuid.uuid4().hex}" * 2,
                app_version="1.0.0",
                last_seen_at=now,
            )  # fmt: skip
            for i, u in enumerate(users)
            for platform in ("android", "ios")
        ],
        batch_size=2000,
    )
    return group, users


def _dispatcher_process(stop, batch: int) -> None:
    """A forked dispatcher, like one Celery worker process: claim/send/record until told to stop."""
    import pushes.providers.base as provider_base
    from pushes.providers import reset_provider
    from pushes.services import dispatch_due_pushes

    provider_base._provider = None  # the parent's provider (and its loop thread) did not survive the fork
    while not stop.is_set():
        if not dispatch_due_pushes(limit=batch):
            time.sleep(0.005)
    reset_provider()


def run_pipeline(base: str, members: int, batch: int, dispatchers: int) -> dict:
    """Commit one message, then dispatch until the fake has accepted every send.

    dispatchers=1 runs `dispatch_due_pushes` in this process; N > 1 forks N dispatcher processes
    (the Procfile's `worker --concurrency 2`) that share the work through FOR UPDATE SKIP LOCKED.
    The end time is when the fake reports the last acceptance."""
    import multiprocessing

    from django.conf import settings
    from django.db import connections

    from messaging.services import send_message
    from pushes.models import PushNotification
    from pushes.providers import reset_provider
    from pushes.services import dispatch_due_pushes

    settings.PUSH_COALESCE_WINDOW_SECONDS = 0.0  # bench override: no coalescing wait
    print(f"  building group of {members:,} members x 2 devices ...", flush=True)
    group, users = build_group(members)
    expected = (members - 1) * 2
    reset_provider()
    fake(base, "/__fake__/reset", {})

    stop = multiprocessing.get_context("fork").Event()
    workers = []
    if dispatchers > 1:
        connections.close_all()  # children must not share this process's database socket
        ctx = multiprocessing.get_context("fork")
        workers = [ctx.Process(target=_dispatcher_process, args=(stop, batch)) for _ in range(dispatchers)]
        for w in workers:
            w.start()
        time.sleep(1.0)  # let them connect and fetch the OAuth token's first lazy imports settle
    progress = Progress(f"pipeline accepted sends ({dispatchers} dispatcher(s))", expected)
    cpu_start = time.process_time()
    t_start = time.perf_counter()
    message, created = send_message(
        sender=users[0], group_id=group.id, client_generated_id=uuid.uuid4(), body="bench fan-out"
    )
    t_committed = time.perf_counter()  # autocommit: the commit and the on-commit fan-out ran inside
    accepted = 0
    deadline = t_start + 120
    while accepted < expected and time.perf_counter() < deadline:
        if workers:
            time.sleep(0.02)
        elif not dispatch_due_pushes(limit=batch):
            break
        accepted = fake(base, "/__fake__/stats")["accepted"]
        progress.advance(accepted - progress.done)
    t_done = time.perf_counter()
    cpu = time.process_time() - cpu_start
    stop.set()
    for w in workers:
        w.join(30)
    pushes = PushNotification.objects.filter(message_id=message.id).count()
    accepted = fake(base, "/__fake__/stats")["accepted"]
    reset_provider()
    elapsed = t_done - t_start
    row = {
        "sender": f"pushwatch pipeline, {dispatchers} dispatcher proc (httpx h2c)",
        "sends": expected,
        "accepted": accepted,
        "seconds": round(elapsed, 3),
        "sends_per_s": round(accepted / elapsed, 1),
        "commit_to_last_accept_s": round(elapsed, 3),
        "send_message_incl_fanout_s": round(t_committed - t_start, 3),
        "pushes_per_message": pushes,
    }
    if not workers:
        row["client_cpu_us_per_send"] = round(cpu / max(accepted, 1) * 1e6, 1)
    return row


def run_provider_only(base: str, tokens: list[tuple[str, str]]) -> dict:
    """The provider alone (no database), to separate sending cost from claim/record cost."""
    from pushes.providers import OutgoingMessage, get_provider, reset_provider

    reset_provider()
    provider = get_provider()
    data = {"type": "new_message", "group_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4()),
            "created_at": "2026-01-01T00:00:00+00:00", "count": "1"}  # fmt: skip
    messages = [OutgoingMessage(i, tok, plat, data, "g") for i, (tok, plat) in enumerate(tokens)]
    provider.send_many_sync(messages[:1])  # token + connection warm-up, like a running worker
    fake(base, "/__fake__/reset", {})
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    outcomes = []
    for i in range(0, len(messages), 1000):
        outcomes += provider.send_many_sync(messages[i : i + 1000])
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    reset_provider()
    ok = sum(o.ok for o in outcomes)
    return {"sender": "provider.send_many_sync only", "sends": len(messages), "accepted": ok,
            "seconds": round(elapsed, 3), "sends_per_s": round(ok / elapsed, 1),
            "client_cpu_us_per_send": round(cpu / max(ok, 1) * 1e6, 1)}  # fmt: skip


# ---------------------------------------------------------------------------------------- 2. the SDK


def run_sdk(base: str, sa_file: str, tokens: list[tuple[str, str]]) -> dict:
    import firebase_admin
    from firebase_admin import credentials, messaging

    messaging._MessagingService.FCM_URL = f"{base}/v1/projects/{{0}}/messages:send"  # bench only
    app = firebase_admin.initialize_app(
        credentials.Certificate(sa_file), {"projectId": PROJECT_ID}, name=f"bench-{uuid.uuid4().hex[:6]}"
    )
    data = {"type": "new_message", "group_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4()),
            "created_at": "2026-01-01T00:00:00+00:00", "count": "1"}  # fmt: skip

    def sdk_message(token: str, platform: str) -> messaging.Message:
        if platform == "android":
            return messaging.Message(token=token, data=data, android=messaging.AndroidConfig(priority="high"))
        return messaging.Message(
            token=token,
            data=data,
            apns=messaging.APNSConfig(
                headers={"apns-priority": "5", "apns-push-type": "background"},
                payload=messaging.APNSPayload(aps=messaging.Aps(content_available=True)),
            ),
        )

    messages = [sdk_message(t, p) for t, p in tokens]

    async def send_all() -> int:
        await messaging.send_each_async(messages[:1], app=app)  # token + connection warm-up
        fake(base, "/__fake__/reset", {})
        progress = Progress("SDK send_each_async", len(messages))
        ok = 0
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for i in range(0, len(messages), 500):  # 500 is send_each_async's cap
            response = await messaging.send_each_async(messages[i : i + 500], app=app)
            ok += response.success_count
            progress.advance(len(messages[i : i + 500]))
        return ok, time.perf_counter() - t0, time.process_time() - cpu0

    ok, elapsed, cpu = asyncio.run(send_all())
    with contextlib.suppress(RuntimeError):  # its async client belonged to the loop asyncio.run closed
        firebase_admin.delete_app(app)
    return {"sender": "firebase_admin send_each_async (x500)", "sends": len(messages), "accepted": ok,
            "seconds": round(elapsed, 3), "sends_per_s": round(ok / elapsed, 1),
            "client_cpu_us_per_send": round(cpu / max(ok, 1) * 1e6, 1)}  # fmt: skip


# ------------------------------------------------------------------------------ 3. the fake's ceiling


def access_token(sa_file: str) -> str:
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(
        sa_file, scopes=["https://www.googleapis.com/auth/firebase.messaging"]
    )
    creds.refresh(Request())
    return creds.token


def _send_body(i: int) -> bytes:
    return json.dumps(
        {
            "message": {
                "token": f"load-{i % 1000}",
                "data": {"type": "new_message", "count": "1"},
                "android": {"priority": "high"},
            }
        }  # fmt: skip
    ).encode()


async def _h1_load(host: str, port: int, token: str, total: int, connections: int) -> int:
    """Pipelined HTTP/1.1: prebuilt requests, responses counted by their status line."""
    body = _send_body(0)
    request = (
        f"POST /v1/projects/{PROJECT_ID}/messages:send HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def one(per_conn: int) -> int:
        reader, writer = await asyncio.open_connection(host, port)
        seen, tail = 0, b""
        for start in range(0, per_conn, 200):
            writer.write(request * min(200, per_conn - start))
        await writer.drain()
        while seen < per_conn:
            chunk = await reader.read(1 << 16)
            if not chunk:
                break
            seen += (tail + chunk).count(b"HTTP/1.1 200")
            tail = chunk[-11:]  # a status line split across reads is still counted, never twice
        writer.close()
        return seen

    share, extra = divmod(total, connections)
    return sum(await asyncio.gather(*(one(share + (i < extra)) for i in range(connections))))


async def _h2_load(host: str, port: int, token: str, total: int, window: int = 200) -> int:
    """h2c prior knowledge with the h2 library: keeps `window` streams open, counts 200 answers."""
    import h2.config
    import h2.connection
    import h2.events

    reader, writer = await asyncio.open_connection(host, port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    body = _send_body(0)
    headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", host.encode()),
               (b":path", f"/v1/projects/{PROJECT_ID}/messages:send".encode()),
               (b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    sent = done = ok = 0
    open_streams = 0
    while done < total:
        while open_streams < window and sent < total:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, headers)
            conn.send_data(sid, body, end_stream=True)
            sent += 1
            open_streams += 1
        writer.write(conn.data_to_send())
        data = await reader.read(1 << 16)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                ok += dict(event.headers).get(b":status") == b"200"
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                done += 1
                open_streams -= 1
    writer.write(conn.data_to_send())
    writer.close()
    return ok


def run_ceiling(base: str, sa_file: str, fake_pid: int, total: int) -> list[dict]:
    host, port = base.removeprefix("http://").split(":")
    token = access_token(sa_file)
    rows = []
    for label, make in (
        ("fake ceiling: HTTP/1.1 pipelined x4 conns", lambda: _h1_load(host, int(port), token, total, 4)),
        ("fake ceiling: h2c 200 streams x1 conn", lambda: _h2_load(host, int(port), token, total)),
    ):
        fake(base, "/__fake__/reset", {})
        cpu0 = cpu_seconds(fake_pid)
        t0 = time.perf_counter()
        ok = asyncio.run(make())
        elapsed = time.perf_counter() - t0
        fake_cpu = cpu_seconds(fake_pid) - cpu0
        rows.append({"sender": label, "sends": total, "accepted": ok, "seconds": round(elapsed, 3),
                     "sends_per_s": round(ok / elapsed, 1),
                     "fake_cpu_us_per_req": round(fake_cpu / max(ok, 1) * 1e6, 1)})  # fmt: skip
    return rows


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        [
            ("--members", {"type": int, "default": None}),
            ("--batch", {"type": int, "default": 500}),
            (
                "--dispatchers",
                {"type": int, "default": 2, "help": "processes, as the Procfile worker's --concurrency 2"},
            ),
        ],
    )
    members = args.members or (500 if args.quick else 5000)
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, fake_fcm_server(Path(tmp)) as (base, sa_file, proc):
        from django.conf import settings

        settings.FCM_BASE_URL, settings.FCM_SERVICE_ACCOUNT_FILE, settings.FCM_PROJECT_ID = base, sa_file, PROJECT_ID
        import pushes.models as pm

        fake_pid = int(subprocess.check_output(["pgrep", "-n", "-f", f"fakefcm --port {base.rsplit(':', 1)[1]}"]))
        fake_cpu0 = cpu_seconds(fake_pid)
        single = run_pipeline(base, members, args.batch, dispatchers=1)
        single["fake_cpu_us_per_req"] = round((cpu_seconds(fake_pid) - fake_cpu0) / max(single["accepted"], 1) * 1e6, 1)
        rows.append(single)
        pipeline = single
        if args.dispatchers > 1:
            pipeline = run_pipeline(base, members, args.batch, dispatchers=args.dispatchers)
            rows.append(pipeline)
        tokens = list(
            pm.UserDevice.objects.filter(user__memberships__group__name=f"bench-{members}", active=True)
            .order_by("-created_at")
            .values_list("token", "platform")[: pipeline["sends"]]
        )
        provider_only = run_provider_only(base, tokens)
        rows.append(provider_only)
        rows.append(run_sdk(base, sa_file, tokens))
        rows.extend(run_ceiling(base, sa_file, fake_pid, max(len(tokens), 5000)))

    columns = ["sender", "sends", "accepted", "seconds", "sends_per_s", "commit_to_last_accept_s",
               "send_message_incl_fanout_s", "pushes_per_message", "client_cpu_us_per_send",
               "fake_cpu_us_per_req"]  # fmt: skip
    print_table(f"Fan-out: 1 message -> {members:,} members x 2 devices (coalescing window 0 s)", rows, columns)
    sdk = next(r for r in rows if r["sender"].startswith("firebase_admin"))
    ceiling = max(r["sends_per_s"] for r in rows if r["sender"].startswith("fake ceiling"))
    ratios = {
        "pipeline_1proc_vs_sdk_rate": round(single["sends_per_s"] / sdk["sends_per_s"], 2),
        "pipeline_vs_sdk_rate": round(pipeline["sends_per_s"] / sdk["sends_per_s"], 2),
        "provider_only_vs_sdk_rate": round(provider_only["sends_per_s"] / sdk["sends_per_s"], 2),
        "sdk_vs_provider_cpu_per_send": round(
            sdk["client_cpu_us_per_send"] / provider_only["client_cpu_us_per_send"], 2
        ),
        "pipeline_rate_vs_fake_ceiling": round(pipeline["sends_per_s"] / ceiling, 2),
        "sdk_rate_vs_fake_ceiling": round(sdk["sends_per_s"] / ceiling, 2),
        # What one core of the fake could serve, from its own CPU time per request (the load
        # generators above are themselves CPU-bound on this shared 2-core machine).
        "fake_h2c_ceiling_per_core_req_s": round(1e6 / rows[-1]["fake_cpu_us_per_req"]),
        "fake_pipeline_cpu_ceiling_req_s": round(1e6 / single["fake_cpu_us_per_req"]),
        "all_accepted_within_10s_of_commit": pipeline["accepted"] == pipeline["sends"]
        and pipeline["commit_to_last_accept_s"] <= 10,
    }
    print("\n" + "  ".join(f"{k}={v}" for k, v in ratios.items()))
    params = {"members": members, "devices_per_member": 2, "dispatch_batch": args.batch,
              "dispatcher_processes": args.dispatchers,
              "coalesce_window_s": 0.0, "quick": args.quick, "fcm_max_concurrent_streams":
              __import__("django.conf").conf.settings.FCM_MAX_CONCURRENT_STREAMS}  # fmt: skip
    write_result("fanout", params, rows, ratios)


if __name__ == "__main__":
    main()
