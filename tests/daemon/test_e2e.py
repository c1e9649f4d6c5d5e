"""The daemon end to end: ``invsync run`` as a subprocess with its embedded Valkey, real HTTP over
loopback, a real MQTT broker, and real signed-webhook receivers (``tests/receiver.py``) that
record what each channel was told and acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from invsync.adapters.signing import SIGNATURE_HEADER, sign
from invsync.daemon.mqtt_intake import broker_address
from tests.daemon.helpers import (
    LOCATIONS,
    Api,
    Daemon,
    counted,
    kill_valkey,
    metric,
    pid_alive,
    poll,
    valkey_pid,
    wait_until,
    webhook_channel,
    write_config,
)
from tests.receiver import Receiver

#: Channel id -> its signing secret (each receiver verifies with its own).
SECRETS = {"wholesale": "wholesale-s3cret", "portal": "portal-s3cret", "b2b": "b2b-s3cret"}
ENV = {f"E2E_{channel.upper()}_SECRET": secret for channel, secret in SECRETS.items()}


def secret_env(channel: str) -> str:
    return f"E2E_{channel.upper()}_SECRET"


@pytest.fixture
async def receivers() -> AsyncIterator[dict[str, Receiver]]:
    """One receiver per channel of SECRETS, each verifying its channel's signature."""
    out: dict[str, Receiver] = {}
    try:
        for channel, secret in SECRETS.items():
            out[channel] = await Receiver(secret).__aenter__()
        yield out
    finally:
        for receiver in out.values():
            await receiver.__aexit__(None, None, None)


def order(
    event_id: str, channel: str, order_id: str, sku: str, qty: int = 1, **extra: Any
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "order.created",
        "channel": channel,
        "order_id": order_id,
        "lines": [{"sku": sku, "qty": qty}],
        **extra,
    }


async def converged(
    api: Api, receivers: dict[str, Receiver], expected: dict[str, dict[str, int]]
) -> bool:
    """Every receiver acknowledged ``expected[channel][sku]``, and the daemon's stock view says
    so too (``pushed`` == ``available``, with the version the receiver got)."""
    return not await mismatches(api, receivers, expected)


async def mismatches(
    api: Api, receivers: dict[str, Receiver], expected: dict[str, dict[str, int]]
) -> list[str]:
    """What differs from ``expected`` (for ``converged`` and for failure messages)."""
    out = []
    for channel, values in expected.items():
        for sku, available in values.items():
            shown = receivers[channel].shows().get(sku)
            if shown != available:
                out.append(f"{channel} shows {sku}={shown}, expected {available}")
    for sku in sorted({sku for values in expected.values() for sku in values}):
        view = await api.stock(sku)
        if view is None:
            out.append(f"{sku} not stocked")
            continue
        for channel, values in expected.items():
            entry = view["channels"][channel]
            if sku in values and entry["available"] != values[sku]:
                out.append(f"daemon: {channel} {sku} available={entry['available']}")
            # What the daemon recorded as pushed is what the receiver acknowledged last: the
            # value, at the version of the change that last moved it (unchanged values of
            # later versions are not sent again).
            acked = receivers[channel].latest.get(sku)
            pushed = (entry["pushed"], entry["pushed_version"])
            if pushed[0] != entry["available"] or pushed != acked or pushed[1] > view["version"]:
                out.append(f"daemon: {channel} {sku} {entry} at {view['version']}, acked {acked}")
    return out


async def wait_converged(
    api: Api, receivers: dict[str, Receiver], expected: dict[str, dict[str, int]], timeout: float
) -> None:
    """Poll ``converged`` until ``timeout``; the failure names what still differs."""
    deadline = time.monotonic() + timeout
    while True:
        missing = await mismatches(api, receivers, expected)
        if not missing:
            return
        assert time.monotonic() < deadline, f"not converged within {timeout} s: {missing}"
        await asyncio.sleep(0.05)


async def publish(mqtt_url: str, topic: str, payload: Any) -> None:
    """One QoS 1 message on the real broker."""
    host, port, _ = broker_address(mqtt_url)
    async with aiomqtt.Client(host, port, identifier=f"e2e-pub-{uuid.uuid4().hex[:8]}") as client:
        await client.publish(topic, json.dumps(payload).encode(), qos=1)


def signed(secret: str, body: bytes) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"}


