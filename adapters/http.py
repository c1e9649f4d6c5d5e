"""One HTTP call to a channel and the mapping of its failures, shared by every HTTP adapter.

``send`` turns network failures into ``Retryable`` and returns the raw reply; ``check`` maps a
status to the spec's error kinds (429 -> ``Throttled`` with ``Retry-After``, 5xx/408/425 ->
``Retryable``, 401/403 -> ``Unauthorized``, other 4xx -> ``Permanent``). Adapters add only what
their channel says inside a 2xx (Shopify's ``THROTTLED``, eBay's per-item errors, ...).
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import msgspec

from ..core.clock import SystemClock
from ..core.config import Channel
from .base import Permanent, Retryable, Throttled, Unauthorized

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "HttpReply",
    "base_url",
    "check",
    "client_timeout",
    "header",
    "parse_retry_after",
    "send",
    "waiting_out_throttles",
]

DEFAULT_TIMEOUT_S = 10.0

_T = TypeVar("_T")

# Status codes outside 5xx that still mean "try again later".
_RETRYABLE_4XX = frozenset({408, 425})

# What waits sleep on when the caller hands no clock of its own (the daemon always does).
_SYSTEM_CLOCK = SystemClock()


class HttpReply(msgspec.Struct, frozen=True, kw_only=True):
    """A channel's answer: status, headers (lower-cased names) and raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header's value by case-insensitive name."""
        return self.headers.get(name.lower())

    def retry_after(self, now: float | None = None) -> float | None:
        """Seconds from ``Retry-After`` (delta or HTTP-date), else None."""
        return parse_retry_after(self.header("Retry-After"), now=now)

    def text(self, limit: int = 200) -> str:
        """The start of the body for error messages."""
        return self.body[:limit].decode("utf-8", "replace")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), else None.

    ``now`` is epoch seconds for the HTTP-date form (default: the wall clock); never negative.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """The whole-request timeout of an ``Options.timeout_s`` (checked when the config loaded)."""
    return aiohttp.ClientTimeout(total=seconds)


def base_url(channel: Channel) -> str:
    """The channel's ``url`` without a trailing slash; ValueError when it has none."""
    if not channel.url:
        raise ValueError(f"channel '{channel.id}': kind '{channel.kind}' needs a url")
    return channel.url.rstrip("/")


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout: aiohttp.ClientTimeout,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    params: Mapping[str, str] | None = None,
    data: Any = None,
) -> HttpReply:
    """One request; the reply whatever its status, or ``Retryable`` when none came back.

    ``body`` is sent as is; ``data`` (a dict) is sent form-encoded. Redirects are not followed:
    a channel API that redirects is misconfigured, not something to chase.
    """
    try:
        async with session.request(
            method,
            url,
            data=body if body is not None else data,
            headers=dict(headers or {}),
            params=dict(params) if params else None,
            timeout=timeout,
            allow_redirects=False,
        ) as resp:
            raw = await resp.read()
            return HttpReply(
                status=resp.status,
                headers={k.lower(): v for k, v in resp.headers.items()},
                body=raw,
            )
    except aiohttp.InvalidURL as exc:
        raise Permanent(f"invalid url {url!r}: {exc}") from exc
    except TimeoutError as exc:
        raise Retryable(f"no answer within {timeout.total} s") from exc
    except aiohttp.ClientError as exc:
        raise Retryable(f"{type(exc).__name__}: {exc}") from exc


def check(reply: HttpReply, *, now: float | None = None) -> HttpReply:
    """The reply when it is a 2xx; otherwise the error its status means."""
    status = reply.status
    if 200 <= status < 300:
        return reply
    reason = f"HTTP {status}: {reply.text()}".rstrip(": ")
    retry_after = reply.retry_after(now)
    if status == 429:
        raise Throttled(reason, retry_after=retry_after)
    if status >= 500 or status in _RETRYABLE_4XX:
        raise Retryable(reason, retry_after=retry_after)
    if status in (401, 403):
        raise Unauthorized(reason)
    raise Permanent(reason)


async def waiting_out_throttles(
    call: Callable[[], Awaitable[_T]],
    *,
    budget_s: float = 60.0,
    sleep: Callable[[float], Awaitable[None]] = _SYSTEM_CLOCK.sleep,
) -> _T:
    """``call()``, waiting out its ``Throttled`` answers (Retry-After, else 1 s) for up to
    ``budget_s`` in all: for reads that pace themselves to the channel's limit (drift
    read-backs) instead of giving up at the first 429. ``sleep`` is the adapter's clock's
    (``ctx.clock.sleep``), so tests wait on a ManualClock; the real clock by default."""
    waited = 0.0
    while True:
        try:
            return await call()
        except Throttled as exc:
            wait = exc.retry_after if exc.retry_after is not None else 1.0
            if waited + wait > budget_s:
                raise
            await sleep(wait)
            waited += wait


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name from any mapping (plain dicts are case-sensitive)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None
