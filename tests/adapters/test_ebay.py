"""The eBay adapter's pushes and read-back against the eBay simulator over real HTTP on loopback.

The request and answer shapes are checked against ``fixtures/ebay/inventory.schema.json``, a
transcription of eBay's Inventory API contract (sell_inventory_v1_oas3.json 1.18.5) whose
``$comment`` names its sources. Offers and the daily revision guard: ``test_ebay_offers.py``;
the order poll: ``test_ebay_orders.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import msgspec
import pytest

from invsync.adapters.base import (
    AdapterContext,
    BadWebhook,
    Retryable,
    Throttled,
    Unauthorized,
)
from invsync.adapters.ebay import DEFAULT_SCOPE, EbayAdapter, Options, create
from invsync.adapters.registry import MissingSecret, make_adapter, options_type
from invsync.core.config import Channel, Faults
from invsync.simulators.core import SimOrder
from invsync.simulators.ebay import SCOPE_READONLY, EbaySimulator
from invsync.simulators.limits import FixedWindow
from invsync.simulators.server import Simulator
from tests.adapters.channel_config import load_channel, refused
from tests.adapters.ebay_helpers import (
    Clock,
    adapter,
    clock,
    conforms,
    credentials,
    ebay_channel,
    make,
    outcomes,
    sim,
    updates,
)

__all__ = ["adapter", "clock", "credentials", "sim"]  # fixtures of ebay_helpers used here

# --- payload and round trip -------------------------------------------------------------------


async def test_push_sends_the_documented_bulk_price_quantity(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    results = await adapter.push(updates(("TEE-BLK-M", 7), ("TEE-BLK-L", 0)))

    assert outcomes(results) == {"TEE-BLK-M": "ok", "TEE-BLK-L": "ok"}
    payloads = [json.loads(body) for _, body in sim.received]
    for payload in payloads:
        conforms(payload, "BulkPriceQuantity")
    # One SKU per call (the method page's stricter reading); no offers: the SKUs have none.
    assert payloads == [
        {"requests": [{"sku": "TEE-BLK-M", "shipToLocationAvailability": {"quantity": 7}}]},
        {"requests": [{"sku": "TEE-BLK-L", "shipToLocationAvailability": {"quantity": 0}}]},
    ]
    headers = sim.received[-1][0]
    assert headers["content-type"] == "application/json"
    assert headers["content-language"] == "en-US"
    assert headers["authorization"].startswith("Bearer v^1.1#")


def test_the_schema_fixture_refuses_what_ebay_does_not_document() -> None:
    good = {"requests": [{"sku": "A", "shipToLocationAvailability": {"quantity": 1}}]}
    conforms(good, "BulkPriceQuantity")
    misspelt = {"requests": [{"sku": "A", "shipToLocationAvailabilty": {"quantity": 1}}]}
    with pytest.raises(jsonschema.ValidationError):
        conforms(misspelt, "BulkPriceQuantity")
    with pytest.raises(jsonschema.ValidationError):
        conforms({"requests": good["requests"] * 26}, "BulkPriceQuantity")


async def test_round_trip_push_then_read_back(adapter: EbayAdapter, sim: EbaySimulator) -> None:
    await adapter.push(updates(("A", 3), ("B", 12)))

    assert sim.quantities == {"A": 3, "B": 12}
    assert await adapter.read_back(["A", "B", "NEVER-PUSHED"]) == {"A": 3, "B": 12}


async def test_read_back_sees_a_change_made_on_ebay(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    await adapter.push(updates(("A", 3)))
    sim.set_quantity("A", 1)  # a manual edit in Seller Hub

    assert await adapter.read_back(["A"]) == {"A": 1}


async def test_read_back_takes_25_skus_per_call_and_leaves_out_what_ebay_lacks(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    for i in range(30):
        sim.set_quantity(f"S{i:02}", i)
    sim.unlisted.add("S05")

    theirs = await adapter.read_back([f"S{i:02}" for i in range(30)] + ["GONE"])

    assert theirs == {f"S{i:02}": i for i in range(30) if i != 5}
    assert sim.calls["bulkGetInventoryItem:ok"] == 2


async def test_read_back_of_only_unknown_skus_is_empty(adapter: EbayAdapter) -> None:
    assert await adapter.read_back(["X", "Y"]) == {}
    assert await adapter.read_back([]) == {}


async def test_a_per_sku_system_error_fails_the_read_back(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    sim.set_quantity("A", 1)
    sim.system_error_skus.add("A")
    with pytest.raises(Retryable, match="25001"):
        await adapter.read_back(["A"])


async def test_simulator_answers_in_the_documented_shapes(
    adapter: EbayAdapter, sim: EbaySimulator, session: aiohttp.ClientSession, simulator: Simulator
) -> None:
    sim.unlisted.add("GONE")
    await adapter.push(updates(("A", 2)))
    token = await adapter.tokens.token()
    base = f"{simulator.url}/ebay/sell/inventory/v1"
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    body = {"requests": [{"sku": "A", "shipToLocationAvailability": {"quantity": 4}}]}
    async with session.post(f"{base}/bulk_update_price_quantity", json=body, headers=auth) as r:
        assert r.status == 200
        conforms(await r.json(), "BulkPriceQuantityResponse")
    body = {"requests": [{"sku": "GONE", "shipToLocationAvailability": {"quantity": 1}}]}
    async with session.post(f"{base}/bulk_update_price_quantity", json=body, headers=auth) as r:
        assert r.status == 207
        conforms(await r.json(), "BulkPriceQuantityResponse")
    get = {"requests": [{"sku": "A"}, {"sku": "GONE"}]}
    async with session.post(f"{base}/bulk_get_inventory_item", json=get, headers=auth) as r:
        assert r.status == 207
        answer = await r.json()
    conforms(answer, "BulkGetInventoryItemResponse")
    assert answer["responses"][0]["inventoryItem"]["availability"] == {
        "shipToLocationAvailability": {"quantity": 4}
    }
    async with session.get(f"{base}/inventory_item/GONE", headers=auth) as r:
        assert r.status == 404
        errors = await r.json()
    conforms(errors, "ErrorResponse")
    assert errors["errors"][0]["errorId"] == 25710


# --- partial batches --------------------------------------------------------------------------


async def test_an_unlisted_sku_is_permanent_and_only_it(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    sim.unlisted.add("GONE")

    results = await adapter.push(updates(("A", 1), ("GONE", 4), ("B", 2)))

    assert outcomes(results) == {"A": "ok", "GONE": "permanent", "B": "ok"}
    gone = next(r for r in results if r.sku == "GONE")
    assert gone.error is not None and "25702" in gone.error
    assert sim.quantities == {"A": 1, "B": 2}
    assert sim.calls["bulkUpdatePriceQuantity:ok"] == 3  # answered 200 or 207 per SKU


async def test_a_sku_never_listed_on_ebay_is_refused_as_ebay_does(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    results = await adapter.push(updates(("NEVER-LISTED", 3)))

    assert outcomes(results) == {"NEVER-LISTED": "permanent"}
    assert "25702" in (results[0].error or "")
    assert "NEVER-LISTED" not in sim.quantities


async def test_a_per_item_system_error_is_retryable_and_only_it(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    sim.system_error_skus.add("FLAKY")

    results = await adapter.push(updates(("A", 1), ("FLAKY", 4), ("B", 2)))

    assert outcomes(results) == {"A": "ok", "FLAKY": "retryable", "B": "ok"}
    assert sim.quantities == {"A": 1, "B": 2}


async def test_a_negative_quantity_is_refused_for_that_sku(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    results = await adapter.push(updates(("A", 1), ("B", -1)))

    assert outcomes(results) == {"A": "ok", "B": "permanent"}
    assert "25709" in (results[1].error or "")
    assert sim.quantities == {"A": 1}


async def test_a_repeated_sku_is_sent_once_with_its_last_value(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    results = await adapter.push(updates(("A", 1), ("A", 5)))

    assert [r.outcome for r in results] == ["ok", "ok"]
    assert json.loads(sim.received[-1][1])["requests"] == [
        {"sku": "A", "shipToLocationAvailability": {"quantity": 5}}
    ]


# --- SKUs per call -----------------------------------------------------------------------------


async def test_skus_go_one_per_call_unless_raised(
    simulator: Simulator, sim: EbaySimulator, session: aiohttp.ClientSession, clock: Clock
) -> None:
    default = make(simulator, session, clock)
    assert default.max_batch == 1  # the actor hands one SKU at a time

    results = await default.push(updates(("A", 1), ("B", 2), ("S00", 3)))
    assert [r.outcome for r in results] == ["ok"] * 3
    assert [len(json.loads(body)["requests"]) for _, body in sim.received] == [1, 1, 1]

    sim.received.clear()
    sim.max_skus_per_call = 25  # an account eBay confirmed the type page's "up to 25" for
    raised = make(simulator, session, clock, skus_per_call=25)
    assert raised.max_batch == 25
    results = await raised.push(updates(*((f"S{i:02}", i) for i in range(26))))
    assert [r.outcome for r in results] == ["ok"] * 26
    assert [len(json.loads(body)["requests"]) for _, body in sim.received] == [25, 1]


async def test_the_simulator_refuses_more_skus_per_call_than_allowed(
    adapter: EbayAdapter, sim: EbaySimulator, session: aiohttp.ClientSession, simulator: Simulator
) -> None:
    token = await adapter.tokens.token()
    url = f"{simulator.url}/ebay/sell/inventory/v1/bulk_update_price_quantity"
    two = {"requests": [{"sku": s, "shipToLocationAvailability": {"quantity": 1}}
                        for s in ("A", "B")]}
    async with session.post(url, json=two, headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 400
        answer = await r.json()
    conforms(answer, "ErrorResponse")
    assert answer["errors"][0]["errorId"] == 25709

    sim.max_skus_per_call = 25
    many = {"requests": [{"sku": f"S{i:02}", "shipToLocationAvailability": {"quantity": 1}}
                         for i in range(26)]}
    async with session.post(url, json=many, headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 400
        assert (await r.json())["errors"][0]["errorId"] == 25709
    assert sim.quantities == {}


async def test_a_throttle_in_a_long_list_holds_back_the_rest(
    adapter: EbayAdapter, sim: EbaySimulator, clock: Clock
) -> None:
    sim.call_limit = FixedWindow(6, 60.0, clock)  # getOffers and the update of 3 SKUs

    results = await adapter.push(updates(*((f"S{i:02}", i) for i in range(6))))

    assert [r.outcome for r in results] == ["ok"] * 3 + ["throttled"] * 3
    assert len(sim.received) == 3


# --- OAuth ------------------------------------------------------------------------------------


async def test_one_token_serves_many_pushes(adapter: EbayAdapter, sim: EbaySimulator) -> None:
    await adapter.push(updates(("A", 1)))
    await adapter.push(updates(("A", 2)))

    assert adapter.tokens.fetches == 1
    assert sim.calls["token:ok"] == 1


async def test_the_token_is_refreshed_before_it_expires(
    adapter: EbayAdapter, sim: EbaySimulator, clock: Clock
) -> None:
    await adapter.push(updates(("A", 1)))
    clock.now += 7200 - 30  # inside the refresh margin

    assert [r.outcome for r in await adapter.push(updates(("A", 2)))] == ["ok"]
    assert adapter.tokens.fetches == 2
    assert sim.calls["bulkUpdatePriceQuantity:401"] == 0


async def test_a_token_expired_on_ebay_is_refreshed_after_the_401(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    await adapter.push(updates(("A", 1)))
    sim.revoke_tokens()

    assert [r.outcome for r in await adapter.push(updates(("A", 2)))] == ["ok"]
    assert sim.calls["bulkUpdatePriceQuantity:401"] == 1
    assert adapter.tokens.fetches == 2
    assert sim.quantities == {"A": 2}


async def test_the_simulator_refuses_an_expired_token_with_ebays_401(
    adapter: EbayAdapter,
    sim: EbaySimulator,
    clock: Clock,
    session: aiohttp.ClientSession,
    simulator: Simulator,
) -> None:
    token = await adapter.tokens.token()
    clock.now += 7200
    async with session.post(
        f"{simulator.url}/ebay/sell/inventory/v1/bulk_get_inventory_item",
        json={"requests": [{"sku": "A"}]},
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        assert resp.status == 401
        answer = await resp.json()
    conforms(answer, "ErrorResponse")
    assert answer["errors"][0]["errorId"] == 1001
    assert sim.calls["quota:exhausted"] == 0


async def test_a_revoked_refresh_token_is_unauthorized(
    adapter: EbayAdapter, sim: EbaySimulator
) -> None:
    sim.refresh_token_revoked = True
    with pytest.raises(Unauthorized, match="invalid_grant"):
        await adapter.push(updates(("A", 1)))
    assert sim.calls["bulkUpdatePriceQuantity:ok"] == 0


async def test_a_wrong_client_secret_is_unauthorized(
    simulator: Simulator,
    sim: EbaySimulator,
    session: aiohttp.ClientSession,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIM_EBAY_CLIENT_SECRET", "not-the-secret")
    adapter = make(simulator, session, clock)
    with pytest.raises(Unauthorized, match="invalid_client"):
        await adapter.push(updates(("A", 1)))


async def test_a_scope_beyond_the_consent_is_refused(
    simulator: Simulator, sim: EbaySimulator, session: aiohttp.ClientSession, clock: Clock
) -> None:
    adapter = make(simulator, session, clock,
                   scope="https://api.ebay.com/oauth/api_scope/sell.account")
    with pytest.raises(Unauthorized, match="invalid_scope"):
        await adapter.push(updates(("A", 1)))


async def test_a_read_only_token_can_read_but_not_update(
    simulator: Simulator, sim: EbaySimulator, session: aiohttp.ClientSession, clock: Clock
) -> None:
    sim.set_quantity("A", 4)
    adapter = make(simulator, session, clock, scope=SCOPE_READONLY)

    assert await adapter.read_back(["A"]) == {"A": 4}
    with pytest.raises(Unauthorized, match="1100"):
        await adapter.push(updates(("A", 1)))
    assert sim.quantities == {"A": 4}


# --- throttling and faults --------------------------------------------------------------------


async def test_an_exhausted_call_limit_is_throttled_with_ebays_error(
    adapter: EbayAdapter, sim: EbaySimulator, clock: Clock
) -> None:
    sim.call_limit = FixedWindow(3, 60.0, clock)
    await adapter.push(updates(("A", 1)))  # getOffers, then the update
    await adapter.push(updates(("A", 2)))  # the offers are known: the update alone

    with pytest.raises(Throttled, match="2001") as caught:
        await adapter.push(updates(("A", 3)))
    assert caught.value.retry_after is None  # eBay sends no Retry-After on its quota
    assert sim.quantities == {"A": 2}

    clock.now += 60  # the next window
    assert [r.outcome for r in await adapter.push(updates(("A", 3)))] == ["ok"]


async def test_throttled_push_reports_retry_after(
    adapter: EbayAdapter, sim: EbaySimulator, clock: Clock
) -> None:
    clock.now = 600.0  # the start of a window
    sim.call_limit = FixedWindow(2, 60.0, clock)
    sim.announce_reset = True
    await adapter.push(updates(("A", 1)))
    clock.now += 15

    with pytest.raises(Throttled) as caught:
        await adapter.push(updates(("A", 2)))
    assert caught.value.retry_after == 45.0


async def test_injected_throttling_answers_ebays_429(
    simulator: Simulator, sim: EbaySimulator, adapter: EbayAdapter
) -> None:
    await adapter.push(updates(("A", 1)))  # a token first
    sim.faults = Faults(throttle_rate=1.0)
    with pytest.raises(Throttled, match="Too many requests"):
        await adapter.push(updates(("A", 2)))


async def test_server_errors_are_retryable(adapter: EbayAdapter, sim: EbaySimulator) -> None:
    await adapter.push(updates(("A", 1)))
    sim.faults = Faults(error_rate=1.0)
    with pytest.raises(Retryable, match="HTTP 50"):
        await adapter.push(updates(("A", 2)))
    assert sim.quantities == {"A": 1}


async def test_a_hung_ebay_times_out_as_retryable(
    simulator: Simulator, sim: EbaySimulator, session: aiohttp.ClientSession, clock: Clock
) -> None:
    adapter = make(simulator, session, clock, timeout_s=0.2)
    await adapter.push(updates(("A", 1)))
    sim.faults = Faults(timeout_rate=1.0, timeout_s=0.5)
    with pytest.raises(Retryable, match="no answer"):
        await adapter.push(updates(("A", 2)))


# --- configuration and what the channel does not do -------------------------------------------


async def test_the_registry_builds_the_ebay_adapter(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    adapter = make_adapter(ebay_channel(simulator.url), AdapterContext(session=session))
    assert isinstance(adapter, EbayAdapter)


async def test_missing_credentials_name_their_variable(
    simulator: Simulator, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIM_EBAY_CLIENT_SECRET")
    with pytest.raises(MissingSecret, match="SIM_EBAY_CLIENT_SECRET"):
        create(ebay_channel(simulator.url), AdapterContext(session=session))
    monkeypatch.delenv("SIM_EBAY_REFRESH_TOKEN")
    with pytest.raises(MissingSecret, match="token_env: environment variable SIM_EBAY_REFRESH"):
        create(ebay_channel(simulator.url), AdapterContext(session=session))
    # Not naming the variables at all is a configuration error (refused at load, see below).
    channel = Channel(id="ebay", kind="ebay", url="https://api.ebay.com",
                      token_env="SIM_EBAY_REFRESH_TOKEN")
    with pytest.raises(ValueError, match=r"options\.client_id_env"):
        create(channel, AdapterContext(session=session))


@pytest.mark.parametrize(
    ("options", "key"),
    [({"content_language": "english"}, "content_language"),
     ({"skus_per_call": 26}, "skus_per_call"),
     ({"revisions_per_day": 251}, "revisions_per_day"),
     ({"order_poll_s": -1}, "order_poll_s"),
     ({"timeout_s": 0}, "timeout_s")],
)
async def test_bad_options_are_refused_by_name(
    simulator: Simulator, session: aiohttp.ClientSession, options: dict[str, Any], key: str
) -> None:
    with pytest.raises(ValueError, match=key):
        create(ebay_channel(simulator.url, **options), AdapterContext(session=session))


async def test_ebay_takes_no_inbound_webhooks(adapter: EbayAdapter, sim: EbaySimulator) -> None:
    with pytest.raises(BadWebhook):
        adapter.parse_webhook({}, b"{}")
    assert sim.order_notification(SimOrder(order_id="1", lines=())) is None


# --- options, checked when the config is loaded ------------------------------------------------

EBAY_OPTIONS = 'client_id_env = "EBAY_ID", client_secret_env = "EBAY_SECRET"'


def test_the_registry_names_the_ebay_options() -> None:
    assert options_type("ebay") is Options


def test_good_options_load_with_their_documented_defaults(tmp_path: Path) -> None:
    channel = load_channel(tmp_path, "ebay", EBAY_OPTIONS)
    options = msgspec.convert(channel.options, Options)
    assert (options.client_id_env, options.client_secret_env) == ("EBAY_ID", "EBAY_SECRET")
    assert options.token_url is None  # {url}/identity/v1/oauth2/token
    assert options.scope == DEFAULT_SCOPE == (
        "https://api.ebay.com/oauth/api_scope/sell.inventory "
        "https://api.ebay.com/oauth/api_scope/sell.fulfillment.readonly"
    )
    assert (options.content_language, options.timeout_s) == ("en-US", 10)
    assert (options.skus_per_call, options.update_offers, options.offers_ttl_s) == (1, True, 3600)
    assert options.revisions_per_day == 250
    assert (options.order_poll_s, options.order_overlap_s) == (60, 120)
    off = load_channel(tmp_path, "ebay", EBAY_OPTIONS + ", update_offers = false, order_poll_s = 0")
    assert msgspec.convert(off.options, Options).order_poll_s == 0


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ('client_secret_env = "EBAY_SECRET"', "client_id_env"),  # required and missing
        ('client_id_env = "my-app-id", client_secret_env = "S"', "client_id_env"),  # not a name
        (EBAY_OPTIONS + ', content_language = "english"', "content_language"),
        (EBAY_OPTIONS + ', update_offers = "yes"', "update_offers"),
        (EBAY_OPTIONS + ", skus_per_call = 0", "skus_per_call"),
        (EBAY_OPTIONS + ", revisions_per_day = 300", "revisions_per_day"),
        (EBAY_OPTIONS + ", order_poll_s = -5", "order_poll_s"),
        (EBAY_OPTIONS + ", timeout_s = 0", "timeout_s"),  # out of range
        (EBAY_OPTIONS + ', timeout_s = "10"', "timeout_s"),  # wrong type
        (EBAY_OPTIONS + ', token_url = "api.ebay.com/token"', "token_url"),
        (EBAY_OPTIONS + ', scope = ""', "scope"),
        (EBAY_OPTIONS + ", client_id = 5", "client_id"),  # unknown key
    ],
)
def test_a_bad_option_is_refused_at_load_naming_its_key(
    tmp_path: Path, options: str, key: str
) -> None:
    assert refused(tmp_path, "ebay", options).key == f"channels[0].options.{key}"
