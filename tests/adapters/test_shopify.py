"""The Shopify adapter against the simulated store (real HTTP on loopback, no mocks).

The documented shape of the mutation's variables is encoded in
``fixtures/shopify/inventory_set_quantities_input.schema.json`` (its ``$comment`` cites the
reference pages); every push the simulator receives is validated against it. The simulated store
also parses and validates every document against the project's SDL of the Admin API
(graphql-core), and the ``rig`` fixture fails a test in which it refused one.

The store lists ``CATALOGUE``: a SKU outside it has no inventory item on Shopify.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import msgspec
import pytest

from invsync.adapters.base import (
    AdapterContext,
    BadWebhook,
    OrderLine,
    Permanent,
    Retryable,
    Throttled,
    Unauthorized,
    Update,
)
from invsync.adapters.registry import MissingSecret, make_adapter, options_type
from invsync.adapters.shopify import Options, ShopifyAdapter, create, wire
from invsync.adapters.signing import sign_b64
from invsync.core.config import Channel, Faults
from invsync.core.events import (
    Event,
    EventLine,
    OrderCancelled,
    OrderCreated,
    OrderFulfilled,
    OrderReturned,
    ShipTo,
    decode_events,
)
from invsync.simulators.core import SimLine
from invsync.simulators.limits import CostBucket
from invsync.simulators.server import Simulator
from invsync.simulators.shopify import BUCKET_SIZE, RESTORE_RATE, ShopifyStore
from tests.adapters.channel_config import load_channel, refused

TOKEN = "shpat_0123456789abcdef"
SECRET = "shopify-app-client-secret"
LOCATION = 655441491
#: The SKUs the simulated store lists (has inventory items for).
CATALOGUE = ("A", "B", "TEE", "TEE-BLK-M", "TEE-BLK-L", "ELSEWHERE", "TWICE", "GIFT WRAP")
SCHEMA = json.loads(
    (Path(__file__).parent / "fixtures/shopify/inventory_set_quantities_input.schema.json")
    .read_text()
)


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    monkeypatch.setenv("SHOP_SECRET", SECRET)


def shop_channel(url: str, **options: Any) -> Channel:
    """A shopify channel mounted at ``{url}/shop`` (fast timeouts unless overridden)."""
    opts: dict[str, Any] = {
        "location_id": LOCATION, "timeout_s": 2.0, "return_location": "store-1",
    }
    opts.update(options)
    return Channel(
        id="shop", kind="shopify", url=f"{url}/shop", token_env="SHOP_TOKEN",
        secret_env="SHOP_SECRET", options=opts,
    )


class Clock:
    """A monotonic clock tests move by hand (the adapter and the store share it)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """The daemon's ``ingest``: records the typed events the adapter imports."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Event], str]] = []

    async def __call__(self, events: list[Event], source: str) -> list[str]:
        assert_valid(events)
        self.calls.append((events, source))
        return [event.id for event in events]


def assert_valid(events: Sequence[Event]) -> None:
    """Typed and valid: the events survive the intake's own decoding unchanged."""
    assert all(not isinstance(event, dict) for event in events)
    assert decode_events(msgspec.json.encode(list(events))) == list(events)


class Rig:
    """A simulated store, an adapter for it, their clock and the ingest recorder."""

    def __init__(self, simulator: Simulator, session: aiohttp.ClientSession, **options: Any):
        self.clock = Clock()
        self.ingest = Recorder()
        self.channel = shop_channel(simulator.url, **options)
        store = simulator.add(self.channel)
        assert isinstance(store, ShopifyStore)
        store.clock = self.clock
        store.bucket = CostBucket(BUCKET_SIZE, RESTORE_RATE, self.clock)
        store.list_skus(CATALOGUE)
        self.store = store
        ctx = AdapterContext(session=session, ingest=self.ingest, monotonic=self.clock)
        self.adapter = create(self.channel, ctx)

    def sets(self) -> int:
        return self.store.calls["inventorySetQuantities:ok"]

    def webhook_events(self, status_order: Any) -> list[Event]:
        made = self.store.order_notification(status_order)
        assert made is not None
        headers, body = made
        return self.adapter.parse_webhook(headers, body)


