"""Config reload by SIGHUP on a running ``invsync run``: onboarding a channel (full initial sync
within its rate limit), removing one, changing a policy, refusing an invalid file, and reporting
a channel whose replacement cannot start (the old one keeps running); plus ``reload_config``
in process, on a real channel manager."""

from __future__ import annotations

import asyncio
import math
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from invsync.actors.messages import AvailabilityChanged
from invsync.adapters.base import AdapterContext
from invsync.adapters.registry import make_adapter
from invsync.core.clock import SystemClock
from invsync.core.config import Config
from invsync.daemon.channels import ChannelManager
from invsync.daemon.config import load_config
from invsync.daemon.reload import ReloadResult, apply_channels, reload_config
from invsync.engine.engine import Engine
from tests.daemon.helpers import (
    LOCATIONS,
    Api,
    Daemon,
    counted,
    free_port,
    kill_valkey,
    metric,
    poll,
    webhook_channel,
)
from tests.receiver import Receiver

ENV = {"RELOAD_FIRST_SECRET": "first-s3cret", "RELOAD_LATE_SECRET": "late-s3cret"}
#: The onboarded channel's limits: the full sync may not beat them.
LATE = {"rate_limit_per_s": 2, "burst": 1, "batch_size": 50, "buffer": 1}


@pytest.fixture
async def first() -> AsyncIterator[Receiver]:
    async with Receiver(ENV["RELOAD_FIRST_SECRET"]) as receiver:
        yield receiver


@pytest.fixture
async def late() -> AsyncIterator[Receiver]:
    async with Receiver(ENV["RELOAD_LATE_SECRET"]) as receiver:
        yield receiver


class Setup:
    """A config file the test rewrites, and the daemon running on it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "config.toml"
        self.port = free_port()
        self.daemon = Daemon(self.path, env=ENV)

    def write(self, channels: str) -> None:
        server = f'\n[server]\nhost = "127.0.0.1"\nport = {self.port}\n'
        self.path.write_text(LOCATIONS + server + channels)

    async def reload(self, channels: str, expect: str = "reloaded") -> dict[str, Any]:
        """Rewrite the channels, send SIGHUP, wait for the daemon's ``expect`` log line."""
        self.write(channels)
        after = len(self.daemon.events())
        assert self.daemon.proc is not None
        self.daemon.proc.send_signal(signal.SIGHUP)
        return await self.daemon.await_event(expect, 20, after=after)


def stock(skus: int) -> list[dict[str, Any]]:
    """``skus`` SKUs with 10..59 units at wh-east."""
    return [counted(f"c-{i}", f"S-{i:03}", "wh-east", 10 + i % 50) for i in range(skus)]


def expected(events: list[dict[str, Any]], buffer: int) -> dict[str, int]:
    return {e["sku"]: max(0, e["on_hand"] - buffer) for e in events}


def drained(late: Receiver) -> list[tuple[int, int]]:
    """What ``late`` got of the S-011 changes made while it was being removed (100 + n units)."""
    return [(n, v) for n, v in late.pushed_values().get("S-011", []) if n >= 99]


