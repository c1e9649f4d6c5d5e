"""A SKU's operator movements (``hist:{SKU}``): a capped list that costs bytes, not kilobytes,
read back newest first; a stream left by an older version is still read, and converted by the
SKU's next movement in the same atomic script. Real embedded Valkey."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import redis.asyncio as aioredis

from invsync.core.errors import NegativeStock
from invsync.engine import history
from invsync.engine import keys as k
from invsync.engine.engine import Engine


async def test_each_movement_is_kept_newest_first_with_its_fields(engine: Engine) -> None:
    await engine.count("c1", "A", "L1", 5, reason="cycle-count")
    await engine.adjust("a1", "A", "L1", 3, reason="received")
    await engine.count("c2", "A", "L2", 2, state="damaged")
    rows = await engine.history("A")
    assert [(r["event"], r["op"], r["location"], r["state"], r["from"], r["to"]) for r in rows] == [
        ("c2", "count", "L2", "damaged", "0", "2"),
        ("a1", "adjust", "L1", "on_hand", "5", "8"),
        ("c1", "count", "L1", "on_hand", "0", "5"),
    ]
    assert [r["reason"] for r in rows] == ["count", "received", "cycle-count"]
    # ids are unique per SKU ("<ts>-<version>") and ts is the engine clock's time in ms.
    assert len({r["id"] for r in rows}) == 3
    assert all(r["id"].startswith(r["ts"] + "-") for r in rows)
    assert [r["id"].split("-")[1] for r in rows] == ["3", "2", "1"]


async def test_a_duplicate_or_refused_movement_adds_no_entry(engine: Engine) -> None:
    await engine.count("c1", "A", "L1", 5)
    await engine.count("c1", "A", "L1", 5)  # the same event again
    with pytest.raises(NegativeStock):
        await engine.adjust("a1", "A", "L1", -9)
    assert [r["event"] for r in await engine.history("A")] == ["c1"]


async def test_the_history_is_capped_per_sku_and_count_limits_the_answer(engine: Engine) -> None:
    for i in range(history.CAP + 15):
        await engine.adjust(f"a{i}", "A", "L1", 1)
    rows = await engine.history("A", count=history.CAP + 50)
    assert len(rows) == history.CAP
    assert rows[0]["event"] == f"a{history.CAP + 14}"
    assert rows[-1]["event"] == "a15"
    assert [r["event"] for r in await engine.history("A", count=2)] == [
        f"a{history.CAP + 14}",
        f"a{history.CAP + 13}",
    ]
    assert await engine.history("never-stocked") == []
    assert await engine.history("A", count=0) == []


async def test_one_skus_history_costs_bytes_not_a_stream_node(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await engine.count("import-0123456789abcdef-1", "SKU-000001", "wh-east", 40, reason="import")
    used = await redis.memory_usage(k.history("SKU-000001"), samples=0)
    assert used is not None
    assert 0 < used < 400, used  # a one-entry stream costs 4,328 bytes (a 4 KB node)


async def _old_stream(redis: aioredis.Redis, sku: str, n: int) -> list[str]:
    """What an older version wrote: a stream of n movements (ids returned, oldest first)."""
    ids = []
    for i in range(n):
        rid = await redis.xadd(
            k.history(sku),
            {
                "event": f"old{i}",
                "op": "adjust",
                "location": "L1",
                "state": "on_hand",
                "from": i,
                "to": i + 1,
                "reason": "received",
                "ts": 1_700_000_000_000 + i,
            },
            id=f"{1_700_000_000_000 + i}-0",
        )
        ids.append(rid.decode())
    await redis.hset(k.inventory(sku), mapping={"v": n, "L1:on_hand": n})
    return ids


async def test_an_old_stream_is_read_then_converted_by_the_next_movement(
    engine: Engine, redis: aioredis.Redis
) -> None:
    ids = await _old_stream(redis, "A", 3)
    before = await engine.history("A")
    assert [r["id"] for r in before] == ids[::-1]
    assert [r["event"] for r in before] == ["old2", "old1", "old0"]
    await engine.adjust("a1", "A", "L1", 2)
    assert await redis.type(k.history("A")) == b"list"
    after = await engine.history("A")
    assert after[0]["event"] == "a1"
    assert (after[0]["from"], after[0]["to"]) == ("3", "5")
    assert after[1:] == before  # the converted entries read exactly as before


async def test_converting_a_long_old_stream_keeps_the_newest_within_the_cap(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _old_stream(redis, "A", history.CAP + 20)
    await engine.count("c1", "A", "L1", 0)
    rows = await engine.history("A", count=1000)
    assert len(rows) == history.CAP
    assert rows[0]["event"] == "c1"
    assert rows[1]["event"] == f"old{history.CAP + 19}"
    assert rows[-1]["event"] == "old21"


async def test_concurrent_movements_of_one_sku_each_leave_one_entry(engine: Engine) -> None:
    await engine.count("c0", "A", "L1", 0)
    await asyncio.gather(*(engine.adjust(f"a{i}", "A", "L1", 1) for i in range(40)))
    rows = await engine.history("A", count=100)
    assert sorted(r["event"] for r in rows[:-1]) == sorted(f"a{i}" for i in range(40))
    # Newest first: each entry's "from" is the previous entry's "to" (one atomic script each).
    for newer, older in itertools.pairwise(rows):
        assert newer["from"] == older["to"]
    state = await engine.stock("A")
    assert state is not None and state.locations["L1"].on_hand == 40
