"""The location-side senders on real parts: the 940 writer on a real folder and store, the 945
reader, the webhook sender against a real HTTP endpoint, the MQTT sender against a real broker."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import aiomqtt
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from invsync.adapters.fulfillment import Refused, Undelivered
from invsync.adapters.fulfillment.edi940 import Edi940Writer, render_940
from invsync.adapters.fulfillment.edi945 import BadAdvice, parse_945
from invsync.adapters.fulfillment.mqtt import MqttSender
from invsync.adapters.fulfillment.webhook import WebhookSender
from invsync.adapters.signing import SIGNATURE_HEADER, verify
from invsync.core.config import MqttConfig
from invsync.core.fulfillment_config import (
    Edi940Fulfillment,
    MqttFulfillment,
    WebhookFulfillment,
)
from invsync.core.fulfillment_messages import Message, MessageLine


def _message(seq: int = 1, kind: str = "fulfillment.requested", **extra: object) -> Message:
    return Message(
        type=kind,  # type: ignore[arg-type]
        id=f"shop/O-1/wh-east/{seq}",
        order_id="O-1",
        channel="shop",
        location="wh-east",
        lines=[MessageLine(sku="TEE-BLK-M", qty=2), MessageLine(sku="CAP", qty=1)],
        ref="IS00000042",
        seq=seq,
        **extra,  # type: ignore[arg-type]
    )


EDI = Edi940Fulfillment(folder=Path("out"), sender_id="BRAND", receiver_id="3PL")


def test_940_interchange_structure_and_counts() -> None:
    when = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    text = render_940(
        EDI, 7, when,
        [_message(ship_to={"country": "US", "region": "CA", "postal_code": "94103"}),
         _message(2, "fulfillment.cancelled")],
    )
    segments = [s.strip() for s in text.split("~") if s.strip()]
    isa = segments[0]
    assert len(isa) + 1 == 106 and isa.split("*")[13] == "000000007"  # fixed width, ISA13
    assert segments[1].startswith("GS*OW*BRAND*3PL*20261203*1200*7*X*004010")
    assert segments[-2] == "GE*2*7" and segments[-1] == "IEA*1*000000007"
    sets: list[list[str]] = []
    for seg in segments[2:-2]:
        if seg.startswith("ST*"):
            sets.append([])
        sets[-1].append(seg)
    assert [s[1] for s in sets] == ["W05*N*IS00000042*O-1", "W05*F*IS00000042*O-1"]
    for number, transaction in enumerate(sets, 1):
        assert transaction[0] == f"ST*940*{number:04d}"
        se = transaction[-1].split("*")
        assert se[0] == "SE" and int(se[1]) == len(transaction) and se[2] == f"{number:04d}"
        assert "W76*3" in transaction
    assert "N4***CA*94103*US" in sets[0] and "W01*2*EA**SK*TEE-BLK-M" in sets[0]


def test_940_never_carries_a_delimiter_inside_an_element() -> None:
    text = render_940(EDI, 1, datetime(2026, 1, 1, tzinfo=UTC),
                      [_message().__class__(**{**_msg_dict(), "order_id": "A*B~C>D"})])
    w05 = next(s for s in text.split("~") if s.strip().startswith("W05"))
    assert w05.strip() == "W05*N*IS00000042*A B C D"


def _msg_dict() -> dict[str, object]:
    m = _message()
    return {f: getattr(m, f) for f in m.__struct_fields__}


async def test_940_writer_numbers_interchanges_from_the_store(
    tmp_path: Path, redis: aioredis.Redis
) -> None:
    writer = Edi940Writer("wh-east", EDI, redis, base_dir=tmp_path, wall=lambda: 1_800_000_000)
    await writer.send([_message()])
    again = Edi940Writer("wh-east", EDI, redis, base_dir=tmp_path, wall=lambda: 1_800_000_000)
    await again.send([_message(2)])  # a restart: the next number, never a repeat
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["940_wh-east_000000001.edi", "940_wh-east_000000002.edi"]
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind


async def test_940_writer_reports_an_unwritable_folder_as_undelivered(
    tmp_path: Path, redis: aioredis.Redis
) -> None:
    (tmp_path / "blocked").write_text("a file where the folder should be")
    config = Edi940Fulfillment(folder=Path("blocked/out"), sender_id="B", receiver_id="C")
    writer = Edi940Writer("wh-east", config, redis, base_dir=tmp_path, wall=lambda: 0)
    with pytest.raises(Undelivered):
        await writer.send([_message()])


def test_945_reads_each_set_and_refuses_what_it_cannot_read() -> None:
    isa = ("ISA*00*          *00*          *ZZ*3PL            *ZZ*BRAND          *"
           "261203*1200*U*00401*000000077*0*P*>~")
    body = ("GS*SW*3PL*BRAND*20261203*1200*77*X*004010~ST*945*0001~W06*F*IS1*20261203*S1~"
            "LX*1~W12*CC*2*2*0*EA**SK*TEE~LX*2~W12*CP*3*1*2*EA**SK*CAP~SE*7*0001~"
            "ST*945*0002~W06*F*IS2*20261203*S2~W12*CC*1*0*1*EA**SK*TEE~SE*4*0002~"
            "GE*2*77~IEA*1*000000077~")
    shipments = parse_945(isa + "\n" + body.replace("~", "~\n"))
    assert [(s.ref, s.shipment_id, s.lines) for s in shipments] == [
        ("IS1", "S1", {"TEE": 2, "CAP": 1}), ("IS2", "S2", {})
    ]
    assert shipments[0].control == "000000077"
    with pytest.raises(BadAdvice, match="ISA"):
        parse_945("nothing here")
    with pytest.raises(BadAdvice, match="not a 945"):
        parse_945(isa + body.replace("ST*945", "ST*856"))
    with pytest.raises(BadAdvice, match="not a number"):
        parse_945(isa + body.replace("W12*CC*2*2", "W12*CC*2*two"))


async def test_webhook_sender_signs_and_maps_answers(unused_tcp_port: int) -> None:
    answers = [200, 503, 429, 422]
    seen: list[tuple[dict[str, object], bool, str | None]] = []

    async def endpoint(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((json.loads(body), verify("k", body, request.headers.get(SIGNATURE_HEADER)),
                     request.headers.get("Idempotency-Key")))
        status = answers.pop(0)
        headers = {"Retry-After": "7"} if status == 429 else {}
        return web.json_response({"status": status}, status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/wms", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    config = WebhookFulfillment(url=f"http://127.0.0.1:{unused_tcp_port}/wms", secret_env="X")
    try:
        async with aiohttp.ClientSession() as session:
            sender = WebhookSender("wh-east", config, session, "k")
            await sender.send([_message()])
            with pytest.raises(Undelivered, match="503"):
                await sender.send([_message()])
            with pytest.raises(Undelivered) as throttled:
                await sender.send([_message()])
            assert throttled.value.retry_after_s == 7
            with pytest.raises(Refused) as refused:
                await sender.send([_message()])
            assert refused.value.status == 422
            closed = WebhookSender(
                "wh-east", WebhookFulfillment(url="http://127.0.0.1:9/none", secret_env="X"),
                session, "k",
            )
            with pytest.raises(Undelivered):
                await closed.send([_message()])
    finally:
        await runner.cleanup()
    assert all(ok for _, ok, _ in seen)
    assert seen[0][0]["lines"] == [{"sku": "TEE-BLK-M", "qty": 2}, {"sku": "CAP", "qty": 1}]
    assert seen[0][2] == "shop/O-1/wh-east/1"


async def test_mqtt_sender_publishes_qos1_to_the_topic(mqtt_url: str) -> None:
    parts = urlsplit(mqtt_url)
    broker = MqttConfig(url=mqtt_url, client_id="invsync-test")
    sender = MqttSender("wh-east", MqttFulfillment(topic="wms/wh-east/orders"), broker, None)
    received: list[dict[str, object]] = []
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as client:
        await client.subscribe("wms/wh-east/orders", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.append(json.loads(message.payload))
                if len(received) == 2:
                    return

        task = asyncio.create_task(collect())
        try:
            await sender.send([_message(1), _message(2, "fulfillment.cancelled")])
            await asyncio.wait_for(task, 10)
        finally:
            await sender.aclose()
    assert [(m["seq"], m["type"]) for m in received] == [
        (1, "fulfillment.requested"), (2, "fulfillment.cancelled")
    ]
    dead = MqttSender("wh-east", MqttFulfillment(topic="t"),
                      MqttConfig(url="mqtt://127.0.0.1:9"), None)
    with pytest.raises(Undelivered):
        await dead.send([_message()])
