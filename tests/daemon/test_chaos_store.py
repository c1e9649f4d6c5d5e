"""Chaos, with real processes: ``invsync run`` under a stream of orders while its embedded Valkey
is ``kill -9``ed, or SIGSTOPped and SIGCONTed. The daemon stays up, answers 503 promptly (never
hangs) while the store is gone, comes back by itself, and afterwards every order that got a 202
is reserved exactly once, with no oversell. Clients resend a 503'd order with the same id, as
marketplaces redeliver webhooks: a 503 may still have been recorded (a hung store that took the
write late), so the resend is the idempotency path under test too.

Each test runs for about ten seconds (slow: real processes and real outages).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.helpers import (
    LOCATIONS,
    Api,
    Daemon,
    counted,
    kill_valkey,
    metric,
    poll,
    socket_url,
    valkey_pid,
    webhook_channel,
    write_config,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.slow

ENV = {"CHAOS_SECRET": "chaos-s3cret"}
#: ``[redis] op_timeout_s`` of the daemon under test: the bound on a 503 while the store hangs.
OP_TIMEOUT_S = 1.0
#: Slack on that bound for a slow, shared machine (HTTP, scheduling): a hang would be > 60 s.
SLACK_S = 2.5
STOCK = 100_000
WORKERS = 4


@dataclass
class Load:
    """Concurrent posters of one-unit orders; a 503'd order is resent (same id) until a 202."""

    api: Api
    accepted: list[str] = field(default_factory=list)
    unavailable: list[float] = field(default_factory=list)  # seconds each 503 took
    other: list[tuple[int, Any]] = field(default_factory=list)
    slowest_s: float = 0.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def worker(self, w: int) -> None:
        i = 0
        while not self.stop.is_set():
            order_id = f"{w}-{i}"
            event = {
                "id": f"o-{order_id}",
                "type": "order.created",
                "channel": "b2b",
                "order_id": order_id,
                "lines": [{"sku": "TEE", "qty": 1, "location": "wh-east"}],
            }
            while True:  # resend until accepted, even after stop (a 503'd order is owed)
                began = time.monotonic()
                async with asyncio.timeout(30):  # a hang fails the test, it does not stall it
                    status, body = await self.api.request("POST", "/v1/events", [event])
                took = time.monotonic() - began
                self.slowest_s = max(self.slowest_s, took)
                if status == 202:
                    self.accepted.append(order_id)
                    break
                if status == 503:
                    self.unavailable.append(took)
                    await asyncio.sleep(0.05)
                    continue
                self.other.append((status, body))
                return
            i += 1
            await asyncio.sleep(0.01)

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self.worker(w)) for w in range(WORKERS)]


def _config(tmp_path: Path, url: str) -> Path:
    text = LOCATIONS.replace(
        '[redis]\ndata_dir = "data"\n',
        f'[redis]\ndata_dir = "data"\nop_timeout_s = {OP_TIMEOUT_S}\n',
    )
    assert f"op_timeout_s = {OP_TIMEOUT_S}" in text
    return write_config(tmp_path, text + webhook_channel("b2b", url, "CHAOS_SECRET"))


