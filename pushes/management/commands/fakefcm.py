"""`python manage.py fakefcm`: the local FCM HTTP v1 compatible server (see pushes/fakefcm/)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pushes.fakefcm.app import FakeConfig, FakeFcm, parse_error_mix
from pushes.fakefcm.server import run
from pushes.fakefcm.service_account import build_service_account, ensure_service_account, public_key_pem


class Command(BaseCommand):
    help = "Run a local FCM HTTP v1 compatible server (OAuth token endpoint, messages:send, control API)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9099)
        parser.add_argument("--project-id", default="pushwatch-demo")
        parser.add_argument(
            "--success-rate", type=float, default=1.0, help="outside the error mix; failures are INTERNAL"
        )
        parser.add_argument(
            "--error-mix",
            default="",
            help="e.g. unregistered=0.02,unavailable=0.01,quota=0.002,internal=0,invalid_argument=0,"
            "sender_id_mismatch=0,third_party_auth=0",
        )
        parser.add_argument("--retry-after", type=float, default=2.0, help="seconds sent with 503/429")
        parser.add_argument("--latency-ms", type=float, default=0.0)
        parser.add_argument("--latency-jitter-ms", type=float, default=0.0)
        parser.add_argument("--deliveries-capacity", type=int, default=50_000, help="size of the deliveries ring")
        parser.add_argument(
            "--service-account-out",
            default="",
            help="write (or reuse, when it already points here) a service-account JSON whose token_uri is this server",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            mix = parse_error_mix(opts["error_mix"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if not 0 <= opts["success_rate"] <= 1:
            raise CommandError("--success-rate must be within 0..1")
        base_url = f"http://{opts['host']}:{opts['port']}"
        if opts["service_account_out"]:
            info = ensure_service_account(opts["service_account_out"], base_url, opts["project_id"])
        else:
            info = build_service_account(base_url, opts["project_id"])  # nobody else holds the key
        logging.basicConfig(level=logging.WARNING)
        config = FakeConfig(
            project_id=opts["project_id"],
            public_key_pem=public_key_pem(info["private_key"]),
            success_rate=opts["success_rate"],
            error_mix=mix,
            retry_after=opts["retry_after"],
            latency_ms=opts["latency_ms"],
            latency_jitter_ms=opts["latency_jitter_ms"],
            deliveries_capacity=opts["deliveries_capacity"],
        )
        run(FakeFcm(config), opts["host"], opts["port"])
