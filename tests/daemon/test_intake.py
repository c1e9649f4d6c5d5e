"""The intake consumer's pace while the store is away: backoff on the clock, cut short by stop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from invsync.core.clock import ManualClock
from invsync.daemon.intake import Entry, Intake


class _AwayStore:
    """A Redis client whose every call fails as a store that does not answer does."""

    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: object, **kwargs: object) -> None:
            self.calls += 1
            raise RedisConnectionError("Connection refused")

        return fail


async def _parked(clock: ManualClock) -> float:
    for _ in range(1000):
        if clock.sleepers:
            wake = clock.next_deadline
            assert wake is not None
            return wake - clock.now()
        await asyncio.sleep(0)
    raise AssertionError("the consumer never slept on the clock")


async def _nothing(entries: list[Entry]) -> None:
    raise AssertionError("nothing can be read from a store that is away")


async def test_consumer_retries_a_store_that_is_away_with_capped_doubling_pauses() -> None:
    store, clock, stop = _AwayStore(), ManualClock(), asyncio.Event()
    intake = Intake(store, consumer="test", clock=clock)  # type: ignore[arg-type]
    task = asyncio.create_task(intake.consume(_nothing, stop=stop))
    try:
        for pause in (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0):
            assert await _parked(clock) == pytest.approx(pause)
            calls = store.calls
            clock.advance(pause - 0.001)
            for _ in range(20):
                await asyncio.sleep(0)
            assert store.calls == calls  # no retry before the pause is over
            clock.advance(0.001)
        await _parked(clock)
        stop.set()  # a shutdown does not wait for the pause to end
        await asyncio.wait_for(task, timeout=1)
        assert clock.sleepers == 0
    finally:
        task.cancel()
