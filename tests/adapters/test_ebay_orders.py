"""The eBay order poll (getOrders by last-modified date) against the simulated eBay over
loopback, with its mark in a real Valkey; the events go to a recording intake."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from invsync.adapters.base import AdapterContext, RunsInBackground
from invsync.adapters.ebay import EbayAdapter, OrderPoller, create
from invsync.core.clock import ManualClock
from invsync.core.config import Faults
from invsync.core.events import Event, OrderCancelled, OrderCreated, ShipTo
from invsync.metrics import definitions as m
from invsync.simulators.core import SimLine
from invsync.simulators.ebay import EbaySimulator
from invsync.simulators.server import Simulator
from tests.adapters.ebay_helpers import Clock, clock, credentials, ebay_channel, make, sim

__all__ = ["clock", "credentials", "sim"]  # fixtures of ebay_helpers used here

#: 2026-12-03 20:00:00 UTC
EVENING = 1_796_328_000.0


class Wall:
    """Epoch seconds the test moves by hand, shared by the poller and the simulator."""

    def __init__(self, now: float = EVENING) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Intake:
    """Records what the poller ingests, as the daemon's intake would (ids, in order)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.sources: set[str] = set()

    async def __call__(self, events: list[Event], source: str) -> list[str]:
        self.events.extend(events)
        self.sources.add(source)
        return [e.id for e in events]

    def ids(self) -> list[str]:
        return [e.id for e in self.events]


@pytest.fixture
def wall(sim: EbaySimulator) -> Wall:
    moved = Wall()
    sim.wall = moved
    return moved


@pytest.fixture
def intake() -> Intake:
    return Intake()


def poller_of(adapter: EbayAdapter) -> OrderPoller:
    assert adapter.orders is not None
    return adapter.orders


def polls(outcome: str) -> float:
    return m.ORDER_POLLS.labels(channel="ebay", outcome=outcome)._value.get()


@pytest.fixture
def poller(
    simulator: Simulator,
    sim: EbaySimulator,
    session: aiohttp.ClientSession,
    clock: Clock,
    wall: Wall,
    intake: Intake,
    redis: Redis,
) -> OrderPoller:
    return poller_of(make(simulator, session, clock, redis=redis, wall=wall, ingest=intake))


async def test_a_new_ebay_order_becomes_order_created(
    poller: OrderPoller, sim: EbaySimulator, wall: Wall, intake: Intake
) -> None:
    sim.set_quantity("A", 5)
    order = sim.place_order([SimLine(sku="A", qty=2), SimLine(sku="A", qty=1)])
    assert order is not None
    wall.now += 30

    assert await poller.poll() == "ok"

    assert intake.events == [
        OrderCreated(
            id=f"ebay-{order.order_id}-created",
            channel="ebay",
            order_id=order.order_id,
            lines=intake.events[0].lines,  # type: ignore[union-attr]
            ship_to=ShipTo(country="US", region=order.region, postal_code="95125"),
        )
    ]
    created = intake.events[0]
    assert isinstance(created, OrderCreated)
    assert [(line.sku, line.qty) for line in created.lines] == [("A", 3)]  # summed by SKU
    assert intake.sources == {"poll:ebay"}
    # The filter asked from the poll's start less the overlap, percent-encoded on the wire.
    assert sim.orders_api.filters[-1] == "lastmodifieddate:[2026-12-03T19:58:30.000Z..]"


async def test_a_cancellation_becomes_order_cancelled_and_rereads_are_the_same_ids(
    poller: OrderPoller, sim: EbaySimulator, wall: Wall, intake: Intake
) -> None:
    sim.set_quantity("A", 5)
    order = sim.place_order([SimLine(sku="A", qty=1)])
    assert order is not None
    wall.now += 10
    await poller.poll()
    wall.now += 10
    await poller.poll()  # the overlap reads the order again: the same event, the same id
    sim.change_order(order.order_id, "cancelled")
    wall.now += 10
    await poller.poll()

    created, cancelled = f"ebay-{order.order_id}-created", f"ebay-{order.order_id}-cancelled"
    assert intake.ids() == [created, created, cancelled]
    assert intake.events[-1] == OrderCancelled(
        id=cancelled, channel="ebay", order_id=order.order_id
    )


async def test_the_mark_survives_a_restart(
    simulator: Simulator,
    sim: EbaySimulator,
    session: aiohttp.ClientSession,
    clock: Clock,
    wall: Wall,
    intake: Intake,
    redis: Redis,
) -> None:
    first = poller_of(make(simulator, session, clock, redis=redis, wall=wall, ingest=intake))
    await first.poll()
    assert await redis.get("adapter:{ebay}:orders:mark") == str(int(EVENING * 1000)).encode()

    wall.now += 3600  # the daemon was down for an hour; an order came meanwhile
    sim.set_quantity("A", 5)
    order = sim.place_order([SimLine(sku="A", qty=1)])
    assert order is not None
    wall.now += 60
    restarted = poller_of(make(simulator, session, clock, redis=redis, wall=wall, ingest=intake))
    await restarted.poll()

    assert sim.orders_api.filters[-1] == "lastmodifieddate:[2026-12-03T19:58:00.000Z..]"
    assert intake.ids() == [f"ebay-{order.order_id}-created"]


