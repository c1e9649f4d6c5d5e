"""Walmart Marketplace: the adapter against the simulated seller API over loopback HTTP.

Payloads are validated against the documented shapes in ``fixtures/walmart/`` (each schema's
``$comment`` names its source): the inventory item of the OpenAPI "Inventory Management", the
spec 1.4 inventory feed, the cancel-order-lines body, the feed status answer and the error
envelope.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from invsync.adapters.signing import SIGNATURE_HEADER, sign
from invsync.adapters.walmart import Options, WalmartAdapter, create
from invsync.adapters.walmart import feeds as walmart_feeds
from invsync.adapters.walmart.lanes import split
from invsync.core.clock import ManualClock
from invsync.core.config import Channel, ConfigError, Faults
from invsync.core.events import Event, EventLine, OrderCancelled, OrderCreated
from invsync.daemon.config import load_config
from invsync.metrics.definitions import REGISTRY
from invsync.simulators.core import SimLine, SimOrder
from invsync.simulators.limits import TokenBucket
from invsync.simulators.server import Simulator
from invsync.simulators.walmart import WalmartSim
from tests.receiver import until

FIXTURES = Path(__file__).parent / "fixtures" / "walmart"
CLIENT_ID = "0f1e2d3c-client"
CLIENT_SECRET = "wm-client-secret"
RELAY_SECRET = "relay-secret"


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def conforms(document: Any, schema_name: str) -> None:
    jsonschema.validate(document, schema(schema_name))


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WM_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("WM_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("WM_RELAY_SECRET", RELAY_SECRET)


def walmart_channel(url: str, **options: Any) -> Channel:
    """A walmart channel on the simulator, with fast feed polling."""
    return Channel(
        id="walmart",
        kind="walmart",
        url=f"{url}/walmart",
        secret_env="WM_RELAY_SECRET",
        options={
            "client_id_env": "WM_CLIENT_ID",
            "client_secret_env": "WM_CLIENT_SECRET",
            "feed_poll_s": 0.05,
            "feed_timeout_s": 3.0,
            "timeout_s": 2.0,
            # Quantities below 10 go as PUTs here, so small test values exercise the PUT path;
            # FEED (urgent_max 0) sends everything in the feed.
            "urgent_below": 10,
            **options,
        },
    )


def mount(
    simulator: Simulator,
    session: aiohttp.ClientSession,
    faults: Faults | None = None,
    ctx: AdapterContext | None = None,
    **options: Any,
) -> tuple[WalmartSim, WalmartAdapter]:
    channel = walmart_channel(simulator.url, **options)
    sim = simulator.add(channel, faults or Faults())
    assert isinstance(sim, WalmartSim)
    sim.feed_delay_s = 0.1
    sim.list_skus(CATALOGUE)  # the items set up on Walmart
    adapter = create(channel, ctx or AdapterContext(session=session))
    return sim, adapter


def updates(*pairs: tuple[str, int]) -> list[Update]:
    return [Update(sku=sku, available=qty, version=n + 1) for n, (sku, qty) in enumerate(pairs)]


SEVEN = updates(*((f"SKU-{n}", n) for n in range(7)))
CATALOGUE = ["A", "B", "C", "TEE-BLK-M", "CAP/RED 1", *(u.sku for u in SEVEN)]
#: Options that send every change in the feed (no urgent PUTs).
FEED: dict[str, Any] = {"urgent_max": 0}


# --- single updates ---------------------------------------------------------------------------


async def test_small_batch_puts_each_sku_with_the_documented_body(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    results = await adapter.push(updates(("TEE-BLK-M", 7), ("CAP/RED 1", 0)))

    assert [(r.sku, r.outcome) for r in results] == [("TEE-BLK-M", "ok"), ("CAP/RED 1", "ok")]
    assert sim.quantities == {"TEE-BLK-M": 7, "CAP/RED 1": 0}
    puts = sim.requests("inventory_put")
    assert sorted(p.query["sku"] for p in puts) == ["CAP/RED 1", "TEE-BLK-M"]
    for put in puts:
        body = json.loads(put.body)
        conforms(body, "inventory.schema.json")
        amount = sim.quantities[body["sku"]]
        assert body == {"sku": put.query["sku"], "quantity": {"unit": "EACH", "amount": amount}}
        assert put.headers["content-type"] == "application/json"
    assert sim.requests("feed_submit") == []


async def test_every_request_carries_walmart_headers_and_a_fresh_correlation_id(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, service_name="Walmart Marketplace", urgent_below=2)
    await adapter.push(updates(("A", 1)))
    await adapter.push(SEVEN)
    await adapter.read_back(["A", "SKU-3"])

    seen = sim.requests()
    assert {s.operation for s in seen} >= {"token", "inventory_put", "feed_submit",
                                           "feed_status", "inventory_get"}
    ids = [s.headers["wm_qos.correlation_id"] for s in seen]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert all(s.headers["wm_svc.name"] == "Walmart Marketplace" for s in seen)
    assert all("application/json" in s.headers["accept"] for s in seen)
    (token_call,) = sim.requests("token")
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert token_call.headers["authorization"] == f"Basic {basic}"
    assert token_call.body == b"grant_type=client_credentials"
    assert "wm_sec.access_token" not in token_call.headers
    issued = set(sim.tokens)
    assert all(s.headers["wm_sec.access_token"] in issued for s in seen if s is not token_call)


async def test_service_name_option_is_sent(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, service_name="Acme Sync")
    await adapter.push(updates(("A", 1)))
    assert {s.headers["wm_svc.name"] for s in sim.requests()} == {"Acme Sync"}


async def test_unlisted_sku_in_a_small_batch_is_permanent_for_that_sku_only(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)  # GHOST is not in the catalogue
    results = await adapter.push(updates(("A", 4), ("GHOST", 2)))

    assert [(r.sku, r.outcome) for r in results] == [("A", "ok"), ("GHOST", "permanent")]
    assert "CONTENT_NOT_FOUND" in (results[1].error or "")
    assert sim.quantities == {"A": 4}


# --- the bulk feed ---------------------------------------------------------------------------


async def test_large_batch_uploads_one_1_4_feed_as_multipart_and_polls_it(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, **FEED)
    results = await adapter.push(SEVEN)

    assert [r.outcome for r in results] == ["ok"] * 7
    assert sim.quantities == {f"SKU-{n}": n for n in range(7)}
    assert sim.requests("inventory_put") == []
    (upload,) = sim.requests("feed_submit")
    assert upload.query == {"feedType": "inventory"}
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"' in upload.body and b'filename="inventory.json"' in upload.body
    file = json.loads(upload.body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0])
    conforms(file, "inventory_feed.schema.json")
    assert file["Inventory"][3] == {"sku": "SKU-3", "quantity": {"unit": "EACH", "amount": 3}}
    polls = sim.requests("feed_status")
    assert len(polls) >= 2  # INPROGRESS first: the feed is processed 0.1 s after its upload
    (feed_id,) = sim.feeds
    assert "@" in feed_id
    assert all(p.path.endswith(feed_id.replace("@", "%40")) or p.path.endswith(feed_id)
               for p in polls)
    assert all(p.query["includeDetails"] == "true" for p in polls)


async def test_feed_status_answers_match_the_documented_shape(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, **FEED)
    sim.listed.discard("SKU-2")  # not set up on Walmart
    await adapter.push(SEVEN)
    (feed_id,) = sim.feeds
    token = next(iter(sim.tokens))
    async with session.get(
        f"{simulator.url}/walmart/v3/feeds/{feed_id.replace('@', '%40')}",
        params={"includeDetails": "true", "limit": "1000"},
        headers=_wm_headers(token),
    ) as resp:
        answer = await resp.json()
    conforms(answer, "feed_status.schema.json")
    assert answer["feedStatus"] == "PROCESSED"
    assert (answer["itemsReceived"], answer["itemsSucceeded"], answer["itemsFailed"]) == (7, 6, 1)


async def test_partial_feed_failure_fails_only_the_failed_skus(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, **FEED)
    sim.listed.discard("SKU-1")
    sim.item_faults["SKU-4"] = "SYSTEM_ERROR"
    sim.item_faults["SKU-5"] = "TIMEOUT_ERROR"
    results = {r.sku: r for r in await adapter.push(SEVEN)}

    assert {sku: r.outcome for sku, r in results.items()} == {
        "SKU-0": "ok", "SKU-1": "permanent", "SKU-2": "ok", "SKU-3": "ok",
        "SKU-4": "retryable", "SKU-5": "retryable", "SKU-6": "ok",
    }
    assert "DATA_ERROR" in (results["SKU-1"].error or "")
    assert "SYSTEM_ERROR" in (results["SKU-4"].error or "")
    assert sim.quantities == {"SKU-0": 0, "SKU-2": 2, "SKU-3": 3, "SKU-6": 6}


async def test_feed_item_details_are_read_page_by_page(
    simulator: Simulator, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(walmart_feeds, "FEED_PAGE_LIMIT", 3)
    sim, adapter = mount(simulator, session, **FEED)
    sim.listed.discard("SKU-6")  # on the last page
    results = await adapter.push(SEVEN)

    assert [r.outcome for r in results] == ["ok"] * 6 + ["permanent"]
    offsets = [p.query["offset"] for p in sim.requests("feed_status")][-3:]
    assert offsets == ["0", "3", "6"]


async def test_feed_unfinished_in_time_is_retryable(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, feed_timeout_s=0.2, **FEED)
    sim.feed_delay_s = 30.0
    results = await adapter.push(SEVEN)

    assert {r.outcome for r in results} == {"retryable"}
    assert "not processed within 0.2 s" in (results[0].error or "")
    assert 2 <= len(sim.requests("feed_status")) <= 6
    assert sim.quantities == {}


async def test_feed_status_polls_sleep_on_the_adapter_clock(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    ctx = AdapterContext(session=session, clock=clock)
    sim, adapter = mount(simulator, session, ctx=ctx, feed_poll_s=5, feed_timeout_s=20, **FEED)
    sim.feed_delay_s = 3600.0  # never processed while the test runs
    push = asyncio.create_task(adapter.push(SEVEN))
    waits: list[float] = []
    while not push.done():
        await asyncio.sleep(0.001)
        deadline = clock.next_deadline
        if deadline is not None:  # parked between two polls: move the time, not the test
            waits.append(round(deadline - clock.now(), 6))
            clock.advance(deadline - clock.now())
    results = push.result()
    assert {r.outcome for r in results} == {"retryable"}
    assert "not processed within 20 s" in (results[0].error or "")
    # At once, then after 0.5, 1, 2, 4 s and every feed_poll_s, the last wait cut at 20 s.
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 2.5]
    assert len(sim.requests("feed_status")) == len(waits) + 1


async def test_throttled_feed_upload_raises_throttled_with_retry_after(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, **FEED)
    sim.limits["feed_submit"] = TokenBucket(10 / 3600, 0, clock=sim.clock)  # none left this hour
    with pytest.raises(Throttled) as caught:
        await adapter.push(SEVEN)
    assert caught.value.retry_after == 360.0
    assert "REQUEST_THRESHOLD_VIOLATED" in caught.value.message


async def test_feed_polls_ride_out_throttling(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, **FEED)
    sim.limits["feed_status"] = TokenBucket(20.0, 1, clock=sim.clock)  # one poll per 50 ms
    results = await adapter.push(SEVEN)
    assert [r.outcome for r in results] == ["ok"] * 7


# --- which way a change goes: PUT when it cannot wait, else the feed -------------------------


async def test_sell_outs_go_as_puts_at_once_and_routine_changes_in_one_feed(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, urgent_below=2)  # the documented default
    batch = updates(("A", 0), ("B", 1), ("C", 2), ("SKU-3", 30), ("SKU-4", 0))
    results = await adapter.push(batch)

    assert sorted((r.sku, r.outcome) for r in results) == sorted((u.sku, "ok") for u in batch)
    assert sorted(p.query["sku"] for p in sim.requests("inventory_put")) == ["A", "B", "SKU-4"]
    (upload,) = sim.requests("feed_submit")
    file = json.loads(upload.body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0])
    assert [item["sku"] for item in file["Inventory"]] == ["C", "SKU-3"]
    assert sim.quantities == {"A": 0, "B": 1, "C": 2, "SKU-3": 30, "SKU-4": 0}


@settings(max_examples=200, deadline=None)
@given(
    quantities=st.lists(st.integers(min_value=-2, max_value=20), max_size=60),
    urgent_below=st.integers(min_value=0, max_value=10),
    urgent_max=st.integers(min_value=0, max_value=30),
)
def test_every_change_takes_exactly_one_way_and_puts_stay_capped(
    quantities: list[int], urgent_below: int, urgent_max: int
) -> None:
    options = Options(client_id_env="A", client_secret_env="B", urgent_below=urgent_below,
                      urgent_max=urgent_max)
    batch = updates(*((f"S{i}", q) for i, q in enumerate(quantities)))
    urgent, routine = split(batch, options)

    assert sorted(u.sku for u in urgent + routine) == sorted(u.sku for u in batch)
    assert len(urgent) <= urgent_max
    assert all(u.available <= 0 or u.available < urgent_below for u in urgent)
    wanted = [u for u in batch if u.available <= 0 or u.available < urgent_below]
    assert urgent == wanted[:urgent_max]  # the first ones, in batch order; no routine one


async def test_urgent_puts_are_capped_per_push_and_the_rest_join_the_feed(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, urgent_below=1, urgent_max=2)
    batch = updates(*((f"SKU-{n}", 0) for n in range(5)))  # a sold-out catalogue, fully synced
    results = await adapter.push(batch)

    assert {r.outcome for r in results} == {"ok"}
    assert [p.query["sku"] for p in sim.requests("inventory_put")] == ["SKU-0", "SKU-1"]
    (upload,) = sim.requests("feed_submit")
    assert b'"SKU-4"' in upload.body and b'"SKU-0"' not in upload.body
    assert sim.quantities == {f"SKU-{n}": 0 for n in range(5)}


async def test_feeds_are_paced_to_feeds_per_hour_on_the_adapter_clock(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    ctx = AdapterContext(session=session, clock=clock)
    sim, adapter = mount(simulator, session, ctx=ctx, feeds_per_hour=2, **FEED)
    sim.feed_delay_s = 0.0  # processed by the first poll: only the allowance waits here
    assert [r.outcome for r in await adapter.push(updates(("A", 5)))] == ["ok"]
    assert [r.outcome for r in await adapter.push(updates(("A", 6)))] == ["ok"]
    third = asyncio.create_task(adapter.push(updates(("A", 7))))
    await until(lambda: clock.next_deadline is not None, timeout=5, step=0.001)
    # Two an hour: the third feed waits half an hour, and no request is spent on a 429.
    assert clock.next_deadline == pytest.approx(1800.0)
    assert len(sim.requests("feed_submit")) == 2 and sim.quantities == {"A": 6}
    clock.advance(1800.0)
    assert [r.outcome for r in await third] == ["ok"]
    assert len(sim.requests("feed_submit")) == 3 and sim.quantities == {"A": 7}
    assert sim.calls["feed_submit:throttled"] == 0


async def test_a_sell_out_is_not_held_back_by_a_feed_waiting_for_its_slot(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    clock = ManualClock()
    ctx = AdapterContext(session=session, clock=clock)
    sim, adapter = mount(simulator, session, ctx=ctx, feeds_per_hour=1, urgent_below=1)
    sim.feed_delay_s = 0.0
    await adapter.push(updates(("A", 5)))  # the hour's one feed
    push = asyncio.create_task(adapter.push(updates(("B", 0), ("A", 4))))
    await until(lambda: clock.next_deadline is not None and "B" in sim.quantities, timeout=5,
                step=0.001)
    # The feed with A waits for the next slot; B's sell-out is already on Walmart.
    assert sim.quantities == {"A": 5, "B": 0}
    assert not push.done()
    clock.advance(3600.0)
    assert sorted((r.sku, r.outcome) for r in await push) == [("A", "ok"), ("B", "ok")]
    assert sim.quantities == {"A": 4, "B": 0}


async def test_a_throttled_feed_fails_its_skus_alone_and_holds_the_allowance(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, urgent_below=1)
    sim.limits["feed_submit"] = TokenBucket(10 / 3600, 0, clock=sim.clock)  # another tool used it
    results = {r.sku: r for r in await adapter.push(updates(("A", 0), ("B", 5)))}

    assert results["A"].outcome == "ok" and sim.quantities == {"A": 0}
    assert results["B"].outcome == "throttled" and results["B"].retry_after == 360.0
    # invsync's own count now waits out Walmart's Retry-After before the next feed.
    assert adapter.feeds.wait_s() == pytest.approx(360.0, abs=1.0)


async def test_a_short_feed_throttle_is_waited_out_and_counted_as_throttled(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, **FEED)
    bucket = TokenBucket(2.0, 1, clock=sim.clock)
    assert bucket.take()  # spent: the next upload is refused with Retry-After 1
    sim.limits["feed_submit"] = bucket
    labels = {"channel": "walmart", "outcome": "throttled"}
    before = REGISTRY.get_sample_value("invsync_channel_pushes_total", labels) or 0.0

    results = await adapter.push(updates(("A", 5), ("B", 6)))

    assert [r.outcome for r in results] == ["ok", "ok"]
    assert sim.calls["feed_submit:throttled"] == 1 and sim.quantities == {"A": 5, "B": 6}
    after = REGISTRY.get_sample_value("invsync_channel_pushes_total", labels) or 0.0
    assert after == before + 1  # the 429 the push absorbed still shows in the metric


async def test_refused_credentials_on_one_side_fail_the_whole_push(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, urgent_below=1)
    await adapter.push(updates(("A", 0)))  # a token is issued
    sim.revoke_tokens()
    sim.client_secret = "rotated"  # the next grant is refused
    with pytest.raises(Unauthorized):
        await adapter.push(updates(("A", 0), ("B", 5)))
    assert sim.feeds == {} and sim.calls["feed_submit:401"] == 1


# --- tokens ----------------------------------------------------------------------------------


async def test_expired_token_is_refreshed_once_and_the_call_retried(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.token_lifetime_s = 0.05  # shorter than the adapter's refresh margin: used until refused
    assert [r.outcome for r in await adapter.push(updates(("A", 1)))] == ["ok"]
    old = next(iter(sim.tokens))
    while sim.clock() < sim.tokens[old]:
        await _tick()
    assert [r.outcome for r in await adapter.push(updates(("A", 2)))] == ["ok"]

    assert adapter.tokens.fetches == 2
    assert sim.calls["inventory_put:401"] == 1
    assert sim.quantities == {"A": 2}


async def test_revoked_token_is_replaced_for_feeds_and_read_back(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    await adapter.push(updates(("A", 1)))
    sim.revoke_tokens()
    assert [r.outcome for r in await adapter.push(SEVEN)] == ["ok"] * 7
    sim.revoke_tokens()
    assert await adapter.read_back(["A"]) == {"A": 1}
    assert adapter.tokens.fetches == 3


async def test_token_is_refreshed_before_it_expires(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    now = [1000.0]
    ctx = AdapterContext(session=session, monotonic=lambda: now[0])
    sim, adapter = mount(simulator, session, ctx=ctx)
    await adapter.push(updates(("A", 1)))
    now[0] += 800  # 900 s tokens, renewed 60 s ahead
    await adapter.push(updates(("A", 2)))
    assert adapter.tokens.fetches == 1
    now[0] += 60
    await adapter.push(updates(("A", 3)))
    assert adapter.tokens.fetches == 2
    assert sim.calls["inventory_put:401"] == 0


async def test_refused_client_credentials_are_unauthorized(
    simulator: Simulator, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, _ = mount(simulator, session)
    monkeypatch.setenv("WM_CLIENT_SECRET", "not-the-secret")
    adapter = create(walmart_channel(simulator.url), AdapterContext(session=session))
    with pytest.raises(Unauthorized, match="token endpoint refused"):
        await adapter.push(updates(("A", 1)))
    assert sim.quantities == {}
    assert sim.tokens_issued == 0


# --- throttling and faults -----------------------------------------------------------------


async def test_throttled_single_push_reports_retry_after(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.limits["inventory_put"] = TokenBucket(0.5, 1, clock=sim.clock)
    await adapter.push(updates(("A", 1)))
    with pytest.raises(Throttled) as caught:
        await adapter.push(updates(("A", 2)))
    assert caught.value.retry_after == 2.0
    assert sim.quantities == {"A": 1}


async def test_throttled_sku_of_a_small_batch_is_throttled_alone(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.limits["inventory_put"] = TokenBucket(0.5, 2, clock=sim.clock)
    results = await adapter.push(updates(("A", 1), ("B", 2), ("C", 3)))

    outcomes = sorted(r.outcome for r in results)
    assert outcomes == ["ok", "ok", "throttled"]
    (throttled,) = [r for r in results if r.outcome == "throttled"]
    assert throttled.retry_after == 2.0
    assert throttled.sku not in sim.quantities and len(sim.quantities) == 2


async def test_throttle_without_retry_after_reads_next_replenishment_time(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.send_retry_after = False
    sim.limits["inventory_put"] = TokenBucket(0.25, 0, clock=sim.clock)
    with pytest.raises(Throttled) as caught:
        await adapter.push(updates(("A", 1)))
    assert caught.value.retry_after is not None
    assert 3.0 < caught.value.retry_after <= 4.0


async def test_injected_throttle_and_server_errors_map_to_their_kinds(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, faults=Faults(throttle_rate=1.0))
    with pytest.raises(Throttled) as caught:
        await adapter.push(updates(("A", 1)))
    assert caught.value.retry_after == 1.0
    sim.faults = Faults(error_rate=1.0)
    with pytest.raises(Retryable, match="SYSTEM_ERROR"):
        await adapter.push(updates(("A", 1), ("B", 2)))
    with pytest.raises(Retryable):
        await adapter.read_back(["A"])
    assert sim.quantities == {}


async def test_a_channel_that_does_not_answer_in_time_is_retryable(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    _, adapter = mount(
        simulator, session, faults=Faults(timeout_rate=1.0, timeout_s=0.6), timeout_s=0.2
    )
    with pytest.raises(Retryable, match=r"no answer within 0\.2 s"):
        await adapter.push(updates(("A", 1)))


# --- read-back -----------------------------------------------------------------------------


async def test_read_back_sees_drift_and_leaves_out_unknown_skus(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    await adapter.push(updates(("A", 5), ("B", 3)))
    sim.set_quantity("A", 2)  # edited in Seller Center behind our back

    assert await adapter.read_back(["A", "B", "NEVER-PUSHED"]) == {"A": 2, "B": 3}
    gets = sim.requests("inventory_get")
    assert sorted(g.query["sku"] for g in gets) == ["A", "B", "NEVER-PUSHED"]


async def test_read_back_throttled_raises_throttled(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.set_quantity("A", 1)
    sim.limits["inventory_get"] = TokenBucket(1.0, 0, clock=sim.clock)
    with pytest.raises(Throttled):
        await adapter.read_back(["A", "B"])


# --- cancellation --------------------------------------------------------------------------


async def test_cancel_order_cancels_the_open_units_of_the_given_skus(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    sim.quantities.update({"A": 5, "B": 5})
    order = sim.place_order([SimLine(sku="A", qty=2), SimLine(sku="B", qty=1)])
    assert order is not None

    await adapter.cancel_order(order.order_id, [OrderLine(sku="A", qty=1)], "invsync exception 7")

    (cancel,) = sim.requests("order_cancel")
    body = json.loads(cancel.body)
    conforms(body, "order_cancellation.schema.json")
    (line,) = body["orderCancellation"]["orderLines"]["orderLine"]
    assert line["lineNumber"] == "1"
    (status,) = line["orderLineStatuses"]["orderLineStatus"]
    assert status == {"status": "Cancelled", "cancellationReason": "SELLER_CANCEL_OUT_OF_STOCK",
                      "statusQuantity": {"unitOfMeasurement": "EACH", "amount": "1"}}
    assert sim.cancelled == {(order.order_id, "1"): (1, "SELLER_CANCEL_OUT_OF_STOCK")}
    assert sim.quantities["A"] == 0  # Walmart marks the item out of stock for that reason
    assert sim.orders[order.order_id].status == "created"


async def test_cancel_whole_order_then_again_is_a_no_op(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, cancel_reason="SELLER_CANCEL_PRICING_ERROR")
    sim.quantities.update({"A": 5, "B": 5})
    order = sim.place_order([SimLine(sku="A", qty=2), SimLine(sku="B", qty=1)])
    assert order is not None and sim.quantities == {"A": 3, "B": 4}

    await adapter.cancel_order(order.order_id, None, "customer changed their mind")
    body = json.loads(sim.requests("order_cancel")[0].body)
    conforms(body, "order_cancellation.schema.json")
    lines = body["orderCancellation"]["orderLines"]["orderLine"]
    assert [(x["lineNumber"], x["orderLineStatuses"]["orderLineStatus"][0]["statusQuantity"]
             ["amount"]) for x in lines] == [("1", "2"), ("2", "1")]
    assert {x["orderLineStatuses"]["orderLineStatus"][0]["cancellationReason"] for x in lines} \
        == {"SELLER_CANCEL_PRICING_ERROR"}
    assert sim.orders[order.order_id].status == "cancelled"
    assert sim.quantities == {"A": 5, "B": 5}

    await adapter.cancel_order(order.order_id, None, "retry")
    await adapter.cancel_order(order.order_id, [OrderLine(sku="B", qty=1)], "retry")
    assert len(sim.requests("order_cancel")) == 1


async def test_walmart_reason_codes_pass_through(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    order = sim.place_order([SimLine(sku="A", qty=1)])
    assert order is not None
    await adapter.cancel_order(order.order_id, None, "CUSTOMER_REQUESTED_SELLER_TO_CANCEL")
    assert sim.cancelled[(order.order_id, "1")] == (1, "CUSTOMER_REQUESTED_SELLER_TO_CANCEL")


async def test_cancel_refuses_what_cannot_be_cancelled(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    order = sim.place_order([SimLine(sku="A", qty=1)])
    assert order is not None
    with pytest.raises(Permanent, match="no line for 'Z'"):
        await adapter.cancel_order(order.order_id, [OrderLine(sku="Z", qty=1)], "x")
    with pytest.raises(Permanent, match="CONTENT_NOT_FOUND"):
        await adapter.cancel_order("999999", None, "x")
    sim.change_order(order.order_id, "fulfilled")
    with pytest.raises(Permanent, match="shipped"):
        await adapter.cancel_order(order.order_id, [OrderLine(sku="A", qty=1)], "x")
    assert sim.requests("order_cancel") == []


# --- notifications -------------------------------------------------------------------------


async def test_new_order_notification_becomes_order_created(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    order = sim.place_order(
        [SimLine(sku="A", qty=2), SimLine(sku="B", qty=1), SimLine(sku="A", qty=1)]
    )
    assert order is not None
    made = sim.order_notification(order)
    assert made is not None
    headers, body = made
    assert json.loads(body)["source"]["eventType"] == "PO_CREATED"

    events = adapter.parse_webhook(headers, body)
    assert events == [OrderCreated(
        id=f"walmart-{order.order_id}-created",
        channel="walmart", order_id=order.order_id,
        lines=[EventLine(sku="A", qty=3), EventLine(sku="B", qty=1)],
    )]
    assert adapter.parse_webhook(headers, body) == events  # redelivery: the same event id


async def test_documented_po_created_payload_is_translated(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    _, adapter = mount(simulator, session)
    body = (FIXTURES / "po_created.json").read_bytes()
    (event,) = adapter.parse_webhook({SIGNATURE_HEADER: sign(RELAY_SECRET, body)}, body)
    assert isinstance(event, OrderCreated)
    assert event.order_id == "108829395826015"
    assert event.lines == [EventLine(sku="TEE-BLK-M", qty=1), EventLine(sku="CAP-RED", qty=2)]


async def test_auto_cancelled_lines_become_order_cancelled(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session)
    order = sim.place_order([SimLine(sku="A", qty=2)])
    assert order is not None
    made = sim.order_notification(sim.change_order(order.order_id, "cancelled"))
    assert made is not None
    (event,) = adapter.parse_webhook(*made)
    assert isinstance(event, OrderCancelled)
    assert event.id == f"walmart-{order.order_id}-cancelled-1"
    assert event.channel == "walmart" and event.order_id == order.order_id
    assert event.lines == [EventLine(sku="A", qty=2)]
    assert sim.order_notification(sim.change_order(order.order_id, "fulfilled")) is None


async def test_forged_or_unsigned_notifications_are_refused(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    _, adapter = mount(simulator, session)
    body = (FIXTURES / "po_created.json").read_bytes()
    for headers, payload in [
        ({SIGNATURE_HEADER: sign("guess", body)}, body),
        ({SIGNATURE_HEADER: sign(RELAY_SECRET, body)}, body.replace(b'"2"', b'"9"')),
        ({"WM_SEC.SIGNATURE": "anything", "WM_SEC.TIMESTAMP": "1700000000"}, body),
        ({}, body),
    ]:
        with pytest.raises(BadWebhook) as caught:
            adapter.parse_webhook(headers, payload)
        assert caught.value.unauthorized

    unsigned_channel = Channel(
        id="walmart2", kind="walmart", url=f"{simulator.url}/walmart2",
        options={"client_id_env": "WM_CLIENT_ID", "client_secret_env": "WM_CLIENT_SECRET"},
    )
    no_relay = create(unsigned_channel, AdapterContext(session=session))
    with pytest.raises(BadWebhook, match="no secret_env") as caught:
        no_relay.parse_webhook({SIGNATURE_HEADER: sign(RELAY_SECRET, body)}, body)
    assert caught.value.unauthorized
    relayless = simulator.add(unsigned_channel)
    assert relayless is not None
    assert relayless.order_notification(SimOrder(order_id="1", lines=())) is None


async def test_malformed_or_foreign_notifications(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    _, adapter = mount(simulator, session)

    def signed(body: bytes) -> list[Event]:
        return adapter.parse_webhook({SIGNATURE_HEADER: sign(RELAY_SECRET, body)}, body)

    for bad in [b"{nope", b'"x"', b'{"payload": {}}',
                b'{"source": {"eventType": "PO_CREATED"}}',
                b'{"source": {"eventType": "PO_CREATED"}, "payload": {"purchaseOrderId": "1"}}',
                b'{"source": {"eventType": "PO_CREATED"}, "payload": {"purchaseOrderId": "1",'
                b' "orderLines": [{"lineNumber": "1", "sku": "A", '
                b'"quantity": {"measurementValue": "0"}}]}}']:
        with pytest.raises(BadWebhook) as caught:
            signed(bad)
        assert not caught.value.unauthorized
    assert signed(b'{"source": {"eventType": "OFFER_UNPUBLISHED"}, "payload": {}}') == []


# --- configuration -------------------------------------------------------------------------


def test_configuration_errors_name_the_key(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = AdapterContext(session=session)
    good = walmart_channel("http://127.0.0.1:9")
    assert isinstance(make_adapter(good, ctx), WalmartAdapter)

    monkeypatch.delenv("WM_CLIENT_SECRET")
    with pytest.raises(MissingSecret, match="WM_CLIENT_SECRET") as caught:
        create(good, ctx)
    assert str(caught.value) == (
        "channel 'walmart': options.client_secret_env: environment variable "
        "WM_CLIENT_SECRET is not set (or empty)"
    )
    monkeypatch.setenv("WM_CLIENT_SECRET", CLIENT_SECRET)
    # Channels built by hand (not loaded) still have their options checked by create().
    with pytest.raises(ValueError, match=r"channel 'w': options\.client_id_env: "):
        create(Channel(id="w", kind="walmart", url="http://x",
                       options={"client_secret_env": "WM_CLIENT_SECRET"}), ctx)
    with pytest.raises(ValueError, match="token_env"):
        create(Channel(id="w", kind="walmart", url="http://x", token_env="WM_CLIENT_SECRET",
                       options=good.options), ctx)
    with pytest.raises(ValueError, match="needs a url"):
        create(Channel(id="w", kind="walmart", options=good.options), ctx)
    for key, bad in [("cancel_reason", "BECAUSE"), ("urgent_below", -1),
                     ("feed_poll_s", "fast"), ("max_concurrency", 0), ("timeout_s", 0)]:
        channel = walmart_channel("http://127.0.0.1:9", **{key: bad})
        with pytest.raises(ValueError, match=rf"channel 'walmart': options\.{key}: "):
            create(channel, ctx)


#: The required options, as TOML values.
GOOD_OPTIONS = {"client_id_env": '"WM_CLIENT_ID"', "client_secret_env": '"WM_CLIENT_SECRET"'}


def write_walmart_config(folder: Path, **options: str | None) -> Path:
    """A config of one walmart channel: GOOD_OPTIONS with ``options`` (TOML values; None leaves
    the key out)."""
    table = {**GOOD_OPTIONS, **options}
    lines = "".join(f"{key} = {value}\n" for key, value in table.items() if value is not None)
    path = folder / "config.toml"
    path.write_text(
        '[[locations]]\nid = "wh"\n\n[[channels]]\nid = "walmart"\nkind = "walmart"\n'
        'url = "https://marketplace.walmartapis.com"\n'
        f"[channels.options]\n{lines}"
    )
    return path


def test_good_options_load_with_their_documented_defaults(tmp_path: Path) -> None:
    path = write_walmart_config(tmp_path, cancel_reason='"SELLER_CANCEL_PRICING_ERROR"')
    config = load_config(path)
    assert options_type("walmart") is Options
    assert msgspec.convert(config.channels[0].options, Options) == Options(
        client_id_env="WM_CLIENT_ID",
        client_secret_env="WM_CLIENT_SECRET",
        token_url=None,
        service_name="Walmart Marketplace",
        urgent_below=2,
        urgent_max=50,
        feeds_per_hour=10,
        max_concurrency=4,
        feed_poll_s=5.0,
        feed_timeout_s=1800.0,
        cancel_reason="SELLER_CANCEL_PRICING_ERROR",
        timeout_s=10.0,
    )
    # 0 is allowed where the documentation says so: only sell-outs urgent, no PUTs at all,
    # poll without waiting.
    load_config(
        write_walmart_config(tmp_path, urgent_below="0", urgent_max="0", feed_poll_s="0")
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cancel_reason", '"BECAUSE"', "must be one of 'CUSTOMER_REQUESTED_SELLER_TO_CANCEL', "),
        ("urgent_below", "-1", "must be >= 0, got -1"),
        ("urgent_max", "-1", "must be >= 0, got -1"),
        ("feeds_per_hour", "0", "must be between 1 and 3600, got 0"),
        ("feed_threshold", "50", "unknown key"),
        ("unlisted_prefix", '"X-"', "unknown key"),
        ("max_concurrency", "0", "must be >= 1, got 0"),
        ("feed_poll_s", '"fast"', "expected a number, got a string ('fast')"),
        ("feed_poll_s", "-1", ">= 0, got -1"),
        ("feed_timeout_s", "inf", "got inf"),
        ("timeout_s", "0", "> 0, got 0"),
        ("service_name", '""', "must not be empty"),
        ("token_url", '"marketplace.walmartapis.com/v3/token"', "an http:// or https:// URL"),
        ("client_secret_env", '"wm-client-secret"', "must be the name of an environment variable"),
        ("client_secret", '"X"', "unknown key (did you mean 'client_secret_env'?)"),
    ],
)
def test_a_bad_option_is_refused_at_load_naming_its_key(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_walmart_config(tmp_path, **{key: value}))
    assert caught.value.key == f"channels[0].options.{key}"
    assert message in caught.value.message
    assert "wm-client-secret" not in str(caught.value)  # an *_env value may be the secret


@pytest.mark.parametrize("key", ["client_id_env", "client_secret_env"])
def test_a_missing_required_option_is_refused_at_load(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_walmart_config(tmp_path, **{key: None}))
    assert caught.value.key == f"channels[0].options.{key}"
    assert caught.value.message == "required key is missing"


# --- the simulator refuses what Walmart refuses ----------------------------------------------


def _wm_headers(token: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"WM_SVC.NAME": "Walmart Marketplace",
               "WM_QOS.CORRELATION_ID": str(uuid.uuid4()), "Accept": "application/json"}
    if token is not None:
        headers["WM_SEC.ACCESS_TOKEN"] = token
    headers.update(extra)
    return headers


async def _tick() -> None:
    await asyncio.sleep(0.02)


async def test_simulator_refuses_what_walmart_refuses(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, _ = mount(simulator, session)
    base = f"{simulator.url}/walmart/v3"
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    form = {"grant_type": "client_credentials"}

    async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with session.request(method, base + path, **kwargs) as resp:
            return resp.status, await resp.json()

    status, answer = await call("POST", "/token", data=form,
                                headers=_wm_headers(Authorization="Basic eDp5"))
    assert status == 401
    conforms(answer, "error.schema.json")
    status, answer = await call("POST", "/token", data=form,
                                headers={"Authorization": f"Basic {basic}",
                                         "Accept": "application/json"})
    assert (status, answer["errors"][0]["code"]) == (400, "MISSING_REQUEST_HEADER")
    status, answer = await call("POST", "/token", data=form,
                                headers=_wm_headers(Authorization=f"Basic {basic}"))
    assert status == 200 and answer["expires_in"] == 900.0
    token = answer["access_token"]

    put = {"sku": "A", "quantity": {"unit": "EACH", "amount": 3}}
    status, _ = await call("PUT", "/inventory", params={"sku": "A"}, json=put,
                           headers=_wm_headers())
    assert status == 401
    for bad, field in [({**put, "quantity": {"unit": "CASE", "amount": 3}}, "quantity.unit"),
                       ({**put, "quantity": {"unit": "EACH", "amount": -1}}, "quantity.amount"),
                       ({**put, "quantity": {"unit": "EACH", "amount": 1.5}}, "quantity.amount"),
                       ({**put, "sku": "B"}, "sku")]:
        status, answer = await call("PUT", "/inventory", params={"sku": "A"}, json=bad,
                                    headers=_wm_headers(token))
        assert (status, answer["errors"][0]["field"]) == (400, field)
        conforms(answer, "error.schema.json")
    status, answer = await call("PUT", "/inventory", json=put, headers=_wm_headers(token))
    assert (status, answer["errors"][0]["code"]) == (400, "MISSING_REQUEST_PARAM")
    status, answer = await call("PUT", "/inventory", params={"sku": "A"}, json=put,
                                headers=_wm_headers(token, Accept="application/xml"))
    assert status == 406
    status, answer = await call("PUT", "/inventory", params={"sku": "A"}, json=put,
                                headers=_wm_headers(token))
    assert status == 200 and answer == put
    conforms(answer, "inventory.schema.json")

    status, answer = await call("GET", "/feeds/NOPE%40X", headers=_wm_headers(token))
    assert (status, answer["errors"][0]["code"]) == (404, "CONTENT_NOT_FOUND")
    status, answer = await call("POST", "/feeds", params={"feedType": "MP_INVENTORY"},
                                json={}, headers=_wm_headers(token))
    assert status == 400
    bad_feed = {"InventoryHeader": {"version": "1.5"}, "Inventory": [put]}
    status, answer = await call("POST", "/feeds", params={"feedType": "inventory"},
                                json=bad_feed, headers=_wm_headers(token))
    assert status == 200
    sim.feed_delay_s = 0.0
    status, answer = await call("GET", f"/feeds/{answer['feedId'].replace('@', '%40')}",
                                headers=_wm_headers(token))
    conforms(answer, "feed_status.schema.json")
    assert answer["feedStatus"] == "ERROR"
    assert answer["ingestionErrors"]["ingestionError"][0]["type"] == "DATA_ERROR"


def test_fixture_schemas_accept_the_documented_samples() -> None:
    conforms(json.loads((FIXTURES / "bulk_feed_sample.json").read_text()),
             "inventory_feed.schema.json")
    with pytest.raises(jsonschema.ValidationError):
        conforms({"InventoryHeader": {"version": "1.4"},
                  "Inventory": [{"sku": "A", "quantity": {"unit": "CASE", "amount": 1}}]},
                 "inventory_feed.schema.json")


async def test_simulator_takes_inventory_only_for_items_set_up_on_it(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, adapter = mount(simulator, session, urgent_below=1)
    results = await adapter.push(updates(("NEW-1", 0), ("NEW-2", 4)))

    assert {r.sku: r.outcome for r in results} == {"NEW-1": "permanent", "NEW-2": "permanent"}
    assert "CONTENT_NOT_FOUND" in (results[0].error or "")  # the PUT's 404
    assert "DATA_ERROR" in (results[1].error or "")  # the feed item's
    assert await adapter.read_back(["NEW-1"]) == {}
    # A push never sets an item up; the seller listing it does, and it reads 0 until pushed.
    sim.list_skus(["NEW-1", "NEW-2"])
    assert await adapter.read_back(["NEW-1"]) == {"NEW-1": 0}
    results = await adapter.push(updates(("NEW-1", 0), ("NEW-2", 4)))
    assert {r.outcome for r in results} == {"ok"}
    assert sim.quantities == {"NEW-1": 0, "NEW-2": 4}


async def test_simulator_holds_feeds_to_the_documented_size(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    sim, _ = mount(simulator, session)
    token = await _token(session, simulator.url)
    url = f"{simulator.url}/walmart/v3/feeds"
    item = {"sku": "A", "quantity": {"unit": "EACH", "amount": 1}}
    too_many = {"InventoryHeader": {"version": "1.4"}, "Inventory": [item] * 50_001}
    async with session.post(url, params={"feedType": "inventory"}, json=too_many,
                            headers=_wm_headers(token)) as resp:
        assert resp.status == 200
        feed_id = (await resp.json())["feedId"]
    sim.feed_delay_s = 0.0
    async with session.get(f"{url}/{feed_id.replace('@', '%40')}",
                           headers=_wm_headers(token)) as resp:
        answer = await resp.json()
    assert answer["feedStatus"] == "ERROR"
    assert "50000 items" in answer["ingestionErrors"]["ingestionError"][0]["description"]
    huge = b'{"InventoryHeader": {"version": "1.4"}, "Inventory": []}' + b" " * (5 << 20)
    async with session.post(url, params={"feedType": "inventory"}, data=huge,
                            headers=_wm_headers(token, **{"Content-Type": "application/json"})
                            ) as resp:
        assert resp.status == 413
        conforms(await resp.json(), "error.schema.json")


async def _token(session: aiohttp.ClientSession, base: str) -> str:
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    async with session.post(f"{base}/walmart/v3/token", data={"grant_type": "client_credentials"},
                            headers=_wm_headers(Authorization=f"Basic {basic}")) as resp:
        token: str = (await resp.json())["access_token"]
    return token
