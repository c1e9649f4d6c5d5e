"""A simulated warehouse (a 3PL's WMS) for ``kind = "webhook"`` fulfillment locations.

It takes invsync's handoff messages as a real WMS endpoint would: it checks the HMAC-SHA256
signature of the raw body (``X-Invsync-Signature``, hex) with the location's secret and answers
401 to a bad one, 400 to a body it cannot read, and 202 to a message it took; a message id seen
before is answered 202 again and not applied twice (at-least-once delivery). A requested part is
picked after ``pick_s`` seconds (with some jitter) and its shipment reported back, signed, to
``{daemon}/fulfillment/{location}`` as ``fulfillment.shipped``; units cancelled before the pick
are not shipped. It knows only core (it reads the messages' JSON, never the daemon's code).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["SimWarehouse"]

log = structlog.get_logger("invsync.simulator.warehouse")

SIGNATURE_HEADER = "X-Invsync-Signature"
MAX_BODY = 256 * 1024


def _signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class _Part:
    channel: str
    order_id: str
    lines: dict[str, int] = field(default_factory=dict)
    due: float = 0.0
    shipments: int = 0


class SimWarehouse:
    """One location's WMS: takes requests and cancellations, picks, reports shipments."""

    def __init__(
        self, location: str, secret: str, *, pick_s: float = 15.0, rng: random.Random | None = None
    ) -> None:
        self.location = location
        self._secret = secret
        self.pick_s = pick_s
        self._rng = rng or random.Random()
        self.parts: dict[tuple[str, str], _Part] = {}
        self.seen: set[str] = set()
        #: every message taken (in arrival order) and every shipment reported (with the answer)
        self.received: list[dict[str, Any]] = []
        self.shipped: list[tuple[dict[str, Any], int | None]] = []

    def route(self, path: str) -> Route:
        """The warehouse's endpoint, mounted at ``path``."""
        return Route(path, self.handle, methods=["POST"])

    async def handle(self, request: Request) -> Response:
        """One handoff message from invsync."""
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "body too large"}, status_code=413)
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(given, _signature(self._secret, body)):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        try:
            message = json.loads(body)
            kind, message_id = message["type"], str(message["id"])
            key = (str(message["channel"]), str(message["order_id"]))
            lines = {str(x["sku"]): int(x["qty"]) for x in message["lines"]}
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"unreadable message: {exc}"}, status_code=400)
        if kind not in ("fulfillment.requested", "fulfillment.cancelled"):
            return JSONResponse({"error": f"unknown type {kind!r}"}, status_code=400)
        if message_id in self.seen:
            return JSONResponse({"accepted": message_id, "duplicate": True}, status_code=202)
        self.seen.add(message_id)
        self.received.append(message)
        part = self.parts.setdefault(key, _Part(channel=key[0], order_id=key[1]))
        for sku, qty in lines.items():
            change = qty if kind == "fulfillment.requested" else -qty
            part.lines[sku] = max(0, part.lines.get(sku, 0) + change)
        part.lines = {s: q for s, q in part.lines.items() if q > 0}
        if kind == "fulfillment.requested":
            part.due = time.monotonic() + self.pick_s * self._rng.uniform(0.5, 1.5)
        return JSONResponse({"accepted": message_id}, status_code=202)

    async def run(self, session: aiohttp.ClientSession, daemon_url: str) -> None:
        """Ship every part whose pick is done, until cancelled."""
        while True:
            now = time.monotonic()
            for key, part in list(self.parts.items()):
                if part.lines and part.due <= now:
                    await self._ship(session, daemon_url, part)
                if not part.lines:
                    self.parts.pop(key, None)
            await asyncio.sleep(0.5)

    async def _ship(self, session: aiohttp.ClientSession, daemon_url: str, part: _Part) -> None:
        part.shipments += 1
        report = {
            "type": "fulfillment.shipped",
            "id": f"sim-{self.location}-{part.order_id}-{part.shipments}",
            "channel": part.channel,
            "order_id": part.order_id,
            "lines": [{"sku": s, "qty": q} for s, q in sorted(part.lines.items())],
        }
        body = json.dumps(report).encode()
        status: int | None = None
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.post(
                f"{daemon_url}/fulfillment/{self.location}",
                data=body,
                headers={"Content-Type": "application/json",
                         SIGNATURE_HEADER: _signature(self._secret, body)},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                status = resp.status
        self.shipped.append((report, status))
        if status is not None and (200 <= status < 300 or 400 <= status < 500):
            part.lines = {}  # reported (or refused for good: a real WMS would not retry)
            log.info("warehouse_shipped", location=self.location, order=part.order_id,
                     status=status)
        else:
            part.due = time.monotonic() + 5.0  # the daemon is away: report again later
