"""The eBay order poll: getOrders by last-modified date, recorded as invsync order events.

eBay tells sellers of sales through SOAP platform notifications (Trading API) or signed
Notification API messages, neither a webhook invsync takes; the Fulfillment API's getOrders is
eBay's documented way to find orders (``/api-docs/sell/static/orders/discovering-unfulfilled-
orders.html``). What this follows, from ``/api-docs/sell/fulfillment/resources/order/methods/
getOrders`` and the types it returns (``/api-docs/sell/fulfillment/types/sel:Order``,
``sel:LineItem``, ``sel:FulfillmentStartInstruction``, ``sel:CancelStatus``,
``sel:CancelStateEnum``, ``sel:OrderSearchPagedCollection``):

- ``GET {url}/sell/fulfillment/v1/order?filter=lastmodifieddate:[<ISO 8601 UTC>..]&limit=&offset=``
  with a user token of scope ``sell.fulfillment`` or ``sell.fulfillment.readonly``; the
  brackets must be percent-encoded (``%5B``, ``%5D``). The answer is ``{href, limit, offset,
  total, next, orders: [Order]}``; ``next`` is there while more pages follow (we page by
  ``offset`` ourselves, so every call stays on the configured host). ``limit`` is at most 200
  in the current reference (older contracts said 1000); 200 is used.
- ``Order {orderId, creationDate, lastModifiedDate, cancelStatus {cancelState}, lineItems:
  [{lineItemId, sku, quantity}], fulfillmentStartInstructions: [{shippingStep {shipTo
  {contactAddress {countryCode, stateOrProvince, postalCode}}}}]}``. ``cancelState`` is
  ``NONE_REQUESTED``, ``IN_PROGRESS`` (a request, not yet a cancellation) or ``CANCELED``.
- The mark: each poll asks from the previous poll's start less ``order_overlap_s`` (eBay's
  knowledge-base advice for order polls is to go back two minutes, so late-indexed orders are
  not missed); the mark is kept under ``adapter:{<channel>}:orders:mark`` (epoch ms) and moves
  only after every page was read and recorded, so a failed poll is asked again whole. The first
  poll of a channel starts at its own start less the overlap.

Translation: an order not cancelled -> ``order.created`` (lines by SKU, summed; lines without a
SKU invsync can hold are left out; ship-to from the first shipping step); ``CANCELED`` ->
``order.cancelled``. Event ids are ``<channel>-<orderId>-created`` / ``-cancelled``, so the
re-reads of the overlap, of a retried poll or after a restart are duplicates the intake absorbs.
An order first seen cancelled gives only ``order.cancelled`` (there was nothing reserved; the
engine refuses it as unknown). Events are recorded through ``ctx.ingest`` (source
``poll:<channel>``). A failed poll (429, 5xx, timeout, refused token, store down) is logged,
counted in ``invsync_order_polls_total{channel,outcome}`` and tried again at the next interval.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

import msgspec
import structlog
from redis.exceptions import RedisError

from ...core.clock import Clock, SystemClock
from ...core.errors import InvsyncError
from ...core.events import Event, convert_events, holdable_sku
from ...metrics import definitions as m
from ..base import ChannelError, Ingest, Permanent, Retryable, Throttled, Unauthorized
from .client import EbayClient

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ORDERS_PAGE", "ORDERS_PATH", "OrderPoller", "order_event_id"]

log = structlog.get_logger("invsync.adapters.ebay")

ORDERS_PATH = "/sell/fulfillment/v1/order"
ORDERS_PAGE = 200
#: Pages read in one poll at most (40,000 orders); a poll that stops there keeps its mark.
MAX_PAGES = 200
#: invsync's order id rule (``core.events.Ref``); eBay's ids (``12-34567-89012``) fit it.
_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


# -- eBay's types ------------------------------------------------------------------------------


class ContactAddress(msgspec.Struct, kw_only=True, rename="camel"):
    country_code: str | None = None
    state_or_province: str | None = None
    postal_code: str | None = None


class ShipTo(msgspec.Struct, kw_only=True, rename="camel"):
    contact_address: ContactAddress | None = None


class ShippingStep(msgspec.Struct, kw_only=True, rename="camel"):
    ship_to: ShipTo | None = None


class FulfillmentStartInstruction(msgspec.Struct, kw_only=True, rename="camel"):
    shipping_step: ShippingStep | None = None


class CancelStatus(msgspec.Struct, kw_only=True, rename="camel"):
    cancel_state: str | None = None


class LineItem(msgspec.Struct, kw_only=True, rename="camel"):
    line_item_id: str | None = None
    sku: str | None = None
    quantity: int = 0


class Order(msgspec.Struct, kw_only=True, rename="camel"):
    order_id: str
    last_modified_date: str | None = None
    cancel_status: CancelStatus | None = None
    line_items: list[LineItem] = []
    fulfillment_start_instructions: list[FulfillmentStartInstruction] = []


class OrderSearchPagedCollection(msgspec.Struct, kw_only=True):
    orders: list[Order] = []
    next: str | None = None
    total: int | None = None


_page = msgspec.json.Decoder(OrderSearchPagedCollection).decode


def iso_ms(epoch_s: float) -> str:
    """eBay's timestamp form: ``2026-12-03T20:15:00.000Z`` (UTC, milliseconds)."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def order_event_id(channel_id: str, order_id: str, what: str) -> str:
    """Stable per order and what happened to it: re-reads are duplicates."""
    return f"{channel_id}-{order_id}-{what}"


