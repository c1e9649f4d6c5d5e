"""Holds through the daemon: ``hold.placed`` / ``hold.released`` events, conversion by an order,
lapsed holds, ``GET /v1/holds/{hold_id}``, ``invsync holds ...`` and the metrics.

The first tests run the real intake stream and processor on the test store; the last ones run
``invsync run`` as a subprocess and talk to it over loopback HTTP, with signed-webhook receivers
standing for the channels, so "availability drops on every channel at once" is seen where it
matters: in what the channels were told.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from invsync.core.config import Config, load_config
from invsync.core.events import BadEvent, decode_events
from invsync.daemon.holds import hold_view
from invsync.daemon.intake import Intake
from invsync.daemon.processor import Processor
from invsync.engine import keys
from invsync.engine.engine import Engine
from invsync.engine.models import SkuState
from invsync.metrics.definitions import HOLDS
from tests.daemon.helpers import Api, Daemon, invsync, metric, poll, webhook_channel, write_config
from tests.receiver import Receiver

CONFIG = """
[[locations]]
id = "wh-east"
priority = 10
transit_days = { west = 5 }

[[locations]]
id = "store-sf"
priority = 50
safety_stock = 1
transit_days = { west = 1 }

[[channels]]
id = "shop"
kind = "shopify"
sla_days = 2

[routing]
zones = { "US-CA" = "west" }
"""

CA = {"country": "US", "region": "CA"}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return load_config(path)


class Harness:
    """The real intake stream and processor on the test store."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        self.intake = Intake(engine.redis, consumer="test")
        self.notified: list[SkuState] = []
        self.processor = Processor(engine, lambda: config, self._notify)

    async def _notify(self, state: SkuState, accepted_ms: int) -> None:
        self.notified.append(state)

    async def apply(self, *events: dict[str, Any]) -> dict[str, Any]:
        """Record the events, process them, return event id -> outcome."""
        recorded = decode_events(json.dumps(list(events)).encode())
        entry_ids = await self.intake.append(recorded, source="test")
        ids = [e.id for e in recorded]
        self.processor.expect(ids, entry_ids)
        stop = asyncio.Event()
        task = asyncio.create_task(
            self.intake.consume(self.processor.handle_batch, stop=stop, block_ms=50)
        )
        results = await self.processor.wait_processed(ids, 10)
        stop.set()
        await asyncio.wait_for(task, 5)
        return results

    async def at(self, sku: str) -> dict[str, tuple[int, int]]:
        state = await self.engine.stock(sku)
        assert state is not None
        return {loc: (s.reserved, s.available) for loc, s in state.locations.items()}


@pytest.fixture
async def engine(redis: aioredis.Redis, clock: Any, config: Config) -> AsyncIterator[Engine]:
    """An engine as the daemon opens it: the config's safety stock per location."""
    floors = {loc.id: loc.safety_stock for loc in config.locations}
    async with Engine(redis, clock=clock, safety_stock=floors) as eng:
        yield eng


@pytest.fixture
async def h(engine: Engine, config: Config) -> Harness:
    harness = Harness(engine, config)
    await harness.intake.ensure_group()
    await harness.apply(count("c1", "TEE", "wh-east", 10), count("c2", "TEE", "store-sf", 3))
    return harness


def count(eid: str, sku: str, loc: str, n: int) -> dict[str, Any]:
    return {"id": eid, "type": "stock.counted", "sku": sku, "location": loc, "on_hand": n}


def hold(eid: str, hold_id: str, qty: int, **more: Any) -> dict[str, Any]:
    return {
        "id": eid,
        "type": "hold.placed",
        "hold_id": hold_id,
        "channel": "shop",
        "lines": [{"sku": "TEE", "qty": qty}],
        "ttl_s": 900,
        "ship_to": CA,
        **more,
    }


def order(eid: str, order_id: str, qty: int, hold_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": eid,
        "type": "order.created",
        "channel": "shop",
        "order_id": order_id,
        "lines": [{"sku": "TEE", "qty": qty}],
        "ship_to": CA,
    }
    if hold_id is not None:
        event["hold_id"] = hold_id
    return event


