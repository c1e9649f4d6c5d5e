"""Availability on retained MQTT topics (kinds ``mqtt`` and ``pos``) against real brokers.

The shared broker is the session's ``mqtt_url`` (a local Mosquitto when one answers); every test
works under its own topic prefix and clears the retained topics it left. Tests that stop, start
or lock a broker get a private one on a free port (Mosquitto when installed, else amqtt). The ack
and close paths use ``StubBroker``, a few lines of MQTT 3.1.1 on a socket that records what the
adapter sent and can withhold PUBACKs.

Payload shape (spec, "Interfaces"): ``{prefix}availability/{channel}/{sku}``, retained, JSON
``{"sku", "channel", "available", "version", "ts"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import msgspec
import pytest

from invsync.adapters.base import (
    AdapterContext,
    BadWebhook,
    Retryable,
    Unauthorized,
    Update,
)
from invsync.adapters.mqtt_availability import (
    MqttAvailabilityAdapter,
    Options,
    broker_for,
    create,
)
from invsync.adapters.registry import ADAPTER_MODULES, MissingSecret, make_adapter, options_type
from invsync.core.config import Channel, MqttConfig
from invsync.daemon.mqtt_intake import broker_address
from tests.adapters.channel_config import load_channel, refused
from tests.conftest import private_broker

WALL = 1_800_000_000.25  # a fixed wall clock: ts must be 1_800_000_000_250
PAYLOAD_KEYS = {"sku", "channel", "available", "version", "ts"}


# --- brokers and helpers ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port




class StubBroker:
    """Just enough MQTT 3.1.1 to accept a publisher: CONNACK, PUBACK (unless ``ack`` is False),
    PINGRESP; records every packet type received and counts connections and closes."""

    CONNECT, PUBLISH, PINGREQ, DISCONNECT = 1, 3, 12, 14

    def __init__(self, *, ack: bool = True, withhold: str | None = None) -> None:
        self.ack = ack
        self.withhold = withhold  # no PUBACK for topics ending with this
        self.packets: list[int] = []
        self.connections = 0
        self.closed = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"mqtt://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> StubBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                first = (await reader.readexactly(1))[0]
                length, shift = 0, 0
                while True:
                    byte = (await reader.readexactly(1))[0]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                body = await reader.readexactly(length)
                kind = first >> 4
                self.packets.append(kind)
                if kind == self.CONNECT:
                    writer.write(b"\x20\x02\x00\x00")
                elif kind == self.PUBLISH and (first >> 1) & 3 and self.ack:
                    topic_len = int.from_bytes(body[:2], "big")
                    topic = body[2 : 2 + topic_len].decode()
                    if not (self.withhold and topic.endswith(self.withhold)):
                        writer.write(b"\x40\x02" + body[2 + topic_len : 4 + topic_len])
                elif kind == self.PINGREQ:
                    writer.write(b"\xd0\x00")
                elif kind == self.DISCONNECT:
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()


async def retained(url: str, topic_filter: str, *, wait: float = 0.25) -> dict[str, Any]:
    """Topic -> (decoded payload, qos) of the retained messages a new subscriber gets."""
    host, port, _ = broker_address(url)
    out: dict[str, Any] = {}
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(topic_filter, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                async for message in client.messages:
                    if message.retain:
                        assert isinstance(message.payload, bytes)
                        out[str(message.topic)] = (json.loads(message.payload), message.qos)
    return out


async def publish(url: str, topic: str, payload: bytes, *, retain: bool = True) -> None:
    """Publish as another client would (a POS, a stale publisher)."""
    host, port, _ = broker_address(url)
    async with aiomqtt.Client(host, port) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


async def clear_retained(url: str, prefix: str) -> None:
    """Publish a zero-byte retained message on every retained topic under ``prefix``."""
    host, port, _ = broker_address(url)
    topics: set[str] = set()
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(f"{prefix}#")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                async for message in client.messages:
                    if message.retain:
                        topics.add(str(message.topic))
        await asyncio.gather(*(client.publish(t, b"", qos=1, retain=True) for t in topics))


def pos_channel(**overrides: Any) -> Channel:
    fields: dict[str, Any] = {"id": "pos", "kind": "pos", "options": {"timeout_s": 2}}
    fields.update(overrides)
    return Channel(**fields)


@pytest.fixture
async def prefix(mqtt_url: str) -> AsyncIterator[str]:
    """A topic prefix of this test alone; its retained topics are cleared afterwards."""
    value = f"t{uuid.uuid4().hex[:10]}/"
    yield value
    await clear_retained(mqtt_url, value)


@pytest.fixture
def make(session: aiohttp.ClientSession, prefix: str) -> Callable[..., MqttAvailabilityAdapter]:
    """Builds adapters through the registry, on ``[mqtt]`` at ``url`` with this test's prefix."""

    def build(url: str | None, channel: Channel | None = None) -> MqttAvailabilityAdapter:
        ctx = AdapterContext(
            session=session,
            mqtt=MqttConfig(url=url, prefix=prefix, client_id=f"c{uuid.uuid4().hex[:8]}"),
            wall=lambda: WALL,
        )
        adapter = make_adapter(channel or pos_channel(), ctx)
        assert isinstance(adapter, MqttAvailabilityAdapter)
        return adapter

    return build