@pytest.fixture
def rig(simulator: Simulator, session: aiohttp.ClientSession) -> Iterator[Rig]:
    made = Rig(simulator, session)
    yield made
    # Every document the adapter sent passed the store's parse + validation against the SDL.
    assert made.store.calls["document:refused"] == 0


def outcomes(results: Sequence[Any]) -> dict[str, str]:
    return {r.sku: r.outcome for r in results}


# --- push ------------------------------------------------------------------------------------


async def test_push_sends_the_documented_inventory_set_quantities_input(rig: Rig) -> None:
    results = await rig.adapter.push([
        Update(sku="TEE-BLK-M", available=7, version=3),
        Update(sku="TEE-BLK-L", available=0, version=4),
    ])

    assert outcomes(results) == {"TEE-BLK-M": "ok", "TEE-BLK-L": "ok"}
    assert rig.store.quantities == {"TEE-BLK-M": 7, "TEE-BLK-L": 0}
    (sent,) = rig.store.set_requests
    jsonschema.validate(sent, SCHEMA)
    assert sent["input"]["name"] == "available"
    assert sent["input"]["reason"] == "correction"
    assert sent["input"]["referenceDocumentUri"].startswith("gid://invsync/ChannelSync/shop-2skus-")
    assert [q["changeFromQuantity"] for q in sent["input"]["quantities"]] == [0, 0]
    assert {q["locationId"] for q in sent["input"]["quantities"]} == {
        f"gid://shopify/Location/{LOCATION}"
    }


async def test_the_next_push_compares_with_the_quantity_last_set(rig: Rig) -> None:
    await rig.adapter.push([Update(sku="A", available=7, version=1)])
    await rig.adapter.push([Update(sku="A", available=4, version=2)])

    first, second = rig.store.set_requests
    jsonschema.validate(second, SCHEMA)
    assert second["input"]["quantities"][0]["changeFromQuantity"] == 7
    assert second["input"]["referenceDocumentUri"] == "gid://invsync/ChannelSync/shop-A-2"
    assert first["idempotencyKey"] != second["idempotencyKey"]
    assert rig.store.calls["inventoryItems:ok"] == 1  # the item and quantity were cached
    assert rig.store.quantities["A"] == 4


async def test_read_back_sees_a_change_made_behind_our_back(rig: Rig) -> None:
    assert not rig.store.is_listed("GHOST")
    await rig.adapter.push([Update(sku="A", available=5, version=1)])
    rig.store.set_quantity("A", 9)

    assert await rig.adapter.read_back(["A", "GHOST"]) == {"A": 9}


async def test_a_read_back_beside_a_push_leaves_the_next_push_fresh(rig: Rig) -> None:
    await rig.adapter.push([Update(sku="A", available=5, version=1)])
    rig.store.faults = Faults(latency_ms=150)  # both calls in flight at once
    reading = asyncio.create_task(rig.adapter.read_back(["A"]))
    await asyncio.sleep(0.02)
    pushed = await rig.adapter.push([Update(sku="A", available=3, version=2)])
    assert outcomes(pushed) == {"A": "ok"}
    assert await reading in ({"A": 5}, {"A": 3})  # whichever Shopify had when it answered
    rig.store.faults = Faults()
    again = await rig.adapter.push([Update(sku="A", available=2, version=3)])
    assert outcomes(again) == {"A": "ok"}  # changeFromQuantity was 3, not the older 5
    assert rig.store.quantities["A"] == 2


async def test_a_read_back_during_a_push_does_not_replace_the_compare_and_set_value(
    rig: Rig,
) -> None:
    await rig.adapter.push([Update(sku="A", available=5, version=1)])
    rig.store.set_quantity("A", 9)
    rig.adapter.inventory.pushes_in_flight = 1  # as while a push is in flight
    assert await rig.adapter.read_back(["A"]) == {"A": 9}
    assert rig.adapter.inventory.known["A"] == 5  # the push in flight decides it, not this reading
    rig.adapter.inventory.pushes_in_flight = 0
    assert await rig.adapter.read_back(["A"]) == {"A": 9}
    assert rig.adapter.inventory.known["A"] == 9  # quiet: the reading is the freshest there is


