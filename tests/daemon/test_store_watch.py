"""The store watch on a real embedded Valkey: a killed server is started again (data kept), a
hung one (SIGSTOP) is reported down without a restart and without stalling the watch, the
watchdog is withheld past the configured limit; the intake answers a hung store within its
operation timeout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from invsync.core.clock import ManualClock
from invsync.core.errors import StoreUnavailable
from invsync.core.events import decode_events
from invsync.daemon import systemd
from invsync.daemon.intake import Intake
from invsync.daemon.store_watch import StoreWatch
from invsync.engine.connection import Store
from invsync.metrics import definitions as m


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(None, tmp_path / "data", connect_timeout=1.0, op_timeout=1.0) as store:
        try:
            yield store
        finally:
            pid = store.embedded.pid if store.embedded else None
            if pid is not None:  # never leave a stopped server behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


async def test_a_killed_embedded_server_is_started_again_with_its_data(store: Store) -> None:
    assert store.embedded is not None
    clock = ManualClock()
    watch = StoreWatch(store, clock=clock, unreachable_exit_s=lambda: 120.0, ping_timeout_s=0.5)
    await store.redis.set("kept", "yes")
    assert await watch.check() and watch.up and watch.report() == {"ok": True, "restarts": 0}
    before = m.STORE_RESTARTS._value.get()
    old_pid = store.embedded.pid
    await store.embedded.kill()

    assert await watch.check()  # the ping fails, the server is started again, it answers
    assert watch.restarts == 1 and m.STORE_RESTARTS._value.get() == before + 1
    assert store.embedded.pid not in (None, old_pid)
    assert await store.redis.get("kept") == b"yes"  # the AOF was loaded
    assert watch.up and m.REDIS_UP._value.get() == 1
    assert watch.report()["restarts"] == 1 and "down_since" not in watch.report()


async def test_a_hung_server_is_down_not_restarted_and_the_watchdog_is_withheld_past_the_limit(
    store: Store,
) -> None:
    assert store.embedded is not None and store.embedded.pid is not None
    clock = ManualClock()
    watch = StoreWatch(store, clock=clock, unreachable_exit_s=lambda: 120.0, ping_timeout_s=0.3)
    pid = store.embedded.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        assert not await watch.check()
        assert time.monotonic() - began < 5  # the hung ping is given up, the watch goes on
        assert not watch.up and watch.healthy()
        report = watch.report()
        assert report["ok"] is False and report["restarts"] == 0
        assert report["down_since"].startswith("2027-") and "PING" in report["error"]
        assert store.embedded.pid == pid  # a hung server is not replaced
        assert m.REDIS_UP._value.get() == 0
        clock.advance(119.0)
        assert not await watch.check() and watch.healthy()
        clock.advance(1.0)
        assert not await watch.check() and not watch.healthy()
        assert watch.report()["down_s"] == 120.0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert await watch.check() and watch.up and watch.healthy()
    assert watch.restarts == 0


async def test_append_answers_a_hung_store_within_the_operation_timeout(store: Store) -> None:
    assert store.embedded is not None and store.embedded.pid is not None
    intake = Intake(store.redis, consumer="test", op_timeout=1.0)
    (event,) = decode_events(
        json.dumps(
            [{"id": "c1", "type": "stock.counted", "sku": "A", "location": "w", "on_hand": 1}]
        ).encode()
    )
    pid = store.embedded.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        # Several at once: callers beyond a hung connection must not queue past the timeout.
        results = await asyncio.gather(
            *[intake.append([event], source="test") for _ in range(5)], return_exceptions=True
        )
        took = time.monotonic() - began
    finally:
        os.kill(pid, signal.SIGCONT)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert "within 1 s" in str(results[0])
    assert took < 3.0  # 1 s and scheduling slack; redis-py's own retries would take > 3 s
    assert len(await intake.append([event], source="test")) == 1  # and it works again


async def test_the_watchdog_is_not_fed_while_unhealthy_and_again_once_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # a ping every second
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    def pings() -> int:
        got = 0
        while True:
            try:
                listener.recv(4096)
                got += 1
            except BlockingIOError:
                return got

    async def settle() -> None:
        for _ in range(50):
            await asyncio.sleep(0)

    healthy = True
    clock = ManualClock()
    task = asyncio.create_task(systemd.watchdog(clock, healthy=lambda: healthy))
    try:
        await settle()
        assert pings() == 1
        healthy = False
        for _ in range(3):
            clock.advance(1.0)
            await settle()
        assert pings() == 0  # withheld: systemd's WatchdogSec runs out and it restarts us
        healthy = True
        clock.advance(1.0)
        await settle()
        assert pings() == 1
    finally:
        task.cancel()
        listener.close()
