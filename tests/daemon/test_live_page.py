"""The live page (``GET /``) in real headless Chromium, driven over the DevTools protocol
(tests/daemon/chromium.py); its console panels (channel health, SKU drill-down, incidents
resolved from the page, recent events) are tested in test_console_page.py.

Four layers:

- the package serves the page's files (no browser: content types, ETag, unknown names, packaged);
- the page against a feed scripted by the test, in this process: snapshot, deltas, stale
  versions ignored, new SKUs, exceptions, filter, latency from a known histogram, reconnect with
  resubscribe, resync, and signing in with the token (a session cookie the script cannot read);
- the page against the real ``invsync run`` with three webhook channels, opened through the
  sign-in link the daemon prints: after a stock change through ``POST /v1/events`` the DOM shows
  the new availability for every channel (screenshot in ``test-artifacts/live-page.png``);
- a hostile page on another site, in the same signed-in browser, can neither change nor read
  stock, nor open the feed; nor can a DNS-rebound name reach the daemon.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from invsync.core.config import Config, ServerConfig, load_config
from invsync.daemon.context import DaemonContext
from invsync.daemon.http import build_app
from invsync.daemon.page import STATIC, load_assets, page_routes
from invsync.daemon.security import page_link
from invsync.daemon.server import HttpServer
from invsync.tests.daemon.chromium import Chromium as BaseChromium
from invsync.tests.daemon.chromium import needs_chromium
from invsync.tests.daemon.helpers import (
    LOCATIONS,
    Api,
    Daemon,
    api_token,
    base_url,
    counted,
    server_port,
    webhook_channel,
    write_config,
)
from invsync.tests.receiver import SECRET, Receiver, until

# --- reading the page (the DOM is the contract the tests check) ---------------------------------

#: What the page shows: {"status", "rows": {sku: {channel: text}}, "hidden": [...], ...}.
STATE = """(() => {
  const rows = {};
  for (const tr of document.querySelectorAll("#rows tr")) {
    const cells = [...tr.querySelectorAll("td[data-channel]")];
    rows[tr.dataset.sku] = Object.fromEntries(
      cells.map((td) => [td.dataset.channel, td.textContent]));
  }
  return {
    status: document.querySelector("#status")?.dataset.state,
    statusText: document.querySelector("#status-text")?.textContent,
    order: [...document.querySelectorAll("#rows tr")].map((tr) => tr.dataset.sku),
    rows,
    hidden: [...document.querySelectorAll("#rows tr[hidden]")].map((tr) => tr.dataset.sku),
    exceptions: [...document.querySelectorAll("#exceptions li")].map((li) => li.dataset.id),
    latency: Object.fromEntries([...document.querySelectorAll("#latency-row td")].map(
      (td) => [td.dataset.channel, td.textContent])),
    latencyLabel: document.querySelector("#latency-label")?.textContent,
    auth: document.querySelector("#auth") ? !document.querySelector("#auth").hidden : null,
  };
})()"""


class Chromium(BaseChromium):
    """The harness, reporting what the page shows when a wait times out."""

    describe = STATE


#: What a cell without a value for its channel shows (an en dash).
NO_VALUE = "\u2013"


def cell(sku: str, channel: str) -> str:
    """JS: the text of one availability cell (null while it is not there)."""
    return (
        f"document.querySelector('#rows tr[data-sku={json.dumps(sku)}] "
        f"td[data-channel={json.dumps(channel)}]')?.textContent ?? null"
    )


def shows(expected: dict[str, dict[str, int]]) -> str:
    """JS: true once every (sku, channel) cell of ``expected`` shows its value."""
    checks = [
        f"({cell(sku, channel)}) === {json.dumps(str(value))}"
        for sku, channels in expected.items()
        for channel, value in channels.items()
    ]
    return " && ".join(checks)


def live() -> str:
    return "document.querySelector('#status')?.dataset.state === 'live'"


# --- the package serves the page --------------------------------------------------------------


def test_static_files_ship_in_the_package() -> None:
    folder = resources.files("invsync.daemon").joinpath("static")
    for name in STATIC:
        assert folder.joinpath(name).is_file(), f"daemon/static/{name} is missing"
    assert set(load_assets()) == set(STATIC)


PAGE_TOKEN = "t0ken-of-the-page-test"


@pytest.fixture
async def page_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HttpServer]:
    """``build_app`` with the page routes, with a bearer token configured for ``/v1``."""
    monkeypatch.setenv("INVSYNC_TEST_PAGE_TOKEN", PAGE_TOKEN)
    ctx = SimpleNamespace(config=Config(server=ServerConfig(token_env="INVSYNC_TEST_PAGE_TOKEN")))
    app = build_app(cast(DaemonContext, ctx), routes=page_routes())
    async with HttpServer(app, "127.0.0.1", 0) as server:
        yield server


async def test_page_routes_serve_the_page_and_its_files(page_server: HttpServer) -> None:
    async with aiohttp.ClientSession(base_url=page_server.url) as http:
        async with http.get("/") as resp:
            body = await resp.text()
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "static/app.js" in body and "static/style.css" in body
            assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
            etag = resp.headers["ETag"]
        async with http.get("/", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
        for name, media_type in STATIC.items():
            async with http.get(f"/static/{name}") as resp:
                assert resp.status == 200, name
                assert resp.headers["Content-Type"] == media_type
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get("/static/..%2Fpage.py") as resp:  # only the listed files
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "NOT_FOUND"
        async with http.get("/static/nope.js") as resp:
            assert resp.status == 404
        async with http.post("/") as resp:
            assert resp.status == 405


# --- the page against a scripted feed ---------------------------------------------------------


class ScriptedFeed:
    """``WS /v1/feed``, ``GET /metrics`` and ``GET /v1/exceptions`` played by the test.

    Each subscriber gets ``items`` as its snapshot; ``send`` reaches every connected client,
    ``drop`` closes them all (the page must reconnect and resubscribe).
    """

    def __init__(self, items: list[dict[str, Any]], metrics: str) -> None:
        self.items = items
        self.metrics = metrics
        self.subscriptions: list[Any] = []
        self.clients: list[WebSocket] = []

    async def feed(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.subscriptions.append(await websocket.receive_json())
        await websocket.send_json(self.snapshot())
        self.clients.append(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            self.clients.remove(websocket)

    def snapshot(self) -> dict[str, Any]:
        return {"type": "snapshot", "items": self.items, "ts": time.time()}

    async def send(self, *messages: dict[str, Any]) -> None:
        for websocket in list(self.clients):
            for message in messages:
                await websocket.send_json(message)

    async def drop(self) -> None:
        for websocket in list(self.clients):
            await websocket.close(code=1012)  # service restart

    async def get_metrics(self, request: Request) -> Response:
        return PlainTextResponse(self.metrics)

    async def get_exceptions(self, request: Request) -> Response:
        return JSONResponse({"error": {"code": "NOT_FOUND", "message": "not built"}}, 404)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                *page_routes(),
                WebSocketRoute("/v1/feed", self.feed),
                Route("/metrics", self.get_metrics),
                Route("/v1/exceptions", self.get_exceptions),
            ]
        )


def item(sku: str, channel: str, available: int, version: int) -> dict[str, Any]:
    return {"sku": sku, "channel": channel, "available": available, "version": version}


def delta(sku: str, channel: str, available: int, version: int) -> dict[str, Any]:
    return {"type": "availability", **item(sku, channel, available, version), "ts": time.time()}


def histogram(buckets: dict[str, list[tuple[str, int]]]) -> str:
    """A Prometheus exposition of ``invsync_sync_latency_seconds`` (channel -> (le, count))."""
    lines = ["# TYPE invsync_sync_latency_seconds histogram"]
    for channel, rows in buckets.items():
        for le, count in rows:
            lines.append(
                f'invsync_sync_latency_seconds_bucket{{channel="{channel}",le="{le}"}} {count}.0'
            )
        lines.append(f'invsync_sync_latency_seconds_count{{channel="{channel}"}} {rows[-1][1]}.0')
    return "\n".join(lines) + "\n"


#: web: 50 syncs within 10 ms, 40 more within 100 ms, 10 more within 1 s -> p50 10 ms, p99 910 ms.
METRICS = histogram(
    {
        "web": [("0.001", 0), ("0.01", 50), ("0.1", 90), ("1.0", 100), ("+Inf", 100)],
        "portal": [("0.001", 0), ("0.01", 0), ("0.1", 0), ("1.0", 0), ("+Inf", 0)],
    }
)


@needs_chromium
async def test_page_follows_a_scripted_feed(tmp_path: Path, artifacts: Path) -> None:
    feed = ScriptedFeed(
        [
            item("TEE-BLK-M", "web", 10, 3),
            item("TEE-BLK-M", "portal", 8, 3),
            item("MUG", "web", 4, 1),
            item("MUG", "portal", 0, 1),
        ],
        METRICS,
    )
    async with (
        HttpServer(feed.app(), "127.0.0.1", 0) as server,
        Chromium(tmp_path / "chromium.log") as browser,
    ):
        await browser.open(server.url + "/")
        await browser.wait_for(live(), "the snapshot")
        assert feed.subscriptions == [
            {"op": "subscribe", "skus": [], "channels": [], "events": True}
        ]
        page = await browser.js(STATE)
        assert page["order"] == ["MUG", "TEE-BLK-M"]
        assert page["rows"]["TEE-BLK-M"] == {"portal": "8", "web": "10"}
        assert page["rows"]["MUG"] == {"portal": "0", "web": "4"}

        # A delta updates its cell and flashes it; an older version is ignored.
        await feed.send(delta("TEE-BLK-M", "web", 7, 5))
        await browser.wait_for(shows({"TEE-BLK-M": {"web": 7}}), "the delta")
        flashing = await browser.js(
            'document.querySelector(\'tr[data-sku="TEE-BLK-M"] td[data-channel="web"]\')'
            ".classList.contains('flash')"
        )
        assert flashing
        await feed.send(delta("TEE-BLK-M", "web", 99, 4), delta("MUG", "web", 3, 2))
        await browser.wait_for(shows({"MUG": {"web": 3}}), "the delta after the stale one")
        assert (await browser.js(cell("TEE-BLK-M", "web"))) == "7"

        # A SKU first seen in a delta gets a row in sorted place.
        await feed.send(delta("CAP", "portal", 5, 1))
        await browser.wait_for(shows({"CAP": {"portal": 5}}), "the new SKU's row")
        page = await browser.js(STATE)
        assert page["order"] == ["CAP", "MUG", "TEE-BLK-M"]
        assert page["rows"]["CAP"] == {"portal": "5", "web": NO_VALUE}

        # Exceptions: open records listed, a resolved one leaves the list.
        # x2 comes first, so "only x1 listed" can only be the state after x2's resolution
        # (before it the list reads x2, then x2 and x1): no race with the page's rendering.
        await feed.send(
            {"type": "exception", "id": "x2", "kind": "unknown_sku", "sku": "ZZZ"},
            {"type": "exception", "id": "x1", "kind": "oversold", "sku": "MUG", "channel": "web",
             "message": "2 ordered, 1 available"},
            {"type": "exception", "id": "x2", "kind": "unknown_sku", "status": "resolved"},
        )  # fmt: skip
        await browser.wait_for(
            "document.querySelectorAll('#exceptions li').length === 1 && "
            "document.querySelector('#exceptions-count').textContent === '1' && "
            "!document.querySelector('#exceptions').textContent.includes('ZZZ')",
            "the open exception",
        )
        assert (await browser.js(STATE))["exceptions"] == ["x1"]

        # Sync latency from the histogram (what histogram_quantile would say).
        await browser.wait_for(
            "document.querySelector('#latency-row td[data-channel=\"web\"]')?.textContent"
            " === '10 ms / 910 ms'",
            "the latency estimate",
        )
        page = await browser.js(STATE)
        assert page["latency"]["portal"] == "idle"
        assert "since daemon start" in page["latencyLabel"]

        # The filter hides rows client-side by SKU substring, case-insensitively.
        await browser.js(
            "(() => { const f = document.querySelector('#filter'); f.value = 'tee';"
            " f.dispatchEvent(new Event('input')); })()"
        )
        assert (await browser.js(STATE))["hidden"] == ["CAP", "MUG"]
        assert (await browser.js("document.querySelector('#counts').textContent")) == (
            "1 of 3 SKUs"
        )
        await browser.screenshot(artifacts / "live-page-scripted.png")
        await browser.js(
            "(() => { const f = document.querySelector('#filter'); f.value = '';"
            " f.dispatchEvent(new Event('input')); })()"
        )

        # The connection drops: the page reconnects, resubscribes, and the snapshot replaces all.
        feed.items = [item("TEE-BLK-M", "web", 5, 9), item("TEE-BLK-M", "portal", 4, 9)]
        await feed.drop()
        await browser.wait_for(
            "document.querySelector('#status').dataset.state !== 'live'", "the lost connection"
        )
        await browser.wait_for(
            f"{live()} && document.querySelectorAll('#rows tr').length === 1",
            "the snapshot after reconnecting",
        )
        assert len(feed.subscriptions) == 2
        assert (await browser.js(STATE))["rows"] == {"TEE-BLK-M": {"portal": "4", "web": "5"}}

        # A resync: the next snapshot replaces state, even with versions older than shown.
        await feed.send(
            {"type": "resync", "reason": "slow consumer"},
            {"type": "snapshot", "items": [item("MUG", "web", 1, 2)], "ts": time.time()},
        )
        await browser.wait_for(shows({"MUG": {"web": 1}}), "the resync snapshot")
        assert (await browser.js(STATE))["order"] == ["MUG"]
        await feed.send({"type": "heartbeat", "ts": time.time()})
        assert (await browser.js(STATE))["status"] == "live"

        assert browser.exceptions == []
        assert not [line for line in browser.console if "Content Security Policy" in line]


@needs_chromium
async def test_page_signs_in_with_the_token_and_keeps_only_a_cookie(
    page_server: HttpServer, tmp_path: Path
) -> None:
    async with Chromium(tmp_path / "chromium.log") as browser:
        await browser.open(page_server.url + "/")
        page = await browser.wait_for(
            f"({STATE}).auth && ({STATE})", "the sign-in notice (the feed is refused without it)"
        )
        assert page["status"] != "live"
        text = await browser.js("document.querySelector('#auth').textContent")
        assert "Not signed in" in text and "api-token" in text
        # The form trades the token for the session cookie (GET /v1/exceptions is then a 404:
        # this app has no exception routes, but the request got through the guard).
        await browser.js(
            f"(() => {{ document.querySelector('#auth-token').value = '{PAGE_TOKEN}';"
            " document.querySelector('#auth-form').requestSubmit(); })()"
        )
        await browser.wait_for(
            "location.search === '' && document.querySelector('#auth')?.hidden === true",
            "the clean URL, signed in",
        )
        # The cookie is HttpOnly (no script reads it) and nothing of the token stays in the page.
        assert await browser.js("document.cookie") == ""
        assert await browser.js("sessionStorage.length + localStorage.length") == 0
        assert PAGE_TOKEN not in await browser.js("document.documentElement.outerHTML")
        assert browser.exceptions == []


# --- the page against the real daemon ---------------------------------------------------------

SKU = "TEE-LIVE"
SECRET_ENV = "INVSYNC_LIVE_PAGE_SECRET"


async def _serves_page_and_feed(url: str, token: str) -> str | None:
    """Why the daemon at ``url`` cannot be tested yet (None: it serves both)."""
    async with aiohttp.ClientSession() as http, http.get(url + "/") as resp:
        if resp.status == 404:
            return "daemon does not serve the live page yet"
    try:
        async with connect(
            url.replace("http://", "ws://") + "/v1/feed",
            open_timeout=5,
            additional_headers={"Authorization": f"Bearer {token}"},
        ):
            pass
    except InvalidStatus as exc:
        if exc.response.status_code == 404:
            return "daemon does not serve the feed (/v1/feed) yet"
        raise
    return None


@needs_chromium
async def test_page_shows_a_stock_change_on_every_channel(tmp_path: Path, artifacts: Path) -> None:
    async with Receiver() as portal, Receiver() as wholesale, Receiver() as outlet:
        text = LOCATIONS
        text += webhook_channel("portal", portal.url, SECRET_ENV)
        text += webhook_channel("wholesale", wholesale.url, SECRET_ENV, buffer=2)
        text += webhook_channel("outlet", outlet.url, SECRET_ENV, percent=50)
        config = write_config(tmp_path, text)
        url = base_url(config)
        with Daemon(config, env={SECRET_ENV: SECRET}) as daemon:
            await daemon.await_event("started", timeout=30)
            reason = await _serves_page_and_feed(url, api_token(config))
            if reason is not None:
                pytest.skip(reason)
            async with Api(config) as api:
                await api.post_events([counted("live-1", SKU, "wh-east", 20)], wait=5)
                before = await api.stock(SKU)
                assert before is not None
                receivers = (portal, wholesale, outlet)
                await until(lambda: all(SKU in r.latest for r in receivers), timeout=10)

                async with Chromium(tmp_path / "chromium.log") as browser:
                    # The sign-in link, as `invsync run` prints it in a terminal.
                    await browser.open(page_link(load_config(config), server_port(config)))
                    shown = {c: v["available"] for c, v in before["channels"].items()}
                    assert set(shown) == {"portal", "wholesale", "outlet"}
                    await browser.wait_for(
                        f"{live()} && {shows({SKU: shown})}", "the snapshot's availability"
                    )

                    await api.post_events([counted("live-2", SKU, "wh-east", 7)], wait=5)
                    after = await api.stock(SKU)
                    assert after is not None
                    expected = {c: v["available"] for c, v in after["channels"].items()}
                    assert expected == {"portal": 7, "wholesale": 5, "outlet": 3}
                    assert all(expected[c] != shown[c] for c in expected)
                    await browser.wait_for(
                        shows({SKU: expected}), "the new availability on every channel", 10
                    )
                    # The pushes were acknowledged, so every channel has a latency estimate
                    # (the page reads /metrics every 10 s).
                    await browser.wait_for(
                        "[...document.querySelectorAll('#latency-row td[data-channel]')]"
                        ".every((td) => Number(td.dataset.count) > 0)",
                        "a sync latency for every channel",
                        15,
                    )
                    await browser.screenshot(artifacts / "live-page.png")
                    assert browser.exceptions == []
            assert await daemon.astop() == 0


# --- a hostile page in the same browser ---------------------------------------------------------

#: Served from another site (evil.example) while the browser is signed in to the daemon: it tries
#: to zero the stock (a text/plain POST needs no CORS pre-flight), to read it, and to open the
#: feed, and reports what happened in ``window.results``.
HOSTILE = """<!doctype html><title>cat pictures</title><script>
window.results = {};
(async () => {
  const daemon = "%(daemon)s";
  const zero = JSON.stringify([{id: "evil-1", type: "stock.counted", sku: "%(sku)s",
                                location: "wh-east", on_hand: 0}]);
  try {
    const r = await fetch(daemon + "/v1/events", {method: "POST", mode: "no-cors",
      credentials: "include", headers: {"Content-Type": "text/plain"}, body: zero});
    results.post = r.type;
  } catch (e) { results.post = "error"; }
  try {
    const r = await fetch(daemon + "/v1/stock/%(sku)s", {credentials: "include"});
    results.read = await r.text();
  } catch (e) { results.read = "blocked"; }
  await new Promise((done) => {
    const ws = new WebSocket(daemon.replace("http", "ws") + "/v1/feed");
    ws.onopen = () => ws.send(JSON.stringify({op: "subscribe"}));
    ws.onmessage = (e) => { results.feed = String(e.data); };
    ws.onclose = (e) => { results.feedClosed = e.code; done(); };
  });
  results.done = true;
})();
</script>"""


@needs_chromium
async def test_a_foreign_page_cannot_read_or_change_anything(tmp_path: Path) -> None:
    config = write_config(tmp_path, LOCATIONS)
    url = base_url(config)
    port = server_port(config)
    hostile = Starlette(
        routes=[
            Route(
                "/",
                lambda request: Response(
                    HOSTILE % {"daemon": url, "sku": SKU}, media_type="text/html"
                ),
            )
        ]
    )
    rules = "--host-resolver-rules=MAP evil.example 127.0.0.1"
    with Daemon(config) as daemon:
        await daemon.await_event("started", timeout=30)
        async with (
            Api(config) as api,
            HttpServer(hostile, "127.0.0.1", 0) as evil,
            Chromium(tmp_path / "chromium.log", flags=(rules,)) as browser,
        ):
            await api.post_events([counted("seed-1", SKU, "wh-east", 20)], wait=5)
            # Signed in: the browser holds the daemon's session cookie.
            await browser.open(page_link(load_config(config), port))
            await browser.wait_for(live(), "the signed-in page's feed")

            await browser.open(f"http://evil.example:{evil.port}/")
            results = await browser.wait_for(
                "window.results?.done && window.results", "the hostile page's attempts", 15
            )
            assert results["read"] == "blocked"  # no CORS answer: the script reads nothing
            assert "feed" not in results  # the handshake was refused: no snapshot
            # The intake is in order: had the POST been recorded, it would be applied by now.
            await api.post_events([counted("after-1", "OTHER", "wh-east", 1)], wait=5)
            view = await api.stock(SKU)
            assert view is not None and view["locations"]["wh-east"]["on_hand"] == 20

            # DNS rebinding: the hostile name now resolves to the daemon itself.
            await browser.open(f"http://evil.example:{port}/v1/stock/{SKU}")
            body = await browser.js("document.body.innerText")
            assert "HOST_NOT_ALLOWED" in body and "20" not in body
        assert await daemon.astop() == 0
