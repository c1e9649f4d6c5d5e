"""The exception routes over real loopback HTTP (uvicorn, aiohttp, a real store): a refused
push is listed, shown and resolved through ``/v1/exceptions``, with the API's error codes, behind
the API's guard (daemon/security.py): who resolves is the name of the caller's token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware

from invsync.core.config import load_config
from invsync.daemon.incidents import ExceptionQueue, exception_routes
from invsync.daemon.security import ApiGuard, client_token
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

[server]
tokens = { ana = "TEST_ROUTES_ANA_TOKEN" }
"""
ANA_TOKEN = "ana-s-own-token-0123456789"


class Served:
    """An exception queue behind its routes, and a client for them."""

    def __init__(
        self, queue: ExceptionQueue, url: str, session: aiohttp.ClientSession, token: str
    ) -> None:
        self.queue = queue
        self.url = url
        self.session = session
        self.token = token  # the main ("operator") token, generated in the data directory
        self.repushed: list[tuple[str, str | None]] = []

    async def request(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        """With ``token`` (default: ana's, a named token) as the bearer."""
        headers = {"Authorization": f"Bearer {token or ANA_TOKEN}"}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json()


@pytest.fixture
async def served(
    engine: Engine, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Served]:
    monkeypatch.setenv("TEST_ROUTES_ANA_TOKEN", ANA_TOKEN)
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    config = load_config(path)
    served: Served | None = None

    async def repush(channel: str, sku: str | None) -> None:
        assert served is not None
        served.repushed.append((channel, sku))

    queue = ExceptionQueue(engine, lambda: config, repush=repush, clock=clock)
    ApiGuard.check_config(config)  # generates the main token, as the daemon's start does
    token = client_token(config)
    assert token is not None
    app = Starlette(
        routes=exception_routes(lambda: queue),
        middleware=[Middleware(ApiGuard, config=lambda: config)],
    )
    async with HttpServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        served = Served(queue, server.url, session, token)
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


async def test_who_resolves_is_the_token_s_name_not_the_body_s(served: Served) -> None:
    record = await served.queue.raise_push_refused("shop", "TEE", 4, "unknown listing")
    path = f"/v1/exceptions/{record.id}/resolve"

    # The operator's token claiming to be someone else: refused, nothing done.
    status, error = await served.request(
        "POST", path, {"action": "retry_push", "by": "mallory"}, token=served.token
    )
    assert status == 403 and error["error"]["code"] == "BY_MISMATCH", error
    assert "'operator'" in error["error"]["message"]
    assert (await served.queue.get(record.id)).state == "open"
    assert served.repushed == []

    # Without a name, the record says whose token acted.
    status, done = await served.request("POST", path, {"action": "retry_push"}, token=served.token)
    assert status == 200, done
    assert (done["state"], done["resolved_by"]) == ("resolved", "operator")

    status, error = await served.request("GET", "/v1/exceptions", token="not-a-token-of-ours")
    assert status == 403 and error["error"]["code"] == "FORBIDDEN"
