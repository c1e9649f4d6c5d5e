"""One call to eBay's REST APIs with a user access token, refreshed once on a 401.

OAuth: a User access token from the refresh-token grant
(``/api-docs/static/oauth-refresh-token-request.html``): ``POST
https://api.ebay.com/identity/v1/oauth2/token`` form ``grant_type=refresh_token&refresh_token=
...&scope=...`` with ``Authorization: Basic base64(client_id:client_secret)``; the scope must be
the consented one or a subset (``sell.inventory`` covers the Inventory calls,
``sell.fulfillment.readonly`` getOrders). Tokens last 7200 s. Headers: ``Authorization`` and,
with a body, ``Content-Type: application/json`` (required by bulkUpdatePriceQuantity); we also
send ``Content-Language``/``Accept-Language`` (``options.content_language``), which the other
Inventory calls require and which sets the language of eBay's error messages.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping

import aiohttp

from ..http import HttpReply, check, client_timeout, send
from ..tokens import TokenSource, form_grant, with_token
from .options import Options

__all__ = ["TOKEN_PATH", "EbayClient"]

TOKEN_PATH = "/identity/v1/oauth2/token"

#: Error replies a caller takes as an answer instead of an error (``HttpReply`` -> bool).
Accept = Callable[[HttpReply], bool]


class EbayClient:
    """Calls ``{url}{path}`` with a fresh user token; ``tokens.fetches`` counts the grants."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        options: Options,
        *,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._session = session
        self._timeout = client_timeout(options.timeout_s)
        self._wall = wall
        language = options.content_language
        self._headers = {
            "Accept": "application/json",
            "Content-Language": language,
            "Accept-Language": language,
        }
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        grant = form_grant(
            session,
            options.token_url or url + TOKEN_PATH,
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "scope": options.scope,
            },
            headers={"Authorization": f"Basic {basic}"},
            timeout=self._timeout,
        )
        self.tokens = TokenSource(grant, clock=monotonic)

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
        accept: Accept | None = None,
    ) -> HttpReply:
        """A 2xx reply, or an error reply ``accept`` takes as an answer; otherwise the error its
        status means (``http.check``: 429 Throttled, 5xx Retryable, 401/403 Unauthorized after
        one refresh, other 4xx Permanent)."""

        async def once(token: str) -> HttpReply:
            headers = {**self._headers, "Authorization": f"Bearer {token}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            reply = await send(
                self._session,
                method,
                self.url + path,
                timeout=self._timeout,
                headers=headers,
                body=body,
                params=params,
            )
            if accept is not None and reply.status >= 400 and accept(reply):
                return reply
            return check(reply, now=self._wall())

        return await with_token(self.tokens, once)