def counter(channel: str, outcome: str) -> float:
    return HOLDS.labels(channel=channel, outcome=outcome)._value.get()


# --- the events ------------------------------------------------------------------------------


def test_hold_events_are_validated_naming_the_bad_field() -> None:
    with pytest.raises(BadEvent, match="ttl_s"):
        decode_events(json.dumps(hold("e1", "chk-1", 1, ttl_s=0)).encode())
    with pytest.raises(BadEvent, match="ttl_s"):
        decode_events(json.dumps(hold("e1", "chk-1", 1, ttl_s=31 * 86_400)).encode())
    with pytest.raises(BadEvent, match="hold_id"):
        decode_events(b'{"id": "e2", "type": "hold.released"}')
    with pytest.raises(BadEvent, match="lines"):
        decode_events(json.dumps(hold("e3", "chk-1", 1, lines=[])).encode())


async def test_a_hold_is_routed_like_an_order_and_sparing_the_stores_floor(h: Harness) -> None:
    placed = counter("shop", "placed")
    results = await h.apply(hold("e1", "chk-1", 2))
    assert results["e1"]["outcome"] == "applied"
    assert results["e1"]["order_state"] == "held"
    # The store reaches California in a day and has two units above its floor.
    assert await h.at("TEE") == {"wh-east": (0, 10), "store-sf": (2, 0)}
    assert h.notified[-1].locations["store-sf"].reserved == 2  # the SKU actor hears at once
    assert counter("shop", "placed") == placed + 1
    # The next unit would be the floor: the warehouse holds it, late, instead.
    await h.apply(hold("e2", "chk-2", 1))
    record = await h.engine.hold("chk-2")
    assert record is not None and [x.location for x in record.lines] == ["wh-east"]


async def test_placing_a_hold_again_by_its_id_is_idempotent(h: Harness) -> None:
    await h.apply(hold("e1", "chk-1", 2))
    again = await h.apply(hold("e2", "chk-1", 2))  # the storefront's retry, a new event id
    assert again["e2"]["outcome"] == "duplicate"
    assert await h.at("TEE") == {"wh-east": (0, 10), "store-sf": (2, 0)}
    other = await h.apply(hold("e3", "chk-1", 3))
    assert (other["e3"]["outcome"], other["e3"]["code"]) == ("refused", "HOLD_EXISTS")


async def test_a_hold_that_cannot_be_fully_served_is_refused_with_the_lines_short(
    h: Harness,
) -> None:
    results = await h.apply(hold("e1", "chk-1", 14))
    assert (results["e1"]["outcome"], results["e1"]["code"]) == ("refused", "INSUFFICIENT_STOCK")
    assert "TEE 13 of 14" in results["e1"]["message"]
    assert await h.at("TEE") == {"wh-east": (0, 10), "store-sf": (0, 2)}
    raw = await h.engine.redis.get(keys.hold_refusal("chk-1"))
    assert raw is not None
    refusal = json.loads(raw)
    assert refusal["state"] == "refused"
    assert refusal["shortages"] == [{"sku": "TEE", "requested": 14, "available": 13}]


async def test_a_partial_hold_holds_what_can_be_served(h: Harness) -> None:
    results = await h.apply(hold("e1", "chk-1", 14, partial=True))
    assert results["e1"]["outcome"] == "applied"
    record = await h.engine.hold("chk-1")
    assert record is not None
    assert sum(x.qty for x in record.lines) == 13  # every unit, the floor unit last


async def test_an_order_with_hold_id_takes_the_held_units_with_no_free_window(
    h: Harness,
) -> None:
    converted = counter("shop", "converted")
    await h.apply(hold("e1", "chk-1", 2))
    before = await h.at("TEE")
    results = await h.apply(order("o1", "1001", 2, hold_id="chk-1"))
    assert results["o1"]["order_state"] == "reserved"
    # The order took exactly the held units: nothing was free in between, nothing moved.
    assert await h.at("TEE") == before
    placed = await h.engine.order("shop", "1001")
    assert placed is not None and [(x.location, x.qty) for x in placed.lines] == [("store-sf", 2)]
    record = await h.engine.hold("chk-1")
    assert record is not None and (record.state, record.converted_to) == ("converted", "shop/1001")
    assert counter("shop", "converted") == converted + 1