def order_events(channel_id: str, order: Order) -> list[dict[str, object]]:
    """The spec's event objects for one eBay order (none when nothing of it is invsync's)."""
    if not _ORDER_ID.match(order.order_id):
        log.warning("ebay_order_id_unusable", channel=channel_id, order_id=order.order_id[:80])
        return []
    state = order.cancel_status.cancel_state if order.cancel_status else None
    if state == "CANCELED":
        return [
            {
                "id": order_event_id(channel_id, order.order_id, "cancelled"),
                "type": "order.cancelled",
                "channel": channel_id,
                "order_id": order.order_id,
            }
        ]
    lines = _merge((li.sku, li.quantity) for li in order.line_items)
    if not lines:
        return []
    event: dict[str, object] = {
        "id": order_event_id(channel_id, order.order_id, "created"),
        "type": "order.created",
        "channel": channel_id,
        "order_id": order.order_id,
        "lines": [{"sku": sku, "qty": qty} for sku, qty in lines.items()],
    }
    address = next(
        (
            step.shipping_step.ship_to.contact_address
            for step in order.fulfillment_start_instructions
            if step.shipping_step
            and step.shipping_step.ship_to
            and step.shipping_step.ship_to.contact_address
        ),
        None,
    )
    if address is not None:
        event["ship_to"] = {
            "country": address.country_code,
            "region": address.state_or_province,
            "postal_code": address.postal_code,
        }
    return [event]


def _merge(lines: Iterable[tuple[str | None, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for sku, qty in lines:
        name = (sku or "").strip()
        if name and holdable_sku(name) and qty > 0:
            merged[name] = merged.get(name, 0) + qty
    return merged


class OrderPoller:
    """Polls one channel's eBay orders every ``interval_s`` and records them through
    ``ingest``; ``run`` is the background task the channel manager supervises."""

    def __init__(
        self,
        channel_id: str,
        client: EbayClient,
        ingest: Ingest,
        redis: Redis | None,
        *,
        interval_s: float,
        overlap_s: float,
        wall: Callable[[], float] = time.time,
        clock: Clock | None = None,
    ) -> None:
        self.channel_id = channel_id
        self.interval_s = interval_s
        self.overlap_s = overlap_s
        self._client = client
        self._ingest = ingest
        self._redis = redis
        self._wall = wall
        self._clock = clock or SystemClock()
        self._mark: float | None = None  # without a store
        self.mark_key = f"adapter:{{{channel_id}}}:orders:mark"

    async def run(self) -> None:
        """Poll now and then every ``interval_s`` until cancelled; a failed poll is retried at
        the next interval (``poll`` never raises for the channel's or the store's faults)."""
        while True:
            await self.poll()
            await self._clock.sleep(self.interval_s)

    async def poll(self) -> str:
        """One poll; its outcome (``ok``, ``throttled``, ``retryable``, ``unauthorized``,
        ``failed``), which is also counted and, when not ok, logged."""
        started = self._wall()
        try:
            mark = await self._load_mark()
            since = (started if mark is None else mark) - self.overlap_s
            orders, complete = await self._fetch(since)
            events = convert_events(
                [obj for order in orders for obj in order_events(self.channel_id, order)]
            )
            if events:
                await self._record(events)
            if complete:
                await self._save_mark(started)
        except ChannelError as exc:
            return self._failed(_outcome(exc), exc.message)
        except (RedisError, InvsyncError, ValueError, RuntimeError) as exc:
            # ValueError: BadEvent (what eBay sent is not a valid event); RuntimeError: a
            # context that cannot record. Neither moves the mark.
            return self._failed("failed", f"{type(exc).__name__}: {exc}")
        m.ORDER_POLLS.labels(channel=self.channel_id, outcome="ok").inc()
        if orders:
            log.info(
                "ebay_orders_polled",
                channel=self.channel_id,
                orders=len(orders),
                events=len(events),
                since=iso_ms(since),
            )
        return "ok"

    def _failed(self, outcome: str, error: str) -> str:
        m.ORDER_POLLS.labels(channel=self.channel_id, outcome=outcome).inc()
        log.warning(
            "ebay_order_poll_failed",
            channel=self.channel_id,
            outcome=outcome,
            error=error,
            retry_in_s=self.interval_s,
        )
        return outcome

    async def _fetch(self, since: float) -> tuple[list[Order], bool]:
        """Every order modified since ``since``; False when the page guard stopped early."""
        found: dict[str, Order] = {}
        offset = 0
        window = f"lastmodifieddate:[{iso_ms(since)}..]"
        for _ in range(MAX_PAGES):
            query = f"filter={quote(window, safe=':.')}&limit={ORDERS_PAGE}&offset={offset}"
            reply = await self._client.call("GET", f"{ORDERS_PATH}?{query}")
            try:
                page = _page(reply.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise Retryable(f"getOrders: unreadable answer: {exc}") from exc
            for order in page.orders:
                found[order.order_id] = order  # an order moved between pages: its latest
            if not page.next or not page.orders:
                return list(found.values()), True
            offset += len(page.orders)
        log.warning("ebay_order_poll_truncated", channel=self.channel_id, pages=MAX_PAGES)
        return list(found.values()), False

    async def _record(self, events: list[Event]) -> None:
        await self._ingest(events, f"poll:{self.channel_id}")

    async def _load_mark(self) -> float | None:
        if self._redis is None:
            return self._mark
        raw = await self._redis.get(self.mark_key)
        return int(raw) / 1000 if raw is not None else None

    async def _save_mark(self, at: float) -> None:
        if self._redis is None:
            self._mark = at
            return
        await self._redis.set(self.mark_key, str(int(at * 1000)))


def _outcome(exc: ChannelError) -> str:
    if isinstance(exc, Throttled):
        return "throttled"
    if isinstance(exc, Unauthorized):
        return "unauthorized"
    if isinstance(exc, Permanent):
        return "failed"
    return "retryable"
