"""Intake stream + processor against a real store: order, idempotency, routing, crash replay."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from invsync.core.config import Config, load_config
from invsync.core.events import decode_events
from invsync.daemon.intake import Entry, Intake
from invsync.daemon.processor import Processor
from invsync.engine import keys
from invsync.engine.engine import Engine
from invsync.engine.models import SkuState

CONFIG = """
[[locations]]
id = "wh-east"
priority = 1

[[locations]]
id = "wh-west"
priority = 2

[[channels]]
id = "shop"
kind = "shopify"

[[channels]]
id = "b2b"
kind = "webhook"
url = "http://127.0.0.1:9/"
secret_env = "B2B_SECRET"
locations = ["wh-west"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return load_config(path)


class Harness:
    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        self.intake = Intake(engine.redis, consumer="test")
        self.notified: list[SkuState] = []
        self.processor = Processor(engine, lambda: config, self._notify)

    async def _notify(self, state: SkuState, accepted_ms: int) -> None:
        self.notified.append(state)

    async def send(self, *events: dict[str, object]) -> list[str]:
        return await self.intake.append(
            decode_events(json.dumps(list(events)).encode()), source="test"
        )

    async def run_until_idle(self) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            self.intake.consume(self.processor.handle_batch, stop=stop, block_ms=50)
        )
        for _ in range(200):
            if await self.intake.lag() == 0:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 5)

    async def on_hand(self, sku: str, loc: str) -> tuple[int, int]:
        state = await self.engine.stock(sku)
        assert state is not None
        s = state.locations[loc]
        return s.on_hand, s.reserved


@pytest.fixture
async def h(engine: Engine, config: Config) -> Harness:
    harness = Harness(engine, config)
    await harness.intake.ensure_group()
    return harness


def count(eid: str, sku: str, loc: str, n: int) -> dict[str, object]:
    return {"id": eid, "type": "stock.counted", "sku": sku, "location": loc, "on_hand": n}


def order(eid: str, oid: str, *lines: tuple[str, int], channel: str = "shop") -> dict[str, object]:
    return {
        "id": eid,
        "type": "order.created",
        "channel": channel,
        "order_id": oid,
        "lines": [{"sku": s, "qty": q} for s, q in lines],
    }


async def test_events_of_one_sku_apply_in_stream_order(h: Harness) -> None:
    await h.send(
        count("c1", "TEE", "wh-east", 10),
        {"id": "a1", "type": "stock.adjusted", "sku": "TEE", "location": "wh-east", "delta": -3},
        count("c2", "TEE", "wh-east", 50),
        {"id": "a2", "type": "stock.adjusted", "sku": "TEE", "location": "wh-east", "delta": 5},
    )
    await h.run_until_idle()
    assert await h.on_hand("TEE", "wh-east") == (55, 0)
    versions = [s.version for s in h.notified if s.sku == "TEE"]
    assert versions == sorted(versions) and versions[-1] == 4


async def test_orders_route_to_the_first_location_that_serves_the_whole_order(h: Harness) -> None:
    await h.send(
        count("c1", "TEE", "wh-east", 1),
        count("c2", "TEE", "wh-west", 5),
        count("c3", "CAP", "wh-west", 5),
    )
    await h.send(order("o1", "1001", ("TEE", 2), ("CAP", 1)))
    await h.run_until_idle()
    record = await h.engine.order("shop", "1001")
    assert record is not None and {x.location for x in record.lines} == {"wh-west"}


async def test_channel_locations_limit_routing_and_an_unmeetable_order_is_recorded_oversold(
    h: Harness,
) -> None:
    await h.send(count("c1", "TEE", "wh-east", 10))
    await h.send(order("o1", "9", ("TEE", 1), channel="b2b"))  # b2b ships from wh-west only
    await h.run_until_idle()
    assert await h.engine.order("b2b", "9") is None
    raw = await h.engine.redis.get(keys.rejection("b2b", "9"))
    assert raw is not None and json.loads(raw)["state"] == "oversold"
    assert await h.on_hand("TEE", "wh-east") == (10, 0)
    results = await h.processor.wait_processed(["o1"], 1)
    assert results["o1"]["code"] == "OVERSOLD"