async def test_an_unknown_sku_is_permanent_and_the_others_are_set(rig: Rig) -> None:
    assert not rig.store.is_listed("GHOST")  # not in the store's catalogue: no inventory item
    results = await rig.adapter.push([
        Update(sku="A", available=2, version=1),
        Update(sku="GHOST", available=3, version=1),
    ])

    assert outcomes(results) == {"A": "ok", "GHOST": "permanent"}
    assert "no inventory item" in (results[1].error or "")
    assert rig.store.quantities == {"A": 2}
    sent = [q["inventoryItemId"] for r in rig.store.set_requests for q in r["input"]["quantities"]]
    assert sent == [f"gid://shopify/InventoryItem/{rig.store.items['A']}"]  # GHOST never sent


async def test_an_item_gone_from_shopify_is_permanent_and_looked_up_again(rig: Rig) -> None:
    await rig.adapter.push([Update(sku="A", available=2, version=1)])
    rig.store.listed.discard("A")  # the merchant deleted the variant: its item id is gone
    del rig.store.items["A"]

    (gone,) = await rig.adapter.push([Update(sku="A", available=3, version=2)])

    assert gone.outcome == "permanent"
    assert (gone.error or "").startswith("INVALID_INVENTORY_ITEM: ")
    assert "A" not in rig.adapter.inventory.items  # forgotten: the next push looks it up again
    rig.store.list_skus(["A"])  # listed anew, with a new inventory item
    (back,) = await rig.adapter.push([Update(sku="A", available=3, version=3)])
    assert back.outcome == "ok" and rig.store.quantities["A"] == 3


async def test_unstocked_and_ambiguous_skus_are_permanent(rig: Rig) -> None:
    rig.store.unstocked.add("ELSEWHERE")
    rig.store.duplicated.add("TWICE")
    results = await rig.adapter.push([
        Update(sku="ELSEWHERE", available=1, version=1),
        Update(sku="TWICE", available=1, version=1),
        Update(sku="A", available=1, version=1),
    ])

    assert outcomes(results) == {"ELSEWHERE": "permanent", "TWICE": "permanent", "A": "ok"}
    assert rig.store.calls["inventorySetQuantities:ok"] == 1


async def test_a_refused_quantity_fails_alone_and_the_rest_is_sent_again(rig: Rig) -> None:
    results = await rig.adapter.push([
        Update(sku="A", available=3, version=1),
        Update(sku="B", available=-1, version=1),
    ])

    assert outcomes(results) == {"A": "ok", "B": "permanent"}
    assert "INVALID_QUANTITY_NEGATIVE" in (results[1].error or "")
    assert rig.store.quantities["A"] == 3 and rig.store.quantities["B"] == 0
    assert rig.sets() == 2  # the batch was refused as a whole, then A went alone


