"""The daemon's public HTTP API as the demo's outside systems use it (a POS, a WMS, a shipping
desk): ``POST /v1/events``, ``GET /v1/stock/{sku}``, ``GET /v1/orders/{channel}/{order_id}``,
with ``Authorization: Bearer <token>`` and a JSON body, as docs/api.md describes.

It reads the token through ``token`` on every request: ``invsync simulate`` starts before the
daemon has written its token file, and the token may be rotated. Every failure (no token yet,
daemon away, an error answer) is logged and returned as None/False, never raised: an outside
system tries again on its next round.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog

__all__ = ["DaemonApi"]

log = structlog.get_logger("invsync.simulate.api")

TIMEOUT = aiohttp.ClientTimeout(total=10)


class DaemonApi:
    """The daemon at ``base_url``, with the token ``token()`` gives (None: not there yet)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: Callable[[], str | None],
    ) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")
        self._token = token
        #: (event type, HTTP status or None) of the latest events POSTed
        self.posted: deque[tuple[str, int | None]] = deque(maxlen=1000)
        self._token_warned = False

    def _headers(self) -> dict[str, str] | None:
        try:
            token = self._token()
        except Exception as exc:  # a token file that cannot be read: say so once, try later
            if not self._token_warned:
                log.warning("daemon_token_unreadable", error=str(exc))
                self._token_warned = True
            return None
        if token is None:
            return None
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def post_events(self, events: list[dict[str, Any]]) -> bool:
        """``POST /v1/events``; True when the daemon took them (202)."""
        headers = self._headers()
        status: int | None = None
        if headers is not None:
            try:
                async with self._session.post(
                    f"{self.base_url}/v1/events", data=json.dumps(events).encode(),
                    headers=headers, timeout=TIMEOUT,
                ) as resp:
                    status = resp.status
                    if status != 202:
                        log.warning("daemon_refused_events", status=status,
                                    body=(await resp.read())[:300].decode("utf-8", "replace"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("daemon_unreachable", error=str(exc))
        for event in events:
            self.posted.append((str(event.get("type")), status))
        return status == 202

    async def _get(self, path: str) -> dict[str, Any] | None:
        headers = self._headers()
        if headers is None:
            return None
        try:
            async with self._session.get(
                f"{self.base_url}{path}", headers=headers, timeout=TIMEOUT
            ) as resp:
                if resp.status != 200:
                    return None
                body: dict[str, Any] = await resp.json()
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("daemon_unreachable", error=str(exc))
            return None

    async def stock(self, sku: str) -> dict[str, Any] | None:
        """``GET /v1/stock/{sku}`` (None: unknown SKU, or the daemon did not answer)."""
        return await self._get(f"/v1/stock/{quote(sku, safe='')}")

    async def order(self, channel: str, order_id: str) -> dict[str, Any] | None:
        """``GET /v1/orders/{channel}/{order_id}`` (None: unknown, or no answer)."""
        return await self._get(f"/v1/orders/{quote(channel, safe='')}/{quote(order_id, safe='')}")
