"""The live feed ``WS /v1/feed`` over real loopback websockets: the API app (``build_app``) served
by uvicorn (``HttpServer``), ``websockets`` clients, and a ``FeedHub`` fed the way SKU actors feed
it. The snapshot comes from ``Stock``, an in-memory stand-in for the store that publishes every
change it takes (as the daemon's SKU actors do after the engine wrote it) and can be paused in
the middle of a snapshot; ``store_snapshot`` is checked against a real engine separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from invsync.actors.messages import AvailabilityChanged, StockChanged
from invsync.actors.runtime import Actor, ActorSystem, Kind
from invsync.actors.sku import SkuActor, Topology
from invsync.core.clock import ManualClock
from invsync.core.config import Config, ServerConfig
from invsync.daemon.feed import FeedHub, store_snapshot
from invsync.daemon.http import build_app
from invsync.daemon.server import HttpServer
from invsync.engine.availability import Bundle, ChannelPolicy, availability_by_channel
from invsync.engine.engine import Engine

TOKEN_ENV = "INVSYNC_TEST_FEED_TOKEN"
#: The feed's clients hold the daemon's token, as real ones do (the API's default is protected).
FEED_TOKEN = "feed-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {FEED_TOKEN}"}


@pytest.fixture(autouse=True)
def _feed_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, FEED_TOKEN)
WAIT_S = 10.0


class Stock:
    """Availability per (sku, channel) with versions; ``set`` publishes like a SKU actor."""

    def __init__(self, hub: FeedHub) -> None:
        self.hub = hub
        self.items: dict[tuple[str, str], tuple[int, int]] = {}
        self.pause_after: int | None = None  # items read before the snapshot pauses
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()

    def set(self, sku: str, channel: str, available: int) -> int:
        _, version = self.items.get((sku, channel), (0, 0))
        self.items[(sku, channel)] = (available, version + 1)
        self.hub.publish(
            AvailabilityChanged(sku=sku, available=available, version=version + 1), channel
        )
        return version + 1

    async def snapshot(self, skus: list[str], channels: list[str]) -> list[dict[str, Any]]:
        out = []
        for sku, channel in sorted(self.items):
            if (skus and sku not in skus) or (channels and channel not in channels):
                continue
            if self.pause_after is not None and len(out) == self.pause_after:
                self.paused.set()
                await self.resume.wait()
            available, version = self.items[(sku, channel)]
            out.append({"sku": sku, "channel": channel, "available": available, "version": version})
            await asyncio.sleep(0)  # a store read yields to the loop
        return out


class FeedContext:
    """As much of a ``DaemonContext`` as the feed's route uses: the config (credentials)."""

    def __init__(self, config: Config) -> None:
        self.config = config


CONFIG = Config(server=ServerConfig(host="127.0.0.1", port=0, token_env=TOKEN_ENV))


class Feed:
    """A hub served on loopback: its ``url`` and the ``stock`` that publishes to it."""

    def __init__(self, hub: FeedHub, stock: Stock, url: str) -> None:
        self.hub = hub
        self.stock = stock
        self.url = url


