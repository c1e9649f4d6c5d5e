"""``Intake.append``: one script call records a request's events in order, with their source,
and keeps working after the store lost its scripts; the daemon's HTTP server parses requests
with httptools (issue 14)."""

from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from invsync.core.events import StockCounted, decode_event
from invsync.daemon.intake import Intake
from invsync.daemon.server import HttpServer, http_protocol


def _counts(n: int, tag: str) -> list[StockCounted]:
    return [
        StockCounted(id=f"{tag}-{i}", sku=f"SKU-{i}", location="wh-1", on_hand=i)
        for i in range(n)
    ]


async def test_a_request_is_recorded_in_order_with_its_source(redis: aioredis.Redis) -> None:
    intake = Intake(redis, stream="intake:{test}")
    first = await intake.append(_counts(3, "a"), source="http")
    second = await intake.append(_counts(2, "b"), source="mqtt")
    assert await intake.append([], source="http") == []
    rows = await redis.xrange("intake:{test}")
    assert [r[0].decode() for r in rows] == first + second  # the ids returned, in order
    assert [(decode_event(f[b"e"]).id, f[b"src"]) for _, f in rows] == [
        ("a-0", b"http"), ("a-1", b"http"), ("a-2", b"http"), ("b-0", b"mqtt"), ("b-1", b"mqtt")
    ]
    assert first == sorted(first) and first[-1] < second[0]


async def test_append_survives_the_store_losing_its_scripts(redis: aioredis.Redis) -> None:
    intake = Intake(redis, stream="intake:{test}")
    await intake.append(_counts(1, "a"), source="http")
    await redis.script_flush()  # a restart without persistence, or an operator's SCRIPT FLUSH
    ids = await intake.append(_counts(2, "b"), source="http")
    assert len(ids) == 2
    assert await redis.xlen("intake:{test}") == 3


async def test_the_server_parses_http_with_httptools() -> None:
    assert http_protocol() == "httptools"

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{request.method} {await request.body()!r}")

    app = Starlette(routes=[Route("/x", hello, methods=["POST"])])
    async with HttpServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as http:
        # The protocol uvicorn actually loaded for this server.
        assert server._config.http_protocol_class.__name__ == "HttpToolsProtocol"
        async with http.post(f"{server.url}/x", data=b"body") as resp:
            assert resp.status == 200
            assert await resp.text() == "POST b'body'"
