"""Counters the simulator keeps, prints as a progress line and writes as its summary."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from simulator.api import ApiResult

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def path_template(path: str) -> str:
    return _UUID.sub("{id}", path)


@dataclass
class Stats:
    sent: int = 0  # 201: a new message
    replayed: int = 0  # 200: the server recognised an outbox replay (same client id)
    queued_offline: int = 0  # sends that went to the outbox while offline
    dropped_responses: int = 0  # answers the client pretended not to receive (then replayed)
    synced: int = 0  # messages merged by after_seq syncs
    syncs: int = 0
    pushes_seen: int = 0  # fake FCM deliveries routed to a simulated device
    push_wakes: int = 0
    push_receipts: int = 0  # delivered receipts for a push
    opened: int = 0  # opened receipts (taps)
    push_receipts_without_push_id: int = 0  # the payload did not name the push
    group_receipts: int = 0
    telemetry_entries: int = 0
    telemetry_dropped: int = 0
    ws_connects: int = 0
    ws_events: int = 0
    ws_failures: int = 0
    offline_episodes: int = 0
    background_episodes: int = 0
    quiet_episodes: int = 0
    uninstalls: int = 0
    reinstalls: int = 0
    tokens_deactivated_by_server: int = 0  # the fake's random UNREGISTERED, seen as device.deactivated
    config_fetches: int = 0
    config_not_modified: int = 0
    # What the client itself can observe about the server's promises.
    client_seq_gaps: int = 0
    client_duplicates: int = 0
    idempotency_mismatches: int = 0
    requests: int = 0
    client_errors: int = 0  # 4xx
    server_errors: int = 0  # 5xx
    no_answer: int = 0  # connection refused / timeout
    by_status: Counter = field(default_factory=Counter)
    errors_by_endpoint: Counter = field(default_factory=Counter)
    server_error_samples: list[dict] = field(default_factory=list)

    def observe(self, method: str, path: str, result: ApiResult) -> None:
        """Called for every API request the simulated devices make."""
        self.requests += 1
        self.by_status[str(result.status)] += 1
        endpoint = f"{method} {path_template(path)}"
        if result.no_answer:
            self.no_answer += 1
        elif result.server_error:
            self.server_errors += 1
            self.errors_by_endpoint[f"{endpoint} {result.status}"] += 1
            if len(self.server_error_samples) < 20:
                self.server_error_samples.append({"endpoint": endpoint, "status": result.status, "body": result.body})
        elif result.status >= 400:
            self.client_errors += 1
            self.errors_by_endpoint[f"{endpoint} {result.status}"] += 1

    def progress_line(self, elapsed: float) -> str:
        return (
            f"[sim] t={elapsed:5.0f}s sent={self.sent} replayed={self.replayed} synced={self.synced} "
            f"pushes={self.pushes_seen} opened={self.opened} ws={self.ws_events} "
            f"errors={self.client_errors + self.no_answer} 5xx={self.server_errors} "
            f"offline={self.offline_episodes} uninstalled={self.uninstalls}"
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["by_status"] = dict(self.by_status)
        data["errors_by_endpoint"] = dict(self.errors_by_endpoint)
        return data
