"""The generic signed ``webhook`` channel (wholesale portals, anything custom).

Spec, "Interfaces": it POSTs JSON ``{"channel", "updates": [{"sku", "available", "version"}]}``
to its ``url``, signed with HMAC-SHA256 of the raw body under the secret named by ``secret_env``,
hex in ``X-Invsync-Signature``; a 2xx answer is the acknowledgement. A receiver may also answer
``{"results": [{"sku", "status": "ok"|"error", "retryable": bool}]}`` to fail single SKUs.
Inbound webhooks for the channel are verified with the same signature and secret.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import aiohttp
import msgspec

from ..daemon.config import Channel
from .base import BadWebhook, Permanent, PushResult, Retryable, Throttled, Update
from .signing import SIGNATURE_HEADER, sign, verify

__all__ = ["DEFAULT_TIMEOUT_S", "WebhookAdapter", "parse_retry_after"]

DEFAULT_TIMEOUT_S = 10.0

# Status codes outside 5xx that still mean "try again later".
_RETRYABLE_4XX = frozenset({408, 425})


class _Payload(msgspec.Struct, kw_only=True):
    channel: str
    updates: Sequence[Update]


class _SkuResult(msgspec.Struct, kw_only=True):
    sku: str
    status: Literal["ok", "error"]
    retryable: bool = False
    error: str | None = None


class _Reply(msgspec.Struct, kw_only=True):
    results: list[_SkuResult] | None = None


_encode = msgspec.json.Encoder().encode
_reply_decoder = msgspec.json.Decoder(_Reply)


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


def _timeout(channel: Channel) -> aiohttp.ClientTimeout:
    value = channel.options.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(
            f"channel '{channel.id}': options.timeout_s must be a number of seconds > 0 "
            f"(got {value!r})"
        )
    return aiohttp.ClientTimeout(total=float(value))


class WebhookAdapter:
    """Pushes batches to a ``webhook`` channel's ``url`` and verifies its inbound webhooks.

    The session is shared and owned by the caller (``aclose`` leaves it open); the request
    timeout is ``options.timeout_s`` (default 10 s).
    """

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        secret: str,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not channel.url:
            raise ValueError(f"channel '{channel.id}': kind 'webhook' needs a url")
        if not secret:
            raise ValueError(f"channel '{channel.id}': the webhook signing secret is empty")
        self.channel = channel
        self._url = channel.url
        self._session = session
        self._secret = secret
        self._timeout = _timeout(channel)
        self._wall = wall

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """POST one signed batch; per-SKU results, or Throttled/Retryable/Permanent for all."""
        body = _encode(_Payload(channel=self.channel.id, updates=updates))
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}
        try:
            async with self._session.post(
                self._url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), now=self._wall())
                reply = await resp.read()
        except aiohttp.InvalidURL as exc:
            raise Permanent(f"invalid url {self._url!r}: {exc}") from exc
        except TimeoutError as exc:
            raise Retryable(f"no answer within {self._timeout.total} s") from exc
        except aiohttp.ClientError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc

        if 200 <= status < 300:
            return self._results(updates, reply)
        reason = f"HTTP {status}: {reply[:200].decode('utf-8', 'replace')}".rstrip(": ")
        if status == 429:
            raise Throttled(reason, retry_after=retry_after)
        if status >= 500 or status in _RETRYABLE_4XX:
            raise Retryable(reason, retry_after=retry_after)
        raise Permanent(reason)

    def _results(self, updates: Sequence[Update], reply: bytes) -> list[PushResult]:
        # The 2xx is the acknowledgement: SKUs the receiver does not mention are ok, and a body
        # that is not a results object (empty, "OK", other JSON) acknowledges the whole batch.
        failed: dict[str, _SkuResult] = {}
        if reply.strip():
            try:
                parsed = _reply_decoder.decode(reply)
            except msgspec.DecodeError:
                parsed = _Reply()
            for result in parsed.results or ():
                if result.status == "error":
                    failed[result.sku] = result
        out: list[PushResult] = []
        for update in updates:
            bad = failed.get(update.sku)
            if bad is None:
                out.append(PushResult(sku=update.sku, outcome="ok"))
            else:
                out.append(
                    PushResult(
                        sku=update.sku,
                        outcome="retryable" if bad.retryable else "permanent",
                        error=bad.error or "the receiver reported an error for this SKU",
                    )
                )
        return out

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[dict[str, object]]:
        """Verify ``X-Invsync-Signature`` and decode one event object or a list of them.

        Events without a ``channel`` get this channel's id; BadWebhook(unauthorized=True) for a
        missing or wrong signature, BadWebhook for malformed JSON or a foreign ``channel``.
        """
        signature = _header(headers, SIGNATURE_HEADER)
        if signature is None:
            raise BadWebhook(f"missing {SIGNATURE_HEADER} header", unauthorized=True)
        if not verify(self._secret, body, signature):
            raise BadWebhook(f"{SIGNATURE_HEADER} does not match the body", unauthorized=True)
        try:
            decoded = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise BadWebhook(f"malformed JSON: {exc}") from None
        items = decoded if isinstance(decoded, list) else [decoded]
        events: list[dict[str, object]] = []
        for i, item in enumerate(items):
            where = f"[{i}]" if isinstance(decoded, list) else "the body"
            if not isinstance(item, dict):
                raise BadWebhook(f"{where}: expected a JSON object, got {type(item).__name__}")
            if str(item.get("type", "")).startswith("stock."):
                events.append(item)  # stock movements name a location, not a channel
                continue
            channel = item.setdefault("channel", self.channel.id)
            if channel != self.channel.id:
                raise BadWebhook(
                    f"{where}.channel: {channel!r} does not match the webhook's channel "
                    f"'{self.channel.id}'"
                )
            events.append(item)
        return events

    async def aclose(self) -> None:
        """Nothing to release: the HTTP session belongs to the caller."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    # Plain dicts are case-sensitive; HTTP header names are not.
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None
