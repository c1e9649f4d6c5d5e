"""Every marketplace end to end: ``invsync run`` as a subprocess pushing to the simulators that
``invsync simulate`` serves (here in-process, on a free port), with the shipped config's shape.

Stock counted through the API reaches Shopify, Amazon, eBay, Walmart, TikTok, the wholesale
webhook and an EDI 846 folder; an order placed on a marketplace arrives as that marketplace's
signed webhook, is reserved, and every other channel sees the new number; a quantity changed
behind our back is found as drift and put right; an oversold order is cancelled on Shopify
through its API when the operator resolves the exception that way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from invsync.core.config import load_config
from invsync.simulators.core import SimLine
from invsync.simulators.server import Simulator
from tests.daemon.helpers import LOCATIONS, Api, Daemon, counted, free_port, poll, write_config

ENV = {
    "E2E_WHOLESALE_SECRET": "wholesale-s3cret",
    "E2E_SHOPIFY_TOKEN": "shpat_e2e",
    "E2E_SHOPIFY_SECRET": "shopify-app-s3cret",
    "E2E_AMAZON_REFRESH": "Atzr|e2e",
    "E2E_AMAZON_CLIENT_ID": "amzn1.application-oa2-client.e2e",
    "E2E_AMAZON_CLIENT_SECRET": "amazon-s3cret",
    "E2E_AMAZON_RELAY": "relay-s3cret",
    "E2E_EBAY_REFRESH": "v^1.1#e2e",
    "E2E_EBAY_CLIENT_ID": "ebay-app",
    "E2E_EBAY_CLIENT_SECRET": "ebay-cert",
    "E2E_WALMART_CLIENT_ID": "walmart-client",
    "E2E_WALMART_CLIENT_SECRET": "walmart-s3cret",
    "E2E_TIKTOK_TOKEN": "ROW_e2e",
    "E2E_TIKTOK_APP_SECRET": "tiktok-s3cret",
}

MARKETPLACES = ("shopify", "amazon", "ebay", "walmart", "tiktok", "wholesale")


def channels(sim: str) -> str:
    """The shipped config.toml's channel blocks, pointed at ``sim`` with fast limits."""
    return f"""
[[channels]]
id = "shopify"
kind = "shopify"
url = "{sim}/shopify"
token_env = "E2E_SHOPIFY_TOKEN"
secret_env = "E2E_SHOPIFY_SECRET"
rate_limit_per_s = 50
options = {{ location_id = "68000000001", return_location = "wh-east" }}

[[channels]]
id = "amazon"
kind = "amazon"
url = "{sim}/amazon"
token_env = "E2E_AMAZON_REFRESH"
secret_env = "E2E_AMAZON_RELAY"
buffer = 2
rate_limit_per_s = 5
[channels.options]
seller_id = "A1E2E"
marketplace_id = "ATVPDKIKX0DER"
client_id_env = "E2E_AMAZON_CLIENT_ID"
client_secret_env = "E2E_AMAZON_CLIENT_SECRET"
token_url = "{sim}/amazon/auth/o2/token"

[[channels]]
id = "ebay"
kind = "ebay"
url = "{sim}/ebay"
token_env = "E2E_EBAY_REFRESH"
percent = 50
rate_limit_per_s = 50
options = {{ client_id_env = "E2E_EBAY_CLIENT_ID", client_secret_env = "E2E_EBAY_CLIENT_SECRET" }}

[[channels]]
id = "walmart"
kind = "walmart"
url = "{sim}/walmart"
locations = ["wh-east", "wh-west"]
rate_limit_per_s = 50
[channels.options]
client_id_env = "E2E_WALMART_CLIENT_ID"
client_secret_env = "E2E_WALMART_CLIENT_SECRET"

[[channels]]
id = "tiktok"
kind = "tiktok"
url = "{sim}/tiktok"
token_env = "E2E_TIKTOK_TOKEN"
rate_limit_per_s = 5
[channels.options]
app_key = "e2e"
app_secret_env = "E2E_TIKTOK_APP_SECRET"
shop_cipher = "GCP_e2e"
warehouse_id = "7000000000000000001"

[[channels]]
id = "wholesale"
kind = "webhook"
url = "{sim}/webhooks/wholesale"
secret_env = "E2E_WHOLESALE_SECRET"
rate_limit_per_s = 50

[[channels]]
id = "retail-edi"
kind = "edi846"
options = {{ folder = "edi", sender_id = "INVSYNC", receiver_id = "PARTNER" }}

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
    sim_url = f"http://127.0.0.1:{port}"
    text = LOCATIONS + channels(sim_url) + f"\n[simulator]\nport = {port}\n"
    config_path = write_config(tmp_path, text)
    config = load_config(config_path)
    sim = Simulator.from_config(config)
    assert sorted(sim.channels) == sorted(MARKETPLACES)
    sim.list_skus(["TEE", "MUG", "CAP"])  # the catalogue the marketplaces list
    async with sim:
        yield sim, config_path


async def shows(sim: Simulator, api: Api, sku: str) -> dict[str, int] | None:
    """Channel -> units, once every simulated marketplace shows what the daemon computed."""
    view = await api.stock(sku)
    if view is None:
        return None
    want = {ch: view["channels"][ch]["available"] for ch in MARKETPLACES}
    have = {ch: sim.channel(ch).quantities.get(sku) for ch in MARKETPLACES}
    return want if have == want else None


async def test_stock_and_orders_flow_through_every_marketplace(
    running: tuple[Simulator, Path], tmp_path: Path
) -> None:
    sim, config = running
    with Daemon(config, env=ENV) as daemon:
        started = daemon.wait_for("started")
        assert sorted(started["channels"]) == sorted([*MARKETPLACES, "retail-edi"])
        async with Api(config) as api:
            await api.post_events(
                [counted("c-1", "TEE", "wh-east", 10), counted("c-2", "TEE", "wh-west", 4)],
                wait=5,
            )
            first = await poll(lambda: shows(sim, api, "TEE"), 30, "every channel to show TEE")
            assert first == {
                "shopify": 14,
                "amazon": 12,  # buffer 2
                "ebay": 7,  # half
                "walmart": 14,
                "tiktok": 14,
                "wholesale": 14,
            }

            def edi_advises_14() -> bool:
                files = sorted((tmp_path / "edi").glob("846_retail-edi_*.edi"))
                return bool(files) and "LIN**SK*TEE~QTY*33*14*EA~" in files[-1].read_text()

            await poll(edi_advises_14, 30, "an 846 file advising 14 units of TEE")

            # A buyer orders 3 on Shopify: the units leave Shopify at once, the order webhook
            # reaches the daemon, the reservation moves every other channel.
            order = sim.channel("shopify").place_order([SimLine(sku="TEE", qty=3)])
            assert order is not None
            assert await sim.notify("shopify", order) == 202
            after = await poll(
                lambda: _shows_exactly(sim, api, "TEE", shopify=11),
                30,
                "every channel to show TEE after the Shopify order",
            )
            assert after["amazon"] == 9 and after["ebay"] == 5
            view = await api.request("GET", f"/v1/orders/shopify/{order.order_id}")
            assert view[0] == 200 and view[1]["outcome"] == "reserved"

            # A TikTok order arrives the TikTok way (no lines in the webhook, fetched after).
            tiktok = sim.channel("tiktok").place_order([SimLine(sku="TEE", qty=1)])
            assert tiktok is not None
            assert await sim.notify("tiktok", tiktok) == 202
            await poll(
                lambda: _shows_exactly(sim, api, "TEE", shopify=10),
                30,
                "every channel to show TEE after the TikTok order",
            )

            # A forged Shopify webhook is refused and changes nothing.
            status, _ = await api.request(
                "POST",
                "/webhooks/shopify",
                b'{"id": 1}',
                {"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": "Zm9yZ2Vk"},
            )
            assert status == 401


async def test_drift_is_found_and_our_value_pushed_again(
    running: tuple[Simulator, Path],
) -> None:
    sim, config = running
    with Daemon(config, env=ENV) as daemon:
        daemon.wait_for("started")
        async with Api(config) as api:
            await api.post_events([counted("c-1", "MUG", "wh-east", 8)], wait=5)
            await poll(lambda: shows(sim, api, "MUG"), 30, "every channel to show MUG")
            for channel in ("ebay", "walmart", "shopify", "amazon", "tiktok"):
                sim.channel(channel).set_quantity("MUG", 99)  # edited on the marketplace
                status, report = await api.request(
                    "POST",
                    f"/v1/channels/{channel}/drift-check",
                    {"confirm_s": 0.2, "settle_s": 0},
                )
                assert status == 200, report
                assert [(d["sku"], d["theirs"]) for d in report["drift"]] == [("MUG", 99)], (
                    channel,
                    report,
                )
                exception_id = report["drift"][0]["exception"]
                status, record = await api.request(
                    "POST", f"/v1/exceptions/{exception_id}/resolve", {"action": "push_ours"}
                )
                assert status == 200 and record["state"] == "resolved", record
                ours = report["drift"][0]["ours"]
                await poll(
                    lambda ch=channel, n=ours: sim.channel(ch).quantities.get("MUG") == n,
                    30,
                    f"{channel} to show our MUG again",
                )
            # The webhook channel cannot read back: said so, nothing invented.
            status, report = await api.request("POST", "/v1/channels/wholesale/drift-check", {})
            assert status == 200 and "cannot read" in report["error"]
            status, _ = await api.request("POST", "/v1/channels/nope/drift-check", {})
            assert status == 404


async def test_an_oversold_shopify_order_is_cancelled_on_shopify_when_resolved_so(
    running: tuple[Simulator, Path],
) -> None:
    sim, config = running
    with Daemon(config, env=ENV) as daemon:
        daemon.wait_for("started")
        async with Api(config) as api:
            await api.post_events([counted("c-1", "CAP", "wh-east", 1)], wait=5)
            await poll(lambda: shows(sim, api, "CAP"), 30, "every channel to show CAP")
            shop = sim.channel("shopify")
            shop.set_quantity("CAP", 5)  # Shopify believes it has more than we do
            order = shop.place_order([SimLine(sku="CAP", qty=3)])
            assert order is not None
            assert await sim.notify("shopify", order) == 202

            async def oversold() -> dict[str, Any] | None:
                status, body = await api.request("GET", "/v1/exceptions?kind=oversold")
                return body["items"][0] if status == 200 and body["items"] else None

            record = await poll(oversold, 20, "an oversold exception")
            assert record["channel"] == "shopify" and record["order_id"] == order.order_id
            cancel = next(o for o in record["options"] if o["action"] == "cancel")
            assert "not automatic" not in cancel["effect"]
            status, done = await api.request(
                "POST", f"/v1/exceptions/{record['id']}/resolve", {"action": "cancel"}
            )
            assert status == 200, done
            assert done["resolution"]["channel_notified"] is True
            assert shop.orders[order.order_id].status == "cancelled"
            # Shopify then sends its own orders/cancelled: an echo, not a new problem.
            assert await sim.notify("shopify", shop.orders[order.order_id]) == 202
            status, body = await api.request(
                "POST", "/v1/events?wait=5",
                [counted("c-echo-fence", "FENCE", "wh-east", 1)],
            )
            assert status == 202  # processed in order after the echo
            status, body = await api.request("GET", "/v1/exceptions?kind=bad_event")
            assert status == 200 and body["items"] == [], body


async def _shows_exactly(
    sim: Simulator, api: Api, sku: str, **expected: int
) -> dict[str, int] | None:
    got = await shows(sim, api, sku)
    if got is None or any(got[ch] != n for ch, n in expected.items()):
        return None
    return got


def test_channel_blocks_match_the_shipped_config() -> None:
    """The shipped config.toml has the same six simulated marketplaces this test runs."""
    shipped = load_config(Path(__file__).parents[2] / "config.toml")
    prefix = f"http://{shipped.simulator.host}:{shipped.simulator.port}/"
    simulated = {c.id for c in shipped.channels if (c.url or "").startswith(prefix)}
    assert simulated == set(MARKETPLACES)
    kinds = {c.kind for c in shipped.channels}
    assert {"shopify", "amazon", "ebay", "walmart", "tiktok", "webhook", "edi846"} <= kinds
