"""The channel manager: supervised workers (a crash restarts the worker on the clock, with a
full sync, and loses no pending value), refused SKUs become incidents, stop and replace."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from structlog.testing import capture_logs

from invsync.actors.messages import AvailabilityChanged
from invsync.adapters.base import BaseAdapter, ChannelAdapter, PushResult, Update
from invsync.core.clock import ManualClock
from invsync.core.config import Channel
from invsync.core.retry import Backoff
from invsync.daemon.channels import ChannelManager, ChannelNotStarted
from invsync.daemon.config import load_config
from invsync.daemon.incidents import ExceptionQueue
from invsync.engine import keys
from invsync.engine.availability import ChannelPolicy
from invsync.engine.engine import Engine
from invsync.metrics.definitions import REGISTRY
from tests.daemon.helpers import poll
from tests.receiver import until

SHOP = Channel(id="shop", kind="webhook", url="http://127.0.0.1:9/", batch_size=2)
EAST = ChannelPolicy(locations=("wh-east",))


class Shelf(BaseAdapter):
    """A channel that shows what it was pushed; ``gate`` holds pushes, ``refuse`` SKUs it
    refuses for good."""

    def __init__(self, channel: Channel = SHOP) -> None:
        self.channel = channel
        self.shows: dict[str, int] = {}
        self.pushes: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.refuse: set[str] = set()
        self.closed = False

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        self.pushes.append([u.sku for u in updates])
        await self.gate.wait()
        results = []
        for u in updates:
            if u.sku in self.refuse:
                results.append(PushResult(sku=u.sku, outcome="permanent", error="no such listing"))
            else:
                self.shows[u.sku] = u.available
                results.append(PushResult(sku=u.sku, outcome="ok"))
        return results

    async def aclose(self) -> None:
        self.closed = True


def change(sku: str, available: int, version: int = 1) -> AvailabilityChanged:
    return AvailabilityChanged(sku=sku, available=available, version=version)


def manager_for(
    engine: Engine,
    clock: ManualClock,
    made: dict[str, Shelf],
    **settings: Any,
) -> ChannelManager:
    def make_adapter(channel: Channel) -> ChannelAdapter:
        shelf = made[channel.id] = Shelf(channel)
        return shelf

    settings.setdefault("restart_backoff", Backoff(1.0, 8.0, jitter="none"))
    return ChannelManager(engine=engine, clock=clock, make_adapter=make_adapter, **settings)


async def test_a_crashed_worker_restarts_on_the_clock_with_a_full_sync_and_loses_no_value(
    engine: Engine, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    await engine.count("c1", "S1", "wh-east", 5)
    made: dict[str, Shelf] = {}
    oom = {"left": 0}
    real_hset = redis.hset

    async def hset(*args: Any, **kwargs: Any) -> Any:
        if oom["left"]:
            oom["left"] -= 1
            raise ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
        return await real_hset(*args, **kwargs)

    monkeypatch.setattr(redis, "hset", hset)  # the client the engine (and so the workers) use
    with capture_logs() as logs:
        async with manager_for(engine, clock, made) as channels:
            channels.start(SHOP, EAST)
            shelf = made["shop"]
            await until(lambda: shelf.shows == {"S1": 5})  # the start's full sync

            # A and B go out as one batch (held at the channel); C, D, E wait behind them.
            shelf.gate.clear()
            for sku in "AB":
                channels.offer("shop", change(sku, ord(sku)))
            await until(lambda: shelf.pushes[-1] == ["A", "B"])
            for sku in "CDE":
                channels.offer("shop", change(sku, ord(sku)))
            restarted = REGISTRY.get_sample_value(
                "invsync_channel_restarts_total", {"channel": "shop"}
            )
            oom["left"] = 1  # recording that A and B were sent fails: the worker crashes
            shelf.gate.set()
            await until(lambda: channels.status()["shop"]["worker"] == "restarting")
            assert channels.status()["shop"]["restarts"] == 1
            assert (
                REGISTRY.get_sample_value("invsync_channel_restarts_total", {"channel": "shop"})
                == (restarted or 0) + 1
            )
            assert channels.workers() == 0

            # Meanwhile: a value offered (kept) and a change nobody offers (the sync finds it).
            channels.offer("shop", change("F", 70))
            await engine.count("c2", "S2", "wh-east", 8)
            pushes = len(shelf.pushes)
            await until(lambda: clock.sleepers >= 1)
            assert clock.next_deadline == pytest.approx(1.0)  # restart backoff, on the clock
            clock.advance(0.9)
            await asyncio.sleep(0.05)
            assert len(shelf.pushes) == pushes and channels.workers() == 0
            clock.advance(0.1)

            wanted = {"S1": 5, "S2": 8, **{sku: ord(sku) for sku in "ABCDE"}, "F": 70}
            await until(lambda: shelf.shows == wanted)
            assert channels.status()["shop"]["worker"] == "running"
            for sku, available in wanted.items():
                parsed = keys.parse_pushed(await redis.hget(keys.pushed("shop"), sku))
                assert parsed is not None and parsed[0] == available, sku
    crashed = [e for e in logs if e["event"] == "channel_worker_crashed"]
    assert len(crashed) == 1
    assert crashed[0]["channel"] == "shop" and "OOM" in crashed[0]["error"]
    assert crashed[0]["requeued"] == 2 and crashed[0]["restart_in_s"] == 1.0
    assert [e["event"] for e in logs].count("channel_worker_restarted") == 1


async def test_crash_restarts_back_off_and_a_stop_meanwhile_still_drains(
    engine: Engine, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    made: dict[str, Shelf] = {}
    failing = {"on": True}
    real_hset = redis.hset

    async def hset(*args: Any, **kwargs: Any) -> Any:
        if failing["on"]:
            raise ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
        return await real_hset(*args, **kwargs)

    monkeypatch.setattr(redis, "hset", hset)
    async with manager_for(engine, clock, made) as channels:
        channels.start(SHOP, EAST)
        channels.offer("shop", change("A", 1))
        # Each restart waits twice as long: 1, 2, 4 s (jitter off), all on the clock.
        for restarts, wait in ((1, 1.0), (2, 2.0), (3, 4.0)):
            await until(lambda r=restarts: channels.status()["shop"]["restarts"] == r)
            await until(lambda: clock.sleepers >= 1)
            assert clock.next_deadline == pytest.approx(clock.now() + wait)
            if restarts < 3:
                clock.advance(wait)
        # Stopped while waiting to restart: a last worker drains what is pending.
        failing["on"] = False
        await channels.stop("shop")
        assert made["shop"].shows == {"A": 1}
        assert made["shop"].closed
        assert "shop" not in channels.adapters


async def test_a_refused_sku_becomes_a_push_refused_incident(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[[locations]]\nid = "wh-east"\npriority = 1\n\n'
        '[[channels]]\nid = "shop"\nkind = "webhook"\nurl = "http://127.0.0.1:9/"\n'
        'secret_env = "SHOP_SECRET"\n'
    )
    config = load_config(path)
    queue = ExceptionQueue(engine, lambda: config)
    made: dict[str, Shelf] = {}
    async with manager_for(
        engine, ManualClock(), made, on_refused=queue.raise_push_refused
    ) as channels:
        channels.start(SHOP, EAST)
        made["shop"].refuse.add("GONE")
        channels.offer("shop", change("GONE", 4))
        channels.offer("shop", change("KEPT", 6))
        await until(lambda: made["shop"].shows == {"KEPT": 6})
        records = await poll(lambda: queue.query(kind="push_refused"), 5, "the incident")
    (record,) = records
    assert (record.channel, record.sku, record.state) == ("shop", "GONE", "open")
    assert record.details["available"] == 4 and "no such listing" in record.details["reason"]


async def test_a_replacement_that_cannot_start_leaves_the_running_channel_alone(
    engine: Engine,
) -> None:
    clock = ManualClock()
    made: dict[str, Shelf] = {}

    def make_adapter(channel: Channel) -> ChannelAdapter:
        if channel.secret_env == "UNSET_SECRET":
            raise ValueError("channel 'shop': secret_env: environment variable UNSET_SECRET ...")
        shelf = made[channel.id] = Shelf(channel)
        return shelf

    async with ChannelManager(engine=engine, clock=clock, make_adapter=make_adapter) as channels:
        channels.start(SHOP, EAST)
        old = made["shop"]
        with pytest.raises(ChannelNotStarted) as refused:
            await channels.replace(_with(SHOP, secret_env="UNSET_SECRET"), EAST)
        assert refused.value.channel == "shop" and "UNSET_SECRET" in refused.value.reason
        assert channels.running() == {"shop": SHOP} and channels.adapters["shop"] is old
        channels.offer("shop", change("A", 3))
        await until(lambda: old.shows == {"A": 3})  # still pushing, as it was
        assert not old.closed


async def test_stopping_drops_later_values_and_forgets_the_channel(engine: Engine) -> None:
    made: dict[str, Shelf] = {}
    async with manager_for(engine, ManualClock(), made) as channels:
        channels.start(SHOP, EAST)
        shelf = made["shop"]
        shelf.gate.clear()
        channels.offer("shop", change("A", 1))
        await until(lambda: shelf.pushes == [["A"]])
        stopping = asyncio.create_task(channels.stop("shop"))
        await until(lambda: "shop" not in channels.running())
        assert "shop" not in channels.topology.policies
        channels.offer("shop", change("B", 2))  # too late: the channel is going away
        shelf.gate.set()
        await stopping
        assert shelf.shows == {"A": 1} and shelf.closed
        assert channels.status() == {} and channels.adapters == {}


def _with(channel: Channel, **changes: Any) -> Channel:
    return msgspec.structs.replace(channel, **changes)
