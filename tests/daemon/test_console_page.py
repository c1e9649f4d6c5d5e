"""The live page as the operator's console, in real headless Chromium (CDP: chromium.py).

- Against a daemon scripted by the test (every answer known): channel health cards (breaker,
  queue, throttled and failed pushes, last success with its zone, the latency chart), the SKU
  drill-down (per location; per channel pushed, pending, last push time) that follows the feed,
  the recent events, an incident opened to its context and options, an action refused (the
  daemon's message shown) and one taken (two clicks; JSON with ``Content-Type:
  application/json``), and the layout on a tablet.
- Against the real ``invsync run``, signed in through the start-up link: an order for an unknown
  SKU opens an incident; it is resolved from the page (real mouse clicks) and the daemon records
  it as resolved by ``operator``, the name of the credential behind the session cookie; the
  drill-down shows the pushes the channel acknowledged and the channel's card its last success.

Screenshots go to ``test-artifacts/`` (console-*.png).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from invsync.core.config import load_config
from invsync.daemon.page import page_routes
from invsync.daemon.security import page_link
from invsync.daemon.server import HttpServer
from invsync.tests.daemon.chromium import Chromium, needs_chromium
from invsync.tests.daemon.helpers import (
    LOCATIONS,
    Api,
    Daemon,
    counted,
    server_port,
    webhook_channel,
    write_config,
)
from invsync.tests.receiver import SECRET, Receiver, until

NOW_MS = int(time.time() * 1000)
MINUTE_MS = 60_000
THIS_MINUTE = NOW_MS - NOW_MS % MINUTE_MS


def text(selector: str) -> str:
    """JS: the trimmed text of the first element ``selector`` names (null when there is none)."""
    return f"document.querySelector({json.dumps(selector)})?.textContent.trim() ?? null"


def exists(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)}) !== null"


CHANNELS = {
    "at": "2026-12-03T21:00:00.000+00:00",
    "sampled_every_s": 2.0,
    "channels": {
        "web": {
            "ready": True,
            "breaker": "closed",
            "pending": 2,
            "worker": "running",
            "restarts": 1,
            "pushes": {"ok": 120, "throttled": 4, "retryable": 1, "permanent": 2},
            "failed": 7,
            "last_success_ms": NOW_MS - 5_000,
            "last_failure_ms": NOW_MS - 60_000,
        },
        "portal": {
            "ready": True,
            "breaker": "open",
            "pending": 40,
            "worker": "running",
            "restarts": 0,
            "pushes": {"ok": 0, "throttled": 0, "retryable": 9, "permanent": 0},
            "failed": 9,
            "last_success_ms": None,
            "last_failure_ms": NOW_MS - 1_000,
        },
        "ebay": {"ready": False, "worker": "not_started", "reason": "EBAY_TOKEN is not set"},
    },
}


def point(minutes_ago: int, count: int, p50: float | None, p99: float | None) -> dict[str, Any]:
    return {
        "at_ms": THIS_MINUTE - minutes_ago * MINUTE_MS,
        "count": count,
        "p50_s": p50,
        "p99_s": p99,
        "above": False,
        "partial": minutes_ago == 0,
    }


LATENCY = {
    "minute_s": 60,
    "channels": {
        "web": [
            point(4, 30, 0.01, 0.2),
            point(3, 0, None, None),  # a quiet minute breaks the line
            point(2, 50, 0.02, 0.9),
            point(1, 40, 0.015, 0.4),
            point(0, 3, 0.012, 0.05),
        ],
        "portal": [],
    },
}

PUSHED_MS = NOW_MS - 42_000
INCIDENT = {
    "id": "ovs-0a1b2c3d4e",
    "kind": "oversold",
    "state": "open",
    "summary": "order ORD-7 on web: 2 MUG ordered, 1 available",
    "channel": "web",
    "order_id": "ORD-7",
    "sku": "MUG",
    "event_id": "ev-7",
    "details": {"pushed_to_channel": {"available": 1, "version": 3}, "at_ms": PUSHED_MS},
    "options": [
        {"action": "backorder", "effect": "mark it backordered", "possible": False,
         "why_not": "no incoming stock covers it"},
        {"action": "cancel", "effect": "cancel the order on the channel"},
        {"action": "dismiss", "effect": "close it, change nothing"},
    ],
    "created_ms": NOW_MS - 120_000,
    "updated_ms": NOW_MS - 120_000,
    "attempts": [],
}  # fmt: skip


class ScriptedDaemon:
    """The daemon's page, feed and ``/v1`` answers played by the test; it records the resolve
    requests (headers and body) the page sends."""

    def __init__(self) -> None:
        self.clients: list[WebSocket] = []
        self.subscriptions: list[Any] = []
        self.resolves: list[dict[str, Any]] = []
        self.stock_reads = 0
        self.web_available = 4
        self.listing_gate: asyncio.Event | None = None  # holds GET /v1/exceptions while unset

    async def feed(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.subscriptions.append(await websocket.receive_json())
        items = [
            {"sku": "MUG", "channel": c, "available": 4, "version": 4} for c in ("portal", "web")
        ]
        await websocket.send_json({"type": "snapshot", "items": items, "ts": NOW_MS})
        self.clients.append(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            self.clients.remove(websocket)

    async def send(self, *messages: dict[str, Any]) -> None:
        for websocket in list(self.clients):
            for message in messages:
                await websocket.send_json(message)

    async def stock(self, request: Request) -> Response:
        self.stock_reads += 1
        if request.path_params["sku"] != "MUG":
            return JSONResponse({"error": {"code": "NOT_FOUND", "message": "no such SKU"}}, 404)
        location = {"on_hand": 10, "reserved": 3, "available": 4, "safety_stock": 2,
                    "damaged": 1, "incoming": 6}  # fmt: skip
        return JSONResponse(
            {
                "sku": "MUG",
                "version": 4,
                "locations": {"wh-east": location},
                "channels": {
                    "web": {"available": self.web_available, "pushed": 4, "pushed_version": 4,
                            "pushed_ms": PUSHED_MS},
                    "portal": {"available": 4, "pushed": None, "pushed_version": None},
                },
            }
        )  # fmt: skip

    async def exceptions(self, request: Request) -> Response:
        if self.listing_gate is not None:
            await self.listing_gate.wait()
        return JSONResponse({"items": [INCIDENT]})

    async def resolve(self, request: Request) -> Response:
        body = await request.json()
        self.resolves.append(
            {
                "content_type": request.headers.get("content-type"),
                "origin": request.headers.get("origin"),
                "body": body,
            }
        )
        if body["action"] == "cancel":
            error = {"code": "ACTION_NOT_POSSIBLE", "message": "the channel refused the cancel"}
            return JSONResponse({"error": error}, 409)
        done = {**INCIDENT, "state": "resolved", "action": body["action"],
                "resolved_by": "operator", "resolved_ms": NOW_MS, "updated_ms": NOW_MS}  # fmt: skip
        return JSONResponse(done)

    async def order(self, request: Request) -> Response:
        return JSONResponse(
            {"outcome": "reserved", "state": "open", "handoff": {"wh-east": {"state": "sent"}}}
        )

    def app(self) -> Starlette:
        async def metrics(request: Request) -> Response:
            return PlainTextResponse("")

        async def channels(request: Request) -> Response:
            return JSONResponse(CHANNELS)

        async def latency(request: Request) -> Response:
            return JSONResponse(LATENCY)

        return Starlette(
            routes=[
                *page_routes(),
                WebSocketRoute("/v1/feed", self.feed),
                Route("/metrics", metrics),
                Route("/v1/channels", channels),
                Route("/v1/channels/latency", latency),
                Route("/v1/stock/{sku}", self.stock),
                Route("/v1/exceptions", self.exceptions),
                Route("/v1/exceptions/{id}/resolve", self.resolve, methods=["POST"]),
                Route("/v1/orders/{channel}/{order_id}", self.order),
            ]
        )


@needs_chromium
async def test_console_against_a_scripted_daemon(tmp_path: Path, artifacts: Path) -> None:
    daemon = ScriptedDaemon()
    async with (
        HttpServer(daemon.app(), "127.0.0.1", 0) as server,
        Chromium(tmp_path / "chromium.log") as browser,
    ):
        await browser.open(server.url + "/")
        await browser.wait_for(
            "document.querySelector('#status')?.dataset.state === 'live'", "the feed"
        )
        assert daemon.subscriptions[0]["events"] is True

        # Channel health: one card per channel, its state, queue, pushes and last success.
        await browser.wait_for(exists("#health article[data-channel='ebay']"), "the cards")
        cards = await browser.js(
            """Object.fromEntries([...document.querySelectorAll('#health article')].map((a) => [
              a.dataset.channel, {
                state: a.dataset.state,
                breaker: a.querySelector('.breaker').textContent,
                stats: Object.fromEntries([...a.querySelectorAll('.stat')].map(
                  (s) => [s.dataset.stat, s.querySelector('dd').textContent])),
                last: a.querySelector('.last time')?.textContent ?? null,
                never: a.querySelector('.last')?.textContent ?? null,
                points: a.querySelector('svg.chart')?.dataset.points ?? null,
                lines: a.querySelectorAll('svg.chart polyline').length,
                text: a.textContent,
              }]))"""
        )
        web, portal, ebay = cards["web"], cards["portal"], cards["ebay"]
        assert (web["state"], web["breaker"]) == ("ok", "healthy")
        assert web["stats"] == {
            "pending": "2", "ok": "120", "throttled": "4", "failed": "3", "restarts": "1"
        }  # fmt: skip
        assert (portal["state"], portal["breaker"]) == ("bad", "breaker open")
        assert portal["stats"]["pending"] == "40" and portal["stats"]["failed"] == "9"
        assert "never" in portal["never"]
        assert (ebay["state"], ebay["breaker"]) == ("off", "not started")
        assert "EBAY_TOKEN is not set" in ebay["text"]
        # The last success as ISO-8601 with its zone, the very instant the daemon reported.
        assert await browser.js(
            "(() => { const t = document.querySelector("
            "\"#health [data-channel='web'] .last time\").textContent;"
            " return /^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d[+-]\\d\\d:\\d\\d$/.test(t)"
            f" && Date.parse(t) === {(NOW_MS - 5_000) // 1000 * 1000}; }})()"
        )
        # The chart: 4 minutes with syncs; the quiet one breaks the lines, so the lone minute
        # before it is a dot and the 3 after it a p50 and a p99 line.
        assert web["points"] == "4" and web["lines"] == 2
        assert portal["points"] == "0"

        # The drill-down: per location and per channel, from GET /v1/stock/MUG.
        await browser.click("#rows tr[data-sku='MUG'] th.sku button")
        await browser.wait_for(exists("#detail-body tr[data-location='wh-east']"), "the SKU")
        detail = await browser.js(
            """(() => {
              const row = (sel) => Object.fromEntries([...document.querySelectorAll(sel + ' td')]
                .map((td) => [td.dataset.field, td.textContent]));
              return {
                hidden: document.querySelector('#detail').hidden,
                hash: location.hash,
                east: row("#detail-body tr[data-location='wh-east']"),
                web: row("#detail-body tr[data-channel='web']"),
                portal: row("#detail-body tr[data-channel='portal']"),
                webState: document.querySelector(
                  "#detail-body tr[data-channel='web']").dataset.state,
                incidents: document.querySelector('#detail-incidents')?.textContent ?? '',
              };
            })()"""
        )
        assert detail["hidden"] is False and detail["hash"] == "#sku=MUG"
        assert detail["east"] == {
            "on_hand": "10", "reserved": "3", "safety_stock": "2", "damaged": "1",
            "incoming": "6", "available": "4",
        }  # fmt: skip
        assert detail["webState"] == "synced" and detail["web"]["state"] == "in step"
        assert (
            detail["portal"]["pushed"] == "\u2013" and detail["portal"]["state"] == "not pushed yet"
        )
        assert await browser.js(
            "Date.parse(document.querySelector(\"#detail-body tr[data-channel='web'] "
            f"td[data-field='pushed_at'] time\").textContent) === {PUSHED_MS // 1000 * 1000}"
        )
        assert "oversold on web" in detail["incidents"]  # the SKU's open incident, linked

        # The feed: an accepted request and the change it made; the drill-down follows.
        daemon.web_available = 3
        await daemon.send(
            {"type": "event", "source": "http", "count": 1, "ts": NOW_MS,
             "events": [{"id": "ev-9", "event_type": "stock.adjusted", "skus": ["MUG"],
                         "more_skus": 0, "channel": None, "order_id": None}]},
            {"type": "availability", "sku": "MUG", "channel": "web", "available": 3,
             "version": 5, "ts": NOW_MS},
            {"type": "availability", "sku": "MUG", "channel": "portal", "available": 3,
             "version": 5, "ts": NOW_MS},
        )  # fmt: skip
        await browser.wait_for(
            "document.querySelector(\"#detail-body tr[data-channel='web'] "
            "td[data-field='state']\")?.textContent === 'pending (3 to send)'",
            "the drill-down reloaded after the change",
        )
        events = await browser.js(
            "[...document.querySelectorAll('#events li')].map((li) => "
            "({kind: li.dataset.kind, text: li.textContent}))"
        )
        assert [e["kind"] for e in events] == ["availability", "event"]
        assert "MUG" in events[0]["text"] and "web 3" in events[0]["text"]
        assert "portal 3" in events[0]["text"] and "v5" in events[0]["text"]
        assert "stock.adjusted" in events[1]["text"] and "via http" in events[1]["text"]
        await browser.screenshot(artifacts / "console-drilldown.png")

        # The incident: opened from the drill-down's link, with its context, order and options.
        await browser.click("#detail-incidents button.link")
        item = f"#exceptions li[data-id='{INCIDENT['id']}']"
        await browser.wait_for(exists(f"{item} .detail .handoff"), "the incident's detail")
        shown = await browser.js(
            f"""(() => {{
              const li = document.querySelector("{item}");
              return {{
                context: li.querySelector('.context').textContent,
                order: li.querySelector('.order').textContent,
                actions: [...li.querySelectorAll('button.action')].map(
                  (b) => [b.dataset.action, b.disabled]),
                why: li.querySelector('.why-not')?.textContent ?? '',
              }};
            }})()"""
        )
        assert "pushed to channel" in shown["context"] and '"available":1' in shown["context"]
        assert "order reserved" in shown["order"] and "wh-east sent" in shown["order"]
        assert shown["actions"] == [["backorder", True], ["cancel", False], ["dismiss", False]]
        assert "no incoming stock" in shown["why"]
        await browser.screenshot(artifacts / "console-incident-open.png")

        # An action the daemon refuses: two clicks, and its message is shown.
        await browser.click(f"{item} button[data-action='cancel']")
        assert await browser.js(text(f"{item} button[data-action='cancel']")) == "confirm cancel"
        assert daemon.resolves == []  # the first click only arms it
        await browser.click(f"{item} button[data-action='cancel']")
        await browser.wait_for(
            f"document.querySelector(\"{item} .result\")?.dataset.outcome === 'error'",
            "the refusal",
        )
        assert "ACTION_NOT_POSSIBLE: the channel refused the cancel" == await browser.js(
            text(f"{item} .result")
        )

        # Dismiss with a note: the page posts JSON, same origin, and shows the outcome.
        await browser.type_into(f"{item} input.note", "counted again, fine")
        await browser.click(f"{item} button[data-action='dismiss']")
        await browser.click(f"{item} button[data-action='dismiss']")
        await browser.wait_for(
            f"document.querySelector(\"{item} .result\")?.dataset.outcome === 'resolved'",
            "the resolution",
        )
        assert await browser.js(text(f"{item} .result")) == "resolved: dismiss by operator"
        assert await browser.js(text("#exceptions-count")) == "0"
        assert daemon.resolves[-1] == {
            "content_type": "application/json",
            "origin": server.url,
            "body": {"action": "dismiss", "note": "counted again, fine"},
        }
        await browser.screenshot(artifacts / "console-incident.png")

        # On a tablet: one column, the stock first, the panels below it; nothing wider.
        await browser.viewport(820, 1180, mobile=True)
        layout = await browser.wait_for(
            """(() => {
              const box = (s) => document.querySelector(s).getBoundingClientRect();
              const stock = box('.stock'), side = box('.side');
              return side.top >= stock.bottom - 1 && {
                width: document.documentElement.scrollWidth,
                inner: window.innerWidth,
              };
            })()""",
            "the one-column layout",
        )
        assert layout["width"] <= layout["inner"]
        await browser.screenshot(artifacts / "console-tablet.png")
        assert browser.exceptions == []


@needs_chromium
async def test_a_listing_older_than_the_feed_does_not_hide_its_records(tmp_path: Path) -> None:
    daemon = ScriptedDaemon()
    gate = daemon.listing_gate = asyncio.Event()
    async with (
        HttpServer(daemon.app(), "127.0.0.1", 0) as server,
        Chromium(tmp_path / "chromium.log") as browser,
    ):
        await browser.open(server.url + "/")
        await browser.wait_for(
            "document.querySelector('#status')?.dataset.state === 'live'", "the feed"
        )
        # The page's GET /v1/exceptions is held; meanwhile the feed opens an incident...
        fresh = {**INCIDENT, "id": "unk-fresh", "kind": "unknown_sku", "sku": "NEW"}
        await daemon.send({"type": "exception", **fresh})
        await browser.wait_for(exists("#exceptions li[data-id='unk-fresh']"), "the feed's record")
        # ... and the listing, read before it, arrives after it: both are listed.
        gate.set()
        await browser.wait_for(
            exists(f"#exceptions li[data-id='{INCIDENT['id']}']"), "the listing's record"
        )
        assert await browser.js(exists("#exceptions li[data-id='unk-fresh']"))
        assert await browser.js(text("#exceptions-count")) == "2"
        assert browser.exceptions == []


# --- against the real daemon --------------------------------------------------------------------

SECRET_ENV = "INVSYNC_CONSOLE_SECRET"


@needs_chromium
async def test_resolving_an_incident_from_the_page(tmp_path: Path, artifacts: Path) -> None:
    async with Receiver() as portal:
        config = write_config(
            tmp_path, LOCATIONS + webhook_channel("portal", portal.url, SECRET_ENV)
        )
        with Daemon(config, env={SECRET_ENV: SECRET}) as daemon:
            await daemon.await_event("started", timeout=30)
            async with Api(config) as api, Chromium(tmp_path / "chromium.log") as browser:
                await api.post_events([counted("con-1", "TEE-CON", "wh-east", 12)], wait=5)
                await until(lambda: "TEE-CON" in portal.latest, timeout=10)

                await browser.open(page_link(load_config(config), server_port(config)))
                await browser.wait_for(
                    "document.querySelector('#status')?.dataset.state === 'live'", "the feed"
                )
                # An order for a SKU never stocked: an unknown_sku incident, on the page live.
                order = {
                    "id": "con-ord-1",
                    "type": "order.created",
                    "channel": "portal",
                    "order_id": "ORD-CON-1",
                    "lines": [{"sku": "NEVER-STOCKED", "qty": 1}],
                }
                await api.post_events([order], wait=5)
                status, listing = await api.request("GET", "/v1/exceptions?kind=unknown_sku")
                assert status == 200 and len(listing["items"]) == 1
                record = listing["items"][0]
                item = f"#exceptions li[data-id='{record['id']}']"
                await browser.wait_for(exists(item), "the incident in the list", 15)
                await browser.wait_for(
                    "[...document.querySelectorAll('#events li[data-kind=event]')]"
                    ".some((li) => li.textContent.includes('order.created'))",
                    "the accepted order in the recent events",
                )

                await browser.click(f"{item} button.head")
                await browser.wait_for(
                    exists(f"{item} button[data-action='dismiss']"), "its options"
                )
                await browser.click(f"{item} button[data-action='dismiss']")
                await browser.click(f"{item} button[data-action='dismiss']")
                await browser.wait_for(
                    f"document.querySelector(\"{item} .result\")?.dataset.outcome === 'resolved'",
                    "the resolution",
                    15,
                )
                status, after = await api.request("GET", f"/v1/exceptions/{record['id']}")
                assert status == 200
                assert after["state"] == "resolved" and after["action"] == "dismiss"
                assert after["resolved_by"] == "operator"  # the cookie's credential

                # The drill-down of the stocked SKU: pushed, in step, acknowledged when.
                await browser.click("#rows tr[data-sku='TEE-CON'] th.sku button")
                await browser.wait_for(
                    "document.querySelector(\"#detail-body tr[data-channel='portal'] "
                    "td[data-field='state']\")?.textContent === 'in step'",
                    "the SKU's pushes",
                )
                view = await api.stock("TEE-CON")
                assert view is not None
                assert await browser.js(
                    "Date.parse(document.querySelector(\"#detail-body tr[data-channel='portal'] "
                    "td[data-field='pushed_at'] time\").textContent) === "
                    f"{view['channels']['portal']['pushed_ms'] // 1000 * 1000}"
                )
                # The channel's card: an acknowledged push, a last success.
                await browser.wait_for(
                    exists("#health article[data-channel='portal'] .last time"),
                    "the portal's last success",
                    15,
                )
                pushed = await browser.js(
                    text("#health article[data-channel='portal'] .stat[data-stat='ok'] dd")
                )
                assert int(pushed) >= 1
                await browser.screenshot(artifacts / "console-live.png")
                assert browser.exceptions == []
            assert await daemon.astop() == 0