@pytest.fixture
async def adapter(
    mqtt_url: str, make: Callable[..., MqttAvailabilityAdapter]
) -> AsyncIterator[MqttAvailabilityAdapter]:
    a = make(mqtt_url)
    yield a
    await a.aclose()


# --- push ---------------------------------------------------------------------------------------


async def test_push_publishes_retained_payload_that_a_later_subscriber_still_gets(
    adapter: MqttAvailabilityAdapter, mqtt_url: str, prefix: str
) -> None:
    host, port, _ = broker_address(mqtt_url)
    async with aiomqtt.Client(host, port) as early:
        await early.subscribe(f"{prefix}availability/pos/#", qos=1)
        results = await adapter.push(
            [Update(sku="TEE-1", available=7, version=3), Update(sku="MUG", available=0, version=9)]
        )
        assert [(r.sku, r.outcome) for r in results] == [("TEE-1", "ok"), ("MUG", "ok")]
        live: dict[str, Any] = {}
        async with asyncio.timeout(2):
            async for message in early.messages:
                assert isinstance(message.payload, bytes)
                live[str(message.topic)] = json.loads(message.payload)
                if len(live) == 2:
                    break

    # A subscriber that connects after the push gets the retained value: the point of retained.
    late = await retained(mqtt_url, f"{prefix}availability/pos/#")
    assert set(late) == {f"{prefix}availability/pos/TEE-1", f"{prefix}availability/pos/MUG"}
    tee, qos = late[f"{prefix}availability/pos/TEE-1"]
    assert set(tee) == PAYLOAD_KEYS
    assert tee == {
        "sku": "TEE-1",
        "channel": "pos",
        "available": 7,
        "version": 3,
        "ts": 1_800_000_000_250,
    }
    assert qos == 1  # stored at the QoS it was published with: 1
    assert late[f"{prefix}availability/pos/MUG"][0]["version"] == 9
    assert live == {t: v for t, (v, _) in late.items()}


async def test_newer_push_replaces_the_retained_value(
    adapter: MqttAvailabilityAdapter, mqtt_url: str, prefix: str
) -> None:
    await adapter.push([Update(sku="TEE", available=5, version=1)])
    await adapter.push([Update(sku="TEE", available=4, version=2)])
    late = await retained(mqtt_url, f"{prefix}availability/pos/TEE")
    assert late[f"{prefix}availability/pos/TEE"][0]["available"] == 4
    assert late[f"{prefix}availability/pos/TEE"][0]["version"] == 2


async def test_many_updates_in_one_batch_are_all_acknowledged(
    adapter: MqttAvailabilityAdapter, mqtt_url: str, prefix: str
) -> None:
    updates = [Update(sku=f"S{i:03}", available=i, version=1) for i in range(120)]
    results = await adapter.push(updates)
    assert all(r.outcome == "ok" for r in results) and len(results) == 120
    late = await retained(mqtt_url, f"{prefix}availability/pos/#")
    assert len(late) == 120


