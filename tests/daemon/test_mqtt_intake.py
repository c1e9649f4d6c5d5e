"""MQTT intake against a real broker: events recorded in the intake stream, bad ones refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

import aiomqtt
import pytest
import redis.asyncio as aioredis

from invsync.core.clock import ManualClock
from invsync.core.config import Config, load_config
from invsync.core.errors import StoreUnavailable
from invsync.core.events import BadEvent, Event, StockCounted
from invsync.daemon.intake import Intake
from invsync.daemon.mqtt_intake import (
    broker_address,
    broker_transport,
    events_from_message,
    run_mqtt_intake,
)
from invsync.daemon.service import check_refs


def _config(tmp_path: Path, url: str, prefix: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[mqtt]
url = "{url}"
prefix = "{prefix}"
client_id = "test-{uuid.uuid4().hex[:8]}"

[[locations]]
id = "wh-east"

[[channels]]
id = "shop"
kind = "shopify"
"""
    )
    return load_config(path)


def test_topic_fills_in_location_and_channel() -> None:
    events = events_from_message(
        "p/in/stock/wh-east",
        b'{"id": "e1", "type": "stock.counted", "sku": "T", "on_hand": 3}',
        "p/",
        lambda _e: None,
    )
    assert isinstance(events[0], StockCounted) and events[0].location == "wh-east"


@pytest.mark.parametrize(
    ("topic", "payload", "why"),
    [
        ("p/in/stock/wh-east", b"{", "malformed JSON"),
        ("p/in/nope/wh-east", b"{}", "unknown topic"),
        (
            "p/in/stock/wh-east",
            b'{"id": "e", "type": "stock.counted", "sku": "T",'
            b' "location": "wh-west", "on_hand": 1}',
            "does not match",
        ),
        (
            "p/in/orders/shop",
            b'{"id": "e", "type": "stock.counted", "sku": "T", "on_hand": 1}',
            "do not belong",
        ),
        (
            "p/in/stock/wh-east",
            b'{"id": "e", "type": "stock.adjusted", "sku": "T", "delta": 1.5}',
            "int",
        ),
    ],
)
def test_bad_messages_are_refused_with_a_reason(topic: str, payload: bytes, why: str) -> None:
    with pytest.raises(BadEvent, match=why):
        events_from_message(topic, payload, "p/", lambda _e: None)


def test_broker_address_parses_urls() -> None:
    assert broker_address("mqtt://10.0.0.1:1884") == ("10.0.0.1", 1884, False)
    assert broker_address("mqtts://broker") == ("broker", 8883, True)
    assert broker_address("wss://broker") == ("broker", 443, True)
    assert broker_transport("ws://broker:9001") == ("websockets", "/mqtt")
    assert broker_transport("wss://broker/custom") == ("websockets", "/custom")
    assert broker_transport("mqtt://broker") == ("tcp", None)


