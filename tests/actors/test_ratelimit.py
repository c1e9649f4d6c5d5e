"""The token bucket on a hand-moved clock: bursts, steady rate, pauses, adaptive rate."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from invsync.actors.ratelimit import TokenBucket
from invsync.core.clock import ManualClock


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


async def advance(clock: ManualClock, seconds: float) -> None:
    result: object = clock.advance(seconds)
    if inspect.isawaitable(result):
        await result
    await settle()


async def test_a_full_bucket_grants_its_burst_at_once() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    for _ in range(3):
        await asyncio.wait_for(bucket.acquire(), 1)
    assert bucket.tokens == pytest.approx(0)


async def test_an_empty_bucket_grants_one_token_per_interval() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=4, burst=1, clock=clock)
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await settle()
    assert not waiter.done()
    await advance(clock, 0.2)
    assert not waiter.done()
    await advance(clock, 0.05)
    assert waiter.done()


async def test_grants_over_time_never_exceed_burst_plus_rate_times_elapsed() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    granted = 0

    async def take() -> None:
        nonlocal granted
        while True:
            await bucket.acquire()
            granted += 1

    task = asyncio.create_task(take())
    try:
        await settle()
        assert granted == 5
        for _ in range(20):
            await advance(clock, 0.05)
        assert granted == 5 + 10  # one second at 10/s
    finally:
        task.cancel()


async def test_waiters_are_served_in_arrival_order() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    await bucket.acquire()
    order: list[int] = []

    async def take(i: int) -> None:
        await bucket.acquire()
        order.append(i)

    tasks = [asyncio.create_task(take(i)) for i in range(3)]
    await settle()
    for _ in range(3):
        await advance(clock, 1)
    assert order == [0, 1, 2]
    await asyncio.gather(*tasks)


async def test_pause_until_holds_every_grant_and_resumes_with_one_token() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=10, burst=10, clock=clock)
    bucket.pause_until(clock.now() + 2)
    waiter = asyncio.create_task(bucket.acquire())
    await advance(clock, 1.9)
    assert not waiter.done()
    await advance(clock, 0.1)
    assert waiter.done()
    # Resumed without the burst it held before the pause: the next token takes 1/rate.
    assert bucket.tokens == pytest.approx(0)


async def test_a_pause_only_ever_extends() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=10, burst=10, clock=clock)
    bucket.pause_until(5)
    bucket.pause_until(3)
    assert bucket.paused_until == 5


async def test_throttling_halves_the_rate_and_success_restores_it_slowly() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=8, burst=8, clock=clock, min_rate=1)
    bucket.slow_down()
    assert bucket.rate == 4
    for _ in range(5):
        bucket.slow_down()
    assert bucket.rate == 1  # never below min_rate
    bucket.recover()
    assert bucket.rate == pytest.approx(1.4)  # a twentieth of the configured rate per success
    for _ in range(100):
        bucket.recover()
    assert bucket.rate == 8  # never above the configured rate


async def test_set_rate_is_clamped_and_paces_the_next_grant() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=10, burst=1, clock=clock)
    bucket.set_rate(100)
    assert bucket.rate == 10
    bucket.set_rate(2)
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await advance(clock, 0.4)
    assert not waiter.done()
    await advance(clock, 0.1)
    assert waiter.done()


def test_rejects_nonsense() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, clock=clock)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0, clock=clock)


async def test_cannot_take_more_than_the_burst() -> None:
    bucket = TokenBucket(rate=1, burst=2, clock=ManualClock())
    with pytest.raises(ValueError):
        await bucket.acquire(3)