async def test_an_order_bigger_than_its_hold_gets_the_held_units_and_routes_the_rest(
    h: Harness,
) -> None:
    await h.apply(hold("e1", "chk-1", 2))
    await h.apply(order("o1", "1001", 5, hold_id="chk-1"))
    record = await h.engine.hold("chk-1")
    assert record is not None and record.state == "converted"
    # Five units, routed with the held two counted free again: all from the warehouse (one
    # parcel, sparing the store's floor), the store's two released in the same step.
    assert await h.at("TEE") == {"wh-east": (5, 5), "store-sf": (0, 2)}


async def test_an_order_naming_a_released_hold_reserves_like_any_order(h: Harness) -> None:
    await h.apply(hold("e1", "chk-1", 2), {"id": "e2", "type": "hold.released", "hold_id": "chk-1"})
    assert await h.at("TEE") == {"wh-east": (0, 10), "store-sf": (0, 2)}
    results = await h.apply(order("o1", "1001", 1, hold_id="chk-1"))
    assert results["o1"]["order_state"] == "reserved"
    record = await h.engine.hold("chk-1")
    assert record is not None and record.state == "released"


async def test_releasing_an_unknown_or_foreign_hold_is_a_clear_refusal(h: Harness) -> None:
    results = await h.apply({"id": "e1", "type": "hold.released", "hold_id": "nope"})
    assert (results["e1"]["code"], results["e1"]["message"]) == (
        "UNKNOWN_HOLD",
        "unknown hold nope",
    )
    await h.apply(hold("e2", "chk-1", 1))
    wrong = {"id": "e3", "type": "hold.released", "hold_id": "chk-1", "channel": "other"}
    results = await h.apply(wrong)
    assert results["e3"]["code"] == "INVALID_REQUEST"
    assert await h.at("TEE") == {"wh-east": (0, 10), "store-sf": (1, 1)}


async def test_the_hold_view_says_state_lines_and_expiry_with_its_zone(
    h: Harness, engine: Engine
) -> None:
    await h.apply(hold("e1", "chk-1", 2))
    record = await engine.hold("chk-1")
    assert record is not None and record.expires_ms is not None
    view = hold_view(record, record.created_ms + 100_000)
    assert view["state"] == "held"
    assert view["lines"] == [{"sku": "TEE", "location": "store-sf", "qty": 2, "reserved": 2}]
    expires = datetime.datetime.fromisoformat(view["expires"])
    assert expires.utcoffset() == datetime.timedelta(0)
    assert int(expires.timestamp() * 1000) == record.expires_ms
    assert view["expires_in_s"] == 800.0


# --- the running daemon over loopback HTTP ---------------------------------------------------


SECRETS = {"portal": "portal-s3cret", "b2b": "b2b-s3cret"}
ENV = {f"HOLDS_{c.upper()}_SECRET": s for c, s in SECRETS.items()}


def daemon_config(tmp_path: Path, receivers: dict[str, Receiver]) -> Path:
    text = CONFIG.replace('[[channels]]\nid = "shop"\nkind = "shopify"\nsla_days = 2\n', "")
    text = '[redis]\ndata_dir = "data"\n' + text
    for channel, receiver in receivers.items():
        text += webhook_channel(channel, receiver.url, f"HOLDS_{channel.upper()}_SECRET")
    return write_config(tmp_path, text)


