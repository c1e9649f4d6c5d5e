"""The exception routes over real loopback HTTP (uvicorn, aiohttp, a real store): a refused
push is listed, shown and resolved through ``/v1/exceptions``, with the API's error codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from starlette.applications import Starlette

from invsync.core.config import load_config
from invsync.daemon.incidents import ExceptionQueue, exception_routes
from invsync.daemon.server import HttpServer
from invsync.engine.engine import Engine
from tests.conftest import FakeClock

CONFIG = """
[[locations]]
id = "wh-east"
priority = 1

[[channels]]
id = "shop"
kind = "shopify"
"""


class Served:
    """An exception queue behind its routes, and a client for them."""

    def __init__(self, queue: ExceptionQueue, url: str, session: aiohttp.ClientSession) -> None:
        self.queue = queue
        self.url = url
        self.session = session
        self.repushed: list[tuple[str, str | None]] = []

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, json=body) as response:
            return response.status, await response.json()


@pytest.fixture
async def served(engine: Engine, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Served]:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    config = load_config(path)
    served: Served | None = None

    async def repush(channel: str, sku: str | None) -> None:
        assert served is not None
        served.repushed.append((channel, sku))

    queue = ExceptionQueue(engine, lambda: config, repush=repush, clock=clock)
    app = Starlette(routes=exception_routes(lambda: queue))
    async with HttpServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        served = Served(queue, server.url, session)
        yield served


async def test_a_refused_push_is_listed_shown_and_resolved_over_http(served: Served) -> None:
    record = await served.queue.raise_push_refused("shop", "TEE", 4, "unknown listing")

    status, body = await served.request("GET", "/v1/exceptions?kind=push_refused")
    assert status == 200, body
    (item,) = body["items"]
    assert (item["id"], item["kind"], item["channel"], item["sku"], item["state"]) == (
        record.id,
        "push_refused",
        "shop",
        "TEE",
        "open",
    )
    assert [o["action"] for o in item["options"]] == ["retry_push", "dismiss"]

    status, shown = await served.request("GET", f"/v1/exceptions/{record.id}")
    assert status == 200 and shown["details"] == {"available": 4, "reason": "unknown listing"}

    status, error = await served.request(
        "POST", f"/v1/exceptions/{record.id}/resolve", {"action": "resync"}
    )
    assert status == 400 and error["error"]["code"] == "UNKNOWN_ACTION", error

    status, done = await served.request(
        "POST", f"/v1/exceptions/{record.id}/resolve", {"action": "retry_push", "by": "ana"}
    )
    assert status == 200, done
    assert (done["state"], done["action"], done["resolved_by"]) == ("resolved", "retry_push", "ana")
    assert served.repushed == [("shop", "TEE")]
    status, body = await served.request("GET", "/v1/exceptions?kind=push_refused")
    assert status == 200 and body["items"] == []

    status, error = await served.request(
        "POST", f"/v1/exceptions/{record.id}/resolve", {"action": "dismiss"}
    )
    assert status == 409 and error["error"]["code"] == "ALREADY_RESOLVED", error
