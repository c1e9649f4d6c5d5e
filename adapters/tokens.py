"""OAuth access tokens that refresh themselves, shared by the adapters that need one.

Amazon (Login with Amazon refresh-token grant), Walmart (client credentials) and eBay (refresh
token) all answer the same RFC 6749 shape, ``{"access_token", "expires_in", "token_type"}``, from
a form-encoded POST. ``TokenSource`` keeps one token, fetches a new one ``margin_s`` before it
expires (one fetch at a time, however many pushes wait), and ``invalidate()`` drops it after a 401.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import aiohttp
import msgspec

from .base import Retryable, Unauthorized
from .http import check, send

__all__ = ["TokenReply", "TokenSource", "form_grant", "with_token"]

_T = TypeVar("_T")


class TokenReply(msgspec.Struct, kw_only=True):
    """RFC 6749 section 5.1 (extra fields are ignored)."""

    access_token: str
    expires_in: float = 3600.0
    token_type: str = "bearer"


_decode_reply = msgspec.json.Decoder(TokenReply).decode

Fetch = Callable[[], Awaitable[TokenReply]]


def form_grant(
    session: aiohttp.ClientSession,
    url: str,
    form: Mapping[str, str],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: aiohttp.ClientTimeout,
) -> Fetch:
    """A fetch that POSTs ``form`` to the token ``url`` and decodes the token reply.

    A refused grant (400/401, e.g. a revoked refresh token) is ``Unauthorized``: permanent until
    an operator fixes the credentials. 429 and 5xx stay throttled/retryable.
    """

    async def fetch() -> TokenReply:
        reply = await send(
            session,
            "POST",
            url,
            timeout=timeout,
            headers={"Accept": "application/json", **(headers or {})},
            data=dict(form),
        )
        if reply.status in (400, 401, 403):
            raise Unauthorized(
                f"token endpoint refused the grant: HTTP {reply.status}: {reply.text()}"
            )
        check(reply)
        try:
            return _decode_reply(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Retryable(f"token endpoint answered no usable token: {exc}") from exc

    return fetch


class TokenSource:
    """One cached access token, refreshed ``margin_s`` before expiry.

    ``clock`` is monotonic seconds (injectable, so tests can move time).
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        margin_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._margin = margin_s
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many tokens were fetched (observability, tests)

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._expires - self._margin

    async def token(self) -> str:
        """A valid access token, fetching one first when none is held or it is about to expire."""
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if not self._fresh():  # another waiter may have fetched it meanwhile
                reply = await self._fetch()
                self.fetches += 1
                self._token = reply.access_token
                # A token shorter-lived than the margin is still used once rather than never.
                lifetime = max(reply.expires_in, self._margin + 1.0)
                self._expires = self._clock() + lifetime
            assert self._token is not None
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        """Forget the token (the channel answered 401); only if it is still ``token`` when given."""
        if token is None or token == self._token:
            self._token = None
            self._expires = 0.0


async def with_token(source: TokenSource, call: Callable[[str], Awaitable[_T]]) -> _T:
    """``call(token)``; after an ``Unauthorized`` (a token revoked or expired early) the token is
    dropped and the call made once more with a fresh one. A second refusal propagates."""
    token = await source.token()
    try:
        return await call(token)
    except Unauthorized:
        source.invalidate(token)
        return await call(await source.token())
