"""The fulfillment outbox (engine/handoff.py) on a real store: what each location is told of an
order, derived from the reserved order only, queued once, in order, with each part's state."""

from __future__ import annotations

import asyncio

import msgspec
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invsync.core.fulfillment_messages import Message
from invsync.engine import handoff
from invsync.engine.engine import Engine
from invsync.engine.models import Line

WH = {"wh-east": True, "wh-west": True}


async def _outbox(redis: aioredis.Redis, location: str) -> list[Message]:
    entries = await redis.xrange(handoff.outbox_key(location))
    return [msgspec.json.decode(fields[b"msg"], type=Message) for _, fields in entries]


async def _stock(engine: Engine, sku: str, **where: int) -> None:
    for location, qty in where.items():
        await engine.count(f"count-{sku}-{location}", sku, location.replace("_", "-"), qty)


async def test_a_reserved_part_is_requested_once_with_its_lines(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _stock(engine, "TEE", wh_east=5)
    out = await engine.reserve("e1", "shop", "O-1", [Line(sku="TEE", qty=2, location="wh-east")])
    assert out.order is not None
    sent = await handoff.sync_order(
        redis, out.order, WH, now_ms=1000, ship_to={"country": "US"}, sla_days=2
    )
    assert [(m.type, m.location, [(x.sku, x.qty) for x in m.lines]) for m in sent] == [
        ("fulfillment.requested", "wh-east", [("TEE", 2)])
    ]
    assert sent[0].ship_to == {"country": "US"} and sent[0].sla_days == 2
    assert sent[0].ref.startswith("IS") and len(sent[0].ref) <= 22
    # The same order again (a re-delivered event, a restart): nothing new is queued.
    assert await handoff.sync_order(redis, out.order, WH, now_ms=2000) == []
    assert [m.id for m in await _outbox(redis, "wh-east")] == [sent[0].id]
    parts = await handoff.read_parts(redis, "shop", "O-1")
    assert parts["wh-east"].state == "queued" and parts["wh-east"].lines == {"TEE": 2}
    assert await handoff.ref_part(redis, sent[0].ref) == ("shop", "O-1", "wh-east")


async def test_locations_without_fulfillment_are_told_nothing(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _stock(engine, "TEE", store_sf=5)
    out = await engine.reserve("e1", "shop", "O-2", [Line(sku="TEE", qty=1, location="store-sf")])
    assert out.order is not None
    assert await handoff.sync_order(redis, out.order, WH, now_ms=1) == []
    assert await redis.exists(handoff.outbox_key("store-sf")) == 0


async def test_cancel_and_reroute_withdraw_from_one_location_and_request_at_the_other(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _stock(engine, "TEE", wh_east=5, wh_west=5)
    await _stock(engine, "CAP", wh_east=5)
    lines = [Line(sku="TEE", qty=2, location="wh-east"), Line(sku="CAP", qty=1, location="wh-east")]
    out = await engine.reserve("e1", "shop", "O-3", lines)
    assert out.order is not None
    await handoff.sync_order(redis, out.order, WH, now_ms=1)
    # Partial cancel: one TEE withdrawn, the rest of the part stays.
    part = await engine.release("e2", "shop", "O-3", [Line(sku="TEE", qty=1)])
    assert part.order is not None
    [cancel] = await handoff.sync_order(redis, part.order, WH, now_ms=2)
    assert cancel.type == "fulfillment.cancelled"
    assert [(x.sku, x.qty) for x in cancel.lines] == [("TEE", 1)]
    assert cancel.remaining is not None
    assert sorted((x.sku, x.qty) for x in cancel.remaining) == [("CAP", 1), ("TEE", 1)]
    # A re-route: everything left released at wh-east, reserved again at wh-west.
    gone = await engine.release("e3", "shop", "O-3")
    assert gone.order is not None
    [withdrawn] = await handoff.sync_order(redis, gone.order, WH, now_ms=3)
    assert withdrawn.type == "fulfillment.cancelled" and withdrawn.remaining == []
    parts = await handoff.read_parts(redis, "shop", "O-3")
    assert parts["wh-east"].state == "cancelling" and parts["wh-east"].lines == {}
    east = await _outbox(redis, "wh-east")
    assert [m.seq for m in east] == [1, 2, 3]  # in the order they were queued
    assert [m.type for m in east] == [
        "fulfillment.requested", "fulfillment.cancelled", "fulfillment.cancelled"
    ]


async def test_shipped_units_stay_part_of_the_request(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _stock(engine, "TEE", wh_east=5)
    out = await engine.reserve("e1", "shop", "O-4", [Line(sku="TEE", qty=3, location="wh-east")])
    assert out.order is not None
    await handoff.sync_order(redis, out.order, WH, now_ms=1)
    shipped = await engine.fulfil("e2", "shop", "O-4", [Line(sku="TEE", qty=3)])
    assert shipped.order is not None
    assert await handoff.sync_order(redis, shipped.order, WH, now_ms=2) == []


async def test_mark_records_the_delivery_unless_a_later_message_superseded_it(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _stock(engine, "TEE", wh_east=5)
    out = await engine.reserve("e1", "shop", "O-5", [Line(sku="TEE", qty=2, location="wh-east")])
    assert out.order is not None
    [first] = await handoff.sync_order(redis, out.order, WH, now_ms=1)
    gone = await engine.release("e2", "shop", "O-5")
    assert gone.order is not None
    [second] = await handoff.sync_order(redis, gone.order, WH, now_ms=2)
    stale = await handoff.mark(redis, first, "acknowledged", now_ms=3)
    assert stale is not None and stale.state == "cancelling"  # the request's ack is stale
    done = await handoff.mark(redis, second, "acknowledged", now_ms=4)
    assert done is not None and done.state == "cancelled" and done.acked_ms == 4


async def test_concurrent_syncs_of_one_order_queue_each_change_once(
    engine: Engine, redis: aioredis.Redis
) -> None:
    """The daemon serialises calls per order; concurrent calls of *different* orders never mix."""
    await _stock(engine, "TEE", wh_east=100)
    orders = []
    for i in range(20):
        out = await engine.reserve(
            f"e{i}", "shop", f"O-{i}", [Line(sku="TEE", qty=1, location="wh-east")]
        )
        assert out.order is not None
        orders.append(out.order)
    results = await asyncio.gather(
        *(handoff.sync_order(redis, order, WH, now_ms=1) for order in orders)
    )
    assert all(len(r) == 1 for r in results)
    queued = await _outbox(redis, "wh-east")
    assert sorted(m.order_id for m in queued) == sorted(f"O-{i}" for i in range(20))
    assert len({m.ref for m in queued}) == 20


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["release", "fulfil"]), st.integers(1, 3)), max_size=6
    )
)
async def test_the_messages_always_add_up_to_the_part(
    engine: Engine, redis: aioredis.Redis, steps: list[tuple[str, int]]
) -> None:
    """Whatever is released or shipped, the requested minus cancelled units of every message
    queued equal the units reserved or shipped at the location: the location's view is exact."""
    await redis.flushdb()
    await _stock(engine, "TEE", wh_east=50)
    out = await engine.reserve("r", "shop", "P", [Line(sku="TEE", qty=8, location="wh-east")])
    assert out.order is not None
    await handoff.sync_order(redis, out.order, WH, now_ms=1)
    order = out.order
    for i, (op, qty) in enumerate(steps):
        left = sum(x.reserved for x in order.lines)
        if left == 0:
            break
        q = min(qty, left)
        call = engine.release if op == "release" else engine.fulfil
        result = await call(f"s{i}", "shop", "P", [Line(sku="TEE", qty=q)])
        assert result.order is not None
        order = result.order
        await handoff.sync_order(redis, order, WH, now_ms=2 + i)
    told = 0
    for message in await _outbox(redis, "wh-east"):
        units = sum(x.qty for x in message.lines)
        told += units if message.type == "fulfillment.requested" else -units
    line = order.lines[0]
    assert told == line.reserved + line.fulfilled


async def test_holds_are_never_handed_to_a_location(
    engine: Engine, redis: aioredis.Redis
) -> None:
    await _stock(engine, "TEE", wh_east=5)
    held = await engine.place_hold(
        "h1", "HOLD-1", [Line(sku="TEE", qty=1, location="wh-east")], 60, channel="shop"
    )
    assert held.order is not None and held.order.kind == "hold"
    assert await handoff.sync_order(redis, held.order, WH, now_ms=1) == []
