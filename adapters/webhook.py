"""The generic signed ``webhook`` channel (wholesale portals, anything custom).

Spec, "Interfaces": it POSTs JSON ``{"channel", "updates": [{"sku", "available", "version"}]}``
to its ``url``, signed with HMAC-SHA256 of the raw body under the secret named by ``secret_env``,
hex in ``X-Invsync-Signature``; a 2xx answer is the acknowledgement. A receiver may also answer
``{"results": [{"sku", "status": "ok"|"error", "retryable": bool}]}`` to fail single SKUs.
Inbound webhooks for the channel are verified with the same signature and secret.

Partners report orders, not our stock. The partner holds the secret, so what a signed webhook
may say is limited: order events (``order.*``) of this channel only, and stock events only
where the channel's options allow them (``accept_stock`` names the event types,
``stock_locations`` the locations they may touch). A batch with one refused event is refused
whole (BadWebhook, a 400 naming it, and a ``webhook_event_refused`` log line): nothing of it is
recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Literal

import aiohttp
import msgspec
import structlog

from ..core.config import Channel
from ..core.events import BadEvent, Event, Ref, convert_events, parse_json
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


log = structlog.get_logger("invsync.adapters.webhook")

#: The stock events a partner may be allowed to send (``options.accept_stock``).
StockEventType = Literal["stock.adjusted", "stock.counted"]


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[[channels]] options`` of kind ``webhook``."""

    #: Per-request timeout of the POST to the channel's ``url``.
    timeout_s: Timeout = DEFAULT_TIMEOUT_S
    #: Stock event types the partner's webhooks may carry (none by default: orders only).
    accept_stock: Annotated[tuple[StockEventType, ...], msgspec.Meta(max_length=2)] = ()
    #: Locations those stock events may touch (required with ``accept_stock``; the config
    #: loader checks that each is a ``[[locations]]`` id).
    stock_locations: tuple[Ref, ...] = ()

    def __post_init__(self) -> None:
        if self.accept_stock and not self.stock_locations:
            raise ValueError(
                "accept_stock needs stock_locations: the locations the partner's stock events "
                "may touch"
            )
        if self.stock_locations and not self.accept_stock:
            raise ValueError("stock_locations without accept_stock allows nothing")


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
        missing or wrong signature, BadWebhook for malformed or too deep JSON, a foreign
        ``channel``, a hold event or a stock event the options do not allow; BadEvent (naming
        ``$[i]``) for an object that is no valid event.
        """
        signature = header(headers, SIGNATURE_HEADER)
        if signature is None:
            raise BadWebhook(f"missing {SIGNATURE_HEADER} header", unauthorized=True)
        if not verify(self._secret, body, signature):
            raise BadWebhook(f"{SIGNATURE_HEADER} does not match the body", unauthorized=True)
        try:
            decoded = parse_json(body)
        except BadEvent as exc:
            raise BadWebhook(str(exc)) from None
        items = decoded if isinstance(decoded, list) else [decoded]
        objects: list[dict[str, object]] = []
        for i, item in enumerate(items):
            where = f"[{i}]" if isinstance(decoded, list) else "the body"
            if not isinstance(item, dict):
                raise BadWebhook(f"{where}: expected a JSON object, got {type(item).__name__}")
            refusal = self._refusal(item)
            if refusal is not None:
                log.warning(
                    "webhook_event_refused",
                    channel=self.channel.id,
                    event_type=str(item.get("type"))[:64],
                    event_id=str(item.get("id"))[:200],
                    reason=refusal,
                )
                raise BadWebhook(f"{where}: {refusal}; nothing of this webhook was recorded")
            objects.append(item)
        # Every object is checked against this channel first, then all are typed (BadEvent).
        return convert_events(objects)

    def _refusal(self, item: dict[str, object]) -> str | None:
        """Why this partner may not send ``item`` (None: it may). Fills in a missing
        ``channel`` of an order event with this channel's id."""
        tag = item.get("type")
        kind = tag if isinstance(tag, str) else ""
        own = self.channel.id
        if kind.startswith("hold."):
            return f"{kind} is not accepted from a webhook channel: it reports orders"
        if kind.startswith("stock."):
            options = self.options
            if kind not in options.accept_stock:
                allowed = ", ".join(options.accept_stock) or "none"
                return (
                    f"{kind} is not accepted from channel '{own}' (options.accept_stock "
                    f"allows: {allowed})"
                )
            location = item.get("location")
            if location not in options.stock_locations:
                return (
                    f"{kind} at location {location!r} is not accepted from channel '{own}' "
                    f"(options.stock_locations allows: {', '.join(options.stock_locations)})"
                )
            return None
        # An order event (or no valid event at all: typing it names what is wrong).
        channel = item.setdefault("channel", own)
        if channel != own:
            return f"channel {channel!r} is not this webhook's channel '{own}'"
        return None
