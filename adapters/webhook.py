"""The generic signed ``webhook`` channel (wholesale portals, anything custom).

Spec, "Interfaces": it POSTs JSON ``{"channel", "updates": [{"sku", "available", "version"}]}``
to its ``url``, signed with HMAC-SHA256 of the raw body under the secret named by ``secret_env``,
hex in ``X-Invsync-Signature``; a 2xx answer is the acknowledgement. A receiver may also answer
``{"results": [{"sku", "status": "ok"|"error", "retryable": bool}]}`` to fail single SKUs.
Inbound webhooks for the channel are verified with the same signature and secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import aiohttp
import msgspec

from ..core.config import Channel
from ..core.events import Event, convert_events
from .base import AdapterContext, BadWebhook, BaseAdapter, PushResult, Update
from .http import (
    DEFAULT_TIMEOUT_S,
    base_url,
    check,
    client_timeout,
    header,
    parse_retry_after,
    send,
)
from .options import Timeout, parse_options, require_env
from .signing import SIGNATURE_HEADER, sign, verify

__all__ = ["DEFAULT_TIMEOUT_S", "Options", "WebhookAdapter", "create", "parse_retry_after"]


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[[channels]] options`` of kind ``webhook``."""

    #: Per-request timeout of the POST to the channel's ``url``.
    timeout_s: Timeout = DEFAULT_TIMEOUT_S


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


def create(channel: Channel, ctx: AdapterContext) -> WebhookAdapter:
    """The adapter for a ``webhook`` channel (its secret from ``secret_env``)."""
    options = parse_options(channel, Options)
    secret = require_env(channel.id, "secret_env", channel.secret_env)
    return WebhookAdapter(channel, ctx.session, secret, options=options, wall=ctx.wall)


class WebhookAdapter(BaseAdapter):
    """Pushes batches to a ``webhook`` channel's ``url`` and verifies its inbound webhooks.

    The session is shared and owned by the caller (``aclose`` leaves it open); the request
    timeout is ``options.timeout_s`` (default 10 s; ``options`` parsed from the channel when left
    out).
    """

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        secret: str,
        *,
        options: Options | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError(f"channel '{channel.id}': the webhook signing secret is empty")
        self.channel = channel
        self.options = options = options or parse_options(channel, Options)
        self._url = base_url(channel)
        self._session = session
        self._secret = secret
        self._timeout = client_timeout(options.timeout_s)
        self._wall = wall

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """POST one signed batch; per-SKU results, or Throttled/Retryable/Permanent for all."""
        body = _encode(_Payload(channel=self.channel.id, updates=updates))
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}
        reply = await send(
            self._session, "POST", self._url, timeout=self._timeout, headers=headers, body=body
        )
        return self._results(updates, check(reply, now=self._wall()).body)

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

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify ``X-Invsync-Signature`` and decode one event object or a list of them.

        Events without a ``channel`` get this channel's id; BadWebhook(unauthorized=True) for a
        missing or wrong signature, BadWebhook for malformed JSON or a foreign ``channel``,
        BadEvent (naming ``$[i]``) for an object that is no valid event.
        """
        signature = header(headers, SIGNATURE_HEADER)
        if signature is None:
            raise BadWebhook(f"missing {SIGNATURE_HEADER} header", unauthorized=True)
        if not verify(self._secret, body, signature):
            raise BadWebhook(f"{SIGNATURE_HEADER} does not match the body", unauthorized=True)
        try:
            decoded = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise BadWebhook(f"malformed JSON: {exc}") from None
        items = decoded if isinstance(decoded, list) else [decoded]
        objects: list[dict[str, object]] = []
        for i, item in enumerate(items):
            where = f"[{i}]" if isinstance(decoded, list) else "the body"
            if not isinstance(item, dict):
                raise BadWebhook(f"{where}: expected a JSON object, got {type(item).__name__}")
            if str(item.get("type", "")).startswith("stock."):
                objects.append(item)  # stock movements name a location, not a channel
                continue
            channel = item.setdefault("channel", self.channel.id)
            if channel != self.channel.id:
                raise BadWebhook(
                    f"{where}.channel: {channel!r} does not match the webhook's channel "
                    f"'{self.channel.id}'"
                )
            objects.append(item)
        # Every object is checked against this channel first, then all are typed (BadEvent).
        return convert_events(objects)