async def test_the_overlap_finds_an_order_indexed_late(
    simulator: Simulator,
    sim: EbaySimulator,
    session: aiohttp.ClientSession,
    clock: Clock,
    wall: Wall,
    redis: Redis,
) -> None:
    sim.orders_api.index_delay_s = 45  # eBay's search shows a change 45 s after it happened
    sim.set_quantity("A", 5)
    sim.set_quantity("B", 5)
    overlapping, blind = Intake(), Intake()
    with_overlap = poller_of(make(simulator, session, clock, redis=redis, wall=wall,
                                  ingest=overlapping))
    without = poller_of(make(simulator, session, clock, wall=wall, ingest=blind,
                             order_overlap_s=0))

    late = sim.place_order([SimLine(sku="A", qty=1)])
    wall.now += 10  # the order is 10 s old, not searchable yet
    await with_overlap.poll()
    await without.poll()
    assert overlapping.events == blind.events == []

    wall.now += 60
    await with_overlap.poll()
    await without.poll()
    assert late is not None
    assert overlapping.ids() == [f"ebay-{late.order_id}-created"]
    assert blind.events == []  # asked from after the order's lastModifiedDate: missed


async def test_orders_are_read_page_by_page(
    poller: OrderPoller, sim: EbaySimulator, wall: Wall, intake: Intake
) -> None:
    sim.set_quantity("A", 10_000)
    placed = [sim.place_order([SimLine(sku="A", qty=1)]) for _ in range(450)]
    wall.now += 5

    assert await poller.poll() == "ok"

    assert sim.calls["getOrders:ok"] == 3  # 200 + 200 + 50
    assert sorted(intake.ids()) == sorted(f"ebay-{o.order_id}-created" for o in placed if o)


async def test_lines_without_a_usable_sku_are_left_out(
    poller: OrderPoller, sim: EbaySimulator, wall: Wall, intake: Intake
) -> None:
    sim.set_quantity("A", 5)
    only_junk = sim.place_order([SimLine(sku="", qty=1)])
    mixed = sim.place_order([SimLine(sku="A", qty=1), SimLine(sku="has space", qty=1)])
    assert only_junk is not None and mixed is not None
    wall.now += 5

    await poller.poll()

    assert intake.ids() == [f"ebay-{mixed.order_id}-created"]
    created = intake.events[0]
    assert isinstance(created, OrderCreated)
    assert [line.sku for line in created.lines] == ["A"]


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [(Faults(throttle_rate=1.0), "throttled"), (Faults(error_rate=1.0), "retryable")],
)
async def test_a_failed_poll_is_counted_keeps_its_mark_and_the_next_one_catches_up(
    poller: OrderPoller,
    sim: EbaySimulator,
    wall: Wall,
    intake: Intake,
    redis: Redis,
    fault: Faults,
    outcome: str,
) -> None:
    await poller.poll()  # a token and a mark
    mark = await redis.get(poller.mark_key)
    sim.set_quantity("A", 5)
    order = sim.place_order([SimLine(sku="A", qty=1)])
    assert order is not None
    sim.faults = fault
    before = polls(outcome)
    wall.now += 60

    assert await poller.poll() == outcome
    assert polls(outcome) == before + 1
    assert await redis.get(poller.mark_key) == mark
    assert intake.events == []

    sim.faults = Faults()
    wall.now += 60
    assert await poller.poll() == "ok"
    assert intake.ids() == [f"ebay-{order.order_id}-created"]


async def test_a_refused_token_is_counted_as_unauthorized(
    poller: OrderPoller, sim: EbaySimulator
) -> None:
    sim.refresh_token_revoked = True
    before = polls("unauthorized")

    assert await poller.poll() == "unauthorized"
    assert polls("unauthorized") == before + 1


async def test_the_poll_runs_every_interval_on_the_adapters_clock(
    simulator: Simulator,
    sim: EbaySimulator,
    session: aiohttp.ClientSession,
    clock: Clock,
    wall: Wall,
    intake: Intake,
) -> None:
    ticks = ManualClock()
    ctx = AdapterContext(session=session, monotonic=clock, wall=wall, ingest=intake, clock=ticks)
    adapter = create(ebay_channel(simulator.url, order_poll_s=30), ctx)
    assert isinstance(adapter, RunsInBackground)
    task = asyncio.create_task(adapter.run())
    try:
        for expected in (1, 2, 3):
            for _ in range(500):  # until the poll is done and parked on the clock
                if ticks.sleepers:
                    break
                await asyncio.sleep(0.01)
            assert sim.calls["getOrders:ok"] == expected
            ticks.advance(30)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_order_poll_s_zero_turns_the_poll_off(
    simulator: Simulator, sim: EbaySimulator, session: aiohttp.ClientSession, clock: Clock
) -> None:
    off = make(simulator, session, clock, order_poll_s=0)
    assert off.orders is None
    await off.run()  # returns at once: nothing to do
    assert sim.calls["getOrders:ok"] == 0


async def test_the_simulator_wants_the_brackets_percent_encoded(
    poller: OrderPoller, sim: EbaySimulator, session: aiohttp.ClientSession, simulator: Simulator
) -> None:
    await poller.poll()
    token = await poller._client.tokens.token()
    url = f"{simulator.url}/ebay/sell/fulfillment/v1/order"
    headers = {"Authorization": f"Bearer {token}"}
    raw = "?filter=lastmodifieddate:[2026-12-03T19:00:00.000Z..]"
    async with session.get(aiohttp.client.URL(url + raw, encoded=True), headers=headers) as r:
        assert r.status == 400
    async with session.get(url, params={"filter": "lastmodified:2026"}, headers=headers) as r:
        assert r.status == 400
    async with session.get(url, params={"limit": "201"}, headers=headers) as r:
        assert r.status == 400
    async with session.get(url, params={"limit": "1"}, headers=headers) as r:
        assert r.status == 200
        page: dict[str, Any] = await r.json()
    assert {"href", "total", "limit", "offset", "orders"} <= set(page)
