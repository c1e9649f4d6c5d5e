"""eBay orders end to end: ``invsync run`` as a subprocess polls the simulated eBay's getOrders;
a sale there reserves stock (every channel sees the new number), a cancellation releases it,
and after a restart the overlap's re-reads reserve nothing twice."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from invsync.core.config import load_config
from invsync.simulators.core import SimLine
from invsync.simulators.server import Simulator
from tests.daemon.helpers import (
    LOCATIONS,
    Api,
    Daemon,
    counted,
    free_port,
    metric,
    poll,
    write_config,
)

ENV = {
    "EO_EBAY_REFRESH": "v^1.1#refresh",
    "EO_EBAY_CLIENT_ID": "ebay-app",
    "EO_EBAY_CLIENT_SECRET": "ebay-cert",
    "EO_SHOP_SECRET": "shop-s3cret",
}


def channels(sim: str) -> str:
    return f"""
[[channels]]
id = "ebay"
kind = "ebay"
url = "{sim}/ebay"
token_env = "EO_EBAY_REFRESH"
rate_limit_per_s = 50

[channels.options]
client_id_env = "EO_EBAY_CLIENT_ID"
client_secret_env = "EO_EBAY_CLIENT_SECRET"
order_poll_s = 0.3

[[channels]]
id = "shop"
kind = "webhook"
url = "{sim}/webhooks/shop"
secret_env = "EO_SHOP_SECRET"
rate_limit_per_s = 50

[exceptions]
drift_check_s = 0
"""


@pytest.fixture
async def running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Simulator, Path]]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    text = LOCATIONS + channels(f"http://127.0.0.1:{port}") + f"\n[simulator]\nport = {port}\n"
    config_path = write_config(tmp_path, text)
    sim = Simulator.from_config(load_config(config_path))
    sim.list_skus(["TEE"])
    async with sim:
        yield sim, config_path


async def available(api: Api, channel: str) -> int | None:
    view = await api.stock("TEE")
    return None if view is None else int(view["channels"][channel]["available"])


async def test_an_ebay_sale_reserves_a_cancellation_releases_and_a_restart_rereads_harmlessly(
    running: tuple[Simulator, Path],
) -> None:
    sim, config = running
    ebay = sim.channel("ebay")
    with Daemon(config, env=ENV) as daemon:
        daemon.wait_for("started")
        async with Api(config) as api:
            await api.post_events([counted("c-1", "TEE", "wh-east", 10)], wait=5)
            await poll(lambda: ebay.quantities.get("TEE") == 10 or None, 30, "eBay to show 10")

            order = ebay.place_order([SimLine(sku="TEE", qty=3)])
            assert order is not None
            await poll(
                lambda: _equals(available(api, "shop"), 7), 30, "the eBay sale to be reserved"
            )
            view = await api.order("ebay", order.order_id)
            assert view is not None and view["outcome"] == "reserved"
            await poll(lambda: ebay.quantities.get("TEE") == 7 or None, 30, "eBay to show 7")

        daemon.stop(signal.SIGTERM)
        polls_before = ebay.calls["getOrders:ok"]
        daemon.start()
        daemon.wait_for("started")
        async with Api(config) as api:
            # The restarted poll reads the order again (the overlap): a duplicate, not a sale.
            await poll(
                lambda: ebay.calls["getOrders:ok"] >= polls_before + 3 or None,
                30,
                "three polls after the restart",
            )
            assert await available(api, "shop") == 7
            text = await api.metrics()
            assert metric(text, "invsync_order_polls_total", channel="ebay", outcome="ok") >= 1

            ebay.change_order(order.order_id, "cancelled")
            await poll(
                lambda: _equals(available(api, "shop"), 10), 30, "the cancellation to release"
            )


async def _equals(value: object, want: int) -> bool | None:
    got = await value  # type: ignore[misc]
    return True if got == want else None