Serve = Callable[..., Awaitable[Feed]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(config=..., **hub_options)``: a hub behind the API app on a free port."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(*, config: Config = CONFIG, **options: Any) -> Feed:
            hub = await stack.enter_async_context(FeedHub(**options))
            stock = Stock(hub)
            app = build_app(FeedContext(config), routes=[hub.route(stock.snapshot)])  # type: ignore[arg-type]
            server = await stack.enter_async_context(HttpServer(app, "127.0.0.1", 0))
            return Feed(hub, stock, f"ws://127.0.0.1:{server.port}/v1/feed")

        yield start


def client(url: str, **options: Any) -> Any:
    """A websocket client of the feed, with the token unless ``additional_headers`` is given."""
    options.setdefault("additional_headers", AUTH)
    return connect(url, proxy=None, ping_interval=None, open_timeout=WAIT_S, **options)


async def recv(ws: ClientConnection) -> dict[str, Any]:
    """The next message (a ``batch`` frame comes whole)."""
    raw = await asyncio.wait_for(ws.recv(), WAIT_S)
    message: dict[str, Any] = json.loads(raw)
    return message


async def subscribe(
    ws: ClientConnection,
    skus: list[str] | None = None,
    channels: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Subscribe and return the snapshot (skipping heartbeats)."""
    await ws.send(
        json.dumps({"op": "subscribe", "skus": skus or [], "channels": channels or [], **extra})
    )
    while True:
        message = await recv(ws)
        if message["type"] != "heartbeat":
            assert message["type"] == "snapshot", message
            return message


async def until_barrier(ws: ClientConnection, barrier: str) -> list[dict[str, Any]]:
    """Every message up to the exception record with id ``barrier`` (batches unpacked)."""
    out: list[dict[str, Any]] = []
    while True:
        message = await recv(ws)
        for m in message["messages"] if message["type"] == "batch" else [message]:
            if m["type"] == "exception" and m.get("id") == barrier:
                return out
            if m["type"] != "heartbeat":
                out.append(m)


def deltas(messages: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    return [
        (m["sku"], m["channel"], m["available"], m["version"])
        for m in messages
        if m["type"] == "availability"
    ]


# --- snapshot and deltas -----------------------------------------------------------------------


async def test_subscriber_gets_a_snapshot_then_each_change(serve: Serve) -> None:
    feed = await serve()
    stock, url = feed.stock, feed.url
    stock.set("TEE", "web", 5)
    stock.set("TEE", "amazon", 3)
    stock.set("CAP", "web", 2)
    async with client(url) as ws:
        snapshot = await subscribe(ws)
        assert isinstance(snapshot["ts"], int)
        assert snapshot["items"] == [
            {"sku": "CAP", "channel": "web", "available": 2, "version": 1},
            {"sku": "TEE", "channel": "amazon", "available": 3, "version": 1},
            {"sku": "TEE", "channel": "web", "available": 5, "version": 1},
        ]
        stock.set("TEE", "web", 4)
        message = await recv(ws)
        assert set(message) == {"type", "sku", "channel", "available", "version", "ts"}
        assert message["type"] == "availability"
        assert (message["sku"], message["channel"], message["available"], message["version"]) == (
            "TEE",
            "web",
            4,
            2,
        )


async def test_subscriptions_filter_by_sku_and_by_channel(serve: Serve) -> None:
    feed = await serve()
    hub, stock, url = feed.hub, feed.stock, feed.url
    for sku in ("TEE", "CAP"):
        for channel in ("web", "amazon"):
            stock.set(sku, channel, 10)
    async with client(url) as by_sku, client(url) as by_channel, client(url) as both:
        s1 = await subscribe(by_sku, skus=["TEE"])
        s2 = await subscribe(by_channel, channels=["amazon"])
        s3 = await subscribe(both, skus=["CAP"], channels=["web"])
        assert {(i["sku"], i["channel"]) for i in s1["items"]} == {
            ("TEE", "web"),
            ("TEE", "amazon"),
        }
        assert {(i["sku"], i["channel"]) for i in s2["items"]} == {
            ("TEE", "amazon"),
            ("CAP", "amazon"),
        }
        assert [(i["sku"], i["channel"]) for i in s3["items"]] == [("CAP", "web")]
        for sku in ("TEE", "CAP", "HAT"):
            for channel in ("web", "amazon"):
                stock.set(sku, channel, 7)
        hub.publish_exception({"id": "barrier"})
        assert deltas(await until_barrier(by_sku, "barrier")) == [
            ("TEE", "web", 7, 2),
            ("TEE", "amazon", 7, 2),
        ]
        assert deltas(await until_barrier(by_channel, "barrier")) == [
            ("TEE", "amazon", 7, 2),
            ("CAP", "amazon", 7, 2),
            ("HAT", "amazon", 7, 1),
        ]
        assert deltas(await until_barrier(both, "barrier")) == [("CAP", "web", 7, 2)]


async def test_two_hundred_clients_each_get_every_delta_in_version_order(serve: Serve) -> None:
    feed = await serve()
    hub, stock, url = feed.hub, feed.stock, feed.url
    keys = [(f"SKU-{i}", ch) for i in range(5) for ch in ("web", "amazon")]
    for sku, channel in keys:
        stock.set(sku, channel, 100)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client(url)) for _ in range(200)]
        await asyncio.gather(*(subscribe(ws) for ws in clients))
        for round_ in range(10):
            for sku, channel in keys:
                stock.set(sku, channel, 100 - round_)
            await asyncio.sleep(0)  # interleave publishing with sending
        hub.publish_exception({"id": "barrier"})
        received = await asyncio.gather(*(until_barrier(ws, "barrier") for ws in clients))
    for messages in received:
        got = deltas(messages)
        assert len(got) == 100
        for key in keys:
            assert [v for s, c, _, v in got if (s, c) == key] == list(range(2, 12))


async def test_deltas_published_while_the_snapshot_is_built_follow_it(serve: Serve) -> None:
    feed = await serve()
    hub, stock, url = feed.hub, feed.stock, feed.url
    stock.set("A", "web", 1)  # read before the pause
    stock.set("B", "web", 1)  # read after it
    stock.pause_after = 1
    async with client(url) as ws:
        await ws.send(json.dumps({"op": "subscribe"}))
        await asyncio.wait_for(stock.paused.wait(), WAIT_S)
        stock.set("A", "web", 2)  # v2: newer than the snapshot's A (v1) -> must follow it
        stock.set("B", "web", 2)  # v2 and v3: the snapshot reads B at v3 -> not sent again
        stock.set("B", "web", 3)
        stock.set("C", "web", 9)  # new after its key list was read -> must follow it
        stock.resume.set()
        snapshot = await recv(ws)  # first: nothing published meanwhile came before it
        assert snapshot["type"] == "snapshot"
        assert [(i["sku"], i["version"]) for i in snapshot["items"]] == [("A", 1), ("B", 3)]
        stock.pause_after = None
        stock.set("B", "web", 4)
        hub.publish_exception({"id": "barrier"})
        assert deltas(await until_barrier(ws, "barrier")) == [
            ("A", "web", 2, 2),
            ("C", "web", 9, 1),
            ("B", "web", 4, 4),
        ]


async def test_exception_records_reach_every_subscriber(serve: Serve) -> None:
    feed = await serve()
    hub, url = feed.hub, feed.url
    async with client(url) as one, client(url) as other:
        await subscribe(one, skus=["TEE"])
        await subscribe(other, channels=["amazon"])
        record = {
            "id": "exc-7",
            "kind": "oversell",
            "sku": "CAP",
            "channel": "web",
            "type": "ignored",
        }
        hub.publish_exception(record)
        for ws in (one, other):
            assert await recv(ws) == {**record, "type": "exception"}


async def sweep(clock: ManualClock, seconds: float) -> None:
    """Move the hub's clock on and let its heartbeat sweep run (and park again)."""
    clock.advance(seconds)
    for _ in range(20):
        await asyncio.sleep(0)


async def test_idle_clients_get_heartbeats_and_unsubscribed_ones_nothing_else(serve: Serve) -> None:
    clock = ManualClock()
    feed = await serve(heartbeat_s=15.0, clock=clock)  # swept every 3.75 s of the clock
    hub, stock, url = feed.hub, feed.stock, feed.url
    async with client(url) as watcher, client(url) as lurker:
        await subscribe(watcher)
        stock.set("TEE", "web", 3)
        hub.publish_exception({"id": "exc-1"})
        assert (await recv(watcher))["type"] == "availability"
        assert (await recv(watcher))["type"] == "exception"
        for beat_number in range(3):
            for _ in range(3):
                await sweep(clock, 3.75)
            if beat_number == 0:  # 11.25 s of silence is not yet worth a heartbeat
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(watcher.recv(), 0.05)
            await sweep(clock, 3.75)
            beat = await recv(watcher)
            assert beat["type"] == "heartbeat" and isinstance(beat["ts"], int)
            assert beat["ts"] == clock.wall_ms()
        for _ in range(3):  # never subscribed: the change and the record were not for it
            assert (await recv(lurker))["type"] == "heartbeat"


async def test_bad_messages_get_an_error_and_the_connection_stays(serve: Serve) -> None:
    feed = await serve()
    stock, url = feed.stock, feed.url
    stock.set("TEE", "web", 5)
    async with client(url) as ws:
        for raw, code in [
            ("{not json", "MALFORMED_JSON"),
            ("[1, 2]", "BAD_MESSAGE"),
            (json.dumps({"op": "fly"}), "UNKNOWN_OP"),
            (json.dumps({"skus": []}), "UNKNOWN_OP"),
            (json.dumps({"op": "subscribe", "sku": ["TEE"]}), "BAD_MESSAGE"),
            (json.dumps({"op": "subscribe", "skus": "TEE"}), "BAD_MESSAGE"),
        ]:
            await ws.send(raw)
            error = await recv(ws)
            assert error["type"] == "error" and error["error"]["code"] == code, (raw, error)
            assert error["error"]["message"]
        snapshot = await subscribe(ws, skus=["TEE"])
        assert [i["available"] for i in snapshot["items"]] == [5]


async def test_a_new_subscribe_replaces_the_last(serve: Serve) -> None:
    feed = await serve()
    hub, stock, url = feed.hub, feed.stock, feed.url
    stock.set("TEE", "web", 5)
    stock.set("CAP", "web", 6)
    async with client(url) as ws:
        first = await subscribe(ws, skus=["TEE"])
        assert [i["sku"] for i in first["items"]] == ["TEE"]
        second = await subscribe(ws, skus=["CAP"])
        assert [i["sku"] for i in second["items"]] == ["CAP"]
        stock.set("TEE", "web", 4)
        stock.set("CAP", "web", 3)
        hub.publish_exception({"id": "barrier"})
        assert deltas(await until_barrier(ws, "barrier")) == [("CAP", "web", 3, 2)]


async def test_batching_client_gets_spec_messages_in_one_frame(serve: Serve) -> None:
    feed = await serve(batch_window_s=0.05)
    stock, url = feed.stock, feed.url
    async with client(url) as ws:
        await subscribe(ws, batch=True)
        for n in range(20):
            stock.set("TEE", "web", n)
        frame = await recv(ws)
        assert frame["type"] == "batch"
        assert [m["type"] for m in frame["messages"]] == ["availability"] * 20
        assert [m["version"] for m in frame["messages"]] == list(range(1, 21))


# --- slow consumers ----------------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_bounded_then_resynced(serve: Serve) -> None:
    feed = await serve(max_queue=50)
    hub, stock, url = feed.hub, feed.stock, feed.url
    sku = "SLOW-" + "X" * 120  # big messages fill the socket buffers sooner
    # max_queue=1: the client stops reading from its socket as soon as one frame waits.
    async with client(url, max_queue=1) as slow, client(url) as reader:
        await subscribe(slow)
        await subscribe(reader, skus=["OTHER"])
        published = 0
        while hub.resyncs == 0:
            for n in range(500):
                stock.set(sku, f"ch{n % 4}", published + n)
            published += 500
            await asyncio.sleep(0)
            assert max(hub.queue_sizes().values()) <= hub.max_queue
            assert hub.log_size <= 2 * hub.max_queue
            assert published < 200_000, "the server never noticed the slow consumer"
        for _ in range(20):  # and it stays bounded while the client keeps not reading
            for n in range(500):
                stock.set(sku, f"ch{n % 4}", published + n)
            published += 500
            await asyncio.sleep(0)
            assert max(hub.queue_sizes().values()) <= hub.max_queue
            assert hub.log_size <= 2 * hub.max_queue
        stock.set("OTHER", "web", 1)  # the reading client is not held up by the slow one
        assert deltas([await recv(reader)]) == [("OTHER", "web", 1, 1)]
        # Reading again, it gets what was in the pipes, then resync and a fresh snapshot (one
        # per overflow), and it ends at the latest state without the backlog in between.
        latest = {ch: stock.items[(sku, ch)] for ch in ("ch0", "ch1", "ch2", "ch3")}
        state: dict[str, tuple[int, int]] = {}
        resynced = False
        received = 0
        while not (resynced and state == latest):
            message = await recv(slow)
            if message["type"] == "resync":
                assert message == {"type": "resync", "reason": "slow consumer"}
                resynced = True
            elif message["type"] == "snapshot":
                assert resynced
                items = [i for i in message["items"] if i["sku"] == sku]
                assert all(i["version"] >= state.get(i["channel"], (0, 0))[1] for i in items)
                state = {i["channel"]: (i["available"], i["version"]) for i in items}
            elif message["type"] == "availability" and message["sku"] == sku:
                received += 1
                assert message["version"] > state.get(message["channel"], (0, 0))[1]
                state[message["channel"]] = (message["available"], message["version"])
        assert received < published / 4, "the stale backlog was delivered"
        stock.set(sku, "ch0", -1)
        while (message := await recv(slow)).get("sku") != sku:
            assert message["type"] in ("resync", "snapshot", "heartbeat", "availability")
        assert message["type"] == "availability" and message["available"] == -1


# --- connections -------------------------------------------------------------------------------


async def test_reconnect_after_a_server_side_close_gets_a_fresh_snapshot(serve: Serve) -> None:
    hub = await FeedHub().__aenter__()
    stock = Stock(hub)
    try:
        stock.set("TEE", "web", 5)
        app = build_app(FeedContext(CONFIG), routes=[hub.route(stock.snapshot)])  # type: ignore[arg-type]
        async with HttpServer(app, "127.0.0.1", 0) as server:
            port = server.port
            ws = await client(f"ws://127.0.0.1:{port}/v1/feed")
            assert [i["version"] for i in (await subscribe(ws))["items"]] == [1]
        # The server went away (uvicorn closes its websockets with 1012, service restart).
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        stock.set("TEE", "web", 4)  # missed while disconnected
        async with HttpServer(app, "127.0.0.1", port):
            async with client(f"ws://127.0.0.1:{port}/v1/feed") as again:
                snapshot = await subscribe(again)
                assert [(i["available"], i["version"]) for i in snapshot["items"]] == [(4, 2)]
                stock.set("TEE", "web", 3)
                assert deltas([await recv(again)]) == [("TEE", "web", 3, 3)]
    finally:
        await hub.__aexit__(None, None, None)


async def test_leaving_the_hub_closes_its_clients_with_going_away(serve: Serve) -> None:
    hub = await FeedHub().__aenter__()
    stock = Stock(hub)
    app = build_app(FeedContext(CONFIG), routes=[hub.route(stock.snapshot)])  # type: ignore[arg-type]
    async with HttpServer(app, "127.0.0.1", 0) as server:
        async with client(f"ws://127.0.0.1:{server.port}/v1/feed") as ws:
            await subscribe(ws)
            await hub.__aexit__(None, None, None)
            assert hub.clients == 0
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_the_feed_needs_the_bearer_token_when_one_is_configured(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "s3cret-0123456789")
    config = Config(server=ServerConfig(host="127.0.0.1", port=0, token_env=TOKEN_ENV))
    feed = await serve(config=config)
    stock, url = feed.stock, feed.url
    stock.set("TEE", "web", 5)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with client(url, additional_headers={}):
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"]["code"] == "UNAUTHORIZED"
    with pytest.raises(websockets.InvalidStatus) as wrong:
        async with client(url, additional_headers={"Authorization": "Bearer nope"}):
            pass
    assert wrong.value.response.status_code == 403
    async with client(url, additional_headers={"Authorization": "Bearer s3cret-0123456789"}) as ws:
        assert [i["available"] for i in (await subscribe(ws))["items"]] == [5]


# --- the daemon's snapshot ---------------------------------------------------------------------


async def test_store_snapshot_matches_what_sku_actors_publish(engine: Engine) -> None:
    policies = {
        "web": ChannelPolicy(locations=("wh-east", "wh-west")),
        "amazon": ChannelPolicy(locations=("wh-east",), buffer=2),
    }
    topology = Topology.build(policies, {"KIT": Bundle(sku="KIT", components={"TEE": 1, "CAP": 2})})
    await engine.count("c1", "TEE", "wh-east", 10)
    await engine.count("c2", "TEE", "wh-west", 5)
    await engine.count("c3", "CAP", "wh-east", 7)
    snapshot = store_snapshot(engine, lambda: topology)
    tee = await engine.stock("TEE")
    cap = await engine.stock("CAP")
    assert tee is not None and cap is not None
    expected_tee = availability_by_channel(tee.stock(), policies)

    items = await snapshot([], [])
    by_key = {(i["sku"], i["channel"]): (i["available"], i["version"]) for i in items}
    assert by_key[("TEE", "web")] == (expected_tee["web"], tee.version)
    assert by_key[("TEE", "amazon")] == (expected_tee["amazon"], tee.version)
    assert by_key[("KIT", "web")] == (3, tee.version + cap.version)  # 7 caps -> 3 kits
    assert {sku for sku, _ in by_key} == {"TEE", "CAP", "KIT"}

    only = await snapshot(["TEE", "NEVER"], ["amazon"])
    assert only == [
        {
            "sku": "TEE",
            "channel": "amazon",
            "available": expected_tee["amazon"],
            "version": tee.version,
        },
        {"sku": "NEVER", "channel": "amazon", "available": 0, "version": 0},
    ]


class ChannelStandIn(Actor[Any]):
    """A channel actor that takes what SKU actors send it and pushes nowhere."""

    async def receive(self, message: Any) -> None:
        pass


async def test_the_daemons_wiring_sku_actors_to_feed_clients(engine: Engine) -> None:
    """As the daemon wires it: SKU actors' listener is the hub, the snapshot reads the store."""
    policies = {"web": ChannelPolicy(locations=("wh-east",))}
    topology = Topology.build(policies, {"KIT": Bundle(sku="KIT", components={"TEE": 2})})
    await engine.count("c1", "TEE", "wh-east", 10)
    async with contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(FeedHub())
        system = await stack.enter_async_context(ActorSystem())
        listeners = (hub.listener,)
        system.register(Kind(name="channel", factory=ChannelStandIn, idle_timeout_s=None))
        system.register(
            Kind(
                name="sku",
                factory=lambda key: SkuActor(key, engine, lambda: topology, lambda: listeners),
            )
        )
        routes = [hub.route(store_snapshot(engine, lambda: topology))]
        app = build_app(FeedContext(CONFIG), routes=routes)  # type: ignore[arg-type]
        server = await stack.enter_async_context(HttpServer(app, "127.0.0.1", 0))
        async with client(f"ws://127.0.0.1:{server.port}/v1/feed") as ws:
            snapshot = await subscribe(ws)
            assert sorted((i["sku"], i["available"], i["version"]) for i in snapshot["items"]) == [
                ("KIT", 5, 1),
                ("TEE", 10, 1),
            ]
            out = await engine.count("c2", "TEE", "wh-east", 4)
            await system.send("sku:TEE", StockChanged(state=out.skus["TEE"]))
            assert deltas([await recv(ws)]) == [("TEE", "web", 4, 2)]
            assert deltas([await recv(ws)]) == [("KIT", "web", 2, 2)]  # the bundle follows


async def test_bench_feed_reports_its_figures() -> None:
    """``invsync bench feed --json`` end to end, small: every delta reaches every client."""
    script = Path(sys.executable).parent / "invsync"
    if not script.exists():
        pytest.skip("the invsync console script is not installed (make install)")
    proc = await asyncio.create_subprocess_exec(
        str(script),
        "bench",
        "feed",
        "--clients=20",
        "--rate=200",
        "--seconds=1",
        "--skus=10",
        "--json",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    figures = json.loads(out.decode().strip().splitlines()[-1])
    assert figures["clients"] == 20
    assert figures["delivered"] == figures["expected"] == 20 * 200
    assert figures["deltas_per_s"] > 0 and figures["p99_ms"] >= figures["p50_ms"] >= 0
    assert figures["rss_mb"] > 0
