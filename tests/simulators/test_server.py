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
