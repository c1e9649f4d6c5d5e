"""eBay quantities at both levels (inventory item and published offers) and the daily revision
guard, against the simulated eBay over loopback, with the revision counts in a real Valkey."""

from __future__ import annotations

import json

import aiohttp
import pytest
from redis.asyncio import Redis

from invsync.adapters.ebay import EbayAdapter
from invsync.metrics import definitions as m
from invsync.simulators.ebay import EbaySimulator
from invsync.simulators.server import Simulator
from tests.adapters.ebay_helpers import (
    Clock,
    adapter,
    clock,
    conforms,
    credentials,
    make,
    outcomes,
    sim,
    updates,
)

__all__ = ["adapter", "clock", "credentials", "sim"]  # fixtures of ebay_helpers used here

#: 2026-12-03 20:00:00 UTC
EVENING = 1_796_328_000.0


class Wall:
    """Epoch seconds the test moves by hand, shared by the adapter and the simulator."""

    def __init__(self, now: float = EVENING) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall(sim: EbaySimulator) -> Wall:
    moved = Wall()
    sim.wall = moved
    return moved


def holds() -> float:
    return m.LISTING_REVISION_HOLDS.labels(channel="ebay")._value.get()


# --- both levels ----------------------------------------------------------------------------


async def test_a_published_offer_gets_the_quantity_too_so_no_old_cap_stays(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    capped = sim.add_offer("A", available_quantity=2)  # an offer with its own, older cap

    results = await adapter.push(updates(("A", 7)))

    assert outcomes(results) == {"A": "ok"}
    payload = json.loads(sim.received[-1][1])
    conforms(payload, "BulkPriceQuantity")
    assert payload == {
        "requests": [
            {
                "sku": "A",
                "shipToLocationAvailability": {"quantity": 7},
                "offers": [{"offerId": capped.offer_id, "availableQuantity": 7}],
            }
        ]
    }
    assert sim.quantities["A"] == 7
    assert capped.available_quantity == 7
    assert sim.listing_quantity(capped) == 7  # the listing sells all 7


async def test_the_item_level_alone_leaves_an_offer_capped_in_the_simulator(
    simulator: Simulator, sim: EbaySimulator, session: aiohttp.ClientSession, clock: Clock
) -> None:
    """What the guide warns of, and why the adapter sends both levels: the smaller one wins."""
    capped = sim.add_offer("A", available_quantity=2)
    item_only = make(simulator, session, clock, update_offers=False)

    assert outcomes(await item_only.push(updates(("A", 7)))) == {"A": "ok"}

    assert "offers" not in json.loads(sim.received[-1][1])["requests"][0]
    assert sim.quantities["A"] == 7
    assert sim.listing_quantity(capped) == 2


async def test_only_published_fixed_price_offers_are_sent(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    live = sim.add_offer("A")
    sim.add_offer("A", status="UNPUBLISHED")
    sim.add_offer("A", format="AUCTION")

    await adapter.push(updates(("A", 4)))

    sent = json.loads(sim.received[-1][1])["requests"][0]["offers"]
    assert sent == [{"offerId": live.offer_id, "availableQuantity": 4}]


async def test_offers_are_looked_up_once_per_ttl(
    simulator: Simulator, sim: EbaySimulator, session: aiohttp.ClientSession, clock: Clock
) -> None:
    sim.add_offer("A")
    cached = make(simulator, session, clock, offers_ttl_s=600)

    for qty in (1, 2, 3):
        await cached.push(updates(("A", qty)))
    assert cached.offers.lookups == 1
    assert sim.calls["getOffers:ok"] == 1

    clock.now += 601
    await cached.push(updates(("A", 4)))
    assert sim.calls["getOffers:ok"] == 2


async def test_a_sku_without_offers_is_pushed_at_the_item_level(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    results = await adapter.push(updates(("B", 3)))

    assert outcomes(results) == {"B": "ok"}
    assert sim.calls["getOffers:404"] == 1  # eBay's answer for a SKU without offers
    assert json.loads(sim.received[-1][1]) == {
        "requests": [{"sku": "B", "shipToLocationAvailability": {"quantity": 3}}]
    }


async def test_a_withdrawn_offer_is_retried_with_the_offers_learnt_again(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    old = sim.add_offer("A")
    await adapter.push(updates(("A", 1)))
    sim.offers["A"].remove(old)  # the seller ended it and listed the SKU again
    new = sim.add_offer("A", available_quantity=1)

    stale = await adapter.push(updates(("A", 5)))
    assert outcomes(stale) == {"A": "retryable"}
    assert "25713" in (stale[0].error or "")

    again = await adapter.push(updates(("A", 5)))
    assert outcomes(again) == {"A": "ok"}
    assert sim.listing_quantity(new) == 5


async def test_the_simulator_answers_one_entry_per_offer(
    adapter: EbayAdapter, sim: EbaySimulator, session: aiohttp.ClientSession, simulator: Simulator
) -> None:
    one, two = sim.add_offer("A"), sim.add_offer("A")
    token = await adapter.tokens.token()
    body = {"requests": [{"sku": "A", "shipToLocationAvailability": {"quantity": 3}, "offers": [
        {"offerId": one.offer_id, "availableQuantity": 3},
        {"offerId": two.offer_id, "availableQuantity": 3},
    ]}]}
    async with session.post(
        f"{simulator.url}/ebay/sell/inventory/v1/bulk_update_price_quantity",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        assert resp.status == 200
        answer = await resp.json()
    conforms(answer, "BulkPriceQuantityResponse")
    assert sorted(r["offerId"] for r in answer["responses"]) == sorted([one.offer_id,
                                                                        two.offer_id])
    async with session.get(
        f"{simulator.url}/ebay/sell/inventory/v1/offer",
        params={"sku": "A"},
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        offers = await resp.json()
    assert offers["total"] == 2
    assert {o["availableQuantity"] for o in offers["offers"]} == {3}
    assert all(o["listing"]["listingId"] for o in offers["offers"])


# --- the daily revision limit ----------------------------------------------------------------


async def test_a_listing_past_its_daily_revisions_is_held_until_midnight_utc(
    simulator: Simulator,
    sim: EbaySimulator,
    session: aiohttp.ClientSession,
    clock: Clock,
    wall: Wall,
    redis: Redis,
) -> None:
    offer = sim.add_offer("A")
    sim.add_offer("B")
    guarded = make(simulator, session, clock, redis=redis, wall=wall, revisions_per_day=3)
    before = holds()

    for qty in (1, 2, 3):
        assert outcomes(await guarded.push(updates(("A", qty)))) == {"A": "ok"}
    sent = len(sim.received)

    held = await guarded.push(updates(("A", 4)))
    assert outcomes(held) == {"A": "retryable"}  # the worker keeps it and tries again later
    assert "held" in (held[0].error or "") and "3 revisions" in (held[0].error or "")
    assert len(sim.received) == sent  # nothing was sent
    assert holds() == before + 1
    assert await redis.hget("adapter:{ebay}:revisions:20261203", offer.listing_id) == b"3"
    assert outcomes(await guarded.push(updates(("B", 9)))) == {"B": "ok"}  # other listings go

    wall.now += 4 * 3600  # 00:00 UTC on the 4th
    assert outcomes(await guarded.push(updates(("A", 4)))) == {"A": "ok"}
    assert sim.quantities["A"] == 4


async def test_the_revision_count_survives_a_restart(
    simulator: Simulator,
    sim: EbaySimulator,
    session: aiohttp.ClientSession,
    clock: Clock,
    wall: Wall,
    redis: Redis,
) -> None:
    sim.add_offer("A")
    first = make(simulator, session, clock, redis=redis, wall=wall, revisions_per_day=2)
    for qty in (1, 2):
        await first.push(updates(("A", qty)))

    restarted = make(simulator, session, clock, redis=redis, wall=wall, revisions_per_day=2)
    assert outcomes(await restarted.push(updates(("A", 3)))) == {"A": "retryable"}
    assert sim.quantities["A"] == 2


async def test_skus_without_offers_spend_no_revisions(
    simulator: Simulator,
    sim: EbaySimulator,
    session: aiohttp.ClientSession,
    clock: Clock,
    wall: Wall,
    redis: Redis,
) -> None:
    plain = make(simulator, session, clock, redis=redis, wall=wall, revisions_per_day=1)
    for qty in (1, 2, 3):
        assert outcomes(await plain.push(updates(("B", qty)))) == {"B": "ok"}
    assert await redis.exists("adapter:{ebay}:revisions:20261203") == 0


async def test_the_simulator_refuses_a_listing_past_its_revisions(
    simulator: Simulator, sim: EbaySimulator, session: aiohttp.ClientSession, clock: Clock
) -> None:
    """eBay's own guard, so an adapter that counted wrong would be caught here."""
    sim.add_offer("A")
    sim.revisions_per_day = 1
    unguarded = make(simulator, session, clock)  # counts in memory, up to 250

    assert outcomes(await unguarded.push(updates(("A", 1)))) == {"A": "ok"}
    refused = await unguarded.push(updates(("A", 2)))
    assert outcomes(refused) == {"A": "permanent"}
    assert "25099" in (refused[0].error or "")
    assert sim.calls["revision_limit:refused"] == 1

