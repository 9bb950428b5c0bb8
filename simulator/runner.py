"""The simulation: wait for the server, install every simulated phone, then run the traffic, chaos, fake-FCM
routing, telemetry and progress loops until the duration ends or SIGINT/SIGTERM arrives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from simulator.api import ApiClient, FakeFcmControl
from simulator.device import SimDevice
from simulator.setup import SimUser
from simulator.stats import Stats

WORDS = ["ok", "sure", "on my way", "lunch?", "deploy is green", "ship it", "see you soon", "thanks", "call me later"]


@dataclass
class SimConfig:
    base_url: str = "http://127.0.0.1:8000"
    fake_fcm_url: str = "http://127.0.0.1:9099"
    rate: float = 2.0  # messages per second, all devices together
    duration: float = 0.0  # seconds; 0 = until stopped
    offline_prob: float = 0.01  # per device per second
    background_prob: float = 0.02
    quiet_prob: float = 0.002
    uninstall_prob: float = 0.001
    open_prob: float = 0.3
    drop_response_prob: float = 0.03
    telemetry_interval: float = 10.0
    config_interval: float = 30.0
    progress_interval: float = 5.0
    seed: int | None = None
    summary_json: str | None = None


class Simulation:
    def __init__(self, config: SimConfig, users: list[SimUser], out: TextIO = sys.stdout) -> None:
        self.config = config
        self.users = users
        self.out = out
        self.rng = random.Random(config.seed)
        self.stats = Stats()
        self.stop = asyncio.Event()
        self.devices: list[SimDevice] = []
        self.by_token: dict[str, SimDevice] = {}
        self.started = time.monotonic()
        self.fcm_cursor = 0
        self.fcm_reachable = True

    # --- entry point ---------------------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0), limits=limits) as http:
            self.http = http
            self.fcm = FakeFcmControl(http, self.config.fake_fcm_url)
            await self.wait_for_server()
            if not self.stop.is_set():
                await self.install_devices()
            self.started = time.monotonic()
            loops = [self.traffic_loop, self.chaos_loop, self.fcm_loop, self.telemetry_loop, self.config_loop,
                     self.progress_loop, self.outbox_retry_loop]  # fmt: skip
            tasks = [asyncio.create_task(self.guard(fn)) for fn in loops]
            if self.config.duration > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.config.duration)
            else:
                await self.stop.wait()
            self.stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.shutdown()
        summary = self.summary()
        self.print_summary(summary)
        if self.config.summary_json:
            Path(self.config.summary_json).write_text(json.dumps(summary, indent=2, default=str))
        return summary

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    async def guard(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run one loop; a bug in a loop is reported and the loop restarted, never the whole run lost."""
        while not self.stop.is_set():
            try:
                await fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.say(f"[sim] {fn.__name__} failed: {type(exc).__name__}: {exc}; restarting it")
                await asyncio.sleep(1)

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; False when the simulation is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return not self.stop.is_set()

    # --- start-up --------------------------------------------------------------------------------------------
    async def wait_for_server(self) -> None:
        probe = ApiClient(self.http, self.config.base_url, "")
        delay = 0.5
        while not self.stop.is_set():
            result = await probe.healthz()
            if result.ok:
                return
            self.say(f"[sim] waiting for {self.config.base_url}/healthz ({result.status or result.error[:60]})")
            await self.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def install_devices(self) -> None:
        ws_base = self.config.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        for user in self.users:
            api = ApiClient(self.http, self.config.base_url, user.api_key, observer=self.stats.observe)
            device = SimDevice(user, api, self.stats, self.rng, ws_base, self.config.open_prob,
                               self.config.drop_response_prob)  # fmt: skip
            device.on_device_deactivated = self.device_deactivated
            self.devices.append(device)
        # A fresh install: old tokens of these users (an earlier run) are logged out first.
        await asyncio.gather(*(d.api.logout_devices() for d in self.devices))
        semaphore = asyncio.Semaphore(8)

        async def install(device: SimDevice) -> None:
            async with semaphore:
                if await device.install(self.stop):
                    self.by_token[device.fcm_token] = device

        await asyncio.gather(*(install(d) for d in self.devices))
        self.say(f"[sim] {len(self.by_token)}/{len(self.devices)} devices installed")

    # --- loops --------------------------------------------------------------------------------------------------
    async def traffic_loop(self) -> None:
        """Messages at ``rate`` per second (Poisson arrivals) from random foreground or offline devices."""
        if self.config.rate <= 0:
            await self.stop.wait()
            return
        while await self.sleep(self.rng.expovariate(self.config.rate)):
            senders = [d for d in self.devices if d.installed and not d.quiet and d.state != d.BACKGROUND]
            if not senders:
                continue
            device = self.rng.choice(senders)
            group_id = self.rng.choice(list(device.groups))
            body = " ".join(self.rng.choices(WORDS, k=self.rng.randint(1, 8)))
            device.spawn(device.send(group_id, body))

    async def chaos_loop(self) -> None:
        """Once a second each phone may background, lose its network, go quiet or be uninstalled."""
        cfg = self.config
        while await self.sleep(1.0):
            for device in self.devices:
                if not device.installed or device.quiet:
                    continue
                roll = self.rng.random()
                if roll < cfg.uninstall_prob:
                    await self.uninstall(device)
                elif roll < cfg.uninstall_prob + cfg.quiet_prob:
                    device.quiet = True
                    self.stats.quiet_episodes += 1
                    self.later(self.rng.uniform(20, 60), self.unquiet(device))
                elif roll < cfg.uninstall_prob + cfg.quiet_prob + cfg.offline_prob:
                    if device.state != device.OFFLINE:
                        await device.go_offline()
                        self.later(self.rng.uniform(3, 15), device.resume())
                elif (
                    roll < cfg.uninstall_prob + cfg.quiet_prob + cfg.offline_prob + cfg.background_prob
                    and device.state == device.FOREGROUND
                ):
                    await device.go_background()
                    self.later(self.rng.uniform(5, 30), device.resume())

    def later(self, delay: float, coro: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            if await self.sleep(delay):
                await coro
            else:
                coro.close()

        task = asyncio.get_running_loop().create_task(run())
        self._later = getattr(self, "_later", set())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def unquiet(self, device: SimDevice) -> None:
        device.quiet = False
        if device.installed and device.state != device.FOREGROUND:
            await device.resume()

    async def uninstall(self, device: SimDevice) -> None:
        token = await device.uninstall()
        self.by_token.pop(token, None)
        await self.fcm.unregister([token])  # the fake answers UNREGISTERED for it from now on
        self.later(self.rng.uniform(20, 60), self.reinstall(device))

    def device_deactivated(self, device_id: str, reason: str) -> None:
        """The server deactivated one of our tokens (the fake answered UNREGISTERED: in its model the app was
        uninstalled). Mirror that: the phone is gone, and comes back later with a new token."""
        if reason == "logout":
            return
        for device in self.devices:
            if device.installed and device.device_id == device_id:
                self.stats.tokens_deactivated_by_server += 1
                self.by_token.pop(device.fcm_token, None)
                device.installed = False  # stop at once; the socket this arrived on is closed by uninstall()
                self.later(0.0, self._forget(device))
                return

    async def _forget(self, device: SimDevice) -> None:
        await device.uninstall(count=False)
        self.later(self.rng.uniform(5, 20), self.reinstall(device))

    async def reinstall(self, device: SimDevice) -> None:
        await device.reinstall(self.stop)
        if device.installed:
            self.by_token[device.fcm_token] = device

    async def fcm_loop(self) -> None:
        """Poll the fake FCM's accepted deliveries and hand each to the phone whose token it was sent to."""
        first = True
        while await self.sleep(0.1 if not first else 0):
            result = await self.fcm.deliveries(self.fcm_cursor, limit=500)
            if not result.ok or not isinstance(result.body, dict):
                if self.fcm_reachable:
                    self.say(f"[sim] fake FCM not answering at {self.config.fake_fcm_url} ({result.status})")
                self.fcm_reachable = False
                await self.sleep(2.0)
                continue
            self.fcm_reachable = True
            first = False
            for delivery in result.body.get("deliveries", []):
                message = delivery.get("message") or {}
                token = delivery.get("token") or message.get("token")
                device = self.by_token.get(token)
                if device is not None:
                    device.deliver(message)
            self.fcm_cursor = int(result.body.get("next") or self.fcm_cursor)

    async def telemetry_loop(self) -> None:
        while await self.sleep(self.config.telemetry_interval):
            await asyncio.gather(*(d.flush_telemetry() for d in self.devices if d.can_act))

    async def config_loop(self) -> None:
        while await self.sleep(self.config.config_interval):
            await asyncio.gather(*(d.refresh_config() for d in self.devices if d.can_act))

    async def outbox_retry_loop(self) -> None:
        """Items left in an outbox (a 5xx, a dropped answer) are replayed with the same id a little later."""
        while await self.sleep(2.0):
            for device in self.devices:
                if device.can_act and device.outbox and not device.draining:
                    device.spawn(device.drain_outbox())

    async def progress_loop(self) -> None:
        tty = self.out.isatty() if hasattr(self.out, "isatty") else False
        interval = 1.0 if tty else self.config.progress_interval
        while await self.sleep(interval):
            installed = sum(d.installed for d in self.devices)
            line = f"{self.stats.progress_line(time.monotonic() - self.started)} phones={installed}/{len(self.devices)}"
            if tty:
                print("\r" + line, end="", file=self.out, flush=True)
            else:
                self.say(line)

    # --- shutdown ---------------------------------------------------------------------------------------------
    async def shutdown(self) -> None:
        for task in list(getattr(self, "_later", ())):
            task.cancel()
        # Let in-flight sends and receipts finish briefly, then one last telemetry flush.
        pending = [t for d in self.devices for t in d.tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(d.flush_telemetry() for d in self.devices)), 3)
        await asyncio.gather(*(d.close() for d in self.devices))

    def summary(self) -> dict[str, Any]:
        data = self.stats.as_dict()
        data["elapsed_seconds"] = round(time.monotonic() - self.started, 1)
        data["devices"] = len(self.devices)
        data["devices_installed"] = sum(d.installed for d in self.devices)
        data["outbox_left"] = sum(len(d.outbox) for d in self.devices)
        return data

    def print_summary(self, s: dict[str, Any]) -> None:
        if self.out.isatty() if hasattr(self.out, "isatty") else False:
            print(file=self.out)
        self.say(
            f"[sim] stopped after {s['elapsed_seconds']}s: {s['requests']} requests, sent={s['sent']} "
            f"replayed={s['replayed']} synced={s['synced']} pushes={s['pushes_seen']} "
            f"push_receipts={s['push_receipts']} opened={s['opened']} telemetry={s['telemetry_entries']} "
            f"4xx={s['client_errors']} 5xx={s['server_errors']} no_answer={s['no_answer']} "
            f"gaps={s['client_seq_gaps']} duplicates={s['client_duplicates']} outbox_left={s['outbox_left']}"
        )
        if s["errors_by_endpoint"]:
            self.say("[sim] errors by endpoint: " + json.dumps(s["errors_by_endpoint"]))
