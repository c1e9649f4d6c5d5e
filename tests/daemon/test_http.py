"""The HTTP API over real loopback HTTP: uvicorn (``HttpServer``), aiohttp, a real Redis.

The daemon is stood in for by ``ApiContext``: a real engine and intake stream on the test Redis;
``wait_processed`` applies the recorded events straight from the stream, the way the daemon's
processor would.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from invsync.adapters.signing import SIGNATURE_HEADER, sign
from invsync.adapters.webhook import WebhookAdapter
from invsync.core.config import Channel, Config, Location, RedisConfig, ServerConfig
from invsync.core.errors import InvsyncError
from invsync.core.events import (
    OrderCancelled,
    OrderCreated,
    OrderFulfilled,
    OrderReturned,
    StockAdjusted,
    StockCounted,
)
from invsync.daemon.http import build_app
from invsync.daemon.intake import STREAM, Intake
from invsync.daemon.security import AuthMisconfigured, client_token
from invsync.daemon.server import HttpServer, ServerStartError
from invsync.daemon.stockview import stock_view
from invsync.engine.connection import open_redis
from invsync.engine.engine import Engine
from invsync.engine.models import Line
from invsync.metrics.definitions import REGISTRY

PORTAL_SECRET = "portal-secret"
TOKEN_ENV = "INVSYNC_TEST_API_TOKEN"

CONFIG = Config(
    server=ServerConfig(host="127.0.0.1", port=0),
    locations=(Location(id="wh-east", priority=10), Location(id="wh-west", priority=20)),
    channels=(
        Channel(id="web", kind="shopify"),
        Channel(
            id="portal", kind="webhook", url="http://127.0.0.1:9/", secret_env="PORTAL_SECRET"
        ),
    ),
)


class ApiContext:
    """A ``DaemonContext`` on a real engine and intake; events are applied on ``wait_processed``."""

    def __init__(
        self, config: Config, engine: Engine, intake: Intake, session: aiohttp.ClientSession
    ) -> None:
        self.config = config
        self.engine = engine
        self.intake = intake
        portal = next(ch for ch in config.channels if ch.id == "portal")
        self.adapters = {"portal": WebhookAdapter(portal, session, PORTAL_SECRET)}
        self.outcomes: dict[str, dict[str, Any]] = {}
        self._done: set[str] = set()
        #: Optional channels held back (channel id -> why), as the daemon's channel manager.
        self.unavailable: dict[str, str] = {}

    def channel_unavailable(self, channel: str) -> str | None:
        return self.unavailable.get(channel)

    async def readiness(self) -> dict[str, Any]:
        try:
            await self.intake.redis.ping()
        except Exception as exc:  # a readiness probe reports whatever stops it
            return {"ready": False, "checks": {"store": {"ok": False, "error": str(exc)}}}
        return {"ready": True, "checks": {"store": {"ok": True}}}

    async def stock_view(self, sku: str) -> dict[str, Any] | None:
        state = await self.engine.stock(sku)
        if state is None:
            return None
        view = stock_view(self.config, sku, state)
        for channel in view["channels"].values():  # as if every channel had been pushed
            channel["pushed"], channel["pushed_version"] = channel["available"], view["version"]
        return view

    async def order_view(self, channel: str, order_id: str) -> dict[str, Any] | None:
        order = await self.engine.order(channel, order_id)
        return None if order is None else msgspec.to_builtins(order)

    async def wait_processed(self, event_ids: list[str], timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            rows = await self.intake.redis.xrange(self.intake.stream)
            entries, _ = self.intake._entries(rows)  # (decoded, undecodable)
            for entry in entries:
                if entry.id not in self._done:
                    self._done.add(entry.id)
                    self.outcomes[entry.event.id] = await self._apply(entry.event)
        return {i: self.outcomes.get(i, {"outcome": "pending"}) for i in event_ids}

    async def _apply(self, event: Any) -> dict[str, Any]:
        eng = self.engine
        try:
            match event:
                case StockCounted():
                    states = ("on_hand", "safety_stock", "damaged", "incoming")
                    for state in states:
                        if (qty := getattr(event, state)) is not None:
                            outcome = await eng.count(
                                f"{event.id}:{state}", event.sku, event.location, qty, state=state
                            )
                case StockAdjusted():
                    outcome = await eng.adjust(
                        event.id, event.sku, event.location, event.delta, reason=event.reason
                    )
                case OrderCreated():
                    first = self.config.location_ids()[0]
                    lines = [Line(sku=x.sku, qty=x.qty, location=x.location or first)
                             for x in event.lines]
                    outcome = await eng.reserve(event.id, event.channel, event.order_id, lines)
                case OrderCancelled():
                    outcome = await eng.release(event.id, event.channel, event.order_id)
                case OrderFulfilled():
                    outcome = await eng.fulfil(event.id, event.channel, event.order_id)
                case OrderReturned():
                    outcome = await eng.return_(
                        event.id, event.channel, event.order_id, event.location
                    )
        except InvsyncError as exc:
            return {"outcome": "refused", "code": exc.code, "message": exc.message}
        return {"outcome": "duplicate" if outcome.duplicate else "applied"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_in(folder: Path) -> Config:
    """CONFIG with its data directory (where the daemon generates its API token) in ``folder``."""
    return msgspec.structs.replace(CONFIG, redis=RedisConfig(data_dir=folder))


@pytest.fixture
async def ctx(engine: Engine, redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[ApiContext]:
    async with aiohttp.ClientSession() as session:  # the webhook adapter's (unused here)
        yield ApiContext(config_in(tmp_path), engine, Intake(redis), session)


@pytest.fixture
async def server(ctx: ApiContext) -> AsyncIterator[HttpServer]:
    async with HttpServer(build_app(ctx, max_body=64 * 1024), "127.0.0.1", 0) as srv:
        yield srv


def client_headers(config: Config) -> dict[str, str]:
    """What the CLI's client sends: the daemon's token (found as ``client_token`` finds it) and
    the JSON content type."""
    token = client_token(config)
    assert token is not None
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.fixture
async def http(ctx: ApiContext, server: HttpServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=server.url, headers=client_headers(ctx.config)
    ) as session:
        yield session


@pytest.fixture
async def down_ctx(tmp_path: Path) -> AsyncIterator[ApiContext]:
    """A context whose Redis is a port nobody listens on."""
    dead = open_redis(f"redis://127.0.0.1:{closed_port()}", connect_timeout=0.5, op_timeout=0.5)
    try:
        async with aiohttp.ClientSession() as session:
            yield ApiContext(config_in(tmp_path), Engine(dead), Intake(dead), session)
    finally:
        await dead.aclose()


async def call(
    http: aiohttp.ClientSession, method: str, path: str, **kw: Any
) -> tuple[int, Any, Mapping[str, str]]:
    async with http.request(method, path, **kw) as response:
        raw = await response.read()
        body = json.loads(raw) if response.content_type == "application/json" else raw.decode()
        return response.status, body, response.headers


def count(**fields: Any) -> dict[str, Any]:
    return {"type": "stock.counted", "location": "wh-east", "sku": "TEE", **fields}


def order(order_id: str, *lines: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": f"evt-order-{order_id}",
        "type": "order.created",
        "channel": "web",
        "order_id": order_id,
        "lines": list(lines) or [{"sku": "TEE", "qty": 1}],
        **fields,
    }


def error_of(body: Any) -> tuple[str, str]:
    assert set(body) == {"error"}, body
    return body["error"]["code"], body["error"]["message"]


# --- health and metrics ------------------------------------------------------------------------


async def test_healthz_answers_ok(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/healthz")
    assert (status, body) == (200, {"status": "ok"})


async def test_readyz_reports_the_contexts_checks(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/readyz")
    assert status == 200
    assert body == {"ready": True, "checks": {"store": {"ok": True}}}


async def test_metrics_parse_and_count_events_at_the_door(http: aiohttp.ClientSession) -> None:
    def sample(outcome: str) -> float:
        labels = {"kind": "stock.counted", "outcome": outcome}
        return REGISTRY.get_sample_value("invsync_events_total", labels) or 0.0

    accepted, rejected = sample("accepted"), sample("rejected")
    unknown = REGISTRY.get_sample_value(
        "invsync_events_total", {"kind": "unknown", "outcome": "rejected"}
    ) or 0.0
    await call(http, "POST", "/v1/events", json=[count(id="m-1", on_hand=1), count(id="m-2")])
    await call(http, "POST", "/v1/events", json=[
        count(id="m-3", on_hand=1), count(id="m-4", on_hand=1, location="nowhere"),
    ])
    await call(http, "POST", "/v1/events", json=[count(id="m-5", on_hand=1)])
    status, text, headers = await call(http, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(text)}
    served = {
        (s.labels["kind"], s.labels["outcome"]): s.value
        for s in families["invsync_events"].samples  # the parser drops a counter's _total
        if s.name == "invsync_events_total"
    }
    assert served[("stock.counted", "accepted")] == sample("accepted") == accepted + 1
    # A request with one bad event rejects all of its events, each counted by kind; one that
    # does not decode at all is counted once, as kind "unknown".
    assert served[("stock.counted", "rejected")] == sample("rejected") == rejected + 2
    assert served[("unknown", "rejected")] == unknown + 1


# --- POST /v1/events ---------------------------------------------------------------------------


async def test_one_event_is_recorded_and_answered_202(
    http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    status, body, _ = await call(
        http, "POST", "/v1/events", json=count(id="evt-6", on_hand=120)
    )
    assert (status, body) == (202, {"accepted": 1, "ids": ["evt-6"]})
    rows = await redis.xrange(STREAM)
    assert len(rows) == 1
    fields = rows[0][1]
    assert fields[b"src"] == b"http"
    assert json.loads(fields[b"e"])["on_hand"] == 120


async def test_a_list_of_events_is_recorded_in_order(
    http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    events = [
        count(id="c-1", on_hand=10),
        {"id": "a-1", "type": "stock.adjusted", "location": "wh-west", "sku": "TEE", "delta": 3},
        order("1001", ship_to={"country": "US", "region": "CA"}),
        {"id": "x-1", "type": "order.cancelled", "channel": "web", "order_id": "1001"},
    ]
    status, body, _ = await call(http, "POST", "/v1/events", json=events)
    assert (status, body) == (202, {"accepted": 4, "ids": ["c-1", "a-1", "evt-order-1001", "x-1"]})
    recorded = [json.loads(f[b"e"])["id"] for _, f in await redis.xrange(STREAM)]
    assert recorded == ["c-1", "a-1", "evt-order-1001", "x-1"]


async def test_wait_returns_each_events_outcome_and_the_stock_shows_it(
    http: aiohttp.ClientSession,
) -> None:
    events = [
        count(id="w-1", on_hand=5),
        {"id": "w-2", "type": "stock.adjusted", "location": "wh-east", "sku": "TEE", "delta": -9},
    ]
    status, body, _ = await call(http, "POST", "/v1/events?wait=5", json=events)
    assert status == 202
    assert body["results"]["w-1"] == {"outcome": "applied"}
    assert body["results"]["w-2"]["outcome"] == "refused"
    assert body["results"]["w-2"]["code"] == "NEGATIVE_STOCK"

    status, view, _ = await call(http, "GET", "/v1/stock/TEE")
    assert status == 200
    assert view["locations"]["wh-east"]["on_hand"] == 5
    assert view["channels"]["web"]["available"] == 5

    status, again, _ = await call(http, "POST", "/v1/events?wait=5", json=events[0])
    assert again["results"] == {"w-1": {"outcome": "duplicate"}}


@pytest.mark.parametrize("wait", ["-1", "31", "soon", "nan", "inf"])
async def test_a_bad_wait_is_400_and_records_nothing(
    http: aiohttp.ClientSession, redis: aioredis.Redis, wait: str
) -> None:
    status, body, _ = await call(
        http, "POST", "/v1/events", params={"wait": wait}, json=count(id="bw", on_hand=1)
    )
    assert status == 400
    assert error_of(body)[0] == "INVALID_REQUEST"
    assert "wait" in error_of(body)[1]
    assert await redis.xlen(STREAM) == 0


BAD_BODIES = {
    "malformed JSON": (b'{"id": "e1", "type": ', "malformed JSON"),
    "not an event": (b'"hello"', "Expected `object | array`"),
    "empty list": (b"[]", "no events"),
    "unknown type": (b'{"id": "e1", "type": "stock.teleported"}', "stock.teleported"),
    "negative line qty": (
        msgspec.json.encode([count(id="ok", on_hand=1), order("1", {"sku": "TEE", "qty": -2})]),
        "$[1].lines[0].qty",
    ),
    "zero line qty": (msgspec.json.encode(order("1", {"sku": "TEE", "qty": 0})), "lines[0].qty"),
    "negative count": (msgspec.json.encode(count(id="n", on_hand=-1)), "$.on_hand"),
    "count of nothing": (msgspec.json.encode([count(id="n")]), "$[0]"),
    "unknown field": (msgspec.json.encode(count(id="n", on_hand=1, colour="red")), "colour"),
    "missing id": (msgspec.json.encode(count(on_hand=1)), "id"),
}


@pytest.mark.parametrize("case", BAD_BODIES)
async def test_a_malformed_body_is_400_naming_the_path_and_records_nothing(
    http: aiohttp.ClientSession, redis: aioredis.Redis, case: str
) -> None:
    raw, fragment = BAD_BODIES[case]
    status, body, _ = await call(
        http, "POST", "/v1/events", data=raw, headers={"Content-Type": "application/json"}
    )
    assert status == 400
    code, message = error_of(body)
    assert code == "BAD_EVENT"
    assert fragment in message
    assert await redis.xlen(STREAM) == 0


async def test_an_unknown_location_anywhere_is_400_and_records_no_event(
    http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    before = await redis.xlen(STREAM)
    events = [
        count(id="good", on_hand=3),
        order("2", {"sku": "TEE", "qty": 1, "location": "wh-north"}),
    ]
    status, body, _ = await call(http, "POST", "/v1/events", json=events)
    assert status == 400
    code, message = error_of(body)
    assert code == "UNKNOWN_LOCATION"
    assert "$[1].lines[0].location" in message and "wh-north" in message
    assert await redis.xlen(STREAM) == before

    ret = {"id": "r", "type": "order.returned", "channel": "web", "order_id": "2",
           "location": "store-x"}
    status, body, _ = await call(http, "POST", "/v1/events", json=ret)
    assert (status, error_of(body)[0]) == (400, "UNKNOWN_LOCATION")
    status, body, _ = await call(
        http, "POST", "/v1/events", json=count(id="c", on_hand=1, location="nowhere")
    )
    assert (status, error_of(body)[0]) == (400, "UNKNOWN_LOCATION")
    assert await redis.xlen(STREAM) == before


async def test_an_order_on_an_unknown_channel_is_404_and_records_nothing(
    http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    events = [count(id="good", on_hand=3), order("3", channel="etsy")]
    status, body, _ = await call(http, "POST", "/v1/events", json=events)
    assert status == 404
    code, message = error_of(body)
    assert code == "UNKNOWN_CHANNEL"
    assert "$[1].channel" in message and "etsy" in message
    assert await redis.xlen(STREAM) == 0


async def test_a_body_over_the_limit_is_413_and_records_nothing(
    http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    big = msgspec.json.encode([count(id=f"big-{i}", on_hand=i) for i in range(2000)])
    assert len(big) > 64 * 1024
    status, body, _ = await call(http, "POST", "/v1/events", data=big)
    assert (status, error_of(body)[0]) == (413, "PAYLOAD_TOO_LARGE")

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    status, body, _ = await call(http, "POST", "/v1/events", data=chunked())
    assert (status, error_of(body)[0]) == (413, "PAYLOAD_TOO_LARGE")
    assert await redis.xlen(STREAM) == 0


async def test_the_default_limit_is_five_megabytes(ctx: ApiContext, redis: aioredis.Redis) -> None:
    async with (
        HttpServer(build_app(ctx), "127.0.0.1", 0) as srv,
        aiohttp.ClientSession(base_url=srv.url, headers=client_headers(ctx.config)) as http,
    ):
        padding = " " * (5 * 1024 * 1024)
        status, body, _ = await call(
            http, "POST", "/v1/events", data=msgspec.json.encode(count(id="p", on_hand=1))
            + padding.encode()
        )
        assert (status, error_of(body)[0]) == (413, "PAYLOAD_TOO_LARGE")
        status, _, _ = await call(
            http, "POST", "/v1/events", data=msgspec.json.encode(count(id="p", on_hand=1))
            + padding[:-100].encode()
        )
        assert status == 202


# --- reads -------------------------------------------------------------------------------------


async def test_stock_of_an_unknown_sku_is_404(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/v1/stock/NEVER")
    assert (status, error_of(body)[0]) == (404, "UNKNOWN_SKU")


async def test_stock_of_a_sku_with_a_slash_is_found(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/v1/events?wait=5", json=count(id="s", sku="A/B", on_hand=2))
    status, view, _ = await call(http, "GET", "/v1/stock/A%2FB")
    assert status == 200
    assert view["sku"] == "A/B"
    assert set(view) == {"sku", "version", "locations", "channels"}


async def test_an_order_shows_its_lines_and_state(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/v1/events?wait=5", json=[
        count(id="o-c", on_hand=4),
        order("1001", {"sku": "TEE", "qty": 3}),
    ])
    status, body, _ = await call(http, "GET", "/v1/orders/web/1001")
    assert status == 200
    assert body["state"] == "reserved"
    assert body["lines"][0]["sku"] == "TEE"
    assert body["lines"][0]["location"] == "wh-east"
    assert body["lines"][0]["reserved"] == 3

    status, body, _ = await call(http, "GET", "/v1/orders/web/9999")
    assert (status, error_of(body)[0]) == (404, "UNKNOWN_ORDER")
    status, body, _ = await call(http, "GET", "/v1/orders/etsy/1001")
    assert (status, error_of(body)[0]) == (404, "UNKNOWN_CHANNEL")


async def test_unknown_paths_and_methods_are_json_errors(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/v2/nothing")
    assert (status, error_of(body)[0]) == (404, "NOT_FOUND")
    status, body, headers = await call(http, "GET", "/v1/events")
    assert (status, error_of(body)[0]) == (405, "METHOD_NOT_ALLOWED")
    assert headers["Allow"] == "POST"
    status, body, _ = await call(http, "DELETE", "/v1/stock/TEE")
    assert (status, error_of(body)[0]) == (405, "METHOD_NOT_ALLOWED")


async def test_an_unexpected_error_is_a_500_without_a_traceback(
    ctx: ApiContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(sku: str) -> dict[str, Any] | None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(ctx, "stock_view", broken)
    async with (
        HttpServer(build_app(ctx), "127.0.0.1", 0) as srv,
        aiohttp.ClientSession(base_url=srv.url, headers=client_headers(ctx.config)) as http,
    ):
        status, body, _ = await call(http, "GET", "/v1/stock/TEE")
    assert status == 500
    code, message = error_of(body)
    assert code == "INTERNAL"
    assert "secret" not in message and "Traceback" not in message


# --- webhooks ----------------------------------------------------------------------------------


def portal_body(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events), indent=1).encode()


def signed(body: bytes) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(PORTAL_SECRET, body)}


async def test_a_signed_webhook_is_recorded_with_its_channel_as_source(
    http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    body = portal_body(
        {"id": "p-1", "type": "order.created", "order_id": "77",
         "lines": [{"sku": "TEE", "qty": 1}]},
        {"id": "p-2", "type": "order.cancelled", "order_id": "77"},
    )
    status, answer, _ = await call(http, "POST", "/webhooks/portal", data=body,
                                   headers=signed(body))
    assert (status, answer["accepted"]) == (202, 2)
    rows = await redis.xrange(STREAM)
    assert [f[b"src"] for _, f in rows] == [b"webhook:portal"] * 2
    assert json.loads(rows[0][1][b"e"])["channel"] == "portal"


async def test_a_forged_or_missing_signature_is_401_and_records_nothing(
    http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    event = {"id": "p-2", "type": "stock.counted", "location": "wh-east", "sku": "T", "on_hand": 1}
    body = portal_body(event)
    # Signed over the same JSON with other whitespace: the signature covers the raw bytes.
    other = json.dumps([event]).encode()
    for headers in (
        {SIGNATURE_HEADER: sign("not-the-secret", body)},
        signed(other),
        {},
    ):
        status, answer, _ = await call(
            http, "POST", "/webhooks/portal", data=body, headers=headers
        )
        assert (status, error_of(answer)[0]) == (401, "BAD_SIGNATURE")
    assert await redis.xlen(STREAM) == 0


async def test_webhook_errors(http: aiohttp.ClientSession, redis: aioredis.Redis) -> None:
    body = b'{"id": "x", '
    status, answer, _ = await call(http, "POST", "/webhooks/etsy", data=body)
    assert (status, error_of(answer)[0]) == (404, "UNKNOWN_CHANNEL")

    status, answer, _ = await call(http, "POST", "/webhooks/portal", data=body,
                                   headers=signed(body))
    assert (status, error_of(answer)[0]) == (400, "BAD_WEBHOOK")

    body = portal_body({"id": "q", "type": "order.created", "order_id": "5"})
    status, answer, _ = await call(http, "POST", "/webhooks/portal", data=body,
                                   headers=signed(body))
    assert (status, error_of(answer)[0]) == (400, "BAD_EVENT")
    assert "lines" in error_of(answer)[1]

    body = portal_body({"id": "q", "type": "order.returned", "order_id": "5", "location": "x"})
    status, answer, _ = await call(http, "POST", "/webhooks/portal", data=body,
                                   headers=signed(body))
    assert (status, error_of(answer)[0]) == (400, "UNKNOWN_LOCATION")
    assert await redis.xlen(STREAM) == 0

    body = portal_body()  # a notification with nothing for us: acknowledged, nothing recorded
    status, answer, _ = await call(http, "POST", "/webhooks/portal", data=body,
                                   headers=signed(body))
    assert (status, answer["accepted"]) == (202, 0)
    assert await redis.xlen(STREAM) == 0


# --- bearer token ------------------------------------------------------------------------------


@pytest.fixture
def token_ctx(ctx: ApiContext, monkeypatch: pytest.MonkeyPatch) -> ApiContext:
    monkeypatch.setenv(TOKEN_ENV, "s3cret-token-0123456789")
    ctx.config = msgspec.structs.replace(
        ctx.config, server=ServerConfig(host="127.0.0.1", port=0, token_env=TOKEN_ENV)
    )
    return ctx


async def test_v1_needs_the_bearer_token_when_configured(
    token_ctx: ApiContext, server: HttpServer
) -> None:
    http = aiohttp.ClientSession(base_url=server.url)  # no credential of its own
    async with http:
        await _v1_needs_the_bearer_token(http)


async def _v1_needs_the_bearer_token(http: aiohttp.ClientSession) -> None:
    status, body, headers = await call(http, "GET", "/v1/stock/TEE")
    assert (status, error_of(body)[0]) == (401, "UNAUTHORIZED")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, body, _ = await call(
        http, "GET", "/v1/stock/TEE", headers={"Authorization": "Basic czNjcmV0"}
    )
    assert (status, error_of(body)[0]) == (401, "UNAUTHORIZED")
    status, body, _ = await call(
        http, "POST", "/v1/events", json=count(id="t", on_hand=1),
        headers={"Authorization": "Bearer wrong-token"},
    )
    assert (status, error_of(body)[0]) == (403, "FORBIDDEN")
    status, body, _ = await call(
        http, "GET", "/v1/stock/TEE", headers={"Authorization": "Bearer s3cret-token-0123456789"}
    )
    assert (status, error_of(body)[0]) == (404, "UNKNOWN_SKU")  # through the door

    # Health, metrics and (signed) webhooks stay open.
    assert (await call(http, "GET", "/healthz"))[0] == 200
    assert (await call(http, "GET", "/readyz"))[0] == 200
    assert (await call(http, "GET", "/metrics"))[0] == 200
    status, _, _ = await call(http, "POST", "/webhooks/portal", data=b"{}")
    assert status == 401  # refused for its signature, not for a token


async def test_the_feed_path_needs_the_token_too(
    token_ctx: ApiContext, server: HttpServer
) -> None:
    async with aiohttp.ClientSession(base_url=server.url) as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect("/v1/feed")
    assert refused.value.status == 401


async def test_a_token_variable_that_is_not_set_refuses_everything(
    token_ctx: ApiContext, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    status, body, _ = await call(
        http, "GET", "/v1/stock/TEE", headers={"Authorization": "Bearer "}
    )
    assert (status, error_of(body)[0]) == (500, "AUTH_MISCONFIGURED")
    assert TOKEN_ENV in error_of(body)[1]


# --- store down --------------------------------------------------------------------------------


async def test_redis_down_is_503_and_readyz_says_not_ready(down_ctx: ApiContext) -> None:
    async with (
        HttpServer(build_app(down_ctx), "127.0.0.1", 0) as srv,
        aiohttp.ClientSession(base_url=srv.url, headers=client_headers(down_ctx.config)) as http,
    ):
        status, body, _ = await call(http, "POST", "/v1/events", json=count(id="d", on_hand=1))
        assert (status, error_of(body)[0]) == (503, "STORE_UNAVAILABLE")
        status, body, _ = await call(http, "GET", "/v1/stock/TEE")
        assert (status, error_of(body)[0]) == (503, "STORE_UNAVAILABLE")
        status, body, _ = await call(http, "GET", "/readyz")
        assert (status, body["ready"]) == (503, False)
        assert (await call(http, "GET", "/healthz"))[0] == 200


# --- the server --------------------------------------------------------------------------------


async def test_a_port_in_use_is_a_clear_error(ctx: ApiContext, server: HttpServer) -> None:
    with pytest.raises(ServerStartError) as failed:
        async with HttpServer(build_app(ctx), "127.0.0.1", server.port):
            pass
    assert f"127.0.0.1:{server.port}" in failed.value.message


async def test_exit_stops_listening(ctx: ApiContext) -> None:
    async with HttpServer(build_app(ctx), "127.0.0.1", 0) as srv:
        port = srv.port
        async with aiohttp.ClientSession() as http:
            assert (await call(http, "GET", f"http://127.0.0.1:{port}/healthz"))[0] == 200
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_a_token_variable_that_is_not_set_stops_the_start(
    ctx: ApiContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    ctx.config = msgspec.structs.replace(
        ctx.config, server=ServerConfig(host="127.0.0.1", port=0, token_env=TOKEN_ENV)
    )
    with pytest.raises(AuthMisconfigured) as refused:
        build_app(ctx)
    assert f"server.token_env names ${TOKEN_ENV}" in refused.value.message


async def test_an_in_flight_request_finishes_on_exit(ctx: ApiContext) -> None:
    release = asyncio.Event()

    async def slow(sku: str) -> dict[str, Any] | None:
        await release.wait()
        return {"sku": sku}

    ctx.stock_view = slow  # type: ignore[method-assign]
    async with aiohttp.ClientSession() as http:
        srv = HttpServer(build_app(ctx), "127.0.0.1", 0)
        await srv.__aenter__()
        request = asyncio.create_task(
            call(http, "GET", f"{srv.url}/v1/stock/TEE", headers=client_headers(ctx.config))
        )
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(srv.__aexit__(None, None, None))
        await asyncio.sleep(0.2)
        assert not stopping.done()
        release.set()
        status, body, _ = await request
        await stopping
    assert (status, body) == (200, {"sku": "TEE"})
