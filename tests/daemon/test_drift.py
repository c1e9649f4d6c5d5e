"""Drift detection logic against real Redis: differences confirmed by a second look.

The channel here is an in-memory read-back (the marketplace simulators' end-to-end drift tests
live with each adapter and in tests/daemon/test_channels_e2e.py); what is checked is the rule:
report only what survives the second look with our pushed value unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from invsync.adapters.base import BaseAdapter, PushResult, Retryable, Throttled, Update
from invsync.core.clock import ManualClock
from invsync.core.config import Channel, Config, ExceptionsConfig, Location
from invsync.daemon.drift import DriftWatch, check_channel, pushed_values
from invsync.engine import keys

CH = "shop"


class Shelf(BaseAdapter):
    """A channel that shows ``shows`` and can change between the two looks."""

    def __init__(self, shows: dict[str, int]) -> None:
        self.channel = Channel(id=CH, kind="webhook", url="http://127.0.0.1:9/")
        self.shows = shows
        self.reads: list[list[str]] = []
        self.fail = False

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        raise AssertionError("drift checks never push")

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        self.reads.append(list(skus))
        if self.fail:
            raise Retryable("HTTP 503")
        return {s: self.shows[s] for s in skus if s in self.shows}


class SteppingClock(ManualClock):
    """A manual clock whose sleeps return at once, having moved time on by what was slept and
    run ``meanwhile`` (what happens in the world during the wait); ``waits`` records them."""

    def __init__(
        self, meanwhile: Callable[[], Awaitable[None]] | None = None, *, wall_ms: int = 0
    ) -> None:
        super().__init__(wall_ms=wall_ms or 1_800_000_000_000)
        self.meanwhile = meanwhile
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.advance(max(0.0, seconds))
        if self.meanwhile is not None:
            await self.meanwhile()


class Reports:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, int]] = []

    async def __call__(self, channel: str, sku: str, theirs: int, ours: int) -> object:
        self.calls.append((channel, sku, theirs, ours))
        return None


async def _pushed(redis: aioredis.Redis, **values: int) -> None:
    await redis.delete(keys.pushed(CH))
    for sku, available in values.items():
        await redis.hset(keys.pushed(CH), sku, keys.format_pushed(available, 1, 1))


class Throttling(Shelf):
    """Answers 429 (with Retry-After) to the first ``n`` read-backs."""

    def __init__(self, shows: dict[str, int], n: int) -> None:
        super().__init__(shows)
        self.n = n

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        if self.n > 0:
            self.n -= 1
            raise Throttled("HTTP 429", retry_after=0.5)
        return await super().read_back(skus)


async def test_a_steady_difference_is_reported_once_confirmed(redis: aioredis.Redis) -> None:
    await _pushed(redis, A=5, B=3, C=0)
    shelf = Shelf({"A": 5, "B": 9, "C": 0})
    report = Reports()
    result = await check_channel(CH, shelf, redis, report, confirm_s=0)
    assert report.calls == [(CH, "B", 9, 3)]
    assert (result.checked, result.suspected, result.not_listed) == (3, 1, 0)
    assert [(f.sku, f.theirs, f.ours) for f in result.drift] == [("B", 9, 3)]
    assert shelf.reads == [["A", "B", "C"], ["B"]]  # the second look asks only the suspects


async def test_a_difference_that_settles_before_the_second_look_is_not_drift(
    redis: aioredis.Redis,
) -> None:
    await _pushed(redis, A=5)
    shelf = Shelf({"A": 4})  # a sale on the channel, its webhook on its way
    report = Reports()

    async def meanwhile() -> None:
        shelf.shows["A"] = 5  # the channel caught up with our push

    clock = SteppingClock(meanwhile)
    result = await check_channel(CH, shelf, redis, report, confirm_s=1, clock=clock)
    assert report.calls == [] and result.drift == [] and result.suspected == 1
    assert clock.waits == [1]  # the second look came confirm_s later, on the clock


async def test_a_push_between_the_looks_cancels_the_suspicion(redis: aioredis.Redis) -> None:
    await _pushed(redis, A=5)
    shelf = Shelf({"A": 2})
    report = Reports()

    async def push_in_flight() -> None:
        await redis.hset(keys.pushed(CH), "A", keys.format_pushed(2, 2, 2))

    result = await check_channel(
        CH, shelf, redis, report, confirm_s=1, clock=SteppingClock(push_in_flight)
    )
    assert report.calls == [] and result.drift == []


async def test_skus_the_channel_does_not_list_are_counted_not_reported(
    redis: aioredis.Redis,
) -> None:
    await _pushed(redis, A=5, GONE=2)
    shelf = Shelf({"A": 5})
    report = Reports()
    result = await check_channel(CH, shelf, redis, report, confirm_s=0)
    assert result.not_listed == 1 and report.calls == []


async def test_a_channel_error_ends_the_check_without_guessing(redis: aioredis.Redis) -> None:
    await _pushed(redis, A=5)
    shelf = Shelf({"A": 1})
    shelf.fail = True
    report = Reports()
    result = await check_channel(CH, shelf, redis, report, confirm_s=0)
    assert result.error is not None and "503" in result.error
    assert report.calls == [] and result.drift == []


async def test_an_adapter_without_read_back_is_said_so(redis: aioredis.Redis) -> None:
    class NoReadBack(BaseAdapter):
        channel = Channel(id=CH, kind="webhook", url="http://127.0.0.1:9/")

        async def push(self, updates: Sequence[Update]) -> list[PushResult]:
            return []

    result = await check_channel(CH, NoReadBack(), redis, Reports(), confirm_s=0)
    assert result.error is not None and "cannot read" in result.error


async def test_pushed_values_reads_old_and_new_formats_and_skips_garbage(
    redis: aioredis.Redis,
) -> None:
    await redis.delete(keys.pushed(CH))
    await redis.hset(keys.pushed(CH), mapping={"OLD": "4:2", "NEW": "7:3:1700", "BAD": "x"})
    assert await pushed_values(redis, CH, None) == {"OLD": 4, "NEW": 7}
    assert await pushed_values(redis, CH, ["NEW", "MISSING"]) == {"NEW": 7}


async def test_values_pushed_within_the_settle_time_are_not_compared(
    redis: aioredis.Redis,
) -> None:
    await redis.delete(keys.pushed(CH))
    now = 1_800_000_000_000
    await redis.hset(keys.pushed(CH), "OLD", keys.format_pushed(5, 1, now - 700_000))
    await redis.hset(keys.pushed(CH), "NEW", keys.format_pushed(5, 2, now - 5_000))
    shelf = Shelf({"OLD": 4, "NEW": 4})  # both differ; NEW was pushed 5 s ago
    report = Reports()
    result = await check_channel(
        CH, shelf, redis, report, confirm_s=0, settle_s=600, clock=SteppingClock(wall_ms=now)
    )
    assert report.calls == [(CH, "OLD", 4, 5)]
    assert result.checked == 1 and shelf.reads[0] == ["OLD"]


async def test_throttle_answers_are_waited_out_within_the_round(redis: aioredis.Redis) -> None:
    await _pushed(redis, A=5)
    shelf = Throttling({"A": 7}, n=2)
    clock = SteppingClock()
    report = Reports()
    result = await check_channel(CH, shelf, redis, report, confirm_s=0, clock=clock)
    assert result.error is None and report.calls == [(CH, "A", 7, 5)]
    assert clock.waits == [0.5, 0.5, 0]  # two throttles waited out, then the second look
    # Past the round's time (on the clock), the throttle ends the check instead.
    await _pushed(redis, A=5)
    late = await check_channel(
        CH, Throttling({"A": 7}, n=2), redis, Reports(), confirm_s=0, within_s=0.7, clock=clock
    )
    assert late.error is not None and "Throttled" in late.error
    assert clock.waits[3:] == [0.5]  # waited out once (0.5 s of 0.7), then gave up


async def test_an_adapter_bug_or_a_store_outage_is_reported_not_raised(
    redis: aioredis.Redis,
) -> None:
    await _pushed(redis, A=5)

    class Buggy(Shelf):
        async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
            raise ZeroDivisionError("bug")

    result = await check_channel(CH, Buggy({}), redis, Reports(), confirm_s=0)
    assert result.error is not None and "ZeroDivisionError" in result.error

    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        result = await check_channel(CH, Shelf({"A": 1}), dead, Reports(), confirm_s=0)
    finally:
        await dead.aclose()
    assert result.error is not None and result.error.startswith("store unavailable")


async def test_the_watch_checks_every_readable_channel_each_round_on_its_clock(
    redis: aioredis.Redis,
) -> None:
    await _pushed(redis, A=5)
    config = Config(
        locations=(Location(id="wh-east", priority=1),),
        exceptions=ExceptionsConfig(drift_check_s=60, drift_confirm_s=0, drift_settle_s=0),
    )

    class Blind(BaseAdapter):
        async def push(self, updates: Sequence[Update]) -> list[PushResult]:
            return []

    shelf = Shelf({"A": 2})
    running: dict[str, Any] = {CH: shelf, "blind": Blind()}
    report = Reports()
    clock = ManualClock()
    watch = DriftWatch(
        config=lambda: config,
        adapters=lambda: running,
        redis=redis,
        report=report,
        clock=clock,
    )
    async with asyncio.TaskGroup() as tasks:
        watcher = tasks.create_task(watch.run())
        for _ in range(100):  # until the watch waits for its first round
            if clock.sleepers:
                break
            await asyncio.sleep(0.01)
        assert clock.next_deadline == 60
        clock.advance(59)
        await asyncio.sleep(0.05)
        assert shelf.reads == []  # nothing before drift_check_s
        clock.advance(1)
        for _ in range(200):
            if report.calls:
                break
            await asyncio.sleep(0.01)
        assert report.calls == [(CH, "A", 2, 5)]  # "blind" cannot read back: not asked
        assert shelf.reads == [["A"], ["A"]]
        watcher.cancel()
