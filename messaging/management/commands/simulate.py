"""``python manage.py simulate``: steady, realistic client traffic through the public API (seed 000's client)."""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand, CommandError, CommandParser

from simulator.runner import SimConfig, Simulation
from simulator.setup import ensure_population


class Command(BaseCommand):
    help = "Simulate phones running the seed-000 client against the API, the client websocket and the fake FCM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--fake-fcm-url", default="http://127.0.0.1:9099")
        parser.add_argument("--orgs", type=int, default=2)
        parser.add_argument("--groups", type=int, default=4, help="groups per organization")
        parser.add_argument("--users", type=int, default=8, help="users (one phone each) per organization")
        parser.add_argument("--rate", type=float, default=2.0, help="messages per second, all phones together")
        parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until Ctrl-C/SIGTERM")
        parser.add_argument("--offline-prob", type=float, default=0.01, help="per phone per second")
        parser.add_argument("--background-prob", type=float, default=0.02, help="per phone per second")
        parser.add_argument("--quiet-prob", type=float, default=0.002, help="per phone per second")
        parser.add_argument("--uninstall-prob", type=float, default=0.001, help="per phone per second")
        parser.add_argument("--open-prob", type=float, default=0.3, help="chance a push is tapped")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--summary-json", default=None, help="write the final counters to this file")

    def handle(self, *args, **options) -> None:
        if min(options["orgs"], options["groups"], options["users"]) < 1 or options["rate"] < 0:
            raise CommandError("--orgs, --groups and --users must be ≥ 1 and --rate ≥ 0")
        # The only ORM use: the simulated population (organizations, groups, users, memberships, API tokens).
        users = ensure_population(options["orgs"], options["groups"], options["users"])
        config = SimConfig(
            base_url=options["base_url"],
            fake_fcm_url=options["fake_fcm_url"],
            rate=options["rate"],
            duration=options["duration"],
            offline_prob=options["offline_prob"],
            background_prob=options["background_prob"],
            quiet_prob=options["quiet_prob"],
            uninstall_prob=options["uninstall_prob"],
            open_prob=options["open_prob"],
            seed=options["seed"],
            summary_json=options["summary_json"],
        )
        self.stdout.write(
            f"[sim] {len(users)} phones in {options['orgs']} organizations × {options['groups']} groups, "
            f"{config.rate} msg/s, {'forever' if not config.duration else f'{config.duration:.0f}s'} "
            f"→ {config.base_url} (fake FCM {config.fake_fcm_url})"
        )
        self.stdout.flush()
        asyncio.run(Simulation(config, users, out=self.stdout._out).run())
