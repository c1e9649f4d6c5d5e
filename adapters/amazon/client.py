"""One SP-API call: the LWA access token, the usage-plan wait of a 429, presigned transfers.

- Login with Amazon, refresh-token grant: ``POST https://api.amazon.com/auth/o2/token`` form
  ``grant_type=refresh_token&refresh_token=&client_id=&client_secret=``, answering
  ``{"access_token", "refresh_token", "token_type": "bearer", "expires_in": 3600}``; every call
  carries the access token in ``x-amz-access-token`` (no AWS SigV4 since 2023).
  https://developer-docs.amazon.com/sp-api/docs/connecting-to-the-selling-partner-api
- Errors ``{"errors": [{"code", "message", "details"}]}`` (``ErrorList``); 429 when a usage plan is
  exhausted. ``x-amzn-RateLimit-Limit`` carries the rate applied (requests per second; the Feeds
  model notes it is no longer sent with 429s), so a wait is derived from it, else from the
  documented rate of the operation.
  https://developer-docs.amazon.com/sp-api/docs/usage-plans-and-rate-limits-in-the-sp-api
- Usage plans: the default rate and burst in each operation's description in
  ``amzn/selling-partner-api-models`` (commit 34dc93fe45f37c9a0b2e56823c808f68b4f81754):
  ``listingsItems_2021-08-01.json`` (patchListingsItem 5/5, getListingsItem 5/10) and
  ``feeds_2021-06-30.json`` (createFeedDocument 0.5/15, createFeed 0.0083/15, getFeed 2/15,
  getFeedDocument 0.0222/10). JSON_LISTINGS_FEED also has a limit of its own, five feed
  submissions per five minutes per region (changelog of 2025-05-06, https://developer-docs.
  amazon.com/sp-api/changelog/update-feed-size-and-rate-limit-changes-for-the-json_listings_feed),
  which Amazon enforces as 429s of createFeed: they are waited out like any other.
- Every throttle answer a push waits out instead of handing back counts once in
  ``invsync_channel_pushes_total{outcome="throttled"}`` (``throttled()``): the channel actor only
  sees the results a push returns, so a 429 absorbed inside the push would otherwise not show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypeVar

import aiohttp
import msgspec

from ...core.clock import Clock
from ...metrics.definitions import CHANNEL_PUSHES
from ..base import Permanent, Retryable, Throttled
from ..http import HttpReply, check, client_timeout, send
from ..tokens import TokenSource, form_grant, with_token
from .options import Options

__all__ = ["USAGE_PLANS", "USER_AGENT", "SpApiClient", "decode_or_retry", "rate_limit_wait"]

_T = TypeVar("_T")

USER_AGENT = "invsync/1.0 (Language=Python)"

#: operationId -> (requests per second, burst): the default usage plans in the API models.
USAGE_PLANS: dict[str, tuple[float, int]] = {
    "patchListingsItem": (5.0, 5),
    "getListingsItem": (5.0, 10),
    # Feeds API Rate Limits page (and the model since 2023-02): 0.5/s, burst 15.
    "createFeedDocument": (0.5, 15),
    "createFeed": (0.0083, 15),
    "getFeed": (2.0, 15),
    "getFeedDocument": (0.0222, 10),
}


def rate_limit_wait(reply: HttpReply, operation: str) -> float:
    """Seconds until the usage plan of ``operation`` grants one more request: one period of the
    rate in ``x-amzn-RateLimit-Limit``, else of the documented default rate."""
    raw = reply.header("x-amzn-RateLimit-Limit")
    try:
        rate = float(raw) if raw is not None else 0.0
    except ValueError:
        rate = 0.0
    if not (math.isfinite(rate) and rate > 0):
        rate = USAGE_PLANS.get(operation, (1.0, 1))[0]
    return 1.0 / rate


def decode_or_retry(decode: Callable[[bytes], _T], reply: HttpReply, operation: str) -> _T:
    """``decode(reply.body)``; an unreadable answer is ``Retryable`` (a proxy's page, a cut
    body): the call is simply made again later."""
    try:
        return decode(reply.body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Retryable(f"{operation} answered an unreadable body: {exc}") from exc


class SpApiClient:
    """Calls one seller's SP-API endpoint with a self-refreshing LWA access token.

    ``options`` and ``clock`` (what waits sleep on) travel with it to the push, feed and
    read-back code; ``monotonic`` drives token expiry, ``wall`` reads HTTP dates;
    ``channel_id`` labels the throttle answers a push waits out.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        options: Options,
        *,
        channel_id: str,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        clock: Clock,
        monotonic: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.session = session
        self.url = url
        self.options = options
        self.clock = clock
        self.wall = wall
        self.timeout = client_timeout(options.timeout_s)
        grant = form_grant(
            session,
            options.token_url,
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": client_id,
                "client_secret": client_secret,
            },
            timeout=self.timeout,
        )
        self.tokens = TokenSource(grant, clock=monotonic)
        self._throttled = CHANNEL_PUSHES.labels(channel=channel_id, outcome="throttled")

    def throttled(self) -> None:
        """Count one throttle answer that a push waited out rather than handed back."""
        self._throttled.inc()

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        passthrough: frozenset[int] = frozenset(),
    ) -> HttpReply:
        """One SP-API call with the access token (refreshed once after a 401/403); the reply when
        2xx or in ``passthrough``, else the error its status means."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/json"

        async def attempt(token: str) -> HttpReply:
            reply = await send(
                self.session,
                method,
                self.url + path,
                timeout=self.timeout,
                headers={**headers, "x-amz-access-token": token},
                body=body,
                params=params,
            )
            if reply.status in passthrough:
                return reply
            try:
                return check(reply, now=self.wall())
            except Throttled as exc:
                if exc.retry_after is not None:
                    raise
                raise Throttled(exc.message, retry_after=rate_limit_wait(reply, operation)) from exc

        return await with_token(self.tokens, attempt)

    async def upload(self, url: str, body: bytes, content_type: str) -> None:
        """PUT a document to its presigned URL (no access token: the URL is the grant)."""
        reply = await send(
            self.session,
            "PUT",
            url,
            timeout=self.timeout,
            headers={"Content-Type": content_type},
            body=body,
        )
        try:
            check(reply, now=self.wall())
        except Permanent as exc:  # an expired presigned URL: a new document fixes it
            raise Retryable(f"feed document upload refused: {exc.message}") from exc

    async def download(self, url: str) -> bytes:
        """GET a document from its presigned URL."""
        reply = await send(self.session, "GET", url, timeout=self.timeout)
        return check(reply, now=self.wall()).body
