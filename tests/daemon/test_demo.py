"""The living demo against a real daemon: ``invsync run`` as a subprocess, the simulator (its
marketplaces, warehouse, store till, receiving docks and surprises) in this process, over real
loopback HTTP, at accelerated rates (hundreds of orders a minute, seconds instead of minutes).

Over about twenty seconds orders ship (through the simulated warehouse, a marketplace's
fulfilment notification and the shipping desk's ``order.fulfilled``) or are cancelled, the store
sells, stock is received, and no SKU stays sold out although the run sells several times the
stock it started with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from invsync.core.config import load_config
from invsync.simulators.server import Simulator
from tests.daemon.helpers import Api, Daemon, counted, data_dir, free_port, poll, write_config

ENV = {
    "DEMO_EBAY_REFRESH": "v^1.1#refresh",
    "DEMO_EBAY_CLIENT_ID": "ebay-app",
    "DEMO_EBAY_CLIENT_SECRET": "ebay-cert",
    "DEMO_SHOP_SECRET": "shop-s3cret",
    "DEMO_WH_SECRET": "wh-s3cret",
}

#: (SKU, location, on hand) at the start: 45 units, a few seconds of the run's sales.
START = [
    ("TEE", "wh-east", 6), ("TEE", "wh-west", 6), ("TEE", "store-sf", 3),
    ("CAP", "wh-east", 6), ("CAP", "wh-west", 4), ("CAP", "store-sf", 3),
    ("MUG", "wh-east", 8), ("MUG", "wh-west", 9),
]
SKUS = sorted({sku for sku, _, _ in START})
RUN_S = 20.0
#: The longest a SKU may show nothing anywhere: a receiving round, its lead time and slack.
LONGEST_SOLD_OUT_S = 6.0


def config_text(sim: str) -> str:
    return f"""
[redis]
data_dir = "data"

[[locations]]
id = "wh-east"
priority = 10
transit_days = {{ east = 2, west = 5, default = 7 }}
ship_cost = {{ east = 6.0, west = 9.5, default = 14.0 }}

[locations.fulfillment]
kind = "webhook"
url = "{sim}/warehouse/wh-east"
secret_env = "DEMO_WH_SECRET"

[[locations]]
id = "wh-west"
priority = 20
transit_days = {{ east = 5, west = 2, default = 7 }}
ship_cost = {{ east = 9.5, west = 6.0, default = 14.0 }}

[[locations]]
id = "store-sf"
kind = "store"
priority = 50
safety_stock = 1
transit_days = {{ west = 1 }}
ship_cost = {{ west = 8.0 }}

[[channels]]
id = "shop"
kind = "webhook"
url = "{sim}/webhooks/shop"
secret_env = "DEMO_SHOP_SECRET"
rate_limit_per_s = 50

[[channels]]
id = "ebay"
kind = "ebay"
url = "{sim}/ebay"
token_env = "DEMO_EBAY_REFRESH"
rate_limit_per_s = 50

[channels.options]
client_id_env = "DEMO_EBAY_CLIENT_ID"
client_secret_env = "DEMO_EBAY_CLIENT_SECRET"
order_poll_s = 0.3

[routing]
zones = {{ "US-CA" = "west", "US-WA" = "west", US = "east" }}

[exceptions]
drift_check_s = 0