async def test_the_store_refuses_quantities_without_change_from_quantity(
    rig: Rig, simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    await rig.adapter.push([Update(sku="A", available=1, version=1)])
    item = f"gid://shopify/InventoryItem/{rig.store.items['A']}"
    quantity = {"inventoryItemId": item, "locationId": f"gid://shopify/Location/{LOCATION}",
                "quantity": 5}
    document = ("mutation S($input: InventorySetQuantitiesInput!, $k: String!) "
                "{ inventorySetQuantities(input: $input) @idempotent(key: $k) "
                "{ userErrors { code field message } } }")
    variables = {"k": "k1", "input": {"name": "available", "reason": "correction",
                                      "quantities": [quantity]}}

    async def post(version: str, query: str) -> dict[str, Any]:
        async with session.post(
            f"{simulator.url}/shop/admin/api/{version}/graphql.json",
            json={"query": query, "variables": variables},
            headers={"X-Shopify-Access-Token": TOKEN},
        ) as resp:
            assert resp.status == 200
            answer: dict[str, Any] = await resp.json()
            return answer

    refused = await post("2026-04", document)
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_FIELD_ARGUMENTS"
    assert "changeFromQuantity" in refused["errors"][0]["message"]
    quantity["changeFromQuantity"] = 1
    without = document.replace(" @idempotent(key: $k)", "").replace(", $k: String!", "")
    no_key = await post("2026-04", without)
    assert no_key["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert rig.store.quantities["A"] == 1
    del quantity["changeFromQuantity"]
    older = await post("2026-01", document)  # before 2026-04 the check was optional
    assert older["data"]["inventorySetQuantities"]["userErrors"] == []
    assert rig.store.quantities["A"] == 5


# --- compare-and-swap races ----------------------------------------------------------------


async def test_a_stale_quantity_imports_the_sale_and_never_relists_the_sold_unit(
    rig: Rig,
) -> None:
    await rig.adapter.push([Update(sku="A", available=5, version=1)])
    order = rig.store.place_order([SimLine(sku="A", qty=2)])  # sold on Shopify, no webhook yet
    assert order is not None and rig.store.quantities["A"] == 3

    (result,) = await rig.adapter.push([Update(sku="A", available=5, version=2)])

    assert result.outcome == "retryable"
    assert result.retry_after is not None and 0 < result.retry_after <= 1.0
    assert rig.store.quantities["A"] == 3  # the sold units were not relisted
    ((events, source),) = rig.ingest.calls
    assert source == "poll:shop"
    assert events == rig.webhook_events(order)  # same ids: the later one is a duplicate
    assert events[0].id == f"shop-{order.order_id}-created"

    sets = rig.sets()
    (again,) = await rig.adapter.push([Update(sku="A", available=5, version=2)])
    assert again.outcome == "retryable"
    assert rig.sets() == sets  # held: Shopify was not asked

    (after,) = await rig.adapter.push([Update(sku="A", available=3, version=3)])
    assert after.outcome == "ok"
    assert rig.store.quantities["A"] == 3
    assert rig.store.set_requests[-1]["input"]["quantities"][0]["changeFromQuantity"] == 3


async def test_a_stale_hold_lapses_and_then_our_number_wins(rig: Rig) -> None:
    await rig.adapter.push([Update(sku="A", available=5, version=1)])
    rig.store.set_quantity("A", 9)  # a merchant's edit: no order to import

    (held,) = await rig.adapter.push([Update(sku="A", available=4, version=2)])
    assert held.outcome == "retryable"
    assert rig.ingest.calls == []
    rig.clock.advance(29)
    (still,) = await rig.adapter.push([Update(sku="A", available=4, version=2)])
    assert still.outcome == "retryable"

    rig.clock.advance(2)
    (won,) = await rig.adapter.push([Update(sku="A", available=4, version=2)])
    assert won.outcome == "ok"
    assert rig.store.quantities["A"] == 4
    assert rig.store.set_requests[-1]["input"]["quantities"][0]["changeFromQuantity"] == 9


async def test_a_stale_answer_for_our_own_number_is_ok(rig: Rig) -> None:
    await rig.adapter.push([Update(sku="A", available=4, version=1)])
    rig.store.set_quantity("A", 6)  # someone set what we were about to set

    (result,) = await rig.adapter.push([Update(sku="A", available=6, version=2)])
    assert result.outcome == "ok"
    (later,) = await rig.adapter.push([Update(sku="A", available=7, version=3)])
    assert later.outcome == "ok" and rig.store.quantities["A"] == 7


async def test_a_stale_sku_in_a_batch_holds_only_that_sku(rig: Rig) -> None:
    await rig.adapter.push([Update(sku="A", available=5, version=1),
                            Update(sku="B", available=5, version=1)])
    order = rig.store.place_order([SimLine(sku="A", qty=1)])
    assert order is not None

    results = await rig.adapter.push([Update(sku="A", available=6, version=2),
                                      Update(sku="B", available=6, version=2)])

    assert outcomes(results) == {"A": "retryable", "B": "ok"}
    assert rig.store.quantities == {"A": 4, "B": 6}
    ((events, _),) = rig.ingest.calls
    assert [e.id for e in events] == [f"shop-{order.order_id}-created"]


# --- throttling and failures ---------------------------------------------------------------


async def test_throttled_push_reports_retry_after_then_succeeds_after_the_wait(
    rig: Rig,
) -> None:
    await rig.adapter.push([Update(sku="A", available=5, version=1)])
    # Another app of the store spent the budget: 12 points restoring 2/s, 7 left; a push needs 10.
    rig.store.bucket = CostBucket(12, 2, rig.clock)
    assert rig.store.bucket.take(5)

    with pytest.raises(Throttled) as caught:
        await rig.adapter.push([Update(sku="A", available=4, version=2)])
    assert caught.value.retry_after == pytest.approx(1.5)  # (10 - 7) points / 2 per second
    assert rig.store.calls["inventorySetQuantities:throttled"] == 1

    with pytest.raises(Throttled) as early:  # refused by the adapter itself: nothing sent
        await rig.adapter.push([Update(sku="A", available=4, version=2)])
    assert early.value.retry_after == pytest.approx(1.5)
    assert rig.store.calls["inventorySetQuantities:throttled"] == 1

    rig.clock.advance(1.5)
    (result,) = await rig.adapter.push([Update(sku="A", available=4, version=2)])
    assert result.outcome == "ok" and rig.store.quantities["A"] == 4


async def test_a_lookup_that_empties_the_budget_stops_before_the_mutation(rig: Rig) -> None:
    # 12 points restoring 2/s: the lookup (8 requested, 5 used) leaves 7, the mutation needs 10.
    rig.store.bucket = CostBucket(12, 2, rig.clock)

    with pytest.raises(Throttled) as caught:
        await rig.adapter.push([Update(sku="A", available=5, version=1)])
    assert caught.value.retry_after == pytest.approx(1.5)
    assert rig.store.set_requests == []  # never sent: Shopify would have throttled it
    rig.clock.advance(1.5)
    (result,) = await rig.adapter.push([Update(sku="A", available=5, version=1)])
    assert result.outcome == "ok" and rig.store.calls["inventoryItems:ok"] == 1


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        (Faults(throttle_rate=1.0), Throttled),
        (Faults(error_rate=1.0), Retryable),
        (Faults(timeout_rate=1.0, timeout_s=0.5), Retryable),
    ],
)
async def test_injected_faults_become_their_error_kinds(
    simulator: Simulator, session: aiohttp.ClientSession, faults: Faults, error: type[Exception]
) -> None:
    channel = shop_channel(simulator.url, timeout_s=0.2)
    store = simulator.add(channel, faults)
    assert store is not None
    adapter = create(channel, AdapterContext(session=session))

    with pytest.raises(error):
        await adapter.push([Update(sku="A", available=1, version=1)])
    assert store.quantities == {}


