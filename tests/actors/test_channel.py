"""The channel worker against real Redis and a real signed-webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import aiohttp
import pytest
import redis.asyncio as aioredis
from prometheus_client import generate_latest
from redis.exceptions import ResponseError

from invsync.actors.breaker import BreakerState
from invsync.actors.channel import ChannelState, ChannelWorker, WorkerCrashed, pushed_key
from invsync.actors.messages import AvailabilityChanged, FullSync
from invsync.adapters.webhook import WebhookAdapter
from invsync.core.clock import Clock, ManualClock, SystemClock
from invsync.core.config import Channel
from invsync.core.retry import Backoff
from invsync.engine import keys
from invsync.metrics.definitions import REGISTRY
from tests.adapters.test_webhook import webhook_channel
from tests.receiver import SECRET, Answer, Receiver, until

CHANNEL = "wholesale"

MakeActor = Callable[..., Awaitable[ChannelWorker]]

#: The task running each worker the fixture made (the test is the owner that awaits it).
RUNS: weakref.WeakKeyDictionary[ChannelWorker, asyncio.Task[None]] = weakref.WeakKeyDictionary()


async def stop(worker: ChannelWorker) -> None:
    """Close a worker the fixture runs and wait until it has drained and returned."""
    worker.close()
    await RUNS[worker]


def change(sku: str, available: int, version: int, accepted_ms: int = 0) -> AvailabilityChanged:
    return AvailabilityChanged(
        sku=sku, available=available, version=version, accepted_ms=accepted_ms
    )


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"channel": CHANNEL, **labels}) or 0.0


def pushes(outcome: str) -> float:
    return sample("invsync_channel_pushes_total", outcome=outcome)


async def no_values() -> AsyncIterator[AvailabilityChanged]:
    return
    yield  # pragma: no cover (makes this an async generator)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def make_actor(
    redis: aioredis.Redis, session: aiohttp.ClientSession, receiver: Receiver
) -> AsyncIterator[MakeActor]:
    """Builds channel workers on the receiver and runs each in a task; after the test, closes
    them and waits for their runs to end. ``backoff_base``/``backoff_cap`` build the push
    backoff (seeded jitter)."""
    workers: list[ChannelWorker] = []

    async def make(
        channel: Channel | None = None,
        *,
        clock: Clock | None = None,
        values: Callable[[], AsyncIterator[AvailabilityChanged]] = no_values,
        backoff_base: float = 0.2,
        backoff_cap: float = 30.0,
        **kwargs: Any,
    ) -> ChannelWorker:
        channel = channel or webhook_channel(receiver.url)
        kwargs.setdefault("backoff", Backoff(backoff_base, backoff_cap, rng=random.Random(7)))
        worker = ChannelWorker(
            channel,
            WebhookAdapter(channel, session, SECRET),
            redis,
            clock or SystemClock(),
            values,
            **kwargs,
        )
        RUNS[worker] = asyncio.create_task(worker.run())
        workers.append(worker)
        return worker

    yield make
    receiver.gate.set()
    for worker in workers:
        await stop(worker)


async def test_pushes_a_change_and_records_what_was_sent(
    make_actor: MakeActor, receiver: Receiver, redis: aioredis.Redis
) -> None:
    ok_before = pushes("ok")
    actor = await make_actor()
    actor.receive(change("TEE-BLK-M", 7, 3))
    await until(lambda: not actor.busy)

    (req,) = receiver.requests
    assert req.signature_ok
    assert req.payload == {
        "channel": CHANNEL,
        "updates": [{"sku": "TEE-BLK-M", "available": 7, "version": 3}],
    }
    assert await actor.pushed("TEE-BLK-M") == (7, 3)
    parsed = keys.parse_pushed(await redis.hget(pushed_key(CHANNEL), "TEE-BLK-M"))
    assert parsed is not None and parsed[:2] == (7, 3)
    assert parsed[2] is not None and abs(parsed[2] - time.time() * 1000) < 60_000
    assert pushes("ok") == ok_before + 1
    assert sample("invsync_channel_pending_skus") == 0


async def test_coalesces_fifty_changes_into_one_push(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    actor = await make_actor()
    receiver.gate.clear()  # the first push stays in flight until the gate opens
    actor.receive(change("A", 0, 1))
    await until(lambda: len(receiver.requests) == 1)

    for version in range(2, 52):
        actor.receive(change("A", version, version))
    assert actor.pending_count == 1
    assert sample("invsync_channel_pending_skus") == 1

    receiver.gate.set()
    await until(lambda: len(receiver.requests) == 2 and not actor.busy)
    await asyncio.sleep(0.05)
    assert len(receiver.requests) == 2
    assert receiver.requests[1].payload["updates"] == [{"sku": "A", "available": 51, "version": 51}]
    assert await actor.pushed("A") == (51, 51)


async def test_an_older_version_never_overwrites_a_newer_one(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    actor = await make_actor()
    actor.receive(change("A", 5, 5))
    await until(lambda: not actor.busy)

    actor.receive(change("A", 3, 3))  # older than what the channel has
    await until(lambda: not actor.busy)

    receiver.gate.clear()
    actor.receive(change("B", 1, 1))
    await until(lambda: len(receiver.requests) == 2)
    actor.receive(change("B", 0, 0))  # older than the push in flight
    actor.receive(change("A", 9, 9))
    actor.receive(change("A", 8, 8))  # older than the pending value
    assert actor.pending_count == 1
    receiver.gate.set()
    await until(lambda: not actor.busy)

    assert receiver.pushed_values() == {"A": [(5, 5), (9, 9)], "B": [(1, 1)]}
    assert await actor.pushed("A") == (9, 9)
    assert await actor.pushed("B") == (1, 1)


async def test_429_retry_after_holds_the_next_request(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    throttled_before = pushes("throttled")
    receiver.answer(Answer(status=429, headers={"Retry-After": "0.3"}))
    actor = await make_actor()
    actor.receive(change("A", 1, 1))
    await until(lambda: len(receiver.requests) == 2 and not actor.busy)

    first, second = receiver.requests
    assert second.at - first.at >= 0.3
    assert actor.bucket.rate < actor.channel.rate_limit_per_s  # the channel asked us to slow
    assert pushes("throttled") == throttled_before + 1
    assert await actor.pushed("A") == (1, 1)


async def test_429_pause_runs_on_the_actor_clock(make_actor: MakeActor, receiver: Receiver) -> None:
    clock = ManualClock()
    receiver.answer(Answer(status=429, headers={"Retry-After": "5"}))
    actor = await make_actor(clock=clock)
    actor.receive(change("A", 1, 1))
    await until(lambda: len(receiver.requests) == 1 and clock.sleepers >= 1)

    clock.advance(4.9)
    await asyncio.sleep(0.1)
    assert len(receiver.requests) == 1
    clock.advance(0.1)
    await until(lambda: len(receiver.requests) == 2 and not actor.busy)
    assert await actor.pushed("A") == (1, 1)


async def test_recovers_from_500s_with_backoff(make_actor: MakeActor, receiver: Receiver) -> None:
    retryable_before = pushes("retryable")
    receiver.answer(*[Answer(status=500)] * 3)
    actor = await make_actor(backoff_base=0.05)
    actor.receive(change("A", 1, 1))
    actor.receive(change("B", 2, 1))
    await until(lambda: len(receiver.requests) == 4 and not actor.busy)

    assert all(sorted(r.skus) == ["A", "B"] for r in receiver.requests)
    assert pushes("retryable") == retryable_before + 6  # two SKUs, three failed attempts
    assert actor.breaker.state is BreakerState.CLOSED
    assert await actor.pushed("A") == (1, 1)
    assert await actor.pushed("B") == (2, 1)


async def test_breaker_opens_after_failures_then_probes_and_closes(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    receiver.default = Answer(status=503)
    actor = await make_actor(breaker_threshold=3, breaker_cooldown=0.4, backoff_base=0.01)
    actor.receive(change("A", 1, 1))
    await until(lambda: actor.breaker.state is BreakerState.OPEN)
    assert len(receiver.requests) == 3
    assert sample("invsync_channel_breaker_open") == 1

    for version in range(2, 6):  # pending keeps coalescing while the breaker is open
        actor.receive(change("A", version, version))
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 3  # no requests while open

    receiver.default = Answer()
    await until(lambda: len(receiver.requests) == 4 and not actor.busy)
    assert receiver.requests[3].at - receiver.requests[2].at >= 0.4  # after the cool-down
    assert receiver.requests[3].payload["updates"] == [{"sku": "A", "available": 5, "version": 5}]
    assert actor.breaker.state is BreakerState.CLOSED
    assert sample("invsync_channel_breaker_open") == 0


async def test_a_failed_probe_keeps_the_breaker_open_longer(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    receiver.default = Answer(status=500)
    actor = await make_actor(breaker_threshold=2, breaker_cooldown=0.2, backoff_base=0.01)
    actor.receive(change("A", 1, 1))
    # Two failures open it; the probe after 0.2 s fails too, and the cool-down doubles.
    await until(lambda: len(receiver.requests) == 3 and actor.breaker.cooldown == 0.4)
    assert actor.breaker.state is BreakerState.OPEN

    receiver.default = Answer()
    await until(lambda: len(receiver.requests) == 4 and not actor.busy, timeout=3)
    assert receiver.requests[3].at - receiver.requests[2].at >= 0.4


async def test_timeouts_are_retried(
    make_actor: MakeActor, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    retryable_before = pushes("retryable")
    receiver.answer(Answer(hang=True))
    actor = await make_actor(
        webhook_channel(receiver.url, options={"timeout_s": 0.2}), backoff_base=0.01
    )
    actor.receive(change("A", 1, 1))
    await until(lambda: len(receiver.requests) == 2 and not actor.busy)
    assert pushes("retryable") == retryable_before + 1
    assert await actor.pushed("A") == (1, 1)


async def test_partial_batch_failure_retries_only_the_failed_skus(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    refused: list[tuple[str, str]] = []
    receiver.answer(
        Answer(
            body={
                "results": [
                    {"sku": "B", "status": "error", "retryable": True, "error": "locked"},
                    {"sku": "D", "status": "error", "retryable": False, "error": "no such sku"},
                ]
            }
        )
    )
    actor = await make_actor(
        on_permanent=lambda sku, available, error: refused.append((sku, available, error)),
        backoff_base=0.01,
    )
    for sku in "ABCD":  # receive never suspends: the four land in one batch
        actor.receive(change(sku, 1, 1))
    await until(lambda: len(receiver.requests) == 2 and not actor.busy)

    assert receiver.requests[0].skus == ["A", "B", "C", "D"]
    assert receiver.requests[1].skus == ["B"]
    assert refused == [("D", 1, "no such sku")]
    assert [await actor.pushed(s) for s in "ABCD"] == [(1, 1), (1, 1), (1, 1), None]


async def test_permanent_refusal_drops_the_skus_and_reports_them(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    permanent_before = pushes("permanent")
    refused: list[tuple[str, int, str]] = []

    async def on_permanent(sku: str, available: int, error: str) -> None:
        refused.append((sku, available, error))

    receiver.answer(Answer(status=422, body={"error": "unknown sku"}))
    actor = await make_actor(on_permanent=on_permanent)
    actor.receive(change("A", 1, 1))
    actor.receive(change("B", 2, 1))
    await until(lambda: not actor.busy and len(refused) == 2)
    await asyncio.sleep(0.05)

    assert len(receiver.requests) == 1  # never retried
    assert [(sku, available) for sku, available, _ in refused] == [("A", 1), ("B", 2)]
    assert all("422" in error for _, _, error in refused)
    assert await actor.pushed("A") is None
    assert pushes("permanent") == permanent_before + 2


async def test_a_new_worker_does_not_repush_an_unchanged_value(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    first = await make_actor()
    first.receive(change("A", 4, 1))
    first.receive(change("B", 6, 1))
    await until(lambda: not first.busy)
    await stop(first)
    assert len(receiver.requests) == 1

    second = await make_actor()
    second.receive(change("A", 4, 1))  # exactly what the channel has
    second.receive(change("A", 4, 2))  # a newer version of the same value
    second.receive(change("B", 7, 2))  # a new value
    await until(lambda: not second.busy)
    await asyncio.sleep(0.05)

    assert len(receiver.requests) == 2
    assert receiver.requests[1].skus == ["B"]
    assert await second.pushed("A") == (4, 2)  # the version caught up without a push
    assert await second.pushed("B") == (7, 2)


async def test_full_sync_respects_the_rate_limit_and_pushes_every_sku_once(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    rate, burst, total, batch = 20.0, 2, 2000, 100
    most_pending = 0
    actor: ChannelWorker | None = None

    async def values() -> AsyncIterator[AvailabilityChanged]:
        nonlocal most_pending
        for i in range(total):
            assert actor is not None
            most_pending = max(most_pending, actor.pending_count)
            yield change(f"SKU-{i:05d}", i % 17, 1)

    channel = webhook_channel(receiver.url, rate_limit_per_s=rate, burst=burst, batch_size=batch)
    actor = await make_actor(channel, values=values)
    actor.receive(FullSync())  # never waits: the sync streams from the worker's own task
    await until(lambda: sum(len(r.skus) for r in receiver.requests) == total, timeout=10)
    await until(lambda: not actor.busy)

    requests = receiver.requests
    assert len(requests) == total // batch
    start = requests[0].at
    for i, req in enumerate(requests):
        # The bucket grants at most burst + rate * elapsed (+1 for timer and loop slack).
        assert i + 1 <= burst + rate * (req.at - start) + 1
    assert requests[-1].at - start >= (len(requests) - burst) / rate * 0.9
    sent = [sku for r in requests for sku in r.skus]
    assert len(sent) == len(set(sent)) == total
    assert most_pending <= 10 * batch  # streamed, at most ~10 batches ahead of the flusher
    assert await actor.pushed("SKU-01999") == (1999 % 17, 1)


async def test_latency_is_observed_from_acceptance_to_acknowledgement(
    make_actor: MakeActor,
) -> None:
    count = "invsync_sync_latency_seconds_count"
    total = "invsync_sync_latency_seconds_sum"
    count_before, sum_before = sample(count), sample(total)
    actor = await make_actor()
    actor.receive(change("A", 1, 1, accepted_ms=SystemClock().wall_ms() - 250))
    actor.receive(change("B", 1, 1))  # no originating event: not observed
    await until(lambda: not actor.busy)

    assert sample(count) == count_before + 1
    assert 0.25 <= sample(total) - sum_before < 5


async def test_closing_flushes_what_is_pending(make_actor: MakeActor, receiver: Receiver) -> None:
    actor = await make_actor(webhook_channel(receiver.url, batch_size=50))
    for i in range(120):
        actor.receive(change(f"S{i}", i, 1))
    await stop(actor)
    assert sum(len(r.skus) for r in receiver.requests) == 120
    assert len(receiver.requests) == 3


async def test_closing_gives_up_after_the_drain_bound(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    receiver.default = Answer(hang=True)
    actor = await make_actor(drain_timeout=0.3)
    actor.receive(change("A", 1, 1))
    await until(lambda: len(receiver.requests) == 1)
    started = time.monotonic()
    await stop(actor)
    assert time.monotonic() - started < 1.5
    assert await actor.pushed("A") is None


async def test_run_pushes_until_closed_then_drains_its_last_value(
    redis: aioredis.Redis, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    channel = webhook_channel(receiver.url)
    worker = ChannelWorker(
        channel, WebhookAdapter(channel, session, SECRET), redis, SystemClock(), no_values
    )
    async with asyncio.TaskGroup() as tasks:
        run = tasks.create_task(worker.run())
        for version in range(1, 4):
            worker.receive(change("A", version, version))
        await until(lambda: bool(receiver.requests))
        worker.close()
    # Closing drained the worker, which flushed its last value, and run() returned.
    assert run.done() and run.exception() is None
    assert receiver.pushed_values()["A"][-1] == (3, 3)
    parsed = keys.parse_pushed(await redis.hget(pushed_key(CHANNEL), "A"))
    assert parsed is not None and parsed[:2] == (3, 3) and parsed[2] is not None


class OutOfMemory:
    """A Redis client whose writes fail like a store at its ``maxmemory`` (reads work)."""

    def __init__(self, real: aioredis.Redis) -> None:
        self.real = real
        self.failing = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def hset(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing:
            raise ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
        return await self.real.hset(*args, **kwargs)


async def test_a_crash_raises_and_leaves_every_value_in_the_state_for_the_next_worker(
    redis: aioredis.Redis, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    channel = webhook_channel(receiver.url, batch_size=2)
    adapter = WebhookAdapter(channel, session, SECRET)
    store = OutOfMemory(redis)
    state = ChannelState(channel, SystemClock())

    def worker() -> ChannelWorker:
        return ChannelWorker(
            channel,
            adapter,
            cast(aioredis.Redis, store),
            SystemClock(),
            no_values,
            state=state,
        )

    first = worker()
    receiver.gate.clear()  # the first batch stays in flight while the others arrive
    for sku in "ABCDE":
        first.receive(change(sku, ord(sku), 1))
    run = asyncio.create_task(first.run())
    await until(lambda: len(receiver.requests) == 1)
    assert sorted(state.inflight) == ["A", "B"] and sorted(state.pending) == ["C", "D", "E"]
    receiver.gate.set()  # the channel takes A and B; recording that they were sent fails
    with pytest.raises(WorkerCrashed) as crashed:
        await run
    assert isinstance(crashed.value.cause, ResponseError)
    assert crashed.value.channel == CHANNEL

    # Nothing was lost: the batch in flight goes back to pending beside the rest.
    assert state.recover() == 2
    assert sorted(state.pending) == ["A", "B", "C", "D", "E"]
    store.failing = False
    second = worker()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(second.run())
        await until(lambda: not state.busy)
        second.close()
    assert {sku: values[-1] for sku, values in receiver.pushed_values().items()} == {
        sku: (ord(sku), 1) for sku in "ABCDE"
    }
    assert [await second.pushed(sku) for sku in "ABCDE"] == [(ord(sku), 1) for sku in "ABCDE"]


async def test_a_full_sync_asked_while_no_worker_runs_is_done_by_the_next(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    async def values() -> AsyncIterator[AvailabilityChanged]:
        for i in range(3):
            yield change(f"S{i}", i + 1, 1)

    channel = webhook_channel(receiver.url)
    state = ChannelState(channel, SystemClock())
    state.receive(FullSync())
    state.receive(change("X", 9, 4))
    assert state.busy
    worker = await make_actor(channel, values=values, state=state)
    await until(lambda: not worker.busy and len(receiver.pushed_values()) == 4)
    assert {sku: v[-1] for sku, v in receiver.pushed_values().items()} == {
        "S0": (1, 1),
        "S1": (2, 1),
        "S2": (3, 1),
        "X": (9, 4),
    }


async def test_a_failed_push_waits_its_backoff_on_the_worker_clock(
    make_actor: MakeActor, receiver: Receiver
) -> None:
    clock = ManualClock()
    receiver.answer(Answer(status=500))
    actor = await make_actor(clock=clock, backoff=Backoff(1.0, 8.0, jitter="none"))
    actor.receive(change("A", 1, 1))
    await until(lambda: len(receiver.requests) == 1 and clock.sleepers >= 1)
    # One batch failed: attempt 1 of base 1 s doubling, so 2 s (jitter off), on the clock.
    assert clock.next_deadline == pytest.approx(2.0)
    clock.advance(1.9)
    await asyncio.sleep(0.1)
    assert len(receiver.requests) == 1
    clock.advance(0.1)
    await until(lambda: len(receiver.requests) == 2 and not actor.busy)
    assert await actor.pushed("A") == (1, 1)


def test_every_metric_of_the_spec_is_registered() -> None:
    text = generate_latest(REGISTRY).decode()
    for name in (
        "invsync_sync_latency_seconds",
        "invsync_reservation_latency_seconds",
        "invsync_events_total",
        "invsync_channel_pushes_total",
        "invsync_channel_pending_skus",
        "invsync_actors_active",
        "invsync_mailbox_depth",
        "invsync_oversells_total",
        "invsync_exceptions_open",
        "invsync_drift_total",
        "invsync_channel_breaker_open",
        "invsync_intake_lag_seconds",
        "process_cpu_seconds_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')} " in text or f"# TYPE {name} " in text
