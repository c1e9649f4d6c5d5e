"""The SKU actor: availability per channel after each change, only what changed, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from invsync.actors.messages import AvailabilityChanged, Recompute, StockChanged
from invsync.actors.runtime import Actor, ActorSystem, Kind
from invsync.actors.sku import SkuActor, Topology
from invsync.engine.availability import Bundle, ChannelPolicy
from invsync.engine.engine import Engine

POLICIES = {
    "shop": ChannelPolicy(locations=("wh-east", "wh-west")),
    "amzn": ChannelPolicy(locations=("wh-east",), buffer=2),
}


class Recorder(Actor[Any]):
    """A channel actor stand-in that records what it was sent (a real actor in the runtime)."""

    got: list[tuple[str, AvailabilityChanged]] = []

    async def receive(self, message: Any) -> None:
        Recorder.got.append((self.ident, message))


@pytest.fixture
async def system(engine: Engine) -> Any:
    Recorder.got = []
    topo = {"value": Topology.build(POLICIES, {"KIT": Bundle(sku="KIT", components={"TEE": 2})})}
    async with ActorSystem() as sys:
        sys.register(Kind(name="channel", factory=Recorder, idle_timeout_s=None))
        sys.register(
            Kind(name="sku", factory=lambda key: SkuActor(key, engine, lambda: topo["value"]))
        )
        sys.topo = topo  # type: ignore[attr-defined]
        yield sys


async def settle(system: ActorSystem) -> None:
    """Let every mailbox empty (the SKU actor forwards to channel actors on its way)."""
    for _ in range(3):
        while system.mailbox_depth() > 0:  # noqa: ASYNC110 - polling a gauge, no event exists
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)


async def test_sends_each_channel_its_value_then_only_changes(
    system: ActorSystem, engine: Engine
) -> None:
    out = await engine.count("c1", "TEE", "wh-east", 10)
    await system.send("sku:TEE", StockChanged(state=out.skus["TEE"], accepted_ms=111))
    await settle(system)
    first = {
        ch: (m.available, m.version, m.accepted_ms) for ch, m in Recorder.got if m.sku == "TEE"
    }
    assert first == {"shop": (10, 1, 111), "amzn": (8, 1, 111)}

    Recorder.got.clear()
    out = await engine.count("c2", "TEE", "wh-west", 3)  # amzn is not fed by wh-west
    await system.send("sku:TEE", StockChanged(state=out.skus["TEE"], accepted_ms=222))
    await settle(system)
    tee = [(ch, m.available) for ch, m in Recorder.got if m.sku == "TEE"]
    assert tee == [("shop", 13)]


async def test_an_older_state_arriving_late_is_ignored(system: ActorSystem, engine: Engine) -> None:
    old = (await engine.count("c1", "TEE", "wh-east", 10)).skus["TEE"]
    new = (await engine.count("c2", "TEE", "wh-east", 4)).skus["TEE"]
    await system.send("sku:TEE", StockChanged(state=new))
    await system.send("sku:TEE", StockChanged(state=old))
    await settle(system)
    shop = [m.available for ch, m in Recorder.got if ch == "shop" and m.sku == "TEE"]
    assert shop == [4]


async def test_a_component_change_recomputes_its_bundles(
    system: ActorSystem, engine: Engine
) -> None:
    out = await engine.count("c1", "TEE", "wh-east", 9)
    await system.send("sku:TEE", StockChanged(state=out.skus["TEE"], accepted_ms=5))
    await settle(system)
    kit = {ch: m.available for ch, m in Recorder.got if m.sku == "KIT"}
    assert kit == {"shop": 4, "amzn": 2}  # 9 // 2 = 4 kits; amzn holds a buffer of 2 back


async def test_forced_recompute_resends_unchanged_values(
    system: ActorSystem, engine: Engine
) -> None:
    out = await engine.count("c1", "TEE", "wh-east", 10)
    await system.send("sku:TEE", StockChanged(state=out.skus["TEE"]))
    await settle(system)
    Recorder.got.clear()
    await system.send("sku:TEE", Recompute(force=True, channels=("amzn",)))
    await settle(system)
    assert [(ch, m.available) for ch, m in Recorder.got] == [("amzn", 8)]


async def test_a_new_topology_forgets_what_was_sent_under_the_old_one(
    system: ActorSystem, engine: Engine
) -> None:
    out = await engine.count("c1", "TEE", "wh-east", 10)
    await system.send("sku:TEE", StockChanged(state=out.skus["TEE"]))
    await settle(system)
    system.topo["value"] = Topology.build(POLICIES, {})  # type: ignore[attr-defined]
    Recorder.got.clear()
    await system.send("sku:TEE", Recompute())
    await settle(system)
    assert sorted((ch, m.available) for ch, m in Recorder.got) == [("amzn", 8), ("shop", 10)]


async def test_values_go_to_deliver_when_one_is_wired_not_to_channel_actors(
    engine: Engine,
) -> None:
    got: list[tuple[str, AvailabilityChanged]] = []
    topo = Topology.build(POLICIES, {})
    out = await engine.count("c1", "TEE", "wh-east", 10)
    async with ActorSystem() as system:  # no channel kind: a send to one would fail
        system.register(
            Kind(
                name="sku",
                factory=lambda key: SkuActor(
                    key, engine, lambda: topo, deliver=lambda ch, u: got.append((ch, u))
                ),
            )
        )
        await system.send("sku:TEE", StockChanged(state=out.skus["TEE"], accepted_ms=7))
    # Leaving the system drained the SKU actor.
    assert sorted((ch, m.sku, m.available, m.accepted_ms) for ch, m in got) == [
        ("amzn", "TEE", 8, 7),
        ("shop", "TEE", 10, 7),
    ]
    assert system.restarts["sku"] == 0