async def test_events_published_on_mqtt_are_recorded_in_the_intake_stream(
    tmp_path: Path, mqtt_url: str, redis: aioredis.Redis
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}/"
    config = _config(tmp_path, mqtt_url, prefix)
    intake = Intake(redis)
    connected = asyncio.Event()
    refused: list[tuple[str, bytes, str]] = []

    async def on_bad(topic: str, payload: bytes, error: str) -> None:
        refused.append((topic, payload, error))

    task = asyncio.create_task(
        run_mqtt_intake(
            lambda: config,
            intake,
            lambda e: check_refs(config, e),
            connected=connected,
            on_bad=on_bad,
        )
    )
    try:
        await asyncio.wait_for(connected.wait(), 10)
        host, port, _ = broker_address(mqtt_url)
        async with aiomqtt.Client(host, port) as pub:
            await pub.publish(f"{prefix}in/stock/wh-east", b"{not json", qos=1)
            await pub.publish(
                f"{prefix}in/stock/wh-nowhere",
                json.dumps({"id": "x1", "type": "stock.counted", "sku": "T", "on_hand": 1}),
                qos=1,
            )
            await pub.publish(
                f"{prefix}in/stock/wh-east",
                json.dumps(
                    [
                        {"id": "m1", "type": "stock.counted", "sku": "TEE", "on_hand": 7},
                        {"id": "m2", "type": "stock.adjusted", "sku": "TEE", "delta": -2},
                    ]
                ),
                qos=1,
            )
            await pub.publish(
                f"{prefix}in/orders/shop",
                json.dumps(
                    {
                        "id": "m3",
                        "type": "order.created",
                        "order_id": "1",
                        "lines": [{"sku": "TEE", "qty": 1}],
                    }
                ),
                qos=1,
            )
        rows: list = []
        for _ in range(100):
            rows = await redis.xrange(intake.stream)
            if len(rows) >= 3:
                break
            await asyncio.sleep(0.05)
        events = [json.loads(fields[b"e"]) for _, fields in rows]
        assert [e["id"] for e in events] == ["m1", "m2", "m3"]  # the bad ones never landed
        assert events[0]["location"] == "wh-east" and events[2]["channel"] == "shop"
        assert all(fields[b"src"] == b"mqtt" for _, fields in rows)
        # Each refused message was reported (the daemon makes bad_event exceptions of them).
        assert refused[0][:2] == (f"{prefix}in/stock/wh-east", b"{not json")
        assert refused[1][0] == f"{prefix}in/stock/wh-nowhere"
        assert "wh-nowhere" in refused[1][2]
        assert len(refused) == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _FlakyIntake:
    """An intake whose store fails ``failures`` times, then records."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.recorded: list[list[Event]] = []

    async def append(self, events: list[Event], *, source: str) -> list[str]:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the store is away")
        self.recorded.append(events)
        return [str(i) for i in range(len(events))]


async def _parked(clock: ManualClock, within_s: float = 10.0) -> float:
    """Wait (in real time: a connection attempt is real I/O) until a task sleeps on ``clock``;
    returns how long from now that sleep lasts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while clock.sleepers == 0:
        assert loop.time() < deadline, "nothing ever slept on the clock"
        await asyncio.sleep(0.005)
    wake = clock.next_deadline
    assert wake is not None
    return wake - clock.now()


async def test_a_lost_broker_is_retried_with_jittered_exponential_backoff_on_the_clock(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, "mqtt://127.0.0.1:1", "t/")  # nothing listens: refused at once
    clock = ManualClock()
    intake = _FlakyIntake(failures=0)
    task = asyncio.create_task(
        run_mqtt_intake(lambda: config, intake, lambda e: None, clock=clock)  # type: ignore[arg-type]
    )
    try:
        # 0.5 s doubling to a 30 s cap, each pause drawn from [ceiling/2, ceiling].
        for ceiling in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0):
            pause = await _parked(clock)
            assert ceiling / 2 <= pause <= ceiling
            clock.advance(pause)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_message_is_recorded_after_the_store_comes_back_with_backoff_on_the_clock(
    tmp_path: Path, mqtt_url: str
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}/"
    config = _config(tmp_path, mqtt_url, prefix)
    intake = _FlakyIntake(failures=3)
    clock = ManualClock()
    connected = asyncio.Event()
    task = asyncio.create_task(
        run_mqtt_intake(
            lambda: config,
            intake,  # type: ignore[arg-type]
            lambda e: None,
            connected=connected,
            clock=clock,
        )
    )
    try:
        await asyncio.wait_for(connected.wait(), 10)
        host, port, _ = broker_address(mqtt_url)
        async with aiomqtt.Client(host, port) as pub:
            await pub.publish(
                f"{prefix}in/stock/wh-east",
                json.dumps({"id": "m1", "type": "stock.counted", "sku": "TEE", "on_hand": 7}),
                qos=1,
            )
        for pause in (0.2, 0.4, 0.8):  # no jitter: the message waits, unacknowledged
            assert await _parked(clock) == pytest.approx(pause)
            assert intake.recorded == []
            clock.advance(pause - 0.01)
            for _ in range(20):
                await asyncio.sleep(0)
            assert clock.sleepers == 1 and intake.recorded == []
            clock.advance(0.01)
        for _ in range(100):
            if intake.recorded:
                break
            await asyncio.sleep(0.01)
        [[event]] = intake.recorded
        assert event.id == "m1"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
