"""Amazon Selling Partner API: the adapter against the simulated SP-API over loopback HTTP.

Every payload is checked against the facts of Amazon's definitions the tests need, in the
project's own transcription (``amazon_contract.py`` names the repository, commit and file of
each): the ``ListingsItemPatchRequest`` and answers of the Listings Items model, the
JSON_LISTINGS_FEED schema and its processing report, the Feeds API model, and the ORDER_CHANGE
notification.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from invsync.adapters import amazon as amazon_module
from invsync.adapters.amazon import AmazonAdapter, Options, create
from invsync.adapters.base import (
    AdapterContext,
    BadWebhook,
    Retryable,
    Throttled,
    Unauthorized,
    Update,
)
from invsync.adapters.registry import MissingSecret, make_adapter, options_type
from invsync.adapters.signing import SIGNATURE_HEADER, sign
from invsync.core.clock import ManualClock
from invsync.core.config import Channel, ConfigError, Faults
from invsync.core.events import (
    EventLine,
    OrderCancelled,
    OrderCreated,
    OrderFulfilled,
    ShipTo,
    event_kind,
)
from invsync.daemon.config import load_config
from invsync.metrics.definitions import REGISTRY
from invsync.simulators.amazon import AmazonSellingPartner
from invsync.simulators.core import SimLine, SimOrder
from invsync.simulators.server import Simulator
from tests.adapters import amazon_contract as contract
from tests.adapters.amazon_contract import conforms

REFRESH_TOKEN = "Atzr|refresh-token"
CLIENT_ID = "amzn1.application-oa2-client.invsync"
CLIENT_SECRET = "lwa-client-secret"
RELAY_SECRET = "relay-secret"
SELLER = "A2SELLER0TEST"
MARKETPLACE = "ATVPDKIKX0DER"


class FakeClock:
    """Monotonic seconds that move only when told (starts at the real monotonic time, so token
    buckets created on the real clock do not see time run backwards)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMZ_REFRESH_TOKEN", REFRESH_TOKEN)
    monkeypatch.setenv("AMZ_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AMZ_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("AMZ_RELAY_SECRET", RELAY_SECRET)


def amazon_channel(url: str, **options: Any) -> Channel:
    """An amazon channel on the simulator: LWA at the simulator, fast feed polling."""
    return Channel(
        id="amazon-us",
        kind="amazon",
        url=f"{url}/amazon",
        token_env="AMZ_REFRESH_TOKEN",
        secret_env="AMZ_RELAY_SECRET",
        options={
            "seller_id": SELLER,
            "marketplace_id": MARKETPLACE,
            "client_id_env": "AMZ_CLIENT_ID",
            "client_secret_env": "AMZ_CLIENT_SECRET",
            "token_url": f"{url}/amazon/auth/o2/token",
            "feed_poll_s": 0.02,
            "feed_timeout_s": 3.0,
            "timeout_s": 2.0,
            **options,
        },
    )


def mount(
    simulator: Simulator,
    session: aiohttp.ClientSession,
    faults: Faults | None = None,
    ctx: AdapterContext | None = None,
    **options: Any,
) -> tuple[AmazonSellingPartner, AmazonAdapter]:
    channel = amazon_channel(simulator.url, **options)
    sim = simulator.add(channel, faults or Faults())
    assert isinstance(sim, AmazonSellingPartner)
    sim.list_skus(CATALOGUE)  # the seller's listings; any other SKU is refused
    sim.feed_delay_s = 0.05
    adapter = create(channel, ctx or AdapterContext(session=session))
    return sim, adapter


#: The SKUs the simulated seller has listed (GHOST, NEVER-PUSHED, NEW-... are not).
CATALOGUE = [
    "A", "B", "C", "D", "TEE-BLK-M", "CAP/RED 1", "BAG-1", "OLD-1", "NEW-1",
    *(f"SKU-{i:03d}" for i in range(30)),
]  # fmt: skip


def updates(*pairs: tuple[str, int]) -> list[Update]:
    return [Update(sku=sku, available=qty, version=n + 1) for n, (sku, qty) in enumerate(pairs)]


def many(n: int, prefix: str = "SKU") -> list[Update]:
    return updates(*((f"{prefix}-{i:03d}", i) for i in range(n)))


def bodies(sim: AmazonSellingPartner, operation: str) -> list[Any]:
    return [json.loads(raw) for op, raw in sim.received if op == operation]


async def raw_token(session: aiohttp.ClientSession, sim: AmazonSellingPartner) -> str:
    form = {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    async with session.post(f"{sim.channel.url}/auth/o2/token", data=form) as resp:
        assert resp.status == 200
        token: str = (await resp.json())["access_token"]
    return token


# --- single updates ---------------------------------------------------------------------------


async def test_small_batch_patches_each_sku_with_a_valid_listings_item_patch_request(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    results = await adapter.push(updates(("TEE-BLK-M", 7), ("CAP/RED 1", 0)))

    assert [(r.sku, r.outcome) for r in results] == [("TEE-BLK-M", "ok"), ("CAP/RED 1", "ok")]
    assert sim.quantities == {"TEE-BLK-M": 7, "CAP/RED 1": 0}
    patches = bodies(sim, "patchListingsItem")
    assert len(patches) == 2
    for body in patches:
        conforms(body, contract.ListingsItemPatchRequest)
    assert patches[0] == {
        "productType": "PRODUCT",
        "patches": [{
            "op": "merge",
            "path": "/attributes/fulfillment_availability",
            "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 7}],
        }],
    }
    assert sim.feeds == {}
    assert sim.calls["patchListingsItem:ok"] == 2


async def test_product_type_and_channel_code_come_from_the_options(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, product_type="LUGGAGE")
    await adapter.push(updates(("BAG-1", 4)))
    (body,) = bodies(sim, "patchListingsItem")
    conforms(body, contract.ListingsItemPatchRequest)
    assert body["productType"] == "LUGGAGE"
    assert body["patches"][0]["value"] == [{"fulfillment_channel_code": "DEFAULT", "quantity": 4}]


async def test_unlisted_sku_is_permanent_and_only_that_sku(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.unlisted.add("GHOST")
    results = await adapter.push(updates(("A", 1), ("GHOST", 2), ("B", 3)))

    assert [(r.sku, r.outcome) for r in results] == [
        ("A", "ok"), ("GHOST", "permanent"), ("B", "ok"),
    ]
    assert results[1].error is not None and "90220" in results[1].error
    assert sim.quantities == {"A": 1, "B": 3}


async def test_simulator_answers_conform_to_the_listings_items_model(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, _ = mount(simulator, session)
    sim.unlisted.add("GHOST")
    token = await raw_token(session, sim)
    headers = {"x-amz-access-token": token}
    base = f"{sim.channel.url}/listings/2021-08-01/items/{SELLER}"
    params = {"marketplaceIds": MARKETPLACE}
    good = {"productType": "PRODUCT", "patches": [{
        "op": "replace", "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 5}]}]}

    async with session.patch(f"{base}/A", json=good, params=params, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["x-amzn-RateLimit-Limit"] == "5.0"
        accepted = await resp.json()
    conforms(accepted, contract.ListingsItemSubmissionResponse)
    assert accepted["status"] == "ACCEPTED"

    async with session.patch(f"{base}/GHOST", json=good, params=params, headers=headers) as resp:
        invalid = await resp.json()
    conforms(invalid, contract.ListingsItemSubmissionResponse)
    assert invalid["status"] == "INVALID" and invalid["issues"][0]["severity"] == "ERROR"

    got_params = {**params, "includedData": "summaries,fulfillmentAvailability"}
    async with session.get(f"{base}/A", params=got_params, headers=headers) as resp:
        assert resp.status == 200
        item = await resp.json()
    conforms(item, contract.Item)
    assert item["fulfillmentAvailability"] == [{"fulfillmentChannelCode": "DEFAULT", "quantity": 5}]

    async with session.get(f"{base}/NEVER", params=got_params, headers=headers) as resp:
        assert resp.status == 404
        conforms(await resp.json(), contract.ErrorList)


@pytest.mark.parametrize(
    "patch",
    [
        {"op": "remove", "path": "/attributes/fulfillment_availability", "value": [{}]},
        {"op": "replace", "path": "/attributes/fulfillment_availability/0/quantity",
         "value": [{"quantity": 1}]},
        {"op": "replace", "path": "/fulfillment_availability", "value": [{}]},
        {"op": "replace", "path": "/attributes/fulfillment_availability"},
    ],
    ids=["unknown-op", "nested-path", "not-an-attribute", "no-value"],
)
async def test_a_bad_patch_is_refused_with_400_errors(
    simulator: Simulator, session: aiohttp.ClientSession, patch: dict[str, Any]
) -> None:
    sim, _ = mount(simulator, session)
    token = await raw_token(session, sim)
    body = {"productType": "PRODUCT", "patches": [patch]}
    async with session.patch(
        f"{sim.channel.url}/listings/2021-08-01/items/{SELLER}/A",
        json=body,
        params={"marketplaceIds": MARKETPLACE},
        headers={"x-amz-access-token": token},
    ) as resp:
        assert resp.status == 400
        answer = await resp.json()
    conforms(answer, contract.ErrorList)
    assert answer["errors"][0]["code"] == "InvalidInput"
    assert sim.quantities == {}


# --- merge: the seller's fulfillment fields survive a push -------------------------------------

SELLER_FIELDS = {"lead_time_to_ship_max_days": 12, "restock_date": "2026-12-20"}


async def get_item(session: aiohttp.ClientSession, sim: AmazonSellingPartner, sku: str) -> Any:
    """getListingsItem over HTTP with attributes and fulfillmentAvailability, checked against the
    model's ``Item``."""
    async with session.get(
        f"{sim.channel.url}/listings/2021-08-01/items/{SELLER}/{sku}",
        params={"marketplaceIds": MARKETPLACE,
                "includedData": "attributes,fulfillmentAvailability"},
        headers={"x-amz-access-token": await raw_token(session, sim)},
    ) as resp:
        assert resp.status == 200
        item = await resp.json()
    conforms(item, contract.Item)
    return item


async def test_a_patch_merges_the_quantity_and_keeps_the_sellers_handling_time_and_restock_date(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.set_quantity("A", 3)
    sim.set_fulfillment("A", **SELLER_FIELDS)  # set in Seller Central
    results = await adapter.push(updates(("A", 8)))

    assert [r.outcome for r in results] == ["ok"]
    (body,) = bodies(sim, "patchListingsItem")
    assert body["patches"][0]["op"] == "merge"
    item = await get_item(session, sim, "A")
    assert item["attributes"]["fulfillment_availability"] == [{
        "fulfillment_channel_code": "DEFAULT", "marketplace_id": MARKETPLACE, "quantity": 8,
        **SELLER_FIELDS,
    }]
    assert item["fulfillmentAvailability"] == [{"fulfillmentChannelCode": "DEFAULT",
                                                "quantity": 8}]


async def test_a_feed_merges_each_quantity_and_keeps_the_sellers_fields(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    batch = many(21)
    for update in batch[:3]:
        sim.set_quantity(update.sku, 50)
        sim.set_fulfillment(update.sku, **SELLER_FIELDS)
    results = await adapter.push(batch)

    assert {r.outcome for r in results} == {"ok"}
    (feed,) = bodies(sim, "uploadFeedDocument")
    assert {p["op"] for m in feed["messages"] for p in m["patches"]} == {"merge"}
    for update in batch[:3]:
        assert sim.fulfillment(update.sku) == [{
            "fulfillment_channel_code": "DEFAULT", "marketplace_id": MARKETPLACE,
            "quantity": update.available, **SELLER_FIELDS,
        }]


async def test_a_replace_would_have_cleared_the_sellers_fields(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    """What every push did before ``merge``: Amazon replaces the whole entry of the channel code,
    so what the seller set beside the quantity is gone."""
    sim, adapter = mount(simulator, session)
    sim.set_quantity("A", 3)
    sim.set_fulfillment("A", **SELLER_FIELDS)
    await adapter.push(updates(("A", 4)))  # merged: the fields stay
    assert sim.fulfillment("A")[0]["lead_time_to_ship_max_days"] == 12
    replace = {"productType": "PRODUCT", "patches": [{
        "op": "replace", "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 5}]}]}
    async with session.patch(
        f"{sim.channel.url}/listings/2021-08-01/items/{SELLER}/A",
        json=replace,
        params={"marketplaceIds": MARKETPLACE},
        headers={"x-amz-access-token": await raw_token(session, sim)},
    ) as resp:
        assert (await resp.json())["status"] == "ACCEPTED"

    item = await get_item(session, sim, "A")
    assert item["attributes"]["fulfillment_availability"] == [
        {"fulfillment_channel_code": "DEFAULT", "marketplace_id": MARKETPLACE, "quantity": 5}
    ]


@pytest.mark.parametrize(
    ("patch", "left"),
    [
        ({"op": "merge", "value": [{"fulfillment_channel_code": "DEFAULT", "restock_date": None}]},
         {"quantity": 3, "lead_time_to_ship_max_days": 12}),
        ({"op": "merge", "value": [{"fulfillment_channel_code": "DEFAULT",
                                    "lead_time_to_ship_max_days": 2}]},
         {"quantity": 3, "lead_time_to_ship_max_days": 2, "restock_date": "2026-12-20"}),
        ({"op": "merge", "value": [{"quantity": 9}]}, None),
        ({"op": "merge", "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": -1}]},
         None),
        ({"op": "replace", "value": [{"fulfillment_channel_code": "DEFAULT",
                                      "lead_time_to_ship_max_days": 2}]}, None),
    ],
    ids=["null-removes-a-field", "merge-one-field", "no-selector", "negative", "replace-no-qty"],
)
async def test_the_simulator_applies_merge_as_amazon_documents_it(
    simulator: Simulator,
    session: aiohttp.ClientSession,
    patch: dict[str, Any],
    left: dict[str, Any] | None,
) -> None:
    sim, _ = mount(simulator, session)
    sim.set_quantity("A", 3)
    sim.set_fulfillment("A", **SELLER_FIELDS)
    body = {"productType": "PRODUCT",
            "patches": [{**patch, "path": "/attributes/fulfillment_availability"}]}
    async with session.patch(
        f"{sim.channel.url}/listings/2021-08-01/items/{SELLER}/A",
        json=body,
        params={"marketplaceIds": MARKETPLACE},
        headers={"x-amz-access-token": await raw_token(session, sim)},
    ) as resp:
        answer = conforms(await resp.json(), contract.ListingsItemSubmissionResponse)
    base = {"fulfillment_channel_code": "DEFAULT", "marketplace_id": MARKETPLACE}
    if left is None:  # refused whole: nothing changed
        assert answer.status == "INVALID" and answer.issues
        assert answer.issues[0].severity == "ERROR"
        assert sim.fulfillment("A") == [{**base, "quantity": 3, **SELLER_FIELDS}]
    else:
        assert answer.status == "ACCEPTED"
        assert sim.fulfillment("A") == [{**base, **left}]


async def test_a_sku_the_seller_never_listed_is_refused_alone_in_patches_and_feeds(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    results = await adapter.push(updates(("A", 1), ("NEVER-LISTED", 2), ("B", 3)))
    assert [(r.sku, r.outcome) for r in results] == [
        ("A", "ok"), ("NEVER-LISTED", "permanent"), ("B", "ok"),
    ]
    assert results[1].error is not None and "90220" in results[1].error

    batch = [*many(20), Update(sku="NEVER-LISTED-2", available=4, version=1)]
    results = await adapter.push(batch)
    assert [r.sku for r in results if r.outcome != "ok"] == ["NEVER-LISTED-2"]
    assert results[-1].outcome == "permanent"
    assert "NEVER-LISTED" not in sim.quantities and "NEVER-LISTED-2" not in sim.quantities
    assert await adapter.read_back(["A", "NEVER-LISTED"]) == {"A": 1}  # 404: no listing


# --- bulk: JSON_LISTINGS_FEED -----------------------------------------------------------------


@pytest.mark.parametrize("compressed", [True, False], ids=["gzip-report", "plain-report"])
async def test_large_batch_goes_as_one_json_listings_feed(
    simulator: Simulator, session: aiohttp.ClientSession, compressed: bool
) -> None:
    sim, adapter = mount(simulator, session)
    sim.compress_reports = compressed
    batch = many(25)
    results = await adapter.push(batch)

    assert [r.outcome for r in results] == ["ok"] * 25
    assert sim.quantities == {u.sku: u.available for u in batch}
    assert bodies(sim, "patchListingsItem") == []
    (spec,) = bodies(sim, "createFeedDocument")
    conforms(spec, contract.CreateFeedDocumentSpecification)
    assert spec == {"contentType": "application/json; charset=UTF-8"}
    (feed,) = bodies(sim, "uploadFeedDocument")
    conforms(feed, contract.ListingsFeed)
    assert feed["header"] == {"sellerId": SELLER, "version": "2.0"}
    assert [m["messageId"] for m in feed["messages"]] == list(range(1, 26))
    assert feed["messages"][3]["patches"][0]["value"] == [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 3}
    ]
    (created,) = bodies(sim, "createFeed")
    conforms(created, contract.CreateFeedSpecification)
    assert created["feedType"] == "JSON_LISTINGS_FEED"
    assert created["marketplaceIds"] == [MARKETPLACE]
    assert sim.calls["getFeedDocument:ok"] == 1


async def test_feed_partial_failure_makes_only_the_unlisted_sku_permanent(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    batch = many(22)
    sim.unlisted.add(batch[7].sku)
    results = await adapter.push(batch)

    failed = [(r.sku, r.outcome) for r in results if r.outcome != "ok"]
    assert failed == [(batch[7].sku, "permanent")]
    assert results[7].error is not None and "condition_type" in results[7].error
    assert batch[7].sku not in sim.quantities and len(sim.quantities) == 21
    (feed,) = sim.feeds.values()
    assert feed.result_document_id is not None
    report_doc = sim.documents[feed.result_document_id]
    assert report_doc.content is not None
    report = json.loads(gzip.decompress(report_doc.content))
    conforms(report, contract.ProcessingReport)
    assert report["summary"]["messagesInvalid"] == 1
    assert report["issues"][0]["messageId"] == 8


async def test_a_fatal_feed_refuses_every_sku_with_its_feed_level_issue(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, _ = mount(simulator, session)
    wrong_seller = amazon_channel(simulator.url, seller_id="A9OTHERSELLER")
    adapter = create(wrong_seller, AdapterContext(session=session))
    results = await adapter.push(many(21))

    assert {r.outcome for r in results} == {"permanent"}
    assert results[0].error is not None and "sellerId A9OTHERSELLER" in results[0].error
    (feed,) = sim.feeds.values()
    assert feed.status == "FATAL" and sim.quantities == {}
    assert feed.result_document_id is not None
    content = sim.documents[feed.result_document_id].content
    assert content is not None
    conforms(json.loads(gzip.decompress(content)), contract.ProcessingReport)


async def test_unlisted_prefix_option_marks_skus_without_a_listing(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, unlisted_prefix="NEW-")
    results = await adapter.push(updates(("NEW-1", 1), ("OLD-1", 1)))
    assert [r.outcome for r in results] == ["permanent", "ok"]
    assert sim.quantities == {"OLD-1": 1}


async def test_feeds_simulator_answers_conform_to_the_feeds_model(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, _ = mount(simulator, session)
    sim.feed_delay_s = 0.0
    headers = {"x-amz-access-token": await raw_token(session, sim)}
    feeds = f"{sim.channel.url}/feeds/2021-06-30"
    spec = {"contentType": "application/json; charset=UTF-8"}
    async with session.post(f"{feeds}/documents", json=spec, headers=headers) as resp:
        assert resp.status == 201
        document = await resp.json()
    conforms(document, contract.CreateFeedDocumentResponse)
    feed_doc = {"header": {"sellerId": SELLER, "version": "2.0"}, "messages": [{
        "messageId": 1, "sku": "A", "operationType": "PATCH", "productType": "PRODUCT",
        "patches": [{"op": "replace", "path": "/attributes/fulfillment_availability",
                     "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 2}]}]}]}
    async with session.put(document["url"], data=json.dumps(feed_doc),
                           headers={"Content-Type": spec["contentType"]}) as resp:
        assert resp.status == 200
    async with session.put(document["url"] + "x", data=b"{}",
                           headers={"Content-Type": spec["contentType"]}) as resp:
        assert resp.status == 403  # a presigned URL is only good with its signature
    create_spec = {"feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [MARKETPLACE],
                   "inputFeedDocumentId": document["feedDocumentId"]}
    async with session.post(f"{feeds}/feeds", json=create_spec, headers=headers) as resp:
        assert resp.status == 202
        created = await resp.json()
    conforms(created, contract.CreateFeedResponse)
    async with session.get(f"{feeds}/feeds/{created['feedId']}", headers=headers) as resp:
        feed = await resp.json()
    conforms(feed, contract.Feed)
    assert feed["processingStatus"] == "DONE"
    async with session.get(
        f"{feeds}/documents/{feed['resultFeedDocumentId']}", headers=headers
    ) as resp:
        result = await resp.json()
    conforms(result, contract.FeedDocument)
    assert result["compressionAlgorithm"] == "GZIP"
    async with session.get(result["url"]) as resp:
        report = json.loads(gzip.decompress(await resp.read()))
    conforms(report, contract.ProcessingReport)
    assert report["summary"]["messagesAccepted"] == 1
    assert sim.quantities == {"A": 2}


async def test_feed_not_processed_in_time_reports_every_sku_retryable(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, feed_timeout_s=0.2, feed_poll_s=0.05)
    sim.feed_delay_s = 60.0
    batch = many(21)
    results = await adapter.push(batch)

    assert {r.outcome for r in results} == {"retryable"}
    assert results[0].error is not None and "not processed within 0.2 s" in results[0].error
    assert sim.calls["getFeed:ok"] >= 2
    assert sim.quantities == {}


async def test_feed_polls_and_their_deadline_run_on_the_adapter_clock(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    ctx = AdapterContext(session=session, clock=clock)
    sim, adapter = mount(simulator, session, ctx=ctx, feed_poll_s=15, feed_timeout_s=60)
    sim.feed_delay_s = 3600.0  # never processed while the test runs
    push = asyncio.create_task(adapter.push(many(21)))
    polls = 0
    while not push.done():
        await asyncio.sleep(0.001)
        if clock.sleepers:  # parked between two polls: move the time, not the test
            assert clock.next_deadline == pytest.approx(clock.now() + 15)
            clock.advance(15)
            polls += 1
    results = push.result()
    assert {r.outcome for r in results} == {"retryable"}
    assert results[0].error is not None and "not processed within 60 s" in results[0].error
    assert polls == 4 and sim.calls["getFeed:ok"] == 5  # at 0, 15, 30, 45 and 60 s


async def test_feed_throttled_at_create_raises_throttled_with_the_documented_wait(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.set_limit("createFeedDocument", 0.5, 0)
    with pytest.raises(Throttled) as caught:
        await adapter.push(many(21))
    assert caught.value.retry_after == pytest.approx(1 / 0.5)
    assert sim.feeds == {}


# --- tokens -----------------------------------------------------------------------------------


async def test_one_token_serves_many_calls_and_goes_in_x_amz_access_token(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    await adapter.push(updates(("A", 1)))
    await adapter.push(updates(("B", 2)))
    await adapter.read_back(["A", "B"])
    assert sim.token_grants == 1 and adapter.tokens.fetches == 1
    assert sim.calls["lwaToken:ok"] == 1


async def test_expiring_token_is_fetched_again_before_use(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    sim, adapter = mount(simulator, session, ctx=AdapterContext(session=session, monotonic=clock))
    sim.clock = clock
    sim.token_lifetime_s = 120.0
    await adapter.push(updates(("A", 1)))
    clock.advance(70.0)  # inside the refresh margin, not yet expired on Amazon's side
    await adapter.push(updates(("A", 2)))

    assert sim.token_grants == 2
    assert sim.calls["patchListingsItem:ok"] == 2
    assert not any(k.endswith((":401", ":403")) for k in sim.calls)


async def test_token_expired_on_amazon_is_refreshed_after_the_403_and_retried(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim_clock = FakeClock()
    sim.clock = sim_clock
    sim.token_lifetime_s = 120.0
    await adapter.push(updates(("A", 1)))
    sim_clock.advance(200.0)  # Amazon's clock says expired; ours does not know yet
    results = await adapter.push(updates(("A", 2)))

    assert [r.outcome for r in results] == ["ok"]
    assert sim.calls["patchListingsItem:403"] == 1
    assert sim.token_grants == 2 and sim.quantities == {"A": 2}


async def test_revoked_token_answers_401_and_is_replaced_once(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    await adapter.push(updates(("A", 1)))
    sim.revoke()
    results = await adapter.push(updates(("A", 5)))

    assert [r.outcome for r in results] == ["ok"]
    assert sim.calls["patchListingsItem:401"] == 1
    assert sim.token_grants == 2 and sim.quantities == {"A": 5}


async def test_a_refused_refresh_token_is_unauthorized(
    simulator: Simulator, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, _ = mount(simulator, session)
    monkeypatch.setenv("AMZ_REFRESH_TOKEN", "Atzr|revoked")
    adapter = create(amazon_channel(simulator.url), AdapterContext(session=session))
    with pytest.raises(Unauthorized, match="invalid_grant"):
        await adapter.push(updates(("A", 1)))
    assert sim.calls["lwaToken:400"] == 1 and sim.quantities == {}


# --- throttling -------------------------------------------------------------------------------


async def test_throttled_push_reports_retry_after_from_the_rate_limit_header(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.set_limit("patchListingsItem", 0.5, 2)
    results = await adapter.push(updates(("A", 1), ("B", 2), ("C", 3), ("D", 4)))

    assert [(r.sku, r.outcome) for r in results] == [
        ("A", "ok"), ("B", "ok"), ("C", "throttled"), ("D", "throttled"),
    ]
    assert results[2].retry_after == pytest.approx(2.0)  # x-amzn-RateLimit-Limit: 0.5
    assert results[3].retry_after == pytest.approx(2.0)
    assert sim.quantities == {"A": 1, "B": 2}


async def test_throttled_first_call_raises_throttled_with_retry_after(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.set_limit("patchListingsItem", 0.25, 0)
    with pytest.raises(Throttled) as caught:
        await adapter.push(updates(("A", 1)))
    assert caught.value.retry_after == pytest.approx(4.0)


async def test_a_short_throttle_is_waited_out_within_the_batch(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.set_limit("patchListingsItem", 50.0, 1)
    results = await adapter.push(updates(("A", 1), ("B", 2), ("C", 3)))

    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert sim.calls["patchListingsItem:429"] >= 1
    assert sim.quantities == {"A": 1, "B": 2, "C": 3}


async def test_a_throttle_without_the_header_falls_back_to_the_documented_rate(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, throttle_wait_s=0)
    await adapter.push(updates(("A", 1)))  # a token first, so the fault hits the PATCH
    sim.faults = Faults(throttle_rate=1.0)  # SP-API's 429 without x-amzn-RateLimit-Limit
    with pytest.raises(Throttled) as caught:
        await adapter.push(updates(("A", 2)))
    assert caught.value.retry_after == pytest.approx(1 / 5.0)  # patchListingsItem: 5 rps


async def test_a_throttled_token_endpoint_is_throttled_not_a_loop(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, faults=Faults(throttle_rate=1.0))
    with pytest.raises(Throttled) as caught:
        await adapter.push(updates(("A", 1)))
    assert caught.value.retry_after is None  # LWA documents no rate to derive one from
    assert sim.calls["lwaToken:throttled"] == 1


def throttled_pushes() -> float:
    """``invsync_channel_pushes_total{channel="amazon-us", outcome="throttled"}`` now."""
    value = REGISTRY.get_sample_value(
        "invsync_channel_pushes_total", {"channel": "amazon-us", "outcome": "throttled"}
    )
    return value or 0.0


async def test_every_429_waited_out_inside_a_batch_counts_as_a_throttled_push(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.set_limit("patchListingsItem", 50.0, 1)
    before = throttled_pushes()
    results = await adapter.push(updates(("A", 1), ("B", 2), ("C", 3)))

    assert [r.outcome for r in results] == ["ok", "ok", "ok"]  # nothing handed back...
    answered = sim.calls["patchListingsItem:429"]
    assert answered >= 1
    assert throttled_pushes() - before == answered  # ...yet every 429 shows in the metric


async def test_a_throttled_feed_poll_counts_and_a_throttled_report_makes_every_sku_throttled(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.set_limit("getFeed", 0.001, 1)  # one poll, then 429s asking for 1000 s
    before = throttled_pushes()
    results = await adapter.push(many(21))
    assert {r.outcome for r in results} == {"retryable"}  # the wait outlasts feed_timeout_s
    assert sim.calls["getFeed:429"] == 1 and throttled_pushes() - before == 1

    sim.set_limit("getFeed", 100.0, 100)
    sim.set_limit("getFeedDocument", 0.0222, 0)  # the report cannot be fetched now
    results = await adapter.push(many(21))
    assert {r.outcome for r in results} == {"throttled"}
    assert results[0].retry_after == pytest.approx(1 / 0.0222)


def test_the_feed_limit_and_usage_plans_are_the_current_models() -> None:
    assert AmazonAdapter.max_batch == 25_000  # listings-feed-schema-v2 since 2026-01-22
    assert amazon_module.FEED_MAX_MESSAGES == 25_000
    assert amazon_module.USAGE_PLANS["createFeedDocument"] == (0.5, 15)
    assert amazon_module.USAGE_PLANS["createFeed"] == (0.0083, 15)


# --- faults -----------------------------------------------------------------------------------


async def test_server_errors_are_retryable(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    await adapter.push(updates(("A", 1)))  # a token first, so the fault hits the PATCH
    sim.faults = Faults(error_rate=1.0)
    with pytest.raises(Retryable):
        await adapter.push(updates(("A", 2)))
    assert sim.quantities == {"A": 1}


async def test_a_timeout_is_retryable(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, timeout_s=0.2)
    await adapter.push(updates(("A", 1)))
    sim.faults = Faults(timeout_rate=1.0, timeout_s=0.5)
    with pytest.raises(Retryable, match="no answer"):
        await adapter.push(updates(("A", 2)))


# --- read-back --------------------------------------------------------------------------------


async def test_read_back_sees_drift_and_leaves_out_skus_without_a_listing(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.unlisted.add("GHOST")
    await adapter.push(updates(("A", 4), ("B", 9), ("GHOST", 1)))
    sim.set_quantity("B", 2)  # edited in Seller Central behind our back

    assert await adapter.read_back(["A", "B", "GHOST", "NEVER-PUSHED"]) == {"A": 4, "B": 2}
    assert sim.calls["getListingsItem:404"] == 2


async def test_a_long_read_back_paces_itself_to_the_usage_plan(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    skus = [f"R-{i}" for i in range(8)]
    for sku in skus:
        sim.set_quantity(sku, 3)
    sim.set_limit("getListingsItem", rate=20.0, burst=2)  # 8 reads cannot go at once
    got = await adapter.read_back(skus)
    assert got == dict.fromkeys(skus, 3)  # every SKU read: the 429s were waited out
    assert sim.calls["getListingsItem:throttled"] + sim.calls.get("getListingsItem:429", 0) > 0


# --- ORDER_CHANGE notifications ---------------------------------------------------------------


def _order(status: str = "created") -> SimOrder:
    return SimOrder(
        order_id="113-5551212-0000001",
        lines=(SimLine(sku="TEE-BLK-M", qty=2), SimLine(sku="CAP-RED", qty=1)),
        status=status,
        region="CA",
        created_ms=1_700_000_000_000,
    )


def _change(body: bytes, **summary: Any) -> bytes:
    doc = json.loads(body)
    doc["Payload"]["OrderChangeNotification"]["Summary"].update(summary)
    return json.dumps(doc).encode()


def _signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", SIGNATURE_HEADER: sign(RELAY_SECRET, body)}


@pytest.mark.parametrize(
    ("status", "event_type", "cls"),
    [
        ("created", "order.created", OrderCreated),
        ("cancelled", "order.cancelled", OrderCancelled),
        ("fulfilled", "order.fulfilled", OrderFulfilled),
    ],
)
async def test_order_change_notification_is_valid_and_translates(
    simulator: Simulator,
    session: aiohttp.ClientSession,
    status: str,
    event_type: str,
    cls: type,
) -> None:
    sim, adapter = mount(simulator, session)
    made = sim.order_notification(_order(status))
    assert made is not None
    headers, body = made
    conforms(json.loads(body), contract.OrderChange)

    (event,) = adapter.parse_webhook(headers, body)
    assert isinstance(event, cls)
    assert event_kind(event) == event_type
    assert event.id == f"amazon-us-113-5551212-0000001-{status}"
    assert event.channel == "amazon-us"
    assert event.order_id == "113-5551212-0000001"
    if isinstance(event, OrderCreated):
        assert event.lines == [EventLine(sku="TEE-BLK-M", qty=2), EventLine(sku="CAP-RED", qty=1)]
        assert event.ship_to == ShipTo(country="US", postal_code="94105")
    else:
        assert isinstance(event, OrderCancelled | OrderFulfilled)
        assert event.lines is None  # the whole order


async def test_pending_then_unshipped_give_one_created_event_id(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    made = sim.order_notification(_order())
    assert made is not None
    unshipped = made[1]
    pending = _change(unshipped, OrderStatus="Pending")
    conforms(json.loads(pending), contract.OrderChange)

    (first,) = adapter.parse_webhook(_signed(pending), pending)
    (again,) = adapter.parse_webhook(_signed(unshipped), unshipped)
    assert first.id == again.id and isinstance(first, OrderCreated)


async def test_amazon_fulfilled_and_partially_shipped_orders_and_other_types_give_no_events(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    made = sim.order_notification(_order())
    assert made is not None
    afn = _change(made[1], FulfillmentType="AFN")
    partial = _change(made[1], OrderStatus="PartiallyShipped")
    other = json.dumps({"NotificationType": "ANY_OFFER_CHANGED", "Payload": {}}).encode()
    for body in (afn, partial, other):
        assert adapter.parse_webhook(_signed(body), body) == []


async def test_an_eventbridge_event_around_the_notification_is_unwrapped(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    made = sim.order_notification(_order("cancelled"))
    assert made is not None
    event = {
        "version": "0",
        "detail-type": "ORDER_CHANGE",
        "source": "aws.partner/sellingpartnerapi.amazon.com",
        "detail": json.loads(made[1]),
    }
    body = json.dumps(event).encode()
    (obj,) = adapter.parse_webhook(_signed(body), body)
    assert isinstance(obj, OrderCancelled)


async def test_forged_or_unsigned_notifications_are_refused(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    made = sim.order_notification(_order())
    assert made is not None
    headers, body = made
    forged = {**headers, SIGNATURE_HEADER: sign("not-the-secret", body)}
    unsigned = {"Content-Type": "application/json"}
    tampered = body.replace(b'"Quantity":2', b'"Quantity":20')
    for hdrs, raw in ((forged, body), (unsigned, body), (headers, tampered)):
        with pytest.raises(BadWebhook) as caught:
            adapter.parse_webhook(hdrs, raw)
        assert caught.value.unauthorized


async def test_a_signed_but_malformed_notification_is_a_bad_webhook(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    _, adapter = mount(simulator, session)
    for body in (b"not json", b'{"NotificationType": "ORDER_CHANGE", "Payload": {}}'):
        with pytest.raises(BadWebhook) as caught:
            adapter.parse_webhook(_signed(body), body)
        assert not caught.value.unauthorized


async def test_a_placed_order_takes_units_off_and_is_notified(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    await adapter.push(updates(("A", 5)))
    async with session.post(
        f"{simulator.url}/_sim/amazon-us/orders", json={"lines": [{"sku": "A", "qty": 2}]}
    ) as resp:
        assert resp.status == 200
    assert await adapter.read_back(["A"]) == {"A": 3}
    (_, _, order), = simulator.sent
    made = sim.order_notification(order)
    assert made is not None
    (event,) = adapter.parse_webhook(*made)
    assert isinstance(event, OrderCreated) and [(x.sku, x.qty) for x in event.lines] == [("A", 2)]


# --- configuration ----------------------------------------------------------------------------


async def test_config_errors_name_what_is_missing(
    simulator: Simulator, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = AdapterContext(session=session)
    channel = amazon_channel(simulator.url)
    assert isinstance(make_adapter(channel, ctx), AmazonAdapter)
    # A channel built by hand (not loaded) still has its options checked by create().
    no_seller = {k: v for k, v in channel.options.items() if k != "seller_id"}
    with pytest.raises(ValueError, match=r"channel .amazon-us.: options\.seller_id: "):
        create(Channel(**{**_fields(channel), "options": no_seller}), ctx)
    with pytest.raises(ValueError, match=r"options\.feed_poll_s"):
        create(amazon_channel(simulator.url, feed_poll_s=0), ctx)
    monkeypatch.delenv("AMZ_CLIENT_SECRET")
    with pytest.raises(MissingSecret, match="client_secret_env") as caught:
        create(channel, ctx)
    assert str(caught.value) == (
        "channel 'amazon-us': options.client_secret_env: environment variable "
        "AMZ_CLIENT_SECRET is not set (or empty)"
    )
    assert amazon_module.USAGE_PLANS["patchListingsItem"] == (5.0, 5)


#: The required options, as TOML values.
GOOD_OPTIONS = {
    "seller_id": '"A2SELLER0TEST"',
    "marketplace_id": '"ATVPDKIKX0DER"',
    "client_id_env": '"AMZ_CLIENT_ID"',
    "client_secret_env": '"AMZ_CLIENT_SECRET"',
}


def write_amazon_config(folder: Path, **options: str | None) -> Path:
    """A config of one amazon channel: GOOD_OPTIONS with ``options`` (TOML values; None leaves
    the key out)."""
    table = {**GOOD_OPTIONS, **options}
    lines = "".join(f"{key} = {value}\n" for key, value in table.items() if value is not None)
    path = folder / "config.toml"
    path.write_text(
        '[[locations]]\nid = "wh"\n\n[[channels]]\nid = "amazon-us"\nkind = "amazon"\n'
        'url = "https://sellingpartnerapi-na.amazon.com"\ntoken_env = "AMZ_REFRESH_TOKEN"\n'
        f"[channels.options]\n{lines}"
    )
    return path


def test_good_options_load_with_their_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write_amazon_config(tmp_path, feed_poll_s="1"))
    assert options_type("amazon") is Options
    options = msgspec.convert(config.channels[0].options, Options)
    assert options == Options(
        seller_id="A2SELLER0TEST",
        marketplace_id="ATVPDKIKX0DER",
        client_id_env="AMZ_CLIENT_ID",
        client_secret_env="AMZ_CLIENT_SECRET",
        token_url="https://api.amazon.com/auth/o2/token",
        product_type="PRODUCT",
        fulfillment_channel_code="DEFAULT",
        feed_threshold=20,
        feed_poll_s=1.0,
        feed_timeout_s=300.0,
        throttle_wait_s=1.0,
        timeout_s=10.0,
        unlisted_prefix=None,
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("feed_poll_s", "0", "> 0, got 0"),
        ("feed_poll_s", '"fast"', "expected a number, got a string ('fast')"),
        ("feed_timeout_s", "inf", "got inf"),
        ("feed_threshold", "-1", "must be >= 0, got -1"),
        ("feed_threshold", "2.5", "expected an integer, got a number (2.5)"),
        ("throttle_wait_s", "-1", ">= 0, got -1"),
        ("timeout_s", "0", "> 0, got 0"),
        ("product_type", '""', "must not be empty"),
        ("token_url", '"ftp://x"', "must be an http:// or https:// URL, got 'ftp://x'"),
        ("client_id_env", '"amzn1.secret value"', "must be the name of an environment variable"),
        ("sellr_id", "1", "unknown key (did you mean 'seller_id'?)"),
    ],
)
def test_a_bad_option_is_refused_at_load_naming_its_key(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_amazon_config(tmp_path, **{key: value}))
    assert caught.value.key == f"channels[0].options.{key}"
    assert message in caught.value.message
    assert "secret value" not in str(caught.value)  # an *_env value may be the secret itself


@pytest.mark.parametrize("key", ["seller_id", "marketplace_id", "client_id_env"])
def test_a_missing_required_option_is_refused_at_load(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_amazon_config(tmp_path, **{key: None}))
    assert caught.value.key == f"channels[0].options.{key}"
    assert caught.value.message == "required key is missing"


def _fields(channel: Channel) -> dict[str, Any]:
    return {f: getattr(channel, f) for f in channel.__struct_fields__}


async def test_an_item_whose_sku_invsync_cannot_hold_is_skipped_not_fatal(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    order = SimOrder(
        order_id="113-0000000-0000009",
        lines=(SimLine(sku="TEE-BLK-M", qty=1), SimLine(sku="GIFT WRAP", qty=1)),
    )
    made = sim.order_notification(order)
    assert made is not None
    (event,) = adapter.parse_webhook(*made)  # valid: the whole order is readable
    assert isinstance(event, OrderCreated)
    assert event.lines == [EventLine(sku="TEE-BLK-M", qty=1)]