async def test_every_intake_reaches_every_channel_under_its_own_policy(
    tmp_path: Path, receivers: dict[str, Receiver], mqtt_url: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    prefix = f"e2e-{tag}/"
    config = write_config(
        tmp_path,
        LOCATIONS
        + f'\n[mqtt]\nurl = "{mqtt_url}"\nprefix = "{prefix}"\nclient_id = "invsync-{tag}"\n'
        # All locations, two units held back.
        + webhook_channel(
            "wholesale", receivers["wholesale"].url, secret_env("wholesale"), buffer=2
        )
        # The warehouses only, half of their pool.
        + webhook_channel(
            "portal",
            receivers["portal"].url,
            secret_env("portal"),
            locations=["wh-east", "wh-west"],
            percent=50,
        )
        # All locations, at most 25, nothing below 3.
        + webhook_channel("b2b", receivers["b2b"].url, secret_env("b2b"), cap=25, floor=3),
    )
    daemon = Daemon(config, env=ENV).start()
    try:
        started = await daemon.await_event("started")
        assert started["channels"] == ["b2b", "portal", "wholesale"]
        await daemon.await_event("mqtt_intake_connected")
        async with Api(config) as api:
            # Stock counted through the event API and, for the store, over MQTT (the topic names
            # the location).
            await api.post_events(
                [counted("c-1", "TEE", "wh-east", 20), counted("c-2", "TEE", "wh-west", 6)]
            )
            await publish(
                mqtt_url,
                f"{prefix}in/stock/store-sf",
                [
                    {"id": "m-1", "type": "stock.counted", "sku": "TEE", "on_hand": 4},
                    {"id": "m-2", "type": "stock.counted", "sku": "MUG", "on_hand": 10},
                ],
            )
            # Pool: 20 + 6 + (4 - 1 safety) = 29 units of TEE; MUG only in the store (9).
            before = {
                "wholesale": {"TEE": 27, "MUG": 7},
                "portal": {"TEE": 13, "MUG": 0},
                "b2b": {"TEE": 25, "MUG": 9},
            }
            await wait_converged(api, receivers, before, 15)

            # A malformed MQTT message is acknowledged (it would come back forever) and kept
            # as a bad_event exception naming its topic.
            await publish(mqtt_url, f"{prefix}in/stock/store-sf", {"id": "m-bad", "sku": "TEE"})

            async def bad_event() -> dict[str, Any] | None:
                status, body = await api.request("GET", "/v1/exceptions?kind=bad_event")
                return body["items"][0] if status == 200 and body["items"] else None

            bad = await poll(bad_event, 10, "a bad_event exception for the MQTT message")
            assert bad["event_id"] == "m-bad"
            assert bad["details"]["source"] == f"mqtt:{prefix}in/stock/store-sf"

            # A forged order webhook is refused and records nothing.
            forged = json.dumps(order("f-1", "wholesale", "F-1", "TEE", 5)).encode()
            status, body = await api.request(
                "POST", "/webhooks/wholesale", forged, signed("not-the-secret", forged)
            )
            assert (status, body["error"]["code"]) == (401, "BAD_SIGNATURE")

            # A signed order from the wholesale portal reserves 6 units at wh-east.
            real = json.dumps(order("o-1", "wholesale", "1001", "TEE", 6)).encode()
            status, body = await api.request(
                "POST", "/webhooks/wholesale", real, signed(SECRETS["wholesale"], real)
            )
            assert (status, body["accepted"]) == (202, 1)
            placed = await poll(lambda: api.order("wholesale", "1001"), 10, "order 1001")
            assert placed["outcome"] == "reserved"
            assert placed["state"] == "reserved"
            assert [
                (x["sku"], x["location"], x["qty"], x["reserved"]) for x in placed["lines"]
            ] == [("TEE", "wh-east", 6, 6)]

            # Reserved on one channel, it drops on every channel.
            after = {
                "wholesale": {"TEE": 21, "MUG": 7},
                "portal": {"TEE": 10, "MUG": 0},
                "b2b": {"TEE": 23, "MUG": 9},
            }
            await wait_converged(api, receivers, after, 10)
            for channel in ("portal", "b2b"):
                sent = [value for value, _ in receivers[channel].pushed_values()["TEE"]]
                assert sent[-2:] == [before[channel]["TEE"], after[channel]["TEE"]]

            # An order for more than there is: rejected, visible as such, nothing reserved.
            await api.post_events(order("o-2", "portal", "P-9", "TEE", 100))
            rejected = await poll(lambda: api.order("portal", "P-9"), 10, "order P-9")
            assert rejected["outcome"] == "rejected"
            assert rejected["state"] == "oversold"
            assert [(x["sku"], x["qty"]) for x in rejected["lines"]] == [("TEE", 100)]
            tee = await api.stock("TEE")
            assert tee is not None
            assert sum(loc["reserved"] for loc in tee["locations"].values()) == 6
            assert await api.order("wholesale", "F-1") is None  # the forged one never existed
            assert receivers["wholesale"].forged == 0  # and the daemon always signed right

            text = await api.metrics()
            for channel in SECRETS:
                count = metric(text, "invsync_sync_latency_seconds_count", channel=channel)
                assert count > 0, f"no sync latency samples for {channel}"
            assert metric(text, "invsync_oversells_total", channel="portal") == 1
            assert (
                metric(text, "invsync_events_total", kind="order.created", outcome="applied") == 1
            )
        assert await daemon.astop() == 0
    finally:
        daemon.kill()
        kill_valkey(config)


#: Orders, SKUs and units of each for the crash test: far more orders than units.
ORDERS, SKUS, UNITS = 300, ("RED", "GREEN", "BLUE"), 40
CLIENTS = 6
KILL_AFTER = 90


async def test_kill_9_mid_stream_loses_no_acknowledged_order_and_applies_none_twice(
    tmp_path: Path,
) -> None:
    async with Receiver(SECRETS["wholesale"]) as shop:
        config = write_config(
            tmp_path, LOCATIONS + webhook_channel("shop", shop.url, secret_env("wholesale"))
        )
        orders = [order(f"k-{i}", "shop", f"K-{i}", SKUS[i % len(SKUS)]) for i in range(ORDERS)]
        acked: set[str] = set()
        failed: set[str] = set()
        daemon = Daemon(config, env=ENV).start()
        again = Daemon(config, "run2", env=ENV)
        try:
            await daemon.await_event("started")
            async with Api(config) as api:
                await api.post_events(
                    [counted(f"c-{sku}", sku, "wh-east", UNITS) for sku in SKUS], wait=10
                )

                async def client(mine: list[dict[str, Any]]) -> None:
                    for event in mine:
                        try:
                            status, _ = await api.request("POST", "/v1/events", event)
                        except (aiohttp.ClientError, OSError):
                            failed.add(event["order_id"])
                            return  # the daemon is gone: the rest is sent after the restart
                        if status == 202:
                            acked.add(event["order_id"])
                        else:
                            failed.add(event["order_id"])

                server = valkey_pid(config)
                tasks = [asyncio.create_task(client(orders[n::CLIENTS])) for n in range(CLIENTS)]
                await poll(lambda: len(acked) >= KILL_AFTER, 20, f"{KILL_AFTER} orders", 0.001)
                os.kill(daemon.pid, signal.SIGKILL)
                os.kill(server, signal.SIGKILL)
                await asyncio.gather(*tasks)
                wait_until(lambda: not pid_alive(server), 5, "the killed Valkey to go")
                assert daemon.proc is not None and daemon.proc.wait(5) == -signal.SIGKILL
            acked_before_kill = set(acked)
            print(f"\nkilled after {len(acked)} acknowledged orders, {len(failed)} failed")
            assert KILL_AFTER <= len(acked) < ORDERS

            again.start()
            await again.await_event("started")
            async with Api(config) as api:
                # What got no 202 is sent again with the same ids (safe: ids are idempotent).
                resend = [o for o in orders if o["order_id"] not in acked]
                for start in range(0, len(resend), 50):
                    await api.post_events(resend[start : start + 50])

                # At most 20 requests at a time: beyond its Redis pool (100 connections) the
                # daemon answers 503 "Too many connections" instead of queueing.
                limit = asyncio.Semaphore(20)

                async def order_view(order_id: str) -> dict[str, Any] | None:
                    async with limit:
                        return await api.order("shop", order_id)

                async def decided() -> dict[str, dict[str, Any]] | None:
                    views = await asyncio.gather(*(order_view(o["order_id"]) for o in orders))
                    if any(view is None for view in views):
                        return None
                    return {o["order_id"]: v for o, v in zip(orders, views, strict=True) if v}

                began = time.monotonic()
                outcomes = await poll(decided, 30, "every order to be decided", 0.2)
                print(f"all {ORDERS} orders decided {time.monotonic() - began:.1f} s after restart")
                assert acked_before_kill <= outcomes.keys()  # none acknowledged was lost
                ready = await poll(api.readyz, 10, "readiness")
                assert ready["ready"] is True

                for sku in SKUS:
                    mine = [o["order_id"] for o in orders if o["lines"][0]["sku"] == sku]
                    reserved = [i for i in mine if outcomes[i]["outcome"] == "reserved"]
                    assert all(
                        outcomes[i]["outcome"] == "rejected" for i in mine if i not in reserved
                    )
                    for i in reserved:
                        assert [x["reserved"] for x in outcomes[i]["lines"]] == [1]
                    view = await api.stock(sku)
                    assert view is not None
                    east = view["locations"]["wh-east"]
                    # Exactly once: the units held are the reserved orders, one each, and the
                    # scarce stock was sold out exactly (never beyond on_hand).
                    assert east["reserved"] == len(reserved) == UNITS, sku
                    assert east["on_hand"] == UNITS
                    assert east["available"] == 0

                # The channel ends where the store is: nothing left to sell.
                await poll(
                    lambda: all(shop.shows().get(sku) == 0 for sku in SKUS), 10, "channel at 0"
                )
            assert await again.astop() == 0
        finally:
            daemon.kill()
            again.kill()
            kill_valkey(config)
