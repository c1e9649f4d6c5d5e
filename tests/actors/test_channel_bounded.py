"""A channel's pending values stay bounded: past ``max_pending`` SKUs a value is not kept, a full
sync (another pass if one runs) pushes the SKU's current value instead, and every SKU still ends
at its latest value on the channel. Real Redis, a real signed-webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from invsync.actors.channel import ChannelState, ChannelWorker
from invsync.actors.messages import AvailabilityChanged
from invsync.adapters.webhook import WebhookAdapter
from invsync.core.clock import SystemClock
from invsync.core.config import Channel
from invsync.core.retry import Backoff
from tests.adapters.test_webhook import webhook_channel
from tests.receiver import SECRET, Receiver, until

MakeWorker = Callable[..., Awaitable[ChannelWorker]]


def change(sku: str, available: int, version: int) -> AvailabilityChanged:
    return AvailabilityChanged(sku=sku, available=available, version=version)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def make_actor(redis: aioredis.Redis, receiver: Receiver) -> AsyncIterator[MakeWorker]:
    """Runs channel workers on the receiver; closes them after the test."""
    runs: list[tuple[ChannelWorker, asyncio.Task[None]]] = []
    async with aiohttp.ClientSession() as session:

        async def make(channel: Channel, **kwargs: Any) -> ChannelWorker:
            worker = ChannelWorker(
                channel,
                WebhookAdapter(channel, session, SECRET),
                redis,
                SystemClock(),
                backoff=Backoff(0.01, 0.1, rng=random.Random(7)),
                **kwargs,
            )
            runs.append((worker, asyncio.create_task(worker.run())))
            return worker

        yield make
        receiver.gate.set()
        for worker, task in runs:
            worker.close()
            await task


class Store:
    """The truth a full sync reads: SKU -> (available, version), read as the sync walks."""

    def __init__(self) -> None:
        self.truth: dict[str, tuple[int, int]] = {}
        self.syncs = 0

    def set(self, sku: str, available: int) -> AvailabilityChanged:
        version = self.truth.get(sku, (0, 0))[1] + 1
        self.truth[sku] = (available, version)
        return change(sku, available, version)

    async def values(self) -> AsyncIterator[AvailabilityChanged]:
        self.syncs += 1
        for sku in sorted(self.truth):
            available, version = self.truth[sku]
            yield change(sku, available, version)
            await asyncio.sleep(0)


async def test_offers_past_the_bound_are_not_kept_and_a_full_sync_delivers_them(
    make_actor: MakeWorker, receiver: Receiver, redis: aioredis.Redis
) -> None:
    store = Store()
    channel = webhook_channel(receiver.url, batch_size=5)
    state = ChannelState(channel, SystemClock(), max_pending=10)
    actor = await make_actor(channel, current_values=store.values, state=state, lookahead_batches=2)
    receiver.gate.clear()  # the first push stays in flight: nothing leaves pending meanwhile
    for i in range(60):
        actor.receive(store.set(f"S{i:02d}", i))
    assert len(state.pending) <= 10
    assert state.overflowed and (state.sync_wanted.is_set() or state.syncing)
    peak = len(state.pending)
    receiver.gate.set()
    while actor.busy:
        peak = max(peak, len(state.pending))
        await asyncio.sleep(0.001)
    # Bounded by the cap plus the full sync's own lookahead (2 batches of 5).
    assert peak <= 10 + 10
    assert receiver.latest == store.truth
    assert store.syncs >= 1


async def test_changes_that_overflow_during_a_full_sync_get_another_pass(
    make_actor: MakeWorker, receiver: Receiver, redis: aioredis.Redis
) -> None:
    store = Store()
    channel = webhook_channel(receiver.url, batch_size=5)
    state = ChannelState(channel, SystemClock(), max_pending=8)
    actor = await make_actor(channel, current_values=store.values, state=state, lookahead_batches=1)

    async def writer() -> None:  # keeps changing SKUs the sync may already have passed
        for round_ in range(5):
            for i in range(40):
                actor.receive(store.set(f"S{i:02d}", round_ * 100 + i))
            await asyncio.sleep(0.005)

    await asyncio.gather(writer(), until(lambda: state.syncing or store.syncs > 0))
    await until(lambda: not actor.busy)
    assert receiver.latest == store.truth  # every SKU at its latest value, none older
    for sku, sent in receiver.pushed_values().items():
        versions = [v for _, v in sent]
        assert versions == sorted(versions), sku  # never an older version after a newer


async def test_requeued_values_and_known_skus_are_always_kept() -> None:
    channel = webhook_channel("http://127.0.0.1:9/push")
    state = ChannelState(channel, SystemClock(), max_pending=2)
    assert state.offer(change("A", 1, 1)) and state.offer(change("B", 1, 1))
    assert not state.offer(change("C", 1, 1))  # a third SKU: over the bound
    assert state.offer(change("A", 2, 2))  # a newer value of a pending SKU replaces it
    assert state.offer(change("D", 1, 1), requeue=True)  # failed pushes come back
    assert state.offer(change("E", 1, 1), bounded=False)  # the full sync's own values
    assert set(state.pending) == {"A", "B", "D", "E"} and state.overflowed