async def test_many_orders_for_the_last_units_take_one_per_location(h: Harness) -> None:
    await h.send(count("c1", "TEE", "wh-east", 1), count("c2", "TEE", "wh-west", 1))
    await h.send(*[order(f"o{i}", f"{i}", ("TEE", 1)) for i in range(20)])
    await h.run_until_idle()
    placed = [i for i in range(20) if await h.engine.order("shop", f"{i}") is not None]
    assert len(placed) == 2  # one per location, every other order recorded as oversold
    assert await h.on_hand("TEE", "wh-east") == (1, 1)
    assert await h.on_hand("TEE", "wh-west") == (1, 1)


async def test_refused_events_change_nothing_and_say_why(h: Harness) -> None:
    await h.send(count("c1", "TEE", "wh-east", 2))
    await h.send(
        {"id": "a1", "type": "stock.adjusted", "sku": "TEE", "location": "wh-east", "delta": -5}
    )
    await h.run_until_idle()
    assert await h.on_hand("TEE", "wh-east") == (2, 0)
    result = await h.processor.wait_processed(["a1", "never"], 0.1)
    assert result["a1"]["code"] == "NEGATIVE_STOCK"
    assert result["never"] == {"outcome": "pending"}


async def test_a_crash_before_acknowledging_replays_the_batch_exactly_once(h: Harness) -> None:
    await h.send(count("c1", "TEE", "wh-east", 10))
    await h.send(*[order(f"o{i}", f"{i}", ("TEE", 1)) for i in range(4)])

    async def crash_after(entries: list[Entry]) -> None:
        await h.processor.handle_batch(entries)
        raise RuntimeError("killed before XACK")

    with pytest.raises(RuntimeError):
        await h.intake.consume(crash_after, stop=asyncio.Event(), block_ms=50)
    assert await h.on_hand("TEE", "wh-east") == (10, 4)
    assert await h.intake.lag() > 0  # nothing was acknowledged
    await h.run_until_idle()  # the restarted consumer replays its pending entries
    assert await h.on_hand("TEE", "wh-east") == (10, 4)  # applied once, not twice
    assert await h.intake.lag() == 0


async def test_an_order_that_loses_the_race_for_a_location_is_routed_again(h: Harness) -> None:
    await h.send(count("c1", "TEE", "wh-east", 1), count("c2", "TEE", "wh-west", 1))
    await h.run_until_idle()
    events = decode_events(
        json.dumps([order("o1", "1", ("TEE", 1)), order("o2", "2", ("TEE", 1))]).encode()
    )
    # Applied side by side (as two daemons would): both route to wh-east (first by priority),
    # one reservation wins, the other gets INSUFFICIENT_STOCK and re-routes to wh-west.
    await asyncio.gather(
        *[
            h.processor.apply(Entry(id=f"{i}-0", event=e, source="test", accepted_ms=0))
            for i, e in enumerate(events, start=1)
        ]
    )
    one, two = await h.engine.order("shop", "1"), await h.engine.order("shop", "2")
    assert one is not None and two is not None
    assert {one.lines[0].location, two.lines[0].location} == {"wh-east", "wh-west"}


SLA_CONFIG = """
[routing]
zones = { "US-CA" = "west", US = "east" }
fallback = "unroutable"

[[locations]]
id = "wh-east"
priority = 1
transit_days = { east = 1, west = 5 }
ship_cost = { east = 4.0, west = 9.0 }

[[locations]]
id = "wh-west"
priority = 2
transit_days = { east = 5, west = 1 }
ship_cost = { east = 9.0, west = 3.0 }

[[channels]]
id = "shop"
kind = "shopify"
sla_days = 2
"""


