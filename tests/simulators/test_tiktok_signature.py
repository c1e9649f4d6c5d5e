"""The simulated TikTok Shop refuses a request signed any way but the documented one, however
the client got it wrong (106001, HTTP 401), and accepts the documented one."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

import aiohttp
import pytest

from invsync.core.config import Channel
from invsync.simulators.server import Simulator
from invsync.simulators.signing import tiktok_request_sign
from invsync.simulators.tiktok import TikTokShopSim

APP_KEY = "sim-app-key"
APP_SECRET = "sim-app-secret"
CIPHER = "ROW_sim_cipher"
TOKEN = "TTP_sim_access"
PATH = "/tt/product/202309/products/search"
BODY = b'{"seller_skus":["TEE-BLK-M"]}'


@pytest.fixture
def shop(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> TikTokShopSim:
    monkeypatch.setenv("SIM_TT_SECRET", APP_SECRET)
    monkeypatch.setenv("SIM_TT_TOKEN", TOKEN)
    channel = Channel(
        id="tt",
        kind="tiktok",
        url=f"{simulator.url}/tt",
        token_env="SIM_TT_TOKEN",
        options={
            "app_key": APP_KEY,
            "app_secret_env": "SIM_TT_SECRET",
            "shop_cipher": CIPHER,
            "warehouse_id": "W1",
        },
    )
    sim = simulator.add(channel)
    assert isinstance(sim, TikTokShopSim)
    return sim


def _query() -> dict[str, str]:
    return {
        "app_key": APP_KEY,
        "shop_cipher": CIPHER,
        "timestamp": str(int(time.time())),
        "page_size": "10",
    }


def _documented(query: dict[str, str]) -> str:
    """The doc's steps, spelled out once more: sorted {key}{value} behind the path, the body
    after, the app secret around it all, HMAC-SHA256 under the app secret."""
    pairs = "".join(f"{k}{query[k]}" for k in sorted(query))
    text = APP_SECRET.encode() + (PATH + pairs).encode() + BODY + APP_SECRET.encode()
    return hmac.new(APP_SECRET.encode(), text, hashlib.sha256).hexdigest()


def _unsorted(query: dict[str, str]) -> str:
    pairs = "".join(f"{k}{v}" for k, v in query.items())
    text = APP_SECRET.encode() + (PATH + pairs).encode() + BODY + APP_SECRET.encode()
    return hmac.new(APP_SECRET.encode(), text, hashlib.sha256).hexdigest()


def _without_body(query: dict[str, str]) -> str:
    pairs = "".join(f"{k}{query[k]}" for k in sorted(query))
    text = APP_SECRET.encode() + (PATH + pairs).encode() + APP_SECRET.encode()
    return hmac.new(APP_SECRET.encode(), text, hashlib.sha256).hexdigest()


def _with_token(query: dict[str, str]) -> str:
    return _documented({**query, "access_token": TOKEN})


async def _search(
    simulator: Simulator, session: aiohttp.ClientSession, query: dict[str, str]
) -> tuple[int, dict[str, object]]:
    async with session.post(
        simulator.url + PATH,
        params=query,
        data=BODY,
        headers={"Content-Type": "application/json", "x-tts-access-token": TOKEN},
    ) as resp:
        return resp.status, json.loads(await resp.read())


async def test_the_documented_signature_is_accepted(
    simulator: Simulator, session: aiohttp.ClientSession, shop: TikTokShopSim
) -> None:
    query = _query()
    status, answer = await _search(simulator, session, {**query, "sign": _documented(query)})
    assert (status, answer["code"]) == (200, 0)
    assert shop.received and shop.received[-1][0] == "search_products"


@pytest.mark.parametrize("misreading", [_unsorted, _without_body, _with_token])
async def test_a_misread_signature_is_refused(
    simulator: Simulator,
    session: aiohttp.ClientSession,
    shop: TikTokShopSim,
    misreading: Callable[[dict[str, str]], str],
) -> None:
    query = {
        "timestamp": str(int(time.time())),
        "page_size": "10",
        "shop_cipher": CIPHER,
        "app_key": APP_KEY,
    }  # not in key order, so "unsorted" differs
    sign = misreading(query)
    assert sign != _documented(query)
    status, answer = await _search(simulator, session, {**query, "sign": sign})
    assert (status, answer["code"]) == (401, 106001)
    assert not shop.received


async def test_a_non_ascii_signature_is_refused_not_a_server_error(
    simulator: Simulator, session: aiohttp.ClientSession, shop: TikTokShopSim
) -> None:
    status, answer = await _search(simulator, session, {**_query(), "sign": "é" * 64})
    assert (status, answer["code"]) == (401, 106001)


def test_the_simulator_checks_against_tiktoks_published_example() -> None:
    """TikTok's worked example (partner.tiktokshop.com/docv2/page/sign-your-api-request, "Get
    Authorized Shops"): app secret e59af819cc, app_key 29a39d, timestamp 1623812664; the sign
    the page's steps arrive at. The simulator's own signing (simulators/signing.py) must give
    it, whatever the adapter does."""
    query = {"timestamp": "1623812664", "app_key": "29a39d", "sign": "x", "access_token": "t"}
    assert tiktok_request_sign("e59af819cc", "/authorization/202309/shops", query, b"") == (
        "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8"
    )


async def test_a_seller_sku_not_listed_on_the_shop_is_not_found(
    simulator: Simulator, session: aiohttp.ClientSession, shop: TikTokShopSim
) -> None:
    """Search Products answers an empty list for a seller SKU the shop has no product for,
    until the seller lists it."""
    query = _query()
    status, answer = await _search(simulator, session, {**query, "sign": _documented(query)})
    data = answer["data"]
    assert isinstance(data, dict)
    assert (status, data["products"], data["total_count"]) == (200, [], 0)
    shop.list_skus(["TEE-BLK-M"])
    query = _query()
    status, answer = await _search(simulator, session, {**query, "sign": _documented(query)})
    data = answer["data"]
    assert isinstance(data, dict)
    assert data["total_count"] == 1
    assert [s["seller_sku"] for s in data["products"][0]["skus"]] == ["TEE-BLK-M"]