async def test_onboarding_by_sighup_syncs_every_sku_within_the_rate_limit_and_removal_stops_it(
    tmp_path: Path, first: Receiver, late: Receiver
) -> None:
    setup = Setup(tmp_path)
    first_block = webhook_channel(
        "first", first.url, "RELOAD_FIRST_SECRET", rate_limit_per_s=100, batch_size=100
    )
    setup.write(first_block)
    daemon = setup.daemon.start()
    try:
        await daemon.await_event("started")
        async with Api(setup.path) as api:
            events = stock(300)
            await api.post_events(events, wait=20)
            await poll(lambda: first.shows() == expected(events, 0), 20, "first's 300 SKUs")
            assert late.requests == []

            # Onboarding: a new block (before `first`, whose rate limit changes in the same
            # reload, so `first` is restarted meanwhile).
            faster = first_block.replace("rate_limit_per_s = 100", "rate_limit_per_s = 200")
            reloaded = await setup.reload(
                webhook_channel("late", late.url, "RELOAD_LATE_SECRET", **LATE) + faster
            )
            assert reloaded["channels"] == ["first", "late"]
            await poll(lambda: late.shows() == expected(events, 1), 30, "late's full sync")
            batches = math.ceil(len(events) / LATE["batch_size"])
            assert len(late.requests) == batches
            assert all(len(r.skus) <= LATE["batch_size"] for r in late.requests)
            # One request per token: the first `burst` at once, then one per 1/rate seconds.
            floor_s = (batches - LATE["burst"]) / LATE["rate_limit_per_s"]
            took = late.requests[-1].at - late.requests[0].at
            print(f"\nfull sync of {len(events)} SKUs in {batches} requests took {took:.2f} s")
            assert took >= floor_s - 0.05, f"{took:.2f} s beat the rate limit ({floor_s} s)"
            text = await api.metrics()
            assert metric(text, "invsync_channel_pushes_total", channel="late", outcome="ok") == 300
            assert 'invsync_channel_pending_skus{channel="late"}' in text

            # Removal while `late` is stuck on a push (it drains for up to 5 s) and changes keep
            # coming: none of them may reach it, then or later.
            late.gate.clear()
            await api.post_events(counted("c-stuck", "S-010", "wh-east", 70))
            await poll(lambda: late.requests[-1].skus == ["S-010"], 10, "late to be stuck")
            after = len(daemon.events())
            setup.write(faster)
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGHUP)
            n = 0
            while (reloaded := daemon.event("reloaded", after)) is None:
                n += 1
                await api.post_events(counted(f"c-drain-{n}", "S-011", "wh-east", 100 + n))
                await asyncio.sleep(0.1)
            assert n >= 10, "the removal did not wait for the stuck push"
            assert reloaded["channels"] == ["first"]
            assert daemon.event("channel_stopped", after) is not None
            late.gate.set()
            await poll(lambda: first.shows().get("S-011") == 100 + n, 10, "first to get S-011")
            assert drained(late) == []
            sent = len(late.requests)
            await api.post_events(counted("c-more", "S-007", "wh-east", 99), wait=10)
            await poll(lambda: first.shows().get("S-007") == 99, 10, "first to get S-007")
            await asyncio.sleep(1.0)  # time for a stray push to the removed channel
            assert len(late.requests) == sent
            assert late.shows()["S-007"] == 17 - 1
            assert drained(late) == []
        assert await daemon.astop() == 0
    finally:
        daemon.kill()
        kill_valkey(setup.path)


async def test_a_policy_change_is_pushed_and_an_invalid_config_is_refused(
    tmp_path: Path, first: Receiver
) -> None:
    setup = Setup(tmp_path)
    block = webhook_channel(
        "first", first.url, "RELOAD_FIRST_SECRET", rate_limit_per_s=100, batch_size=100
    )
    setup.write(block)
    daemon = setup.daemon.start()
    try:
        await daemon.await_event("started")
        async with Api(setup.path) as api:
            events = stock(100)
            await api.post_events(events, wait=20)
            await poll(lambda: first.shows() == expected(events, 0), 20, "100 SKUs at first")

            # A new buffer: every value changes, and the channel is told.
            buffered = block + "buffer = 3\n"
            reloaded = await setup.reload(buffered)
            assert reloaded["resynced"] == ["first"]
            await poll(lambda: first.shows() == expected(events, 3), 20, "the buffered values")
            view = await api.stock("S-000")
            assert view is not None
            assert (
                view["channels"]["first"]["pushed"] == view["channels"]["first"]["available"] == 7
            )

            # An invalid file is refused; the old config keeps running.
            refused = await setup.reload(block + "buffer = -1\n", expect="reload_refused")
            assert "channels[0].buffer" in refused["reason"]
            assert daemon.proc is not None and daemon.proc.poll() is None
            assert (await api.readyz())["ready"] is True
            await api.post_events(counted("c-later", "S-001", "wh-east", 50))
            await poll(lambda: first.shows().get("S-001") == 47, 10, "a later change (buffer 3)")

            # A replacement that cannot start (its secret is not in the environment): the
            # reload says so, naming the channel and why, and the old channel keeps pushing.
            unset = buffered.replace("RELOAD_FIRST_SECRET", "RELOAD_UNSET_SECRET")
            failed = await setup.reload(unset, expect="reload_failed")
            assert set(failed["failed"]) == {"first"}
            assert "RELOAD_UNSET_SECRET" in failed["failed"]["first"]
            assert failed["channels"] == ["first"]
            assert (await api.readyz())["checks"]["channels"]["channels"]["first"]["worker"] == (
                "running"
            )
            await api.post_events(counted("c-after", "S-002", "wh-east", 40))
            await poll(lambda: first.shows().get("S-002") == 37, 10, "the old channel to push")
        assert await daemon.astop() == 0
    finally:
        daemon.kill()
        kill_valkey(setup.path)


