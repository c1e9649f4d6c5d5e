"""A real HTTP receiver for the generic signed ``webhook`` channel, on a loopback port.

``Receiver`` is a small aiohttp.web app on 127.0.0.1 (port 0) that verifies the
``X-Invsync-Signature`` of every request (a forged one is answered 401 and only counted),
records it, and answers as told: 2xx, 429 with Retry-After, 5xx, a hang, or per-SKU results.
``latest`` holds what the receiver acknowledged last for each SKU, which is what a channel
"shows". The adapter, channel actor and daemon end-to-end tests all use it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from invsync.adapters.signing import SIGNATURE_HEADER, verify

__all__ = ["SECRET", "Answer", "Received", "Receiver", "until"]

SECRET = "s3cret-for-tests"


@dataclass
class Answer:
    """How the receiver answers one request; ``body`` may be computed from the payload."""

    status: int = 200
    body: Any = None  # JSON value, or a callable(payload) -> JSON value
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the client gives up)


@dataclass
class Received:
    """One request as the receiver saw it."""

    at: float  # time.monotonic() on arrival
    payload: dict[str, Any]
    signature_ok: bool
    status: int | None = None  # what it was answered (None: no answer, e.g. a hang)
    ended: float | None = None  # time.monotonic() when answered or given up by the client

    @property
    def skus(self) -> list[str]:
        return [u["sku"] for u in self.payload["updates"]]


class Receiver:
    """A real HTTP endpoint for the webhook channel: verifies, records, answers as scripted."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.requests: list[Received] = []
        self.answers: deque[Answer] = deque()  # consumed one per request, then `default`
        self.default = Answer()
        self.gate = asyncio.Event()  # cleared: requests wait here before answering
        self.gate.set()
        self.arrived = asyncio.Event()  # set on every request
        self.forged = 0  # requests refused for a missing or wrong signature
        #: SKU -> (available, version) last acknowledged with a 2xx (what the channel shows).
        self.latest: dict[str, tuple[int, int]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/push", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/push"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.gate.set()
        assert self._runner is not None
        await self._runner.cleanup()

    def answer(self, *answers: Answer) -> None:
        """Queue answers for the next requests (after them: ``default``)."""
        self.answers.extend(answers)

    def pushed_values(self) -> dict[str, list[tuple[int, int]]]:
        """SKU -> every (available, version) it was sent, in order (signed requests only)."""
        out: dict[str, list[tuple[int, int]]] = {}
        for req in self.requests:
            for u in req.payload["updates"]:
                out.setdefault(u["sku"], []).append((u["available"], u["version"]))
        return out

    def shows(self) -> dict[str, int]:
        """SKU -> the availability last acknowledged."""
        return {sku: available for sku, (available, _) in self.latest.items()}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        ok = verify(self.secret, body, request.headers.get(SIGNATURE_HEADER))
        if not ok:
            self.forged += 1
            return web.json_response({"error": "bad signature"}, status=401)
        payload = json.loads(body)
        received = Received(at=time.monotonic(), payload=payload, signature_ok=ok)
        self.requests.append(received)
        self.arrived.set()
        answer = self.answers.popleft() if self.answers else self.default
        try:
            await self.gate.wait()
            if answer.hang:
                await asyncio.Event().wait()  # cancelled when the client disconnects
            body_value = answer.body(payload) if callable(answer.body) else answer.body
            if 200 <= answer.status < 300:
                failed: set[str] = set()
                if isinstance(body_value, dict):
                    for result in body_value.get("results") or ():
                        if isinstance(result, dict) and result.get("status") == "error":
                            failed.add(str(result.get("sku")))
                for u in payload["updates"]:
                    if u["sku"] not in failed:
                        self.latest[u["sku"]] = (u["available"], u["version"])
            received.status = answer.status
            if body_value is None:
                return web.Response(status=answer.status, headers=answer.headers)
            return web.json_response(body_value, status=answer.status, headers=answer.headers)
        finally:
            received.ended = time.monotonic()


async def until(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.005) -> None:
    """Wait (real time) until ``predicate()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)