async def test_invalid_topic_skus_are_permanent_while_the_others_publish(
    adapter: MqttAvailabilityAdapter, mqtt_url: str, prefix: str
) -> None:
    bad = ["A+B", "C#", "a//b", "/lead", "trail/", "nul\x00x", ""]
    good = ["OK-1", "shelf/7"]
    updates = [Update(sku=s, available=1, version=1) for s in [*bad, *good]]
    results = {r.sku: r for r in await adapter.push(updates)}
    assert {s for s, r in results.items() if r.outcome == "permanent"} == set(bad)
    assert all(results[s].outcome == "ok" for s in good)
    assert "wildcard" in (results["A+B"].error or "")
    assert "empty topic level" in (results["a//b"].error or "")
    late = await retained(mqtt_url, f"{prefix}#")
    assert set(late) == {f"{prefix}availability/pos/OK-1", f"{prefix}availability/pos/shelf/7"}


async def test_a_batch_of_only_invalid_skus_needs_no_broker(
    make: Callable[..., MqttAvailabilityAdapter],
) -> None:
    adapter = make(f"mqtt://127.0.0.1:{_free_port()}")  # nothing listens there
    results = await adapter.push([Update(sku="X+", available=1, version=1)])
    assert results[0].outcome == "permanent"


async def test_update_without_puback_is_not_ok(
    make: Callable[..., MqttAvailabilityAdapter],
) -> None:
    async with StubBroker(ack=False) as stub:
        adapter = make(stub.url, pos_channel(options={"timeout_s": 0.3}))
        started = time.monotonic()
        with pytest.raises(Retryable, match="not acknowledged"):
            await adapter.push([Update(sku="A", available=1, version=1)])
        assert time.monotonic() - started < 1.5  # bounded by options.timeout_s
        assert StubBroker.PUBLISH in stub.packets  # it was sent; only the PUBACK was missing
        # The connection is dropped, so the next push starts afresh (and acks now arrive).
        stub.ack = True
        results = await adapter.push([Update(sku="A", available=1, version=1)])
        assert results[0].outcome == "ok"
        assert stub.connections == 2
        await adapter.aclose()


async def test_only_the_unacknowledged_skus_of_a_batch_are_retryable(
    make: Callable[..., MqttAvailabilityAdapter],
) -> None:
    async with StubBroker(withhold="SLOW") as stub:
        adapter = make(stub.url, pos_channel(options={"timeout_s": 0.3}))
        results = await adapter.push(
            [Update(sku=s, available=1, version=1) for s in ["A", "SLOW", "B", "C+"]]
        )
        outcomes = {r.sku: r.outcome for r in results}
        assert outcomes == {"A": "ok", "SLOW": "retryable", "B": "ok", "C+": "permanent"}
        # Nothing acknowledged but a permanent SKU in the batch: per-SKU results, no raise.
        results = await adapter.push(
            [Update(sku=s, available=1, version=1) for s in ["SLOW", "C+"]]
        )
        assert [r.outcome for r in results] == ["retryable", "permanent"]
        assert stub.connections == 2  # a failed publish drops the connection
        await adapter.aclose()