def _write(path: Path, channels: str) -> Config:
    path.write_text(LOCATIONS + channels)
    return load_config(path)


async def test_reload_config_names_the_channel_that_cannot_start_and_keeps_the_old_one(
    tmp_path: Path, engine: Engine, first: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RELOAD_UNSET_SECRET", raising=False)
    path = tmp_path / "config.toml"
    block = webhook_channel("first", first.url, "RELOAD_FIRST_SECRET")
    config = _write(path, block)
    installed: list[Config] = []
    async with (
        aiohttp.ClientSession() as session,
        ChannelManager(
            engine=engine,
            clock=SystemClock(),
            make_adapter=lambda ch: make_adapter(
                ch, AdapterContext(session=session, redis=engine.redis)
            ),
        ) as channels,
    ):
        assert await apply_channels(config, channels) == ReloadResult(ok=True, channels=("first",))
        running = channels.adapters["first"]

        # The channel's secret moves to a variable that is not set, and a new channel that
        # cannot start either is added: both are named, with the reason.
        broken = block.replace("RELOAD_FIRST_SECRET", "RELOAD_UNSET_SECRET")
        _write(path, broken + webhook_channel("second", first.url, "RELOAD_UNSET_SECRET"))
        result = await reload_config(config, channels, install=installed.append)
        assert not result.ok and result.refused is None
        assert result.channels == ("first",)
        assert set(result.failed) == {"first", "second"}
        for channel_id in ("first", "second"):
            assert result.failed[channel_id] == (
                f"channel '{channel_id}': secret_env: environment variable RELOAD_UNSET_SECRET "
                "is not set (or empty)"
            )
        # The new config is in force; the old channel runs on, as it was, and still pushes.
        assert [ch.secret_env for ch in installed[-1].channels] == ["RELOAD_UNSET_SECRET"] * 2
        assert channels.running()["first"].secret_env == "RELOAD_FIRST_SECRET"
        assert channels.adapters["first"] is running
        channels.offer("first", AvailabilityChanged(sku="A", available=3, version=1))
        await poll(lambda: first.shows().get("A") == 3, 10, "the old channel to push")

        # The next reload tries again (compared with what runs, not with the last file).
        monkeypatch.setenv("RELOAD_UNSET_SECRET", ENV["RELOAD_FIRST_SECRET"])
        again = await reload_config(installed[-1], channels, install=installed.append)
        assert again == ReloadResult(ok=True, channels=("first", "second"))
        assert channels.running()["first"].secret_env == "RELOAD_UNSET_SECRET"
        assert channels.adapters["first"] is not running

        # An invalid file changes nothing and says why.
        path.write_text(LOCATIONS + broken + "buffer = -1\n")
        refused = await reload_config(installed[-1], channels, install=installed.append)
        assert not refused.ok and refused.refused is not None
        assert "channels[0].buffer" in refused.refused
        assert len(installed) == 2 and sorted(channels.running()) == ["first", "second"]
