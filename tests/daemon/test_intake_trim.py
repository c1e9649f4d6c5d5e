"""The intake stream is trimmed promptly once its entries are acknowledged: a large backlog goes
in one round (not 10,000 entries per call, the server's default for ``XTRIM ~``), nothing the
consumer group still owes is dropped, and the housekeeping loop runs every second. Real embedded
Valkey; the loop's clock is a ManualClock."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from invsync.core.clock import ManualClock
from invsync.daemon.housekeeping import TRIM_EVERY_S, trim_intake
from invsync.daemon.intake import GROUP, Intake

STREAM = "intake:{trimtest}"


async def _fill(redis: aioredis.Redis, n: int) -> None:
    for start in range(0, n, 5000):
        async with redis.pipeline(transaction=False) as pipe:
            for _ in range(start, min(n, start + 5000)):
                pipe.xadd(STREAM, {"e": b"x" * 50, "src": "test"})
            await pipe.execute()


async def _read_and_ack(redis: aioredis.Redis, n: int, *, ack: bool = True) -> list[bytes]:
    """Deliver ``n`` entries to the group; acknowledge them unless ``ack`` is False."""
    reply: Any = await redis.xreadgroup(GROUP, "c", {STREAM: ">"}, count=n)
    ids = [row[0] for row in reply[0][1]] if reply else []
    if ack and ids:
        for start in range(0, len(ids), 5000):
            await redis.xack(STREAM, GROUP, *ids[start : start + 5000])
    return ids


async def test_a_large_acknowledged_backlog_is_dropped_in_one_trim(redis: aioredis.Redis) -> None:
    intake = Intake(redis, stream=STREAM, consumer="c")
    await intake.ensure_group()
    await _fill(redis, 45_000)
    await _read_and_ack(redis, 45_000)
    dropped = await intake.trim()
    # Whole nodes go (100 entries each): at most the last, partly acknowledged node stays.
    assert dropped >= 44_900
    assert await redis.xlen(STREAM) == 45_000 - dropped
    assert await intake.trim() == 0  # nothing more to drop


async def test_nothing_pending_or_undelivered_is_dropped(redis: aioredis.Redis) -> None:
    intake = Intake(redis, stream=STREAM, consumer="c")
    await intake.ensure_group()
    await _fill(redis, 20_000)
    acked = await _read_and_ack(redis, 12_000)
    pending = await _read_and_ack(redis, 3_000, ack=False)  # read, not yet acknowledged
    await intake.trim()
    left = [row[0] for row in await redis.xrange(STREAM)]
    assert set(pending) <= set(left)  # every pending entry is still there to replay
    assert len(left) >= 8_000  # ... and every entry not yet delivered
    assert len(left) < 8_000 + 200  # what was acknowledged before the oldest pending went
    assert left[0] > acked[-500]  # (up to the node that holds the oldest pending entry)
    # Once the pending ones are acknowledged too, the next trim drops them.
    await redis.xack(STREAM, GROUP, *pending)
    await intake.trim()
    assert await redis.xlen(STREAM) < 5_000 + 200


async def test_an_empty_or_undelivered_stream_is_left_alone(redis: aioredis.Redis) -> None:
    intake = Intake(redis, stream=STREAM, consumer="c")
    await intake.ensure_group()
    assert await intake.trim() == 0
    await _fill(redis, 500)
    assert await intake.trim() == 0
    assert await redis.xlen(STREAM) == 500


async def test_the_housekeeping_loop_trims_every_second(redis: aioredis.Redis) -> None:
    assert TRIM_EVERY_S <= 1.0
    clock = ManualClock()
    intake = Intake(redis, stream=STREAM, consumer="c", clock=clock)
    await intake.ensure_group()
    task = asyncio.create_task(trim_intake(intake, clock=clock))
    try:
        for round_ in range(3):
            await _fill(redis, 1_000)
            await _read_and_ack(redis, 1_000)
            assert await redis.xlen(STREAM) >= 1_000
            for _ in range(1000):
                if clock.sleepers:
                    break
                await asyncio.sleep(0)
            clock.advance(TRIM_EVERY_S)
            for _ in range(200):
                if await redis.xlen(STREAM) < 100:
                    break
                await asyncio.sleep(0.01)
            assert await redis.xlen(STREAM) < 100, f"round {round_}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
