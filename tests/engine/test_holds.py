"""Holds against a real store: idempotent by hold id, refusals that name the state, and no
oversell or free window when holds, conversions and orders race for the last units (several
clients at once, each its own connection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invsync.core.errors import HoldExists, NothingReserved, OutOfStock, UnknownHold
from invsync.engine.engine import Engine
from invsync.engine.models import Line

WEB = "web"


class FakeClock(Protocol):
    """The ``clock`` fixture of conftest.py."""

    def advance(self, seconds: float) -> None: ...


def at(sku: str, qty: int, location: str = "L1") -> Line:
    return Line(sku=sku, qty=qty, location=location)


@pytest.fixture
async def engines(redis_url: str, redis: aioredis.Redis) -> AsyncIterator[list[Engine]]:
    """Four engines, each on its own client (the ``redis`` fixture flushed the database)."""
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(4)]
    out: list[Engine] = []
    try:
        for client in clients:
            out.append(await Engine(client).__aenter__())
        yield out
    finally:
        for eng in out:
            await eng.__aexit__(None, None, None)
        for client in clients:
            await client.aclose()


async def reserved(engine: Engine, sku: str, location: str = "L1") -> int:
    state = await engine.stock(sku)
    assert state is not None
    return state.locations[location].reserved


async def test_placing_the_same_hold_again_with_a_new_event_id_changes_nothing(
    engine: Engine,
) -> None:
    await engine.count("c1", "A", "L1", 5)
    first = await engine.place_hold("p1", "chk-1", [at("A", 2)], 900)
    again = await engine.place_hold("p2", "chk-1", [at("A", 1), at("A", 1, "L2")], 900)
    assert again.duplicate  # same units of each SKU: the storefront's retry
    assert again.order == first.order  # expiry untouched too
    assert await reserved(engine, "A") == 2


async def test_placing_a_held_id_with_other_quantities_is_refused_naming_the_state(
    engine: Engine,
) -> None:
    await engine.count("c1", "A", "L1", 5)
    await engine.place_hold("p1", "chk-1", [at("A", 2)], 900)
    with pytest.raises(HoldExists) as info:
        await engine.place_hold("p2", "chk-1", [at("A", 3)], 900)
    assert info.value.details["state"] == "held"
    assert "release it first" in info.value.message
    await engine.release_hold("r1", "chk-1")
    with pytest.raises(HoldExists) as info:
        await engine.place_hold("p3", "chk-1", [at("A", 2)], 900)
    assert info.value.details["state"] == "released"
    assert await reserved(engine, "A") == 0


async def test_releasing_an_unknown_or_lapsed_hold_is_a_clear_answer(
    engine: Engine, clock: FakeClock
) -> None:
    with pytest.raises(UnknownHold, match="unknown hold nope"):
        await engine.release_hold("r1", "nope")
    await engine.count("c1", "A", "L1", 5)
    await engine.place_hold("p1", "chk-1", [at("A", 2)], 60)
    clock.advance(61)
    [lapsed] = await engine.expire_holds()
    assert lapsed.order is not None and lapsed.order.state == "expired"
    with pytest.raises(NothingReserved) as info:
        await engine.release_hold("r2", "chk-1")
    assert info.value.details["state"] == "expired"
    assert info.value.message == "hold chk-1 is expired"


async def test_an_order_naming_a_lapsed_hold_reserves_like_any_order(
    engine: Engine, clock: FakeClock
) -> None:
    await engine.count("c1", "A", "L1", 3)
    await engine.place_hold("p1", "chk-1", [at("A", 2)], 60)
    clock.advance(61)
    await engine.expire_holds()
    outcome = await engine.reserve("o1", WEB, "1001", [at("A", 2)], hold_id="chk-1")
    assert outcome.order is not None and outcome.order.state == "reserved"
    hold = await engine.hold("chk-1")
    assert hold is not None and (hold.state, hold.converted_to) == ("expired", None)
    assert await reserved(engine, "A") == 2


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stock=st.integers(1, 6),
    holds=st.lists(st.integers(1, 3), min_size=1, max_size=6),
    orders=st.lists(st.integers(1, 3), min_size=0, max_size=6),
)
async def test_holds_and_orders_racing_for_the_last_units_never_oversell(
    engines: list[Engine], stock: int, holds: list[int], orders: list[int]
) -> None:
    first = engines[0]
    await first.redis.flushdb()
    await first.count("c1", "A", "L1", stock)
    calls = [
        engines[i % 4].place_hold(f"p{i}", f"h{i}", [at("A", q)], 900) for i, q in enumerate(holds)
    ] + [engines[i % 4].reserve(f"o{i}", WEB, f"o{i}", [at("A", q)]) for i, q in enumerate(orders)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    granted = 0
    for result, q in zip(results, holds + orders, strict=True):
        if isinstance(result, OutOfStock):
            continue
        assert not isinstance(result, BaseException), result
        granted += q
    assert granted <= stock
    assert await reserved(first, "A") == granted
    # Whatever was refused found too little free at that moment: nothing was lost either.
    for result, q in zip(results, holds + orders, strict=True):
        if isinstance(result, OutOfStock):
            assert result.shortages[0]["free"] < q


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rivals=st.integers(1, 8), extra=st.integers(0, 2))
async def test_a_conversion_never_loses_the_held_units_to_orders_racing_it(
    engines: list[Engine], rivals: int, extra: int
) -> None:
    first = engines[0]
    await first.redis.flushdb()
    await first.count("c1", "A", "L1", 2 + extra)
    await first.place_hold("p1", "chk-1", [at("A", 2)], 900)
    convert = engines[1].reserve("o-paid", WEB, "paid", [at("A", 2)], hold_id="chk-1")
    others = [
        engines[2 + i % 2].reserve(f"o{i}", WEB, f"o{i}", [at("A", 1)]) for i in range(rivals)
    ]
    paid, *rest = await asyncio.gather(convert, *others, return_exceptions=True)
    assert not isinstance(paid, BaseException), paid  # the shopper who paid gets the units
    won = sum(1 for r in rest if not isinstance(r, BaseException))
    assert all(isinstance(r, OutOfStock) for r in rest if isinstance(r, BaseException))
    assert won == min(rivals, extra)  # only the units nobody held
    assert await reserved(first, "A") == 2 + won
    hold = await first.hold("chk-1")
    assert hold is not None and (hold.state, hold.converted_to) == ("converted", "web/paid")


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(copies=st.integers(2, 8), qty=st.integers(1, 3))
async def test_the_same_hold_placed_at_once_from_many_clients_is_held_once(
    engines: list[Engine], copies: int, qty: int
) -> None:
    first = engines[0]
    await first.redis.flushdb()
    await first.count("c1", "A", "L1", 10)
    results = await asyncio.gather(
        *(engines[i % 4].place_hold(f"p{i}", "chk-1", [at("A", qty)], 900) for i in range(copies))
    )
    assert sum(1 for r in results if not r.duplicate) == 1
    assert await reserved(first, "A") == qty
