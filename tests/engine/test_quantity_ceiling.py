"""The store's counters have a ceiling (``keys.MAX_QTY``), so Redis' HINCRBY can never overflow.

Without it, adjustments of ``+MAX_QTY`` repeated would carry ``on_hand`` past what the scripts'
JSON keeps exactly and, in the end, past 2^63 (an HINCRBY error: the crash path, not a refusal).
An adjustment or a return that would pass the ceiling is refused, and changes nothing.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from invsync.core.errors import InvalidQuantity
from invsync.engine import keys as k
from invsync.engine.engine import Engine
from invsync.engine.models import Line

WEB = "web"


async def test_an_adjustment_past_the_ceiling_is_refused_and_changes_nothing(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await engine.count("c1", "A", "L1", k.MAX_QTY - 5)
    before = await redis.hgetall(k.inventory("A"))
    with pytest.raises(InvalidQuantity, match="largest on_hand"):
        await engine.adjust("a1", "A", "L1", 6)
    assert await redis.hgetall(k.inventory("A")) == before
    # Up to the ceiling itself is fine.
    await engine.adjust("a2", "A", "L1", 5)
    assert int(await redis.hget(k.inventory("A"), "L1:on_hand") or 0) == k.MAX_QTY


async def test_a_return_past_the_ceiling_is_refused_and_changes_nothing(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await engine.count("c1", "A", "L1", 10)
    await engine.count("c2", "A", "L2", k.MAX_QTY - 1)
    await engine.reserve("r1", WEB, "o1", [Line(sku="A", qty=3, location="L1")])
    await engine.fulfil("f1", WEB, "o1")
    before = await redis.hgetall(k.inventory("A"))
    with pytest.raises(InvalidQuantity, match="largest on_hand"):
        await engine.return_("x1", WEB, "o1", "L2")
    assert await redis.hgetall(k.inventory("A")) == before
    await engine.return_("x2", WEB, "o1", "L1")  # where there is room: restocked
    assert int(await redis.hget(k.inventory("A"), "L1:on_hand") or 0) == 10
