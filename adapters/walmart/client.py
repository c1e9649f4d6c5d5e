"""One call to Walmart's seller API: the client-credentials token, the ``WM_*`` headers, the
error envelope and the replenishment time of a 429.

- Token API, client-credentials grant: ``POST /v3/token`` with ``Authorization: Basic
  base64(clientId:clientSecret)``, form ``grant_type=client_credentials``, headers
  ``WM_SVC.NAME`` and ``WM_QOS.CORRELATION_ID``; answers ``{"access_token", "token_type",
  "expires_in"}``, an access token lives 900 s. Every other call carries it in
  ``WM_SEC.ACCESS_TOKEN``. https://developer.walmart.com/us-marketplace/docs/get-an-access-token,
  https://developer.walmart.com/us-marketplace/reference/tokenapi
- Errors ``{"errors": [{"code", "field", "description", "info", "severity", "category"}]}``
  (the gateway has also been seen answering ``{"error": [...]}`` and XML-shaped
  ``{"errors": {"error": [...]}}``: all three are read), codes per status, 429
  ``REQUEST_THRESHOLD_VIOLATED``: https://developer.walmart.com/us-marketplace/docs/error-codes,
  https://developer.walmart.com/suppliers/docs/errors, issue highsidelabs/walmart-api-php#5.
  Rate-limit headers ``X-Current-Token-Count`` / ``X-Next-Replenishment-Time`` (when the window
  refills): https://developer.walmart.com/suppliers/docs/rate-limiting.
- Every throttle answer a push waits out instead of handing back (a feed upload or a feed-status
  poll answered 429) counts once in ``invsync_channel_pushes_total{outcome="throttled"}``
  (``throttled()``): the channel actor only sees the results a push returns.
"""

from __future__ import annotations

import asyncio
import base64
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import aiohttp
import msgspec

from ...core.clock import Clock
from ...metrics.definitions import CHANNEL_PUSHES
from ..base import ChannelError, PushResult, Throttled
from ..http import HttpReply, check, client_timeout, send
from ..tokens import TokenReply, TokenSource, form_grant, with_token
from .options import Options
from .wire import WalmartError

__all__ = ["WalmartClient", "replenished_in", "walmart_errors"]

_T = TypeVar("_T")


def walmart_errors(body: bytes) -> list[WalmartError]:
    """The entries of Walmart's error envelope in ``body`` (any of its three shapes), else []."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return []
    if not isinstance(doc, dict):
        return []
    found = doc.get("errors", doc.get("error"))
    if isinstance(found, dict):  # the XML-derived {"errors": {"error": [...]}}
        found = found.get("error")
    if isinstance(found, dict):
        found = [found]
    if not isinstance(found, list):
        return []
    out: list[WalmartError] = []
    for entry in found:
        try:
            out.append(msgspec.convert(entry, WalmartError))
        except msgspec.ValidationError:
            continue
    return out


def _summary(errors: Sequence[WalmartError]) -> str:
    parts = []
    for e in errors:
        text = e.description or e.message or e.info or ""
        where = f" ({e.field})" if e.field else ""
        parts.append(f"{e.code or 'ERROR'}{where}: {text}".rstrip(": "))
    return "; ".join(parts)


def replenished_in(reply: HttpReply, wall: float) -> float | None:
    """Seconds until ``X-Next-Replenishment-Time`` (an epoch time, in ms or s), else None."""
    raw = reply.header("X-Next-Replenishment-Time")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if value > 1e11:  # epoch milliseconds, Walmart's usual timestamp unit
        value /= 1000.0
    if value < 1e9:  # not an epoch time: nothing documented to read it as
        return None
    return max(0.0, value - wall)


class WalmartClient:
    """Calls one seller account's API with a self-refreshing access token.

    ``options`` and ``clock`` (what feed polls sleep on) travel with it to the push, feed,
    read-back and cancel code; ``monotonic`` drives token expiry, ``wall`` turns
    ``X-Next-Replenishment-Time`` into seconds.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        options: Options,
        *,
        client_id: str,
        client_secret: str,
        clock: Clock,
        monotonic: Callable[[], float],
        wall: Callable[[], float],
        channel_id: str = "walmart",
    ) -> None:
        self.session = session
        self.url = url
        self.options = options
        self.clock = clock
        self.wall = wall
        self.timeout = client_timeout(options.timeout_s)
        self._slots = asyncio.Semaphore(options.max_concurrency)
        token_url = options.token_url or f"{url}/v3/token"
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")

        async def fetch() -> TokenReply:
            # A fresh correlation id for every token call, hence a new grant each time.
            headers = {**self.wm_headers(), "Authorization": f"Basic {basic}"}
            grant = form_grant(
                session,
                token_url,
                {"grant_type": "client_credentials"},
                headers=headers,
                timeout=self.timeout,
            )
            return await grant()

        self.tokens = TokenSource(fetch, clock=monotonic)
        self._throttled = CHANNEL_PUSHES.labels(channel=channel_id, outcome="throttled")

    def throttled(self) -> None:
        """Count one throttle answer that a push waited out rather than handed back."""
        self._throttled.inc()

    def wm_headers(self) -> dict[str, str]:
        """The headers every call needs, with a fresh ``WM_QOS.CORRELATION_ID``."""
        return {
            "WM_SVC.NAME": self.options.service_name,
            "WM_QOS.CORRELATION_ID": str(uuid.uuid4()),
            "Accept": "application/json",
        }

    def _check(self, reply: HttpReply) -> HttpReply:
        """``http.check`` with Walmart's error text, and ``X-Next-Replenishment-Time`` standing
        in for a missing ``Retry-After`` on a 429."""
        now = self.wall()
        try:
            return check(reply, now=now)
        except ChannelError as exc:
            errors = walmart_errors(reply.body)
            message = f"HTTP {reply.status}: {_summary(errors)}" if errors else exc.message
            retry_after = exc.retry_after
            if isinstance(exc, Throttled) and retry_after is None:
                retry_after = replenished_in(reply, now)
            raise type(exc)(message, retry_after=retry_after) from None

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        allow: tuple[int, ...] = (),
    ) -> HttpReply:
        """One authenticated call (a 401 refreshes the token once); statuses in ``allow`` come
        back unchecked."""

        async def attempt(token: str) -> HttpReply:
            headers = {**self.wm_headers(), "WM_SEC.ACCESS_TOKEN": token}
            if body is not None:
                headers["Content-Type"] = "application/json"
            reply = await send(
                self.session,
                method,
                self.url + path,
                timeout=self.timeout,
                headers=headers,
                body=body,
                params=params,
                data=form() if form is not None else None,  # a FormData is sent only once
            )
            return reply if reply.status in allow else self._check(reply)

        return await with_token(self.tokens, attempt)

    async def each(
        self, items: Sequence[_T], call: Callable[[_T], Awaitable[PushResult | int | None]]
    ) -> list[PushResult | int | ChannelError | None]:
        """``call`` for every item, at most ``max_concurrency`` at a time; a channel error of one
        item is its result, so the others always finish."""

        async def one(item: _T) -> PushResult | int | ChannelError | None:
            async with self._slots:
                try:
                    return await call(item)
                except ChannelError as exc:
                    return exc

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(item)) for item in items]
        return [task.result() for task in tasks]