async def test_checkout_flow_through_the_running_daemon(tmp_path: Path) -> None:
    receivers = {c: await Receiver(s).__aenter__() for c, s in SECRETS.items()}
    try:
        config = daemon_config(tmp_path, receivers)
        with Daemon(config, env=ENV) as daemon:
            await daemon.await_event("started")
            async with Api(config) as api:
                await api.post_events([count("c1", "TEE", "wh-east", 5)], wait=10)

                async def told(value: int) -> bool:
                    return all(r.shows().get("TEE") == value for r in receivers.values())

                await poll(lambda: told(5), 15, "both channels told 5")
                # "Pay": the hold takes 2 units off every channel at once.
                placed = await api.post_events(
                    [{**hold("e1", "chk-1", 2), "channel": "portal"}], wait=10
                )
                assert placed["results"]["e1"]["order_state"] == "held"
                await poll(lambda: told(3), 15, "both channels told 3")
                status, view = await api.request("GET", "/v1/holds/chk-1")
                assert status == 200 and view["state"] == "held"
                assert view["lines"] == [
                    {"sku": "TEE", "location": "wh-east", "qty": 2, "reserved": 2}
                ]
                assert view["expires"].endswith("+00:00")
                # Paid: the order converts the hold; the channels see no change at all.
                paid = await api.post_events(
                    [{**order("o1", "1001", 2, hold_id="chk-1"), "channel": "portal"}], wait=10
                )
                assert paid["results"]["o1"]["order_state"] == "reserved"
                _, view = await api.request("GET", "/v1/holds/chk-1")
                assert view["state"] == "converted"
                assert view["converted_to"] == {"channel": "portal", "order_id": "1001"}
                # Abandoned: a second checkout lapses after its ttl and the units come back.
                lapsing = {**hold("e2", "chk-2", 1), "channel": "b2b", "ttl_s": 1}
                await api.post_events([lapsing], wait=10)

                def went(*values: int) -> bool:
                    told = [[a for a, _ in r.pushed_values()["TEE"]] for r in receivers.values()]
                    return all(seen[-len(values) :] == list(values) for seen in told)

                await poll(lambda: went(2, 3), 15, "the lapsed hold's unit gone and back")
                _, view = await api.request("GET", "/v1/holds/chk-2")
                assert view["state"] == "expired"
                # Unknown holds are a 404 with the spec's error body.
                status, body = await api.request("GET", "/v1/holds/nope")
                assert (status, body["error"]["code"]) == (404, "UNKNOWN_HOLD")
                text = await api.metrics()
                assert metric(text, "invsync_holds_total", channel="portal", outcome="placed") == 1
                assert (
                    metric(text, "invsync_holds_total", channel="portal", outcome="converted") == 1
                )
                assert metric(text, "invsync_holds_total", channel="b2b", outcome="expired") == 1
    finally:
        for receiver in receivers.values():
            await receiver.__aexit__(None, None, None)


async def test_holds_cli_places_shows_and_releases(tmp_path: Path) -> None:
    receivers = {"portal": await Receiver(SECRETS["portal"]).__aenter__()}
    try:
        config = daemon_config(tmp_path, receivers)
        with Daemon(config, env=ENV) as daemon:
            await daemon.await_event("started")
            async with Api(config) as api:
                await api.post_events([count("c1", "TEE", "wh-east", 5)], wait=10)
            placed = await asyncio.to_thread(
                invsync,
                config,
                "holds",
                "place",
                "q-1",
                "--channel",
                "portal",
                "--line",
                "TEE=2",
                "--ttl",
                "600",
                "--json",
            )
            assert placed.returncode == 0, placed.stderr
            view = json.loads(placed.stdout)
            assert (view["state"], view["lines"][0]["reserved"]) == ("held", 2)
            short = await asyncio.to_thread(
                invsync,
                config,
                "holds",
                "place",
                "q-2",
                "--channel",
                "portal",
                "--line",
                "TEE=9",
            )
            assert short.returncode == 1
            assert "INSUFFICIENT_STOCK" in short.stderr and "TEE 3 of 9" in short.stderr
            shown = await asyncio.to_thread(invsync, config, "holds", "show", "q-1")
            assert shown.returncode == 0 and "q-1  held  channel portal" in shown.stdout
            released = await asyncio.to_thread(invsync, config, "holds", "release", "q-1")
            assert released.returncode == 0, released.stderr
            assert "q-1  released" in released.stdout
            again = await asyncio.to_thread(invsync, config, "holds", "release", "q-1")
            assert again.returncode == 1 and "hold q-1 is released" in again.stderr
            missing = await asyncio.to_thread(invsync, config, "holds", "show", "nope")
            assert missing.returncode == 1 and "UNKNOWN_HOLD" in missing.stderr
    finally:
        for receiver in receivers.values():
            await receiver.__aexit__(None, None, None)