async def _all_reserved_once(api: Api, accepted: list[str]) -> dict[str, Any]:
    """Wait until every accepted order is reserved; then the SKU's reserved count must be
    exactly the number of accepted orders (none applied twice, none lost)."""

    async def caught_up() -> bool:
        view = await api.stock("TEE")
        assert view is not None
        reserved = view["locations"]["wh-east"]["reserved"]
        assert reserved <= len(accepted), f"{reserved} reserved for {len(accepted)} orders"
        return bool(reserved == len(accepted))

    await poll(caught_up, 60, "every accepted order to be reserved", 0.2)
    for order_id in accepted[:: max(1, len(accepted) // 50)]:  # a sample, each reserved once
        order = await api.order("b2b", order_id)
        assert order is not None and order["outcome"] == "reserved", order
    view = await api.stock("TEE")
    assert view is not None
    east: dict[str, Any] = view["locations"]["wh-east"]
    assert east["on_hand"] == STOCK and 0 <= east["reserved"] <= east["on_hand"]  # no oversell
    return east


async def _run_outage(tmp_path: Path, outage: str) -> None:
    async with Receiver(ENV["CHAOS_SECRET"]) as receiver:
        config = _config(tmp_path, receiver.url)
        daemon = Daemon(config, env=ENV).start()
        stopped: int | None = None
        try:
            await daemon.await_event("started")
            async with Api(config) as api:
                await api.post_events([counted("stock", "TEE", "wh-east", STOCK)], wait=5)
                load = Load(api)
                tasks = load.start()
                await poll(lambda: len(load.accepted) >= 20, 20, "orders before the outage")
                pid = valkey_pid(config)
                mark = len(daemon.events())
                if outage == "kill":
                    os.kill(pid, signal.SIGKILL)
                    restarted = await daemon.await_event("store_restarted", 20, after=mark)
                    assert restarted["pid"] != pid
                else:
                    os.kill(pid, signal.SIGSTOP)
                    stopped = pid
                    await daemon.await_event("store_down", 20, after=mark)
                    report = await api.readyz()  # says why it is not ready, and since when
                    assert report["ready"] is False
                    redis = report["checks"]["redis"]
                    assert redis["ok"] is False and redis["down_since"] and redis["restarts"] == 0
                    await poll(lambda: len(load.unavailable) >= 3, 20, "503s while it hangs")
                    os.kill(pid, signal.SIGCONT)
                    stopped = None
                await daemon.await_event("store_recovered", 30, after=mark)
                during = len(load.accepted)
                await poll(lambda: len(load.accepted) >= during + 20, 30, "orders after it")
                load.stop.set()
                await asyncio.gather(*tasks)

                assert load.other == []
                assert load.unavailable, "no 503 while the store was away"
                assert max(load.unavailable) < OP_TIMEOUT_S + SLACK_S, load.unavailable
                assert load.slowest_s < OP_TIMEOUT_S + SLACK_S
                east = await _all_reserved_once(api, load.accepted)
                report = await api.readyz()
                assert report["ready"] is True, report
                text = await api.metrics()
                restarts = metric(text, "invsync_store_restarts_total")
                assert restarts == (1 if outage == "kill" else 0)
                assert metric(text, "invsync_redis_up") == 1
            print(
                f"\n{outage}: {len(load.accepted)} orders accepted, {len(load.unavailable)} "
                f"503s (slowest {max(load.unavailable):.2f} s), reserved {east['reserved']}"
            )
            assert daemon.proc is not None and daemon.proc.poll() is None  # it stayed up
            assert await daemon.astop() == 0
        finally:
            if stopped is not None:
                os.kill(stopped, signal.SIGCONT)
            daemon.kill()
            kill_valkey(config)


async def test_kill_9_of_the_store_under_load_loses_and_doubles_nothing(tmp_path: Path) -> None:
    await _run_outage(tmp_path, "kill")


async def test_a_hung_store_under_load_gets_prompt_503s_and_recovers(tmp_path: Path) -> None:
    await _run_outage(tmp_path, "stop")


async def test_an_undecodable_stream_entry_becomes_a_bad_event_incident(tmp_path: Path) -> None:
    import redis.asyncio as aioredis

    async with Receiver(ENV["CHAOS_SECRET"]) as receiver:
        config = _config(tmp_path, receiver.url)
        daemon = Daemon(config, env=ENV).start()
        try:
            await daemon.await_event("started")
            client = aioredis.Redis.from_url(socket_url(config))
            try:
                await client.xadd("intake:{events}", {"e": b"{not json", "src": "http"})
            finally:
                await client.aclose()
            async with Api(config) as api:

                async def bad_events() -> list[dict[str, Any]]:
                    status, body = await api.request("GET", "/v1/exceptions?kind=bad_event")
                    assert status == 200, body
                    items: list[dict[str, Any]] = body["items"]
                    return items

                (record,) = await poll(bad_events, 20, "the bad_event incident")
                details = record["details"]
                assert details["code"] == "UNDECODABLE_ENTRY"
                assert details["payload"] == "{not json" and details["source"] == "intake:http"
                # Acknowledged, and the intake goes on.
                await api.post_events([counted("c1", "TEE", "wh-east", 3)], wait=5)
                view = await api.stock("TEE")
                assert view is not None and view["locations"]["wh-east"]["on_hand"] == 3
            assert await daemon.astop() == 0
        finally:
            daemon.kill()
            kill_valkey(config)


async def test_the_watchdog_is_withheld_while_the_store_stays_unreachable(tmp_path: Path) -> None:
    """Past ``[redis] unreachable_exit_s`` of a hung store, systemd's watchdog gets no more
    pings (systemd would restart the daemon); once the store answers, the pings resume."""
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.setblocking(False)

    received = [0]

    def pings() -> int:
        """WATCHDOG=1 pings received so far."""
        while True:
            try:
                received[0] += listener.recv(4096).count(b"WATCHDOG=1")
            except BlockingIOError:
                return received[0]

    text = LOCATIONS.replace(
        '[redis]\ndata_dir = "data"\n', '[redis]\ndata_dir = "data"\nunreachable_exit_s = 1.5\n'
    )
    config = write_config(tmp_path, text)
    env = {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}  # a ping every 0.2 s
    daemon = Daemon(config, env=env)
    daemon.env.pop("WATCHDOG_PID", None)
    daemon.start()
    stopped: int | None = None
    try:
        await daemon.await_event("started")
        await poll(lambda: pings() >= 3, 10, "watchdog pings")
        pid = stopped = valkey_pid(config)
        mark = len(daemon.events())
        os.kill(pid, signal.SIGSTOP)
        withheld = await daemon.await_event("watchdog_withheld", 20, after=mark)
        await daemon.await_event("store_unreachable_too_long", 10, after=mark)
        before = pings()
        await asyncio.sleep(1.0)  # five intervals of the watchdog
        assert pings() == before, withheld
        os.kill(pid, signal.SIGCONT)
        stopped = None
        await daemon.await_event("watchdog_resumed", 20, after=mark)
        await poll(lambda: pings() >= before + 3, 10, "watchdog pings again")
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert await daemon.astop() == 0
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        listener.close()
        daemon.kill()
        kill_valkey(config)