async def test_a_wrong_token_is_unauthorized(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    channel = shop_channel(simulator.url)
    simulator.add(channel)
    adapter = ShopifyAdapter(channel, session, "shpat_revoked")

    with pytest.raises(Unauthorized, match="401"):
        await adapter.push([Update(sku="A", available=1, version=1)])


async def test_a_top_level_graphql_error_is_retryable(rig: Rig) -> None:
    with pytest.raises(Retryable, match="Field 'nope' doesn't exist on type 'QueryRoot'"):
        await rig.adapter.client.call(
            "nope", 0, "query { nope { id } }", {}, wire.items_decoder, 1.0
        )
    assert rig.store.calls.pop("document:refused") == 1  # refused as a whole, as meant here


# --- webhooks --------------------------------------------------------------------------------


async def test_forged_and_unsigned_webhooks_are_refused(rig: Rig) -> None:
    order = rig.store.place_order([SimLine(sku="A", qty=1)])
    assert order is not None
    made = rig.store.order_notification(order)
    assert made is not None
    headers, body = made

    forged = {**headers, "X-Shopify-Hmac-Sha256": sign_b64("not-the-secret", body)}
    with pytest.raises(BadWebhook) as caught:
        rig.adapter.parse_webhook(forged, body)
    assert caught.value.unauthorized
    unsigned = {k: v for k, v in headers.items() if k != "X-Shopify-Hmac-Sha256"}
    with pytest.raises(BadWebhook) as missing:
        rig.adapter.parse_webhook(unsigned, body)
    assert missing.value.unauthorized
    with pytest.raises(BadWebhook):  # signed, but the body was changed on the way
        rig.adapter.parse_webhook(headers, body.replace(b'"quantity":1', b'"quantity":9'))


async def test_each_order_topic_becomes_its_event(rig: Rig) -> None:
    order = rig.store.place_order([SimLine(sku="A", qty=2), SimLine(sku="B", qty=1)])
    assert order is not None
    created = rig.webhook_events(order)
    fulfilled = rig.webhook_events(rig.store.change_order(order.order_id, "fulfilled"))
    returned = rig.webhook_events(rig.store.change_order(order.order_id, "refunded"))
    other = rig.store.place_order([SimLine(sku="A", qty=1)])
    assert other is not None
    cancelled = rig.webhook_events(rig.store.change_order(other.order_id, "cancelled"))

    oid = order.order_id
    assert created == [OrderCreated(
        id=f"shop-{oid}-created", channel="shop", order_id=oid,
        lines=[EventLine(sku="A", qty=2), EventLine(sku="B", qty=1)],
        ship_to=ShipTo(country=order.country, region=order.region),
    )]
    assert fulfilled == [OrderFulfilled(id=f"shop-{oid}-fulfilled", channel="shop", order_id=oid)]
    (ret,) = returned
    assert isinstance(ret, OrderReturned) and ret.location == "store-1"
    assert ret.lines == [EventLine(sku="A", qty=2), EventLine(sku="B", qty=1)]
    assert ret.id.startswith(f"shop-{oid}-refund-")
    assert cancelled == [OrderCancelled(id=f"shop-{other.order_id}-cancelled", channel="shop",
                                        order_id=other.order_id)]
    assert_valid([*created, *fulfilled, *returned, *cancelled])  # valid spec events


def signed(topic: str, payload: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    return {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign_b64(SECRET, body),
            "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"}, body


async def test_refund_cancel_lines_and_the_order_cancellation_release_each_unit_once(
    rig: Rig,
) -> None:
    lines = [{"id": 11, "sku": "A", "quantity": 2}, {"id": 12, "sku": "B", "quantity": 1},
             {"id": 13, "sku": None, "quantity": 1}]
    refund = {"id": 77, "order_id": 5001, "refund_line_items": [
        {"line_item_id": 11, "quantity": 1, "restock_type": "cancel",
         "line_item": {"id": 11, "sku": "A", "quantity": 2}},
        {"line_item_id": 12, "quantity": 1, "restock_type": "no_restock",
         "line_item": {"id": 12, "sku": "B", "quantity": 1}},
    ]}
    from_refund = rig.adapter.parse_webhook(*signed("refunds/create", refund))
    order = {"id": 5001, "line_items": lines, "refunds": [refund]}
    from_cancel = rig.adapter.parse_webhook(*signed("orders/cancelled", order))

    assert from_refund == [OrderCancelled(id="shop-5001-refund-77-cancelled", channel="shop",
                                          order_id="5001", lines=[EventLine(sku="A", qty=1)])]
    assert from_cancel == [OrderCancelled(
        id="shop-5001-cancelled", channel="shop", order_id="5001",
        lines=[EventLine(sku="A", qty=1), EventLine(sku="B", qty=1)],
    )]


async def test_a_returning_refund_without_return_location_is_refused(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    channel = shop_channel(simulator.url)
    channel = Channel(**{**{f: getattr(channel, f) for f in channel.__struct_fields__},
                         "options": {"location_id": LOCATION}})
    adapter = create(channel, AdapterContext(session=session))
    refund = {"id": 1, "order_id": 2, "refund_line_items": [
        {"quantity": 1, "restock_type": "return", "line_item": {"sku": "A", "quantity": 1}}]}

    with pytest.raises(BadWebhook, match="return_location"):
        adapter.parse_webhook(*signed("refunds/create", refund))


async def test_other_topics_and_orders_of_nothing_stocked_give_no_events(rig: Rig) -> None:
    assert rig.adapter.parse_webhook(*signed("inventory_levels/update", {"x": 1})) == []
    gift_card = {"id": 9, "line_items": [{"id": 1, "sku": "", "quantity": 1}]}
    assert rig.adapter.parse_webhook(*signed("orders/create", gift_card)) == []
    with pytest.raises(BadWebhook, match="malformed"):
        rig.adapter.parse_webhook(*signed("orders/create", {"line_items": "nope"}))
    headers, body = signed("orders/create", gift_card)
    with pytest.raises(BadWebhook, match="Topic"):
        rig.adapter.parse_webhook({k: v for k, v in headers.items() if "Topic" not in k}, body)


# --- cancel ----------------------------------------------------------------------------------


async def test_cancel_order_cancels_the_whole_order_once(rig: Rig) -> None:
    rig.store.set_quantity("A", 5)
    order = rig.store.place_order([SimLine(sku="A", qty=2)])
    assert order is not None

    await rig.adapter.cancel_order(order.order_id, None, "oversold")
    await rig.adapter.cancel_order(order.order_id, [OrderLine(sku="A", qty=2)], "oversold")

    (request,) = rig.store.cancel_requests  # the second call found it cancelled already
    assert request["orderId"] == f"gid://shopify/Order/{order.order_id}"
    assert request["reason"] == "INVENTORY" and request["restock"] is False
    assert request["refundMethod"] == {"originalPaymentMethodsRefund": True}
    assert rig.store.orders[order.order_id].status == "cancelled"
    assert rig.store.quantities["A"] == 3  # no restock: invsync pushes the released units


async def test_cancelling_some_lines_or_an_unknown_order_is_permanent(rig: Rig) -> None:
    order = rig.store.place_order([SimLine(sku="A", qty=2), SimLine(sku="B", qty=1)])
    assert order is not None

    with pytest.raises(Permanent, match="whole orders"):
        await rig.adapter.cancel_order(order.order_id, [OrderLine(sku="A", qty=2)], "oversold")
    with pytest.raises(Permanent, match="no order"):
        await rig.adapter.cancel_order("999999", None, "oversold")
    assert rig.store.cancel_requests == []


# --- configuration ---------------------------------------------------------------------------


async def test_configuration_errors_name_what_is_missing(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = AdapterContext(session=session)
    no_location = Channel(id="shop", kind="shopify", url="http://127.0.0.1:9/shop",
                          token_env="SHOP_TOKEN")
    with pytest.raises(ValueError, match=r"options\.location_id"):
        create(no_location, ctx)
    bad = shop_channel("http://127.0.0.1:9", location_id="warehouse")
    with pytest.raises(ValueError, match=r"options\.location_id"):
        create(bad, ctx)
    monkeypatch.delenv("SHOP_TOKEN")
    with pytest.raises(MissingSecret, match="SHOP_TOKEN"):
        create(shop_channel("http://127.0.0.1:9"), ctx)
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    adapter = make_adapter(shop_channel("http://127.0.0.1:9"), ctx)
    assert isinstance(adapter, ShopifyAdapter) and adapter.max_batch == 250


async def test_a_line_whose_sku_invsync_cannot_hold_is_skipped_not_fatal(rig: Rig) -> None:
    order = rig.store.place_order(
        [SimLine(sku="TEE", qty=2), SimLine(sku="GIFT WRAP", qty=1)], order_id="5001"
    )
    assert order is not None
    events = rig.webhook_events(order)
    assert len(events) == 1  # the whole order is readable
    assert_valid(events)
    assert isinstance(events[0], OrderCreated)
    assert events[0].lines == [EventLine(sku="TEE", qty=2)]


# --- options, checked when the config is loaded ----------------------------------------------


def test_the_registry_names_the_shopify_options() -> None:
    assert options_type("shopify") is Options


def test_good_options_load_with_their_documented_defaults(tmp_path: Path) -> None:
    channel = load_channel(
        tmp_path, "shopify", 'location_id = 655441491, return_location = "store-1"'
    )
    options = msgspec.convert(channel.options, Options)
    assert options.location_gid() == "gid://shopify/Location/655441491"
    assert (options.api_version, options.stale_wait_s, options.stale_retry_s) == ("2026-04", 30, 1)
    assert (options.order_lookback_s, options.cancel_notify_customer, options.timeout_s) == (
        86_400, True, 10,
    )
    gid = load_channel(tmp_path, "shopify", 'location_id = "gid://shopify/Location/7"')
    assert msgspec.convert(gid.options, Options).location_gid() == "gid://shopify/Location/7"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ('location_id = "warehouse"', "location_id"),  # neither a number nor a location GID
        ("location_id = -1", "location_id"),
        ("location_id = true", "location_id"),  # wrong type
        ("stale_wait_s = 1", "location_id"),  # required and missing
        ('location_id = 1, api_version = "2026"', "api_version"),
        ('location_id = 1, return_location = "no such/id"', "return_location"),
        ("location_id = 1, stale_wait_s = -1", "stale_wait_s"),  # out of range
        ("location_id = 1, stale_retry_s = inf", "stale_retry_s"),
        ("location_id = 1, timeout_s = 0", "timeout_s"),
        ('location_id = 1, cancel_notify_customer = "no"', "cancel_notify_customer"),
        ("location_id = 1, locaton = 2", "locaton"),  # unknown key
    ],
)
def test_a_bad_option_is_refused_at_load_naming_its_key(
    tmp_path: Path, options: str, key: str
) -> None:
    error = refused(tmp_path, "shopify", options)
    assert error.key == f"channels[0].options.{key}"
