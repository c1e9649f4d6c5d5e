"""The simulator server itself: mounting, control routes, fault injection, notifications."""

from __future__ import annotations

import aiohttp
import pytest

from invsync.adapters.base import AdapterContext, Retryable, Throttled, Update
from invsync.adapters.webhook import create
from invsync.core.config import Channel, Faults
from invsync.simulators.server import Simulator
from invsync.simulators.webhook import WebhookReceiver

SECRET = "sim-secret"


def wholesale(url: str) -> Channel:
    return Channel(id="wholesale", kind="webhook", url=f"{url}/webhooks/wholesale",
                   secret_env="SIM_WHOLESALE_SECRET")


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_WHOLESALE_SECRET", SECRET)


async def test_a_push_lands_in_the_simulated_receiver(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    channel = wholesale(simulator.url)
    receiver = simulator.add(channel)
    assert isinstance(receiver, WebhookReceiver)
    receiver.list_skus(["A"])
    adapter = create(channel, AdapterContext(session=session))
    results = await adapter.push([Update(sku="A", available=3, version=2)])
    assert [r.outcome for r in results] == ["ok"]
    assert receiver.quantities == {"A": 3}
    async with session.get(f"{simulator.url}/_sim/channels") as resp:
        state = await resp.json()
    assert state["channels"][0]["quantities"] == {"A": 3}
    assert state["channels"][0]["calls"] == {"push:ok": 1}


async def test_a_wrong_secret_is_refused_by_the_receiver(
    simulator: Simulator, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = wholesale(simulator.url)
    receiver = simulator.add(channel)
    assert receiver is not None
    monkeypatch.setenv("SIM_WHOLESALE_SECRET", "not-the-secret")
    adapter = create(channel, AdapterContext(session=session))
    with pytest.raises(Exception, match="401"):
        await adapter.push([Update(sku="A", available=3, version=2)])
    assert receiver.quantities == {}


async def test_injected_faults_reach_the_adapter_as_their_error_kinds(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    channel = wholesale(simulator.url)
    receiver = simulator.add(channel, Faults(throttle_rate=1.0))
    assert receiver is not None
    adapter = create(channel, AdapterContext(session=session))
    with pytest.raises(Throttled) as caught:
        await adapter.push([Update(sku="A", available=1, version=1)])
    assert caught.value.retry_after == 1.0
    async with session.put(
        f"{simulator.url}/_sim/wholesale/faults", json={"error_rate": 1.0}
    ) as resp:
        assert resp.status == 200
    with pytest.raises(Retryable):
        await adapter.push([Update(sku="A", available=1, version=1)])
    assert receiver.quantities == {}


async def test_control_routes_change_quantities_and_refuse_unknown_channels(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    receiver = simulator.add(wholesale(simulator.url))
    assert receiver is not None
    async with session.put(
        f"{simulator.url}/_sim/wholesale/quantities/SKU-1", json={"quantity": 9}
    ) as resp:
        assert resp.status == 200
    assert receiver.quantities == {"SKU-1": 9}
    async with session.put(f"{simulator.url}/_sim/nope/quantities/X", json={"quantity": 1}) as r:
        assert r.status == 404
    async with session.put(
        f"{simulator.url}/_sim/wholesale/quantities/X", json={"quantity": "many"}
    ) as r:
        assert r.status == 400


async def test_an_order_takes_units_off_the_listing_and_is_notified(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    receiver = simulator.add(wholesale(simulator.url))
    assert receiver is not None
    receiver.quantities["A"] = 5
    async with session.post(
        f"{simulator.url}/_sim/wholesale/orders", json={"lines": [{"sku": "A", "qty": 2}]}
    ) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert receiver.quantities["A"] == 3
    assert answer["daemon_status"] is None  # no daemon_url: recorded, not sent
    (channel_id, status, order), = simulator.sent
    assert channel_id == "wholesale" and status is None
    assert [(x.sku, x.qty) for x in order.lines] == [("A", 2)]
    headers, body = receiver.order_notification(order) or ({}, b"")
    from invsync.adapters.signing import SIGNATURE_HEADER, verify

    assert verify(SECRET, body, headers[SIGNATURE_HEADER])


async def test_the_receiver_refuses_a_sku_it_does_not_list_and_keeps_the_others(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    channel = wholesale(simulator.url)
    receiver = simulator.add(channel)
    assert receiver is not None
    receiver.list_skus(["LISTED"])
    adapter = create(channel, AdapterContext(session=session))
    results = await adapter.push(
        [Update(sku="LISTED", available=2, version=1), Update(sku="GHOST", available=7, version=1)]
    )
    assert [(r.sku, r.outcome) for r in results] == [("LISTED", "ok"), ("GHOST", "permanent")]
    assert "not listed" in (results[1].error or "")
    assert receiver.quantities == {"LISTED": 2}


async def test_the_catalogue_route_lists_skus_on_one_channel_or_on_all(
    simulator: Simulator, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_OTHER_SECRET", SECRET)
    one = simulator.add(wholesale(simulator.url))
    other = simulator.add(
        Channel(id="other", kind="webhook", url=f"{simulator.url}/webhooks/other",
                secret_env="SIM_OTHER_SECRET")
    )
    assert one is not None and other is not None
    async with session.post(
        f"{simulator.url}/_sim/wholesale/catalogue", json={"skus": ["A", "B", "A"]}
    ) as resp:
        assert resp.status == 200
        assert await resp.json() == {"ok": True, "channels": 1, "skus": 2}
    assert one.listed == {"A", "B"} and other.listed == set()
    assert one.is_listed("A") and not other.is_listed("A")
    async with session.post(f"{simulator.url}/_sim/catalogue", json={"skus": ["C"]}) as resp:
        assert resp.status == 200
        assert (await resp.json())["channels"] == 2
    assert one.listed == {"A", "B", "C"} and other.listed == {"C"}
    async with session.get(f"{simulator.url}/_sim/channels") as resp:
        shown = {c["id"]: c["listed"] for c in (await resp.json())["channels"]}
    assert shown == {"wholesale": ["A", "B", "C"], "other": ["C"]}
    # Bad requests change nothing and say why.
    async with session.post(f"{simulator.url}/_sim/nope/catalogue", json={"skus": ["X"]}) as r:
        assert r.status == 404
    for bad in ({"skus": "A"}, {"sku": ["A"]}, {"skus": ["ok", " "]}):
        async with session.post(f"{simulator.url}/_sim/catalogue", json=bad) as r:
            assert r.status == 400, bad
            assert (await r.json())["error"]
    assert one.listed == {"A", "B", "C"} and other.listed == {"C"}


async def test_setting_a_quantity_lists_the_sku(
    simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    receiver = simulator.add(wholesale(simulator.url))
    assert receiver is not None
    assert not receiver.is_listed("NEW")
    async with session.put(
        f"{simulator.url}/_sim/wholesale/quantities/NEW", json={"quantity": 4}
    ) as resp:
        assert resp.status == 200
    assert receiver.is_listed("NEW") and receiver.quantities["NEW"] == 4
