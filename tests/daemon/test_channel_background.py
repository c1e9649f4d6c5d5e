"""The channel manager runs an adapter's background work (``RunsInBackground``: eBay's order
poll) beside the channel's worker: restarted after a backoff on the clock when it raises,
never taking the worker or the manager down, cancelled when the channel stops."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from structlog.testing import capture_logs

from invsync.adapters.base import BaseAdapter, ChannelAdapter, PushResult, RunsInBackground, Update
from invsync.core.clock import ManualClock
from invsync.core.config import Channel
from invsync.core.retry import Backoff
from invsync.daemon.channels import ChannelManager
from invsync.engine.availability import ChannelPolicy
from invsync.engine.engine import Engine
from tests.receiver import until

POLLED = Channel(id="polled", kind="webhook", url="http://127.0.0.1:9/")
EAST = ChannelPolicy(locations=("wh-east",))


class Polling(BaseAdapter):
    """Pushes succeed; ``run`` raises ``fail`` times, then works until cancelled (or returns at
    once with ``done``)."""

    def __init__(self, channel: Channel, *, fail: int = 0, done: bool = False) -> None:
        self.channel = channel
        self.fail = fail
        self.done = done
        self.runs = 0
        self.cancelled = 0
        self.pushed: list[str] = []

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        self.pushed.extend(u.sku for u in updates)
        return [PushResult(sku=u.sku, outcome="ok") for u in updates]

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.fail:
            raise RuntimeError(f"poll broke ({self.runs})")
        if self.done:
            return
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def manager(engine: Engine, clock: ManualClock, adapter: ChannelAdapter) -> ChannelManager:
    return ChannelManager(
        engine=engine,
        clock=clock,
        make_adapter=lambda channel: adapter,
        restart_backoff=Backoff(1.0, 8.0, jitter="none"),
    )


async def test_a_crashing_background_task_restarts_on_the_clock_and_spares_the_worker(
    engine: Engine,
) -> None:
    clock = ManualClock()
    adapter = Polling(POLLED, fail=2)
    assert isinstance(adapter, RunsInBackground)
    await engine.count("c1", "S1", "wh-east", 5)
    with capture_logs() as logs:
        async with manager(engine, clock, adapter) as channels:
            channels.start(POLLED, EAST)
            await until(lambda: adapter.runs == 1 and clock.sleepers == 1)
            crashed = [e for e in logs if e["event"] == "channel_background_crashed"]
            assert crashed[0]["channel"] == "polled"
            assert "poll broke (1)" in crashed[0]["error"]
            assert crashed[0]["restart_in_s"] == 1.0

            await until(lambda: adapter.pushed == ["S1"])  # the worker runs meanwhile
            assert channels.status()["polled"]["worker"] == "running"

            clock.advance(1.0)
            await until(lambda: adapter.runs == 2 and clock.sleepers == 1)
            assert [e["restart_in_s"] for e in logs
                    if e["event"] == "channel_background_crashed"] == [1.0, 2.0]
            clock.advance(2.0)
            await until(lambda: adapter.runs == 3)
            await asyncio.sleep(0.05)
            assert adapter.runs == 3  # it works now: no more restarts

            await channels.stop("polled")
            assert adapter.cancelled == 1  # stopping the channel cancels its background work


async def test_background_work_that_returns_is_not_restarted(engine: Engine) -> None:
    clock = ManualClock()
    adapter = Polling(POLLED, done=True)
    async with manager(engine, clock, adapter) as channels:
        channels.start(POLLED, EAST)
        await until(lambda: adapter.runs == 1)
        clock.advance(60)
        await asyncio.sleep(0.05)
        assert adapter.runs == 1


async def test_leaving_the_manager_cancels_background_work(engine: Engine) -> None:
    clock = ManualClock()
    adapter = Polling(POLLED)
    async with manager(engine, clock, adapter) as channels:
        channels.start(POLLED, EAST)
        await until(lambda: adapter.runs == 1)
    assert adapter.cancelled == 1