[simulator]
port = {sim.rsplit(":", 1)[1]}
seed = 5
orders_per_minute = 240
ship_after_s = 1.5
cancel_rate = 0.1
cancel_after_s = 0.3
pick_s = 0.6
store_sales_per_minute = 60
restock_every_s = 2
restock_lead_s = 1
surprise_every_s = 2
"""


def _token(config: Path) -> str | None:
    path = data_dir(config) / "api-token"
    return path.read_text().strip() if path.exists() else None


@pytest.fixture
async def demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Simulator, Path]]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    sim_url = f"http://127.0.0.1:{free_port()}"
    config_path = write_config(tmp_path, config_text(sim_url))
    sim = Simulator.from_config(load_config(config_path), token=lambda: _token(config_path))
    sim.list_skus(SKUS)
    async with sim:
        yield sim, config_path


async def _available(api: Api, sku: str) -> int:
    """Units of ``sku`` any channel may sell right now (the best channel's availability)."""
    view = await api.stock(sku)
    if view is None:
        return 0
    return max((int(c["available"]) for c in view["channels"].values()), default=0)


async def test_the_demo_ships_receives_and_never_stays_sold_out(
    demo: tuple[Simulator, Path],
) -> None:
    sim, config = demo
    assert sim.demo is not None, "the demo runs with a daemon url and a token"
    with Daemon(config, env=ENV) as daemon:
        daemon.wait_for("started")
        async with Api(config) as api:
            await api.post_events(
                [counted(f"start-{sku}-{loc}", sku, loc, n) for sku, loc, n in START], wait=5
            )
            # Watch every SKU for the run: the longest stretch each showed 0 on every channel.
            sold_out_since: dict[str, float | None] = dict.fromkeys(SKUS)
            longest = dict.fromkeys(SKUS, 0.0)
            end = time.monotonic() + RUN_S
            while time.monotonic() < end:
                now = time.monotonic()
                for sku in SKUS:
                    if await _available(api, sku) > 0:
                        sold_out_since[sku] = None
                        continue
                    since = sold_out_since[sku] = sold_out_since[sku] or now
                    longest[sku] = max(longest[sku], now - since)
                await asyncio.sleep(0.25)

            state = sim.demo.state()
            # It sold several times what it started with, so it lived on what was received.
            sold = sum(line.qty for channel in sim.channels.values()
                       for order in channel.orders.values() if order.status != "cancelled"
                       for line in order.lines)
            received = sim.demo.receiving.units_received
            started = sum(n for _, _, n in START)
            assert all(v <= LONGEST_SOLD_OUT_S for v in longest.values()), longest
            assert sold > started, (sold, started)
            assert received > 0 and state["units_received"] == received, state

            # Orders shipped by each path, and the daemon recorded them as fulfilled.
            done = sim.demo.desk.done
            kinds = {what for _, _, what in done}
            assert {"notified", "posted", "cancelled"} <= kinds, kinds
            for path in ("notified", "posted"):
                channel, order_id = next((c, o) for c, o, what in done if what == path)
                await poll(lambda c=channel, o=order_id: _state_is(api, c, o, "fulfilled"), 15,
                           f"{path} order {channel}/{order_id} to be fulfilled")

            async def one_cancelled() -> bool:
                # (an order the daemon had refused as oversold has no reservation to cancel)
                for c, o, what in done:
                    if what == "cancelled" and await _state_is(api, c, o, "cancelled"):
                        return True
                return False

            await poll(one_cancelled, 15, "a buyer's cancellation to release its order")
            shipped = sim.warehouses["wh-east"].shipped
            assert any(status == 202 for _, status in shipped), shipped[-3:]

            # The store's till sold, through the daemon's API.
            assert sim.demo.store.sales > 0
            assert any(delta < 0 for _, _, delta in sim.demo.store.moves)
            assert sim.demo.surprises.staged

            # An oversell through drift, staged now, opens an oversold exception.
            staged = await sim.demo.surprises.oversell_through_drift()
            assert staged is not None
            oversold_channel, oversold_sku = staged

            async def oversold() -> bool:
                status, body = await api.request("GET", "/v1/exceptions?kind=oversold")
                return status == 200 and any(
                    x["channel"] == oversold_channel and x["sku"] == oversold_sku
                    for x in body["items"]
                )

            await poll(oversold, 15, "an oversold exception for the staged oversell")
            await sim.demo.close()  # nothing more to tell the daemon, which stops now
        await daemon.astop()


async def _state_is(api: Api, channel: str, order_id: str, state: str) -> bool:
    view = await api.order(channel, order_id)
    return view is not None and view["state"] == state