async def test_unreachable_broker_is_retryable_quickly_and_the_next_push_reconnects(
    make: Callable[..., MqttAvailabilityAdapter], tmp_path: Path
) -> None:
    port = _free_port()
    adapter = make(f"mqtt://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(Retryable, match=f"127.0.0.1:{port}"):
        await adapter.push([Update(sku="A", available=1, version=1)])
    assert time.monotonic() - started < 1.0
    async with private_broker(port, tmp_path) as url:
        results = await adapter.push([Update(sku="A", available=2, version=2)])
        assert results[0].outcome == "ok"
        late = await retained(url, "#")
        assert [v["available"] for v, _ in late.values()] == [2]
        await adapter.aclose()


async def test_broker_gone_after_connecting_is_retryable_then_reconnects_when_back(
    make: Callable[..., MqttAvailabilityAdapter], tmp_path: Path
) -> None:
    port = _free_port()
    async with private_broker(port, tmp_path) as url:
        adapter = make(url)
        assert (await adapter.push([Update(sku="A", available=1, version=1)]))[0].outcome == "ok"
    await asyncio.sleep(0.1)  # let the client notice the closed socket
    started = time.monotonic()
    with pytest.raises(Retryable):
        await adapter.push([Update(sku="A", available=2, version=2)])
    assert time.monotonic() - started < 1.0  # refused at once, not after timeout_s
    async with private_broker(port, tmp_path) as url:
        assert (await adapter.push([Update(sku="A", available=3, version=3)]))[0].outcome == "ok"
        late = await retained(url, "#")
        assert [v["version"] for v, _ in late.values()] == [3]
        await adapter.aclose()


async def test_mqtt_over_websockets_publishes_and_reads_back(
    make: Callable[..., MqttAvailabilityAdapter],
) -> None:
    from amqtt.broker import Broker

    port = _free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "ws", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        adapter = make(f"ws://127.0.0.1:{port}", pos_channel(options={"read_back_wait_s": 0.2}))
        assert adapter.broker.transport == "websockets" and adapter.broker.path == "/mqtt"
        assert (await adapter.push([Update(sku="A", available=3, version=1)]))[0].outcome == "ok"
        assert await adapter.read_back(["A"]) == {"A": 3}
        await adapter.aclose()
    finally:
        await broker.shutdown()


async def test_refused_credentials_are_unauthorized(
    make: Callable[..., MqttAvailabilityAdapter], tmp_path: Path
) -> None:
    port = _free_port()
    async with private_broker(port, tmp_path, anonymous=False) as url:
        adapter = make(url)
        with pytest.raises(Unauthorized, match="credentials"):
            await adapter.push([Update(sku="A", available=1, version=1)])
        with pytest.raises(Unauthorized):
            await adapter.read_back(["A"])


async def test_aclose_disconnects_cleanly_and_is_idempotent(
    make: Callable[..., MqttAvailabilityAdapter],
) -> None:
    async with StubBroker() as stub:
        adapter = make(stub.url)
        await adapter.aclose()  # never connected: nothing to do
        assert stub.connections == 0
        await adapter.push([Update(sku="A", available=1, version=1)])
        await adapter.push([Update(sku="B", available=1, version=1)])
        assert stub.connections == 1  # one connection kept across pushes
        await adapter.aclose()
        await adapter.aclose()
        for _ in range(50):
            if stub.closed:
                break
            await asyncio.sleep(0.01)
        assert stub.packets[-1] == StubBroker.DISCONNECT and stub.closed == 1
        # A push after closing connects again.
        assert (await adapter.push([Update(sku="C", available=1, version=1)]))[0].outcome == "ok"
        assert stub.connections == 2
        await adapter.aclose()


# --- read-back ----------------------------------------------------------------------------------


async def test_read_back_sees_a_value_overwritten_by_another_client(
    mqtt_url: str, prefix: str, make: Callable[..., MqttAvailabilityAdapter]
) -> None:
    adapter = make(mqtt_url, pos_channel(options={"timeout_s": 2, "read_back_wait_s": 0.2}))
    await adapter.push(
        [
            Update(sku="TEE", available=5, version=1),
            Update(sku="MUG", available=3, version=1),
            Update(sku="CAP", available=1, version=1),
        ]
    )
    assert await adapter.read_back(["TEE", "MUG", "NONE"]) == {"TEE": 5, "MUG": 3}
    # The POS (or a stale publisher) overwrites two retained values: drift.
    topic = f"{prefix}availability/pos/"
    await publish(mqtt_url, topic + "TEE", b'{"sku": "TEE", "available": 2, "version": 0}')
    await publish(mqtt_url, topic + "MUG", b"9")
    await publish(mqtt_url, topic + "CAP", b"not json")
    started = time.monotonic()
    assert await adapter.read_back(["TEE", "MUG", "CAP", "NONE"]) == {"TEE": 2, "MUG": 9}
    assert time.monotonic() - started < 1.5
    await adapter.aclose()


async def test_read_back_ignores_live_messages_the_broker_does_not_hold(
    mqtt_url: str, prefix: str, make: Callable[..., MqttAvailabilityAdapter]
) -> None:
    adapter = make(mqtt_url, pos_channel(options={"timeout_s": 2, "read_back_wait_s": 0.5}))
    await adapter.push([Update(sku="TEE", available=5, version=1)])
    reading = asyncio.create_task(adapter.read_back(["TEE", "LIVE"]))
    await asyncio.sleep(0.15)  # subscribed by now, waiting for LIVE's retained message
    await publish(mqtt_url, f"{prefix}availability/pos/LIVE", b"7", retain=False)
    assert await reading == {"TEE": 5}
    await adapter.aclose()


async def test_read_back_never_subscribes_to_a_wildcard_sku(
    adapter: MqttAvailabilityAdapter,
) -> None:
    await adapter.push([Update(sku="TEE", available=5, version=1)])
    assert await adapter.read_back(["+", "#", "a//b"]) == {}


async def test_read_back_returns_as_soon_as_every_sku_answered(
    mqtt_url: str, make: Callable[..., MqttAvailabilityAdapter]
) -> None:
    adapter = make(mqtt_url, pos_channel(options={"timeout_s": 5, "read_back_wait_s": 3}))
    await adapter.push([Update(sku="TEE", available=5, version=1)])
    started = time.monotonic()
    assert await adapter.read_back(["TEE"]) == {"TEE": 5}
    assert time.monotonic() - started < 1.0  # not the 3 s quiet window
    await adapter.aclose()


async def test_read_back_on_an_unreachable_broker_is_retryable(
    make: Callable[..., MqttAvailabilityAdapter],
) -> None:
    adapter = make(f"mqtt://127.0.0.1:{_free_port()}")
    with pytest.raises(Retryable):
        await adapter.read_back(["A"])


# --- config and interface -----------------------------------------------------------------------


def test_registry_maps_mqtt_and_pos_to_this_module() -> None:
    assert ADAPTER_MODULES["mqtt"] == ADAPTER_MODULES["pos"] == "mqtt_availability"


def test_broker_comes_from_mqtt_config_with_a_client_id_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MQTT_PW", "s3cret")
    cfg = MqttConfig(
        url="mqtts://broker.example", client_id="inv", username="u", password_env="MQTT_PW"
    )
    broker = broker_for(pos_channel(id="store-12"), cfg)
    assert (broker.host, broker.port, broker.tls) == ("broker.example", 8883, True)
    assert broker.client_id == "inv-avail-store-12" != f"{cfg.client_id}-intake"
    assert broker.read_client_id == "inv-read-store-12"
    # Channel ids cannot make one adapter's id equal the intake's or another's read-back id.
    ids = {
        i
        for ch in ("intake", "pos", "pos-read", "read-pos", "avail-pos")
        for b in [broker_for(pos_channel(id=ch), cfg)]
        for i in (b.client_id, b.read_client_id)
    }
    assert len(ids) == 10 and f"{cfg.client_id}-intake" not in ids
    assert (broker.username, broker.password, broker.prefix) == ("u", "s3cret", "invsync/")


def test_a_channel_mqtt_url_wins_over_the_daemon_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POS_BROKER_PW", "pw")
    channel = pos_channel(url="mqtt://till@10.0.0.5:1884", token_env="POS_BROKER_PW")
    broker = broker_for(channel, MqttConfig(url="mqtt://central:1883", prefix="shop/"))
    assert (broker.host, broker.port, broker.tls) == ("10.0.0.5", 1884, False)
    assert (broker.username, broker.password, broker.prefix) == ("till", "pw", "shop/")
    # A url that is not mqtt:// leaves the daemon's broker in charge.
    broker = broker_for(pos_channel(url="https://pos.example"), MqttConfig(url="mqtt://central"))
    assert broker.host == "central"


def test_broker_urls_of_every_accepted_scheme() -> None:
    def parsed(url: str) -> tuple[object, ...]:
        b = broker_for(pos_channel(), MqttConfig(url=url))
        return (b.host, b.port, b.tls, b.transport, b.path)

    assert parsed("mqtt://h") == ("h", 1883, False, "tcp", "")
    assert parsed("mqtts://h") == ("h", 8883, True, "tcp", "")
    assert parsed("ws://h:9001") == ("h", 9001, False, "websockets", "/mqtt")
    assert parsed("wss://h/ws") == ("h", 443, True, "websockets", "/ws")


@pytest.mark.parametrize(
    ("channel", "mqtt", "match"),
    [
        (pos_channel(), None, r"\[mqtt\] url"),
        (pos_channel(), MqttConfig(), r"\[mqtt\] url, or the channel's url"),
        (pos_channel(url="https://pos.example"), None, "is not mqtt://, mqtts://, ws:// or wss://"),
        (
            pos_channel(options={"timeout_s": 0}),
            MqttConfig(url="mqtt://b"),
            "options.timeout_s",
        ),
        (
            pos_channel(options={"read_back_wait_s": "soon"}),
            MqttConfig(url="mqtt://b"),
            "options.read_back_wait_s",
        ),
        (pos_channel(), MqttConfig(url="mqtt://b:99999"), r"\[mqtt\] url: Port out of range"),
        (pos_channel(url="mqtt://b:x"), None, "url: Port could not be cast"),
        (
            pos_channel(url="mqtt://b", options={"username": 5}),
            None,
            "options.username",
        ),
    ],
)
async def test_config_errors_name_what_to_set(
    session: aiohttp.ClientSession, channel: Channel, mqtt: MqttConfig | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        create(channel, AdapterContext(session=session, mqtt=mqtt))


def test_missing_passwords_name_their_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_PW", raising=False)
    with pytest.raises(MissingSecret, match="NOPE_PW"):
        broker_for(pos_channel(), MqttConfig(url="mqtt://b", password_env="NOPE_PW"))
    with pytest.raises(MissingSecret, match="token_env"):
        broker_for(pos_channel(url="mqtt://b", token_env="NOPE_PW"), None)


async def test_inbound_webhooks_are_refused(adapter: MqttAvailabilityAdapter) -> None:
    with pytest.raises(BadWebhook, match="takes no webhooks"):
        adapter.parse_webhook({}, b"{}")


# --- options, checked when the config is loaded -------------------------------------------------

OWN_BROKER = 'url = "mqtt://127.0.0.1:1883"\n'


@pytest.mark.parametrize("kind", ["mqtt", "pos"])
def test_the_registry_names_the_mqtt_options(kind: str) -> None:
    assert options_type(kind) is Options


def test_good_options_load_with_their_documented_defaults(tmp_path: Path) -> None:
    default = load_channel(tmp_path, "pos", "", extra=OWN_BROKER)
    assert msgspec.convert(default.options, Options) == Options(
        username=None, timeout_s=10, read_back_wait_s=0.5
    )
    given = load_channel(
        tmp_path, "mqtt", 'username = "till-gw", timeout_s = 2, read_back_wait_s = 0.2',
        extra=OWN_BROKER,
    )
    assert msgspec.convert(given.options, Options) == Options(
        username="till-gw", timeout_s=2, read_back_wait_s=0.2
    )


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ("username = 5", "username"),  # wrong type
        ('username = ""', "username"),
        ("timeout_s = 0", "timeout_s"),  # out of range
        ("timeout_s = inf", "timeout_s"),
        ('read_back_wait_s = "soon"', "read_back_wait_s"),
        ("read_back_wait_s = 0", "read_back_wait_s"),
        ('password = "x"', "password"),  # unknown key
    ],
)
def test_a_bad_option_is_refused_at_load_naming_its_key(
    tmp_path: Path, options: str, key: str
) -> None:
    assert refused(tmp_path, "pos", options, extra=OWN_BROKER).key == f"channels[0].options.{key}"