async def test_orders_route_by_sla_and_explain_why(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "sla.toml"
    path.write_text(SLA_CONFIG)
    config = load_config(path)
    h = Harness(engine, config)
    await h.intake.ensure_group()
    await h.send(count("c1", "TEE", "wh-east", 5), count("c2", "TEE", "wh-west", 5))
    west = order("o1", "1", ("TEE", 1))
    west["ship_to"] = {"country": "US", "region": "CA"}
    await h.send(west)
    await h.run_until_idle()
    placed = await engine.order("shop", "1")
    # wh-east comes first by priority, but only wh-west reaches California within 2 days.
    assert placed is not None and placed.lines[0].location == "wh-west"
    why = json.loads(await engine.redis.get(keys.routing("shop", "1")) or b"{}")
    assert why["late"] is False and why["explanation"]["why"]


async def test_an_order_no_location_can_ship_within_the_sla_is_unroutable(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "sla.toml"
    path.write_text(SLA_CONFIG)
    config = load_config(path)
    h = Harness(engine, config)
    await h.intake.ensure_group()
    await h.send(count("c1", "TEE", "wh-east", 5))  # only the east coast has stock
    west = order("o1", "1", ("TEE", 1))
    west["ship_to"] = {"country": "US", "region": "CA"}
    await h.send(west)
    await h.run_until_idle()
    assert await engine.order("shop", "1") is None
    rejected = json.loads(await engine.redis.get(keys.rejection("shop", "1")) or b"{}")
    assert rejected["state"] == "unroutable"
    assert await h.on_hand("TEE", "wh-east") == (5, 0)  # nothing reserved


async def test_a_replayed_order_that_took_the_last_units_is_a_duplicate_not_an_oversell(
    h: Harness,
) -> None:
    """After a crash the batch is processed again: the order already holds the last units, so
    routing would find none free. It must answer duplicate and record no rejection."""
    await h.send(count("c1", "TEE", "wh-east", 2))
    await h.send(order("o1", "1001", ("TEE", 2)))
    await h.run_until_idle()
    await h.send(order("o1", "1001", ("TEE", 2)))  # the same event recorded again
    await h.run_until_idle()
    assert await h.engine.redis.get(keys.rejection("shop", "1001")) is None
    assert await h.on_hand("TEE", "wh-east") == (2, 2)
    [result] = (await h.processor.wait_processed(["o1"], 1)).values()
    assert result["outcome"] == "duplicate"


async def test_a_repeated_fulfilment_of_a_shipped_order_opens_no_incident(
    engine: Engine, config: Config
) -> None:
    """The warehouse reported the shipment first; the marketplace's own "fulfilled" message
    then finds nothing reserved: a repeat, not a bad event."""
    from invsync.daemon.incidents import ExceptionQueue

    queue = ExceptionQueue(engine, lambda: config)
    harness = Harness(engine, config)
    harness.processor.exceptions = queue
    await harness.intake.ensure_group()
    await harness.send(count("c1", "TEE", "wh-east", 5))
    await harness.send(order("o1", "1001", ("TEE", 2)))
    await harness.send({"id": "f1", "type": "order.fulfilled", "channel": "shop",
                        "order_id": "1001"})
    await harness.send({"id": "f2", "type": "order.fulfilled", "channel": "shop",
                        "order_id": "1001"})
    await harness.send({"id": "f3", "type": "order.fulfilled", "channel": "shop",
                        "order_id": "9999"})  # never reserved: still a bad event
    await harness.run_until_idle()
    records = await queue.query(state="open", kind="bad_event", channel=None, limit=10,
                                before_ms=None)
    assert [r.order_id for r in records] == ["9999"]


async def test_a_polled_cancellation_of_an_order_never_seen_opens_no_incident(
    engine: Engine, config: Config
) -> None:
    """eBay's poller can see an order for the first time already cancelled (created and
    cancelled between two polls): it never held stock here, so it is no bad event. The same
    cancellation arriving by webhook still is one."""
    from invsync.daemon.incidents import ExceptionQueue

    queue = ExceptionQueue(engine, lambda: config)
    harness = Harness(engine, config)
    harness.processor.exceptions = queue
    await harness.intake.ensure_group()
    cancel = decode_events(json.dumps(
        [{"id": "x1", "type": "order.cancelled", "channel": "shop", "order_id": "A-1"}]
    ).encode())
    await harness.intake.append(cancel, source="poll:shop")
    await harness.send({"id": "x2", "type": "order.cancelled", "channel": "shop",
                        "order_id": "A-2"})
    await harness.run_until_idle()
    records = await queue.query(state="open", kind="bad_event", channel=None, limit=10,
                                before_ms=None)
    assert [r.order_id for r in records] == ["A-2"]
