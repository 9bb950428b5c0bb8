"""Push-core benchmark: where the time goes on our side of the pipeline (the database work).

  python -m bench.push_core [--quick]

One group of N members x 2 devices (quick: 1,000; full: 5,000). Measures:
1. fan-out: ``messaging.services.send_message`` incl. the on-commit set-based upsert, for the first
   message (N-1 inserts) and two more within the window (N-1 merges each: coalescing);
2. the dispatcher per batch of 500 pushes against ``manage.py fakefcm`` on loopback: claim
   (FOR UPDATE SKIP LOCKED + lease), load devices, provider send, record (bulk logs + one UPDATE),
   so the database share of a batch is visible next to the network share.
``bench/fanout.py`` (providers) covers commit -> last accepted send against the official SDK.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import Progress, parse_args, print_table, setup_django, summary_ms, write_result

PROJECT_ID = "pushwatch-bench-core"


def build_group(members: int):
    from django.utils import timezone

    from messaging.models import Group, GroupMember, Organization, User
    from pushes.models import UserDevice

    tag = uuid.uuid4().hex[:8]
    org = Organization.objects.create(slug=f"bench-core-{tag}", name="bench core")
    group = Group.objects.create(organization=org, name=f"bench-core-{tag}")
    users = User.objects.bulk_create(
        [User(username=f"bc-{tag}-{i}", organization=org) for i in range(members)], batch_size=2000
    )
    GroupMember.objects.bulk_create([GroupMember(group=group, user=u) for u in users], batch_size=2000)
    now = timezone.now()
    progress = Progress("devices", members * 2)
    rows = []
    for i, u in enumerate(users):
        for platform in ("android", "ios"):
            rows.append(UserDevice(user=u, platform=platform, token=f"bench{uuid.uuid4().hex}{i}", last_seen_at=now))
        if len(rows) >= 2000:
            UserDevice.objects.bulk_create(rows)
            progress.advance(len(rows))
            rows = []
    if rows:
        UserDevice.objects.bulk_create(rows)
        progress.advance(len(rows))
    return group, users[0]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    setup_django()
    from django.conf import settings
    from django.core.management import call_command

    from messaging.services import send_message
    from pushes import services
    from pushes.fakefcm.service_account import ensure_service_account
    from pushes.models import PushNotification
    from pushes.providers import reset_provider
    from tests.processes import free_port, running

    call_command("migrate", verbosity=0)
    members = 1000 if args.quick else 5000
    batch = 500
    settings.PUSH_COALESCE_WINDOW_SECONDS = 30.0  # keep the three messages in one window

    group, sender = build_group(members)
    fanout_s = []
    for i in range(3):
        t0 = time.perf_counter()
        send_message(sender=sender, group_id=group.id, client_generated_id=uuid.uuid4(), body=f"bench {i}")
        fanout_s.append(time.perf_counter() - t0)
    pushes = PushNotification.objects.filter(group=group)
    n_pushes = pushes.count()
    counts = set(pushes.values_list("message_count", flat=True))
    pushes.update(not_before=pushes.first().created_at)  # the window is over: due now

    tmp = Path(tempfile.mkdtemp(prefix="bench-core-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sa_file = str(tmp / "sa.json")
    ensure_service_account(sa_file, base, PROJECT_ID)
    cmd = [sys.executable, "manage.py", "fakefcm", "--port", str(port), "--project-id", PROJECT_ID,
           "--service-account-out", sa_file]  # fmt: skip
    import os

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings")
    summaries, claim_s = [], []
    with running(cmd, env, ready_url=f"{base}/healthz"):
        settings.FCM_BASE_URL, settings.FCM_SERVICE_ACCOUNT_FILE, settings.FCM_PROJECT_ID = base, sa_file, PROJECT_ID
        reset_provider()
        progress = Progress("pushes dispatched", n_pushes)
        t_all = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            claimed = services.claim_due_pushes(batch)
            claim_s.append(time.perf_counter() - t0)
            if not claimed:
                break
            summaries.append(services._send_and_record(claimed))
            progress.advance(len(claimed))
        total_s = time.perf_counter() - t_all
        reset_provider()

    sends = sum(s["device_sends"] for s in summaries)
    accepted = sum(s["device_accepted"] for s in summaries)
    fan = [
        {"stage": "send_message + fan-out (insert)", "recipients": n_pushes, **summary_ms(fanout_s[:1])},
        {"stage": "send_message + fan-out (merge x2)", "recipients": n_pushes, **summary_ms(fanout_s[1:])},
    ]
    per_batch = [
        {"stage": "claim (SKIP LOCKED + lease)", **summary_ms(claim_s[:-1])},
        {"stage": "load devices", **summary_ms([s["load_ms"] / 1000 for s in summaries])},
        {"stage": "provider send (network)", **summary_ms([s["send_ms"] / 1000 for s in summaries])},
        {"stage": "record (logs + 1 UPDATE)", **summary_ms([s["record_ms"] / 1000 for s in summaries])},
    ]
    db_ms = sum(s["load_ms"] + s["record_ms"] for s in summaries) + sum(claim_s) * 1000
    send_ms = sum(s["send_ms"] for s in summaries)
    overall = [
        {
            "pushes": n_pushes,
            "message_count": ",".join(map(str, sorted(counts))),
            "device_sends": sends,
            "accepted": accepted,
            "seconds": round(total_s, 3),
            "sends_per_s": round(sends / total_s, 1) if total_s else None,
            "db_share": round(db_ms / (db_ms + send_ms), 3) if send_ms else None,
        }
    ]
    print_table(f"fan-out, group of {members} members x 2 devices", fan)
    print_table(f"dispatcher, per batch of {batch} pushes", per_batch)
    print_table("dispatch overall", overall)
    write_result(
        "push_core",
        {"members": members, "devices_per_member": 2, "batch": batch, "quick": args.quick},
        {"fanout": fan, "per_batch": per_batch, "overall": overall},
        {"db_share_of_dispatch": overall[0]["db_share"], "pushes_per_message": n_pushes / 3},
    )


if __name__ == "__main__":
    main()
