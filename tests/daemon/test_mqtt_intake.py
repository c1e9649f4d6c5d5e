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

from invsync.core.config import Config, load_config
from invsync.core.events import BadEvent, StockCounted
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
