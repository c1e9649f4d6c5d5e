"""The injectable clock: manual time for tests, and a sleep that a stop event cuts short."""

from __future__ import annotations

import asyncio

import pytest

from invsync.core.clock import ManualClock, SystemClock, sleep_unless


async def parked(clock: ManualClock, sleepers: int = 1) -> None:
    """Yield until ``sleepers`` sleeps are pending on ``clock``."""
    for _ in range(100):
        if clock.sleepers == sleepers:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{clock.sleepers} sleepers, expected {sleepers}")


async def test_sleep_unless_sleeps_the_whole_time_when_nothing_is_set() -> None:
    clock, stop = ManualClock(), asyncio.Event()
    task = asyncio.create_task(sleep_unless(clock, 2.0, stop))
    await parked(clock)
    assert clock.next_deadline == pytest.approx(2.0)
    clock.advance(1.99)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.01)
    assert await task is False
    assert clock.sleepers == 0


async def test_sleep_unless_returns_as_soon_as_the_event_is_set() -> None:
    clock, stop = ManualClock(), asyncio.Event()
    task = asyncio.create_task(sleep_unless(clock, 60.0, stop))
    await parked(clock)
    stop.set()
    assert await asyncio.wait_for(task, timeout=1) is True
    assert clock.now() == 0 and clock.sleepers == 0  # no real or manual time passed


async def test_sleep_unless_with_the_event_already_set_does_not_sleep() -> None:
    clock, stop = ManualClock(), asyncio.Event()
    stop.set()
    assert await sleep_unless(clock, 60.0, stop) is True
    assert clock.sleepers == 0


async def test_cancelling_sleep_unless_leaves_no_task_behind() -> None:
    clock, stop = ManualClock(), asyncio.Event()
    before = len(asyncio.all_tasks())
    task = asyncio.create_task(sleep_unless(clock, 60.0, stop))
    await parked(clock)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before and clock.sleepers == 0


async def test_sleep_unless_on_the_system_clock_sleeps_in_real_time() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await sleep_unless(SystemClock(), 0.02, stop) is False
    assert loop.time() - started >= 0.02
