"""The simulated eBay's getOrders: answers in eBay's documented shape (checked against our
transcription in ``tests/adapters/fixtures/ebay/fulfillment.schema.json``), paging with
``next``, and the order generator placing eBay orders (and cancelling some) for the poll."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from invsync.core.config import Channel
from invsync.simulators.core import SimLine
from invsync.simulators.ebay import EbaySimulator
from invsync.simulators.server import Simulator

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "adapters/fixtures/ebay/fulfillment.schema.json").read_text()
)
SECRETS = {
    "SIMT_EBAY_REFRESH": "refresh-token",
    "SIMT_EBAY_ID": "app-id",
    "SIMT_EBAY_SECRET": "cert-id",
}
ORDERS_SCOPE = "https://api.ebay.com/oauth/api_scope/sell.fulfillment.readonly"


def conforms(instance: Any, type_name: str) -> None:
    jsonschema.validate(instance, {"$ref": f"#/$defs/{type_name}", "$defs": SCHEMA["$defs"]})


def channel(base: str) -> Channel:
    return Channel(
        id="ebay",
        kind="ebay",
        url=f"{base}/ebay",
        token_env="SIMT_EBAY_REFRESH",
        options={"client_id_env": "SIMT_EBAY_ID", "client_secret_env": "SIMT_EBAY_SECRET"},
    )


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


async def token(session: aiohttp.ClientSession, base: str, scope: str = ORDERS_SCOPE) -> str:
    async with session.post(
        f"{base}/ebay/identity/v1/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": "refresh-token", "scope": scope},
        headers={"Authorization": "Basic " + base64.b64encode(b"app-id:cert-id").decode()},
    ) as resp:
        assert resp.status == 200
        return str((await resp.json())["access_token"])


async def test_get_orders_answers_in_ebays_shape_and_pages_with_next(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim = simulator.add(channel(simulator.url))
    assert isinstance(sim, EbaySimulator)
    sim.set_quantity("MUG", 10)
    first = sim.place_order([SimLine(sku="MUG", qty=2)])
    sim.place_order([SimLine(sku="MUG", qty=1)])
    assert first is not None
    sim.change_order(first.order_id, "cancelled")
    headers = {"Authorization": f"Bearer {await token(session, simulator.url)}"}
    url = f"{simulator.url}/ebay/sell/fulfillment/v1/order"

    async with session.get(url, params={"limit": "1"}, headers=headers) as resp:
        assert resp.status == 200
        page = await resp.json()
    conforms(page, "OrderSearchPagedCollection")
    assert (page["total"], page["limit"], page["offset"]) == (2, 1, 0)
    assert "offset=1" in page["next"]
    async with session.get(page["next"], headers=headers) as resp:
        second = await resp.json()
    conforms(second, "OrderSearchPagedCollection")
    assert "next" not in second
    orders = page["orders"] + second["orders"]
    states = {o["orderId"]: o["cancelStatus"]["cancelState"] for o in orders}
    assert states[first.order_id] == "CANCELED"
    assert sorted(states.values()) == ["CANCELED", "NONE_REQUESTED"]
    assert sim.quantities["MUG"] == 9  # the cancelled order's units went back


async def test_get_orders_needs_a_fulfillment_scope(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    simulator.add(channel(simulator.url))
    inventory_only = await token(
        session, simulator.url, "https://api.ebay.com/oauth/api_scope/sell.inventory"
    )
    async with session.get(
        f"{simulator.url}/ebay/sell/fulfillment/v1/order",
        headers={"Authorization": f"Bearer {inventory_only}"},
    ) as resp:
        assert resp.status == 403
        assert (await resp.json())["errors"][0]["errorId"] == 1100


async def test_the_order_generator_places_ebay_orders_and_cancels_some() -> None:
    async with Simulator(
        port=0, seed=11, orders_per_minute=60_000, daemon_url="http://127.0.0.1:9"
    ) as simulator:
        sim = simulator.add(channel(simulator.url))
        assert isinstance(sim, EbaySimulator)
        sim.rng = random.Random(3)
        sim.cancel_rate = 0.5
        sim.set_quantity("MUG", 10_000)
        for _ in range(500):
            if any(o.status == "cancelled" for o in sim.orders.values()) and len(sim.orders) > 3:
                break
            await asyncio.sleep(0.01)
    assert len(sim.orders) > 3
    assert any(o.status == "cancelled" for o in sim.orders.values())
    assert all(line.sku == "MUG" for o in sim.orders.values() for line in o.lines)
