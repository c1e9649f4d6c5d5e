"""The engine's Lua scripts through ``Engine``: success paths, every refusal, idempotency, holds.

Every refusal is checked to change nothing at all: the whole database (counters, versions, order
records, markers, history) is dumped before and after. Bad input is refused twice: by the Python
layer before a round trip, and by the scripts themselves when called directly with hand-built JSON.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

import pytest
import redis.asyncio as aioredis

from invsync.core.errors import (
    BelowReserved,
    ExceedsFulfilled,
    ExceedsReserved,
    HoldExists,
    InvalidQuantity,
    InvalidRequest,
    InvsyncError,
    NegativeStock,
    NotExpired,
    NothingReserved,
    OrderExists,
    OutOfStock,
    UnknownHold,
    UnknownOrder,
)
from invsync.engine import keys as k
from invsync.engine.availability import Bundle
from invsync.engine.engine import Engine
from invsync.engine.models import Line, LocationState, Outcome

WEB = "web"


class FakeClock(Protocol):
    """The ``clock`` fixture of conftest.py."""

    def advance(self, seconds: float) -> None: ...


def line(sku: str, qty: Any, location: str | None = "L1") -> Line:
    return Line(sku=sku, qty=qty, location=location)


async def dump(redis: aioredis.Redis) -> dict[bytes, Any]:
    """Every key of the database with its full value: the "changed nothing" yardstick."""
    out: dict[bytes, Any] = {}
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        if kind == "hash":
            value: Any = await redis.hgetall(key)
        elif kind == "string":
            value = await redis.get(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = await redis.xrange(key)
        elif kind == "list":  # hist:{SKU}
            value = await redis.lrange(key, 0, -1)
        else:  # pragma: no cover - the engine writes no other type
            value = kind
        out[key] = (kind, value)
    return out


async def stock(engine: Engine, sku: str, location: str = "L1") -> LocationState:
    state = await engine.stock(sku)
    assert state is not None
    return state.locations[location]


async def version(engine: Engine, sku: str) -> int:
    state = await engine.stock(sku)
    return 0 if state is None else state.version


async def stocked(engine: Engine, counts: dict[str, dict[str, int]]) -> None:
    for sku, by_location in counts.items():
        for location, qty in by_location.items():
            await engine.count(f"seed-{sku}-{location}", sku, location, qty)


async def raw(engine: Engine, name: str, keys: list[str], args: dict[str, Any]) -> tuple[str, Any]:
    """Call a script directly with hand-built JSON (bypassing every Python check)."""
    reply = await engine.scripts.call(name, keys, [json.dumps(args), "86400000", 1_800_000_000_000])
    return reply[0].decode(), json.loads(reply[1])


async def refused(redis: aioredis.Redis, error: type[InvsyncError], call: Any) -> InvsyncError:
    """Run ``call()``, expect ``error``, and check the database is byte for byte the same."""
    before = await dump(redis)
    with pytest.raises(error) as info:
        await call()
    assert await dump(redis) == before
    return info.value


async def refused_by_script(
    redis: aioredis.Redis, engine: Engine, code: str, name: str, keys: list[str], args: Any
) -> dict[str, Any]:
    before = await dump(redis)
    status, payload = await raw(engine, name, keys, args)
    assert (status, payload["code"]) == ("err", code), payload
    assert await dump(redis) == before
    return payload


async def assert_outcome_is_current(engine: Engine, outcome: Outcome) -> None:
    """The state an outcome carries is what a fresh read returns: no second read needed."""
    for sku, state in outcome.skus.items():
        assert await engine.stock(sku) == state
    if outcome.order is not None:
        read = (
            await engine.hold(outcome.order.order_id)
            if outcome.order.kind == "hold"
            else await engine.order(outcome.order.channel, outcome.order.order_id)
        )
        assert read == outcome.order


def order_keys(order_id: str, event_id: str, *skus: str) -> list[str]:
    return [k.order_event(WEB, order_id, event_id), k.order(WEB, order_id)] + [
        k.inventory(s) for s in skus
    ]


def stock_keys(sku: str, event_id: str) -> list[str]:
    return [k.sku_event(sku, event_id), k.history(sku), k.inventory(sku)]


# --- stock.count ------------------------------------------------------------------------------


async def test_count_sets_on_hand_and_bumps_the_version_once(engine: Engine) -> None:
    first = await engine.count("c1", "A", "L1", 7)
    assert first.skus["A"].locations["L1"].on_hand == 7
    assert first.skus["A"].version == 1
    second = await engine.count("c2", "A", "L1", 3)
    assert second.skus["A"].locations["L1"] == LocationState(on_hand=3, available=3)
    assert second.skus["A"].version == 2
    await assert_outcome_is_current(engine, second)


@pytest.mark.parametrize("state", ["safety_stock", "damaged", "incoming"])
async def test_count_sets_each_other_state_without_touching_on_hand(
    engine: Engine, state: str
) -> None:
    await engine.count("c1", "A", "L1", 10)
    outcome = await engine.count("c2", "A", "L1", 4, state=state)
    got = outcome.skus["A"].locations["L1"]
    assert getattr(got, state) == 4
    assert got.on_hand == 10
    assert outcome.skus["A"].version == 2


async def test_count_to_zero_is_a_valid_count(engine: Engine) -> None:
    await engine.count("c1", "A", "L1", 5)
    outcome = await engine.count("c2", "A", "L1", 0)
    assert outcome.skus["A"].locations["L1"].on_hand == 0


async def test_count_is_recorded_in_the_history(engine: Engine) -> None:
    await engine.count("c1", "A", "L1", 5, reason="cycle-count")
    await engine.adjust("a1", "A", "L1", -2, reason="shrinkage")
    latest, first = await engine.history("A")
    assert (latest["op"], latest["from"], latest["to"], latest["reason"]) == (
        "adjust",
        "5",
        "3",
        "shrinkage",
    )
    assert (first["op"], first["to"], first["event"]) == ("count", "5", "c1")


async def test_count_below_reserved_is_refused_and_changes_nothing(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    await engine.reserve("r1", WEB, "o1", [line("A", 3)])
    err = await refused(redis, BelowReserved, lambda: engine.count("c9", "A", "L1", 2))
    assert err.code == "BELOW_RESERVED"
    assert err.details["reserved"] == 3
    # The same count of exactly what is reserved is fine.
    assert (await engine.count("c10", "A", "L1", 3)).skus["A"].locations["L1"].on_hand == 3


async def test_count_of_an_unknown_state_is_refused_by_the_script(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await refused(redis, InvalidRequest, lambda: engine.count("c1", "A", "L1", 1, state="lost"))


async def test_count_replayed_is_a_duplicate_that_carries_the_current_state(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await engine.count("c1", "A", "L1", 5)
    await engine.count("c2", "A", "L1", 7)
    before = await dump(redis)
    again = await engine.count("c1", "A", "L1", 99)
    assert again.duplicate
    assert again.skus["A"].locations["L1"].on_hand == 7
    assert again.skus["A"].version == 2
    assert await dump(redis) == before


# --- stock.adjust -----------------------------------------------------------------------------


async def test_adjust_adds_and_removes_on_hand(engine: Engine) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    assert (await engine.adjust("a1", "A", "L1", 4)).skus["A"].locations["L1"].on_hand == 9
    outcome = await engine.adjust("a2", "A", "L1", -9)
    assert outcome.skus["A"].locations["L1"].on_hand == 0
    assert outcome.skus["A"].version == 3
    await assert_outcome_is_current(engine, outcome)


async def test_adjust_of_a_never_stocked_location_starts_from_zero(engine: Engine) -> None:
    outcome = await engine.adjust("a1", "A", "L2", 3)
    assert outcome.skus["A"].locations["L2"].on_hand == 3


async def test_adjust_below_zero_is_refused_with_negative_stock(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 2}})
    err = await refused(redis, NegativeStock, lambda: engine.adjust("a1", "A", "L1", -3))
    assert err.details["on_hand"] == 2


async def test_adjust_below_reserved_is_refused(engine: Engine, redis: aioredis.Redis) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    await engine.reserve("r1", WEB, "o1", [line("A", 4)])
    await refused(redis, BelowReserved, lambda: engine.adjust("a1", "A", "L1", -2))
    assert (await engine.adjust("a2", "A", "L1", -1)).skus["A"].locations["L1"].on_hand == 4


async def test_adjust_replayed_is_a_duplicate(engine: Engine, redis: aioredis.Redis) -> None:
    await engine.adjust("a1", "A", "L1", 3)
    before = await dump(redis)
    again = await engine.adjust("a1", "A", "L1", 3)
    assert again.duplicate
    assert again.skus["A"].locations["L1"].on_hand == 3
    assert await dump(redis) == before


# --- quantities: refused by Python, and by the scripts on their own ----------------------------

BAD_POSITIVE = [0, -1, 1.5, 2.0, True, "1", None, 10**14]


async def _with_order(engine: Engine) -> None:
    await stocked(engine, {"A": {"L1": 10}})
    await engine.reserve("r1", WEB, "o1", [line("A", 4)])
    await engine.fulfil("f1", WEB, "o1", [line("A", 2, None)])


@pytest.mark.parametrize("qty", [-1, 1.5, 2.0, True, False, "3", None, 10**14])
async def test_python_layer_refuses_a_count_that_is_not_an_int_of_zero_or_more(
    engine: Engine, redis: aioredis.Redis, qty: Any
) -> None:
    await refused(redis, InvalidQuantity, lambda: engine.count("c1", "A", "L1", qty))


@pytest.mark.parametrize("delta", [0, 1.5, -2.0, True, "-1", None, -(10**14)])
async def test_python_layer_refuses_an_adjustment_that_is_not_a_non_zero_int(
    engine: Engine, redis: aioredis.Redis, delta: Any
) -> None:
    await refused(redis, InvalidQuantity, lambda: engine.adjust("a1", "A", "L1", delta))


@pytest.mark.parametrize("op", ["reserve", "place_hold", "release", "fulfil", "return_"])
@pytest.mark.parametrize("qty", BAD_POSITIVE)
async def test_python_layer_refuses_a_line_quantity_that_is_not_a_positive_int(
    engine: Engine, redis: aioredis.Redis, op: str, qty: Any
) -> None:
    await _with_order(engine)
    calls = {
        "reserve": lambda: engine.reserve("r2", WEB, "o2", [line("A", 1), line("A", qty)]),
        "place_hold": lambda: engine.place_hold("h1", "H1", [line("A", qty)], 60),
        "release": lambda: engine.release("x1", WEB, "o1", [line("A", qty, None)]),
        "fulfil": lambda: engine.fulfil("x1", WEB, "o1", [line("A", qty, None)]),
        "return_": lambda: engine.return_("x1", WEB, "o1", "L1", [line("A", qty, None)]),
    }
    await refused(redis, InvalidQuantity, calls[op])


@pytest.mark.parametrize("qty", [-1, 1.5, True, "3", None, 10**14])
async def test_count_script_refuses_a_bad_quantity(
    engine: Engine, redis: aioredis.Redis, qty: Any
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    args = {"skus": ["A"], "sku": "A", "location": "L1", "qty": qty, "state": "on_hand"}
    await refused_by_script(
        redis, engine, "INVALID_QUANTITY", "stock.count", stock_keys("A", "x"), args
    )


@pytest.mark.parametrize("delta", [0, 1.5, -2.5, True, "-1", None, 10**14])
async def test_adjust_script_refuses_a_bad_delta(
    engine: Engine, redis: aioredis.Redis, delta: Any
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    args = {"skus": ["A"], "sku": "A", "location": "L1", "delta": delta}
    await refused_by_script(
        redis, engine, "INVALID_QUANTITY", "stock.adjust", stock_keys("A", "x"), args
    )


@pytest.mark.parametrize("qty", [0, -1, 1.5, True, "1", None, 10**14])
async def test_reserve_script_refuses_a_bad_line_quantity_even_on_the_last_line(
    engine: Engine, redis: aioredis.Redis, qty: Any
) -> None:
    await stocked(engine, {"A": {"L1": 5}, "B": {"L1": 5}})
    lines = [{"sku": "A", "location": "L1", "qty": 1}, {"sku": "B", "location": "L1", "qty": qty}]
    args = {"skus": ["A", "B"], "channel": WEB, "order_id": "o9", "lines": lines}
    await refused_by_script(
        redis, engine, "INVALID_QUANTITY", "order.reserve", order_keys("o9", "x", "A", "B"), args
    )


async def test_reserve_script_refuses_lines_that_only_together_are_too_big_to_encode(
    engine: Engine, redis: aioredis.Redis
) -> None:
    half = 6 * 10**13
    lines = [{"sku": "A", "location": "L1", "qty": half}] * 2
    args = {"skus": ["A"], "channel": WEB, "order_id": "o9", "lines": lines}
    await refused_by_script(
        redis, engine, "INVALID_QUANTITY", "order.reserve", order_keys("o9", "x", "A"), args
    )


async def test_the_largest_accepted_quantity_comes_back_exactly(engine: Engine) -> None:
    biggest = 10**14 - 1
    await engine.count("c1", "A", "L1", biggest)
    outcome = await engine.reserve("r1", WEB, "o1", [line("A", biggest)])
    assert outcome.order is not None
    assert outcome.order.lines[0].reserved == biggest
    assert outcome.skus["A"].locations["L1"].reserved == biggest
    await assert_outcome_is_current(engine, outcome)


@pytest.mark.parametrize("script", ["order.release", "order.fulfil", "order.return"])
@pytest.mark.parametrize("qty", [0, -1, 1.5, True, "1", None])
async def test_order_scripts_refuse_a_bad_partial_quantity(
    engine: Engine, redis: aioredis.Redis, script: str, qty: Any
) -> None:
    await _with_order(engine)
    args = {"skus": ["A"], "order_id": "o1", "location": "L1", "lines": [{"sku": "A", "qty": qty}]}
    await refused_by_script(
        redis, engine, "INVALID_QUANTITY", script, order_keys("o1", "x", "A"), args
    )


@pytest.mark.parametrize("ttl_ms", [0, -5, 1.5, True, "60000", None])
async def test_hold_script_refuses_a_bad_ttl(
    engine: Engine, redis: aioredis.Redis, ttl_ms: Any
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    args = {
        "skus": ["A"],
        "channel": "checkout",
        "order_id": "H1",
        "ttl_ms": ttl_ms,
        "lines": [{"sku": "A", "location": "L1", "qty": 1}],
    }
    keys = [k.hold_event("H1", "x"), k.hold("H1"), k.HOLDS_EXPIRY, k.inventory("A")]
    await refused_by_script(redis, engine, "INVALID_QUANTITY", "hold.place", keys, args)


async def test_an_order_without_lines_is_refused_by_python_and_by_the_script(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await refused(redis, InvalidRequest, lambda: engine.reserve("r1", WEB, "o1", []))
    args = {"skus": [], "channel": WEB, "order_id": "o1", "lines": []}
    await refused_by_script(
        redis, engine, "INVALID_REQUEST", "order.reserve", order_keys("o1", "x"), args
    )


async def test_a_line_without_location_is_refused_by_python_and_by_the_script(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    await refused(
        redis, InvalidRequest, lambda: engine.reserve("r1", WEB, "o1", [line("A", 1, None)])
    )
    args = {"skus": ["A"], "channel": WEB, "order_id": "o1", "lines": [{"sku": "A", "qty": 1}]}
    await refused_by_script(
        redis, engine, "INVALID_REQUEST", "order.reserve", order_keys("o1", "x", "A"), args
    )


# --- order.reserve ----------------------------------------------------------------------------


async def test_multi_line_reserve_reserves_every_line_and_bumps_each_sku_once(
    engine: Engine,
) -> None:
    await stocked(engine, {"A": {"L1": 5, "L2": 5}, "B": {"L1": 5}})
    lines = [line("A", 2), line("B", 1), line("A", 3, "L2")]
    outcome = await engine.reserve("r1", WEB, "o1", lines)
    assert not outcome.duplicate
    assert outcome.skus["A"].version == 3  # two counts and one reservation
    assert outcome.skus["B"].version == 2
    assert outcome.skus["A"].locations["L1"].reserved == 2
    assert outcome.skus["A"].locations["L2"].reserved == 3
    assert outcome.skus["B"].locations["L1"].reserved == 1
    assert outcome.order is not None
    assert outcome.order.state == "reserved"
    assert [(x.sku, x.location, x.qty, x.reserved) for x in outcome.order.lines] == [
        ("A", "L1", 2, 2),
        ("B", "L1", 1, 1),
        ("A", "L2", 3, 3),
    ]
    await assert_outcome_is_current(engine, outcome)


async def test_reserve_with_the_last_line_short_reserves_nothing(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 5}, "B": {"L1": 5}, "C": {"L1": 1}})
    lines = [line("A", 2), line("B", 5), line("C", 2)]
    err = await refused(redis, OutOfStock, lambda: engine.reserve("r1", WEB, "o1", lines))
    assert isinstance(err, OutOfStock)
    assert err.shortages == [{"sku": "C", "location": "L1", "requested": 2, "free": 1}]
    assert await engine.order(WEB, "o1") is None


async def test_out_of_stock_lists_every_short_line(engine: Engine, redis: aioredis.Redis) -> None:
    await stocked(engine, {"A": {"L1": 1}, "B": {"L1": 5}})
    lines = [line("A", 2), line("B", 1), line("C", 1, "L2")]
    err = await refused(redis, OutOfStock, lambda: engine.reserve("r1", WEB, "o1", lines))
    assert isinstance(err, OutOfStock)
    assert [(s["sku"], s["free"]) for s in err.shortages] == [("A", 1), ("C", 0)]


async def test_two_lines_on_the_same_unit_are_summed_against_free_stock(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 3}})
    two_and_two = [line("A", 2), line("A", 2)]
    err = await refused(redis, OutOfStock, lambda: engine.reserve("r1", WEB, "o1", two_and_two))
    assert isinstance(err, OutOfStock)
    assert err.shortages[0]["requested"] == 4
    outcome = await engine.reserve("r2", WEB, "o1", [line("A", 1), line("A", 2)])
    assert outcome.order is not None
    assert [(x.qty, x.reserved) for x in outcome.order.lines] == [(3, 3)]


async def test_reservations_may_use_safety_stock_but_never_damaged_units(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 10}})
    await engine.count("s1", "A", "L1", 4, state="safety_stock")
    await engine.count("d1", "A", "L1", 3, state="damaged")
    err = await refused(redis, OutOfStock, lambda: engine.reserve("r1", WEB, "o1", [line("A", 8)]))
    assert isinstance(err, OutOfStock)
    assert err.shortages[0]["free"] == 7
    outcome = await engine.reserve("r2", WEB, "o1", [line("A", 7)])
    state = outcome.skus["A"].locations["L1"]
    assert (state.reserved, state.available) == (7, 0)


async def test_reserve_of_a_never_stocked_sku_is_out_of_stock(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await refused(redis, OutOfStock, lambda: engine.reserve("r1", WEB, "o1", [line("GHOST", 1)]))
    assert await engine.stock("GHOST") is None


async def test_bundle_line_and_its_own_component_count_together(
    redis: aioredis.Redis, clock: FakeClock
) -> None:
    # Medusa issue 16502: a kit of 2 A plus one more A on its own line needs 3 A, not 2.
    kit = Bundle(sku="KIT", components={"A": 2, "B": 1})
    async with Engine(redis, clock=clock, bundles={"KIT": kit}) as engine:
        await stocked(engine, {"A": {"L1": 2}, "B": {"L1": 5}})
        lines = [line("KIT", 1), line("A", 1)]
        err = await refused(redis, OutOfStock, lambda: engine.reserve("r1", WEB, "o1", lines))
        assert isinstance(err, OutOfStock)
        assert err.shortages == [{"sku": "A", "location": "L1", "requested": 3, "free": 2}]
        await engine.adjust("a1", "A", "L1", 1)
        outcome = await engine.reserve("r2", WEB, "o1", lines)
        assert outcome.order is not None
        assert [(x.sku, x.reserved) for x in outcome.order.lines] == [("A", 3), ("B", 1)]
        assert outcome.order.requested == lines
        assert outcome.skus["A"].locations["L1"].reserved == 3


async def test_bundle_partial_release_frees_its_components(
    redis: aioredis.Redis, clock: FakeClock
) -> None:
    kit = Bundle(sku="KIT", components={"A": 2, "B": 1})
    async with Engine(redis, clock=clock, bundles={"KIT": kit}) as engine:
        await stocked(engine, {"A": {"L1": 10}, "B": {"L1": 10}})
        await engine.reserve("r1", WEB, "o1", [line("KIT", 3)])
        outcome = await engine.release("x1", WEB, "o1", [line("KIT", 1, None)])
        assert outcome.skus["A"].locations["L1"].reserved == 4
        assert outcome.skus["B"].locations["L1"].reserved == 2


async def test_existing_order_id_under_a_new_event_id_is_refused(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    await engine.reserve("r1", WEB, "o1", [line("A", 1)])
    await refused(redis, OrderExists, lambda: engine.reserve("r2", WEB, "o1", [line("A", 1)]))
    # The same order id on another channel is another order.
    assert not (await engine.reserve("r2", "pos", "o1", [line("A", 1)])).duplicate


async def test_reserve_replayed_returns_the_order_without_reserving_again(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    first = await engine.reserve("r1", WEB, "o1", [line("A", 2)])
    before = await dump(redis)
    again = await engine.reserve("r1", WEB, "o1", [line("A", 2)])
    assert again.duplicate
    assert again.order == first.order
    assert again.skus == first.skus
    assert await dump(redis) == before


async def test_refused_reservation_is_not_remembered_and_succeeds_after_restock(
    engine: Engine,
) -> None:
    await stocked(engine, {"A": {"L1": 1}})
    with pytest.raises(OutOfStock):
        await engine.reserve("r1", WEB, "o1", [line("A", 2)])
    await engine.adjust("a1", "A", "L1", 1)
    retry = await engine.reserve("r1", WEB, "o1", [line("A", 2)])
    assert not retry.duplicate
    assert retry.skus["A"].locations["L1"].reserved == 2


# --- order.release ----------------------------------------------------------------------------


async def _order(engine: Engine, *lines: Line) -> None:
    await stocked(engine, {"A": {"L1": 10, "L2": 10}, "B": {"L1": 10}})
    await engine.reserve("r1", WEB, "o1", list(lines))


async def test_whole_release_frees_everything_and_cancels_the_order(engine: Engine) -> None:
    await _order(engine, line("A", 3), line("B", 2))
    outcome = await engine.release("x1", WEB, "o1")
    assert outcome.order is not None
    assert outcome.order.state == "cancelled"
    assert [(x.reserved, x.released) for x in outcome.order.lines] == [(0, 3), (0, 2)]
    assert outcome.skus["A"].locations["L1"].reserved == 0
    assert outcome.skus["B"].locations["L1"].reserved == 0
    assert (outcome.skus["A"].version, outcome.skus["B"].version) == (4, 3)
    await assert_outcome_is_current(engine, outcome)


async def test_partial_release_frees_only_the_units_asked(engine: Engine) -> None:
    await _order(engine, line("A", 3), line("B", 2))
    outcome = await engine.release("x1", WEB, "o1", [line("A", 1, None)])
    assert outcome.order is not None
    assert outcome.order.state == "reserved"
    assert [(x.reserved, x.released) for x in outcome.order.lines] == [(2, 1), (2, 0)]
    assert outcome.skus["A"].locations["L1"].reserved == 2
    assert set(outcome.skus) == {"A"}


async def test_partial_release_spreads_over_that_skus_lines_in_order(engine: Engine) -> None:
    await _order(engine, line("A", 2), line("A", 3, "L2"))
    outcome = await engine.release("x1", WEB, "o1", [line("A", 4, None)])
    assert outcome.order is not None
    assert [(x.location, x.reserved) for x in outcome.order.lines] == [("L1", 0), ("L2", 1)]
    assert outcome.skus["A"].locations["L2"].reserved == 1


async def test_partial_release_beyond_what_is_reserved_is_refused(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _order(engine, line("A", 3))
    await engine.release("x1", WEB, "o1", [line("A", 2, None)])
    err = await refused(
        redis, ExceedsReserved, lambda: engine.release("x2", WEB, "o1", [line("A", 2, None)])
    )
    assert (err.details["requested"], err.details["remaining"]) == (2, 1)
    await refused(
        redis, ExceedsReserved, lambda: engine.release("x3", WEB, "o1", [line("B", 1, None)])
    )


async def test_whole_release_of_a_cancelled_order_is_refused_with_nothing_reserved(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _order(engine, line("A", 3))
    await engine.release("x1", WEB, "o1")
    err = await refused(redis, NothingReserved, lambda: engine.release("x2", WEB, "o1"))
    assert err.details["state"] == "cancelled"


async def test_partial_cancel_after_partial_fulfilment_releases_only_what_is_still_reserved(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _order(engine, line("A", 5))
    await engine.fulfil("f1", WEB, "o1", [line("A", 2, None)])
    await refused(
        redis, ExceedsReserved, lambda: engine.release("x1", WEB, "o1", [line("A", 4, None)])
    )
    outcome = await engine.release("x1", WEB, "o1", [line("A", 3, None)])
    assert outcome.order is not None
    l1 = outcome.order.lines[0]
    assert (l1.reserved, l1.fulfilled, l1.released) == (0, 2, 3)
    assert outcome.order.state == "fulfilled"
    state = outcome.skus["A"].locations["L1"]
    assert (state.on_hand, state.reserved) == (8, 0)


async def test_whole_cancel_after_partial_fulfilment_releases_the_rest(engine: Engine) -> None:
    await _order(engine, line("A", 5), line("B", 1))
    await engine.fulfil("f1", WEB, "o1", [line("A", 2, None)])
    outcome = await engine.release("x1", WEB, "o1")
    assert outcome.order is not None
    assert [(x.reserved, x.fulfilled, x.released) for x in outcome.order.lines] == [
        (0, 2, 3),
        (0, 0, 1),
    ]
    assert outcome.skus["A"].locations["L1"] == LocationState(on_hand=8, available=8)


@pytest.mark.parametrize("partial", [False, True], ids=["whole", "partial"])
@pytest.mark.parametrize("op", ["release", "fulfil", "return_"])
async def test_an_unknown_order_is_refused(
    engine: Engine, redis: aioredis.Redis, op: str, partial: bool
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    lines = [line("A", 1, None)] if partial else None
    calls = {
        "release": lambda: engine.release("x1", WEB, "nope", lines),
        "fulfil": lambda: engine.fulfil("x1", WEB, "nope", lines),
        "return_": lambda: engine.return_("x1", WEB, "nope", "L1", lines),
    }
    await refused(redis, UnknownOrder, calls[op])


@pytest.mark.parametrize("op", ["release", "fulfil", "return_"])
async def test_order_event_replayed_is_a_duplicate(
    engine: Engine, redis: aioredis.Redis, op: str
) -> None:
    await _order(engine, line("A", 4))
    await engine.fulfil("f0", WEB, "o1", [line("A", 2, None)])
    calls = {
        "release": lambda: engine.release("x1", WEB, "o1", [line("A", 1, None)]),
        "fulfil": lambda: engine.fulfil("x1", WEB, "o1", [line("A", 1, None)]),
        "return_": lambda: engine.return_("x1", WEB, "o1", "L2", [line("A", 1, None)]),
    }
    first = await calls[op]()
    before = await dump(redis)
    again = await calls[op]()
    assert again.duplicate and not first.duplicate
    assert (again.order, again.skus) == (first.order, first.skus)
    assert await dump(redis) == before


async def test_an_event_id_is_remembered_per_order_whatever_the_operation(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _order(engine, line("A", 4))
    before = await dump(redis)
    # The reservation's own event id reused for a cancel of the same order: already applied.
    assert (await engine.release("r1", WEB, "o1")).duplicate
    assert await dump(redis) == before


# --- order.fulfil -----------------------------------------------------------------------------


async def test_whole_fulfil_drops_on_hand_and_reserved(engine: Engine) -> None:
    await _order(engine, line("A", 3), line("B", 2))
    outcome = await engine.fulfil("f1", WEB, "o1")
    assert outcome.order is not None
    assert outcome.order.state == "fulfilled"
    assert outcome.skus["A"].locations["L1"] == LocationState(on_hand=7, available=7)
    assert outcome.skus["B"].locations["L1"] == LocationState(on_hand=8, available=8)
    await assert_outcome_is_current(engine, outcome)


async def test_partial_fulfil_leaves_the_order_partially_fulfilled(engine: Engine) -> None:
    await _order(engine, line("A", 3))
    outcome = await engine.fulfil("f1", WEB, "o1", [line("A", 1, None)])
    assert outcome.order is not None
    assert outcome.order.state == "partially_fulfilled"
    state = outcome.skus["A"].locations["L1"]
    assert (state.on_hand, state.reserved) == (9, 2)


async def test_fulfil_more_than_reserved_is_refused(engine: Engine, redis: aioredis.Redis) -> None:
    await _order(engine, line("A", 3))
    await refused(
        redis, ExceedsReserved, lambda: engine.fulfil("f1", WEB, "o1", [line("A", 4, None)])
    )


async def test_fulfil_of_a_cancelled_order_is_refused(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _order(engine, line("A", 3))
    await engine.release("x1", WEB, "o1")
    await refused(redis, NothingReserved, lambda: engine.fulfil("f1", WEB, "o1"))
    await refused(
        redis, ExceedsReserved, lambda: engine.fulfil("f2", WEB, "o1", [line("A", 1, None)])
    )


async def test_fulfil_of_a_fulfilled_order_is_refused(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _order(engine, line("A", 3))
    await engine.fulfil("f1", WEB, "o1")
    await refused(redis, NothingReserved, lambda: engine.fulfil("f2", WEB, "o1"))
    await refused(redis, NothingReserved, lambda: engine.release("x1", WEB, "o1"))


# --- order.return -----------------------------------------------------------------------------


async def test_return_restocks_at_a_different_location(engine: Engine) -> None:
    await _order(engine, line("A", 3))
    await engine.fulfil("f1", WEB, "o1")
    outcome = await engine.return_("t1", WEB, "o1", "STORE-9")
    assert outcome.order is not None
    assert outcome.order.state == "returned"
    assert outcome.order.lines[0].returned == 3
    assert outcome.skus["A"].locations["L1"].on_hand == 7
    assert outcome.skus["A"].locations["STORE-9"] == LocationState(on_hand=3, available=3)
    await assert_outcome_is_current(engine, outcome)


async def test_partial_returns_up_to_what_was_fulfilled_then_the_order_is_returned(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _order(engine, line("A", 3), line("B", 1))
    await engine.fulfil("f1", WEB, "o1")
    first = await engine.return_("t1", WEB, "o1", "L1", [line("A", 2, None)])
    assert first.order is not None
    assert first.order.state == "fulfilled"
    await refused(
        redis, ExceedsFulfilled, lambda: engine.return_("t2", WEB, "o1", "L1", [line("A", 2, None)])
    )
    rest = await engine.return_("t2", WEB, "o1", "L1")
    assert rest.order is not None
    assert rest.order.state == "returned"
    assert [(x.sku, x.returned) for x in rest.order.lines] == [("A", 3), ("B", 1)]
    assert rest.skus["A"].locations["L1"].on_hand == 10
    await refused(redis, ExceedsFulfilled, lambda: engine.return_("t3", WEB, "o1", "L1"))


async def test_return_of_an_unfulfilled_order_is_refused(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _order(engine, line("A", 3))
    await refused(redis, ExceedsFulfilled, lambda: engine.return_("t1", WEB, "o1", "L1"))
    await engine.release("x1", WEB, "o1")
    await refused(redis, ExceedsFulfilled, lambda: engine.return_("t1", WEB, "o1", "L1"))


async def test_return_of_part_of_a_partly_fulfilled_order_keeps_the_reservation(
    engine: Engine,
) -> None:
    await _order(engine, line("A", 4))
    await engine.fulfil("f1", WEB, "o1", [line("A", 1, None)])
    outcome = await engine.return_("t1", WEB, "o1", "L2")
    assert outcome.order is not None
    assert outcome.order.state == "partially_fulfilled"
    assert outcome.skus["A"].locations["L1"].reserved == 3
    assert outcome.skus["A"].locations["L2"].on_hand == 11


# --- holds ------------------------------------------------------------------------------------


async def test_place_hold_reserves_with_an_expiry(engine: Engine, redis: aioredis.Redis) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    outcome = await engine.place_hold("h1", "H1", [line("A", 2)], ttl_s=900)
    assert outcome.order is not None
    assert (outcome.order.kind, outcome.order.state) == ("hold", "held")
    assert outcome.order.expires_ms == engine._now_ms() + 900_000
    assert outcome.skus["A"].locations["L1"].reserved == 2
    assert await redis.zscore(k.HOLDS_EXPIRY, k.hold("H1")) == outcome.order.expires_ms
    await assert_outcome_is_current(engine, outcome)


async def test_place_hold_short_of_stock_is_refused(engine: Engine, redis: aioredis.Redis) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    await refused(redis, OutOfStock, lambda: engine.place_hold("h1", "H1", [line("A", 6)], 60))


async def test_place_hold_with_a_used_hold_id_is_refused(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    await engine.place_hold("h1", "H1", [line("A", 1)], 60)
    await engine.release_hold("h2", "H1")
    await refused(redis, HoldExists, lambda: engine.place_hold("h3", "H1", [line("A", 1)], 60))


async def test_place_hold_replayed_is_a_duplicate(engine: Engine, redis: aioredis.Redis) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    first = await engine.place_hold("h1", "H1", [line("A", 2)], 60)
    before = await dump(redis)
    again = await engine.place_hold("h1", "H1", [line("A", 2)], 60)
    assert again.duplicate
    assert again.order == first.order
    assert await dump(redis) == before


async def test_hold_lapses_only_after_its_ttl(engine: Engine, clock: FakeClock) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    await engine.place_hold("h1", "H1", [line("A", 2)], ttl_s=60)
    clock.advance(59.999)
    assert await engine.expire_holds() == []
    assert (await stock(engine, "A")).reserved == 2
    clock.advance(0.001)
    (expired,) = await engine.expire_holds()
    assert expired.order is not None
    assert expired.order.state == "expired"
    assert expired.skus["A"].locations["L1"].reserved == 0
    assert expired.skus["A"].version == 3
    hold = await engine.hold("H1")
    assert hold is not None and hold.state == "expired"
    assert await engine.expire_holds() == []


async def test_expiry_sweep_of_a_hold_still_in_its_time_is_refused(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    await engine.place_hold("h1", "H1", [line("A", 2)], ttl_s=60)
    await refused(
        redis, NotExpired, lambda: engine.release_hold("expire-H1", "H1", reason="expired")
    )


async def test_release_hold_frees_its_units(engine: Engine, redis: aioredis.Redis) -> None:
    await stocked(engine, {"A": {"L1": 5}, "B": {"L2": 5}})
    await engine.place_hold("h1", "H1", [line("A", 2), line("B", 5, "L2")], ttl_s=60)
    outcome = await engine.release_hold("h2", "H1")
    assert outcome.order is not None
    assert outcome.order.state == "released"
    assert outcome.skus["A"].locations["L1"].reserved == 0
    assert outcome.skus["B"].locations["L2"].reserved == 0
    assert await redis.zcard(k.HOLDS_EXPIRY) == 0
    await assert_outcome_is_current(engine, outcome)


async def test_release_hold_twice_is_refused_but_replaying_it_is_a_duplicate(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 5}})
    await engine.place_hold("h1", "H1", [line("A", 2)], ttl_s=60)
    await engine.release_hold("h2", "H1")
    assert (await engine.release_hold("h2", "H1")).duplicate
    err = await refused(redis, NothingReserved, lambda: engine.release_hold("h3", "H1"))
    assert err.details["state"] == "released"


async def test_release_of_an_unknown_hold_is_refused(engine: Engine, redis: aioredis.Redis) -> None:
    await refused(redis, UnknownHold, lambda: engine.release_hold("h1", "NOPE"))


async def test_order_converts_a_hold_when_stock_is_otherwise_exhausted(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await stocked(engine, {"A": {"L1": 3}, "B": {"L1": 1}})
    await engine.place_hold("h1", "H1", [line("A", 2), line("B", 1)], ttl_s=900)
    await engine.reserve("r0", WEB, "other", [line("A", 1)])  # A is now fully claimed
    await refused(redis, OutOfStock, lambda: engine.reserve("r1", WEB, "o1", [line("A", 2)]))
    outcome = await engine.reserve("r1", WEB, "o1", [line("A", 2)], hold_id="H1")
    assert outcome.order is not None
    assert outcome.order.state == "reserved"
    # The hold's B unit is freed too, in the same step.
    assert outcome.skus["A"].locations["L1"].reserved == 3
    assert outcome.skus["B"].locations["L1"].reserved == 0
    assert (outcome.skus["A"].version, outcome.skus["B"].version) == (4, 3)
    hold = await engine.hold("H1")
    assert hold is not None
    assert (hold.state, hold.converted_to) == ("converted", "web/o1")
    assert [x.reserved for x in hold.lines] == [0, 0]
    assert await redis.zcard(k.HOLDS_EXPIRY) == 0
    await assert_outcome_is_current(engine, outcome)


async def test_a_converted_hold_is_not_released_again_by_the_expiry_sweep(
    engine: Engine, clock: FakeClock
) -> None:
    await stocked(engine, {"A": {"L1": 2}})
    await engine.place_hold("h1", "H1", [line("A", 2)], ttl_s=60)
    await engine.reserve("r1", WEB, "o1", [line("A", 2)], hold_id="H1")
    clock.advance(3600)
    assert await engine.expire_holds() == []
    assert (await stock(engine, "A")).reserved == 2


async def test_an_order_gets_no_credit_from_a_hold_that_is_no_longer_held(
    engine: Engine, redis: aioredis.Redis, clock: FakeClock
) -> None:
    await stocked(engine, {"A": {"L1": 2}})
    await engine.place_hold("h1", "H1", [line("A", 2)], ttl_s=60)
    clock.advance(61)
    await engine.expire_holds()
    await engine.reserve("r0", WEB, "other", [line("A", 1)])
    await refused(
        redis, OutOfStock, lambda: engine.reserve("r1", WEB, "o1", [line("A", 2)], hold_id="H1")
    )
    outcome = await engine.reserve("r1", WEB, "o1", [line("A", 1)], hold_id="H1")
    hold = await engine.hold("H1")
    assert hold is not None and hold.state == "expired"
    assert outcome.skus["A"].locations["L1"].reserved == 2


async def test_hold_conversion_without_the_key_of_a_held_sku_changes_nothing(
    engine: Engine, redis: aioredis.Redis
) -> None:
    # Engine.reserve reads the hold to pass its SKUs' keys; if the hold appears after that read,
    # the script must refuse before releasing any of it, not halfway through.
    await stocked(engine, {"A": {"L1": 5}, "B": {"L1": 5}})
    await engine.place_hold("h1", "H1", [line("A", 1), line("B", 1)], ttl_s=60)
    args = {
        "skus": ["A"],
        "channel": WEB,
        "order_id": "o1",
        "hold": "H1",
        "lines": [{"sku": "A", "location": "L1", "qty": 1}],
    }
    keys = [
        k.order_event(WEB, "o1", "r1"),
        k.order(WEB, "o1"),
        k.hold("H1"),
        k.HOLDS_EXPIRY,
        k.inventory("A"),
    ]
    await refused_by_script(redis, engine, "KEYS_MISMATCH", "order.reserve", keys, args)


# --- versions, outcomes, scripts, markers -----------------------------------------------------


async def test_every_applied_change_bumps_the_version_once_and_duplicates_never(
    engine: Engine, clock: FakeClock
) -> None:
    steps = [
        lambda: engine.count("c1", "A", "L1", 10),
        lambda: engine.count("c2", "A", "L1", 2, state="safety_stock"),
        lambda: engine.adjust("a1", "A", "L2", 5),
        lambda: engine.reserve("r1", WEB, "o1", [line("A", 2), line("A", 1, "L2"), line("A", 1)]),
        lambda: engine.fulfil("f1", WEB, "o1", [line("A", 2, None)]),
        lambda: engine.release("x1", WEB, "o1"),
        lambda: engine.return_("t1", WEB, "o1", "L2"),
        lambda: engine.place_hold("h1", "H1", [line("A", 1)], 10),
        lambda: engine.release_hold("h2", "H1"),
    ]
    expected = 0
    for step in steps:
        expected += 1
        assert (await step()).skus["A"].version == expected
        assert (await step()).skus["A"].version == expected  # replayed: a duplicate
    await engine.place_hold("h3", "H2", [line("A", 1)], 10)
    clock.advance(11)
    (expired,) = await engine.expire_holds()
    assert expired.skus["A"].version == expected + 2


async def test_a_refusal_never_bumps_the_version(engine: Engine) -> None:
    await stocked(engine, {"A": {"L1": 1}})
    for call in (
        lambda: engine.adjust("a1", "A", "L1", -2),
        lambda: engine.reserve("r1", WEB, "o1", [line("A", 2)]),
        lambda: engine.release("x1", WEB, "o1"),
    ):
        with pytest.raises(InvsyncError):
            await call()
    assert await version(engine, "A") == 1


async def test_calls_survive_a_script_flush(engine: Engine, redis: aioredis.Redis) -> None:
    await engine.count("c1", "A", "L1", 5)
    await redis.script_flush()
    outcome = await engine.adjust("a1", "A", "L1", 1)
    assert outcome.skus["A"].locations["L1"].on_hand == 6
    assert await redis.script_exists(*engine.scripts.sha.values()) == [True] * 8


async def test_batched_calls_survive_a_script_flush(engine: Engine, redis: aioredis.Redis) -> None:
    await engine.count("c1", "A", "L1", 100)
    await redis.script_flush()
    outcomes = await asyncio.gather(
        *(engine.reserve(f"r{i}", WEB, f"o{i}", [line("A", 1)]) for i in range(40))
    )
    assert not any(o.duplicate for o in outcomes)
    assert (await stock(engine, "A")).reserved == 40


async def test_idempotency_markers_expire_after_the_configured_ttl(
    redis: aioredis.Redis, clock: FakeClock
) -> None:
    async with Engine(redis, clock=clock, idempotency_ttl_s=1) as engine:
        await engine.count("c1", "A", "L1", 5)
        await engine.reserve("r1", WEB, "o1", [line("A", 1)])
        await engine.place_hold("h1", "H1", [line("A", 1)], 60)
        markers = [k.sku_event("A", "c1"), k.order_event(WEB, "o1", "r1"), k.hold_event("H1", "h1")]
        for marker in markers:
            assert 0 < await redis.pttl(marker) <= 1000
        # Records themselves do not expire: only the markers do.
        assert await redis.pttl(k.order(WEB, "o1")) == -1
        for _ in range(30):
            if not await redis.exists(*markers):
                break
            await asyncio.sleep(0.05)
        assert await redis.exists(*markers) == 0
        # Once forgotten, the same event id is applied again.
        again = await engine.count("c1", "A", "L1", 5)
        assert not again.duplicate


async def test_the_default_marker_ttl_is_three_days(engine: Engine, redis: aioredis.Redis) -> None:
    await engine.count("c1", "A", "L1", 5)
    assert 3 * 86_400_000 - 60_000 < await redis.pttl(k.sku_event("A", "c1")) <= 3 * 86_400_000


async def test_duplicate_outcomes_carry_the_current_state(engine: Engine) -> None:
    await _order(engine, line("A", 3))
    await engine.fulfil("f1", WEB, "o1", [line("A", 1, None)])
    replay = await engine.reserve("r1", WEB, "o1", [line("A", 3)])
    assert replay.duplicate
    assert replay.order is not None
    assert replay.order.state == "partially_fulfilled"
    await assert_outcome_is_current(engine, replay)
