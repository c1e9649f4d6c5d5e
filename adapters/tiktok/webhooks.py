"""Order status webhooks, verified and translated into the spec's order events.

``Authorization`` carries the hex HMAC-SHA256 of ``app_key + raw body`` under the app secret
(EcomPHP ``src/Webhook.php`` ``verify``); order status change is ``type`` 1 with
``data.{order_id, order_status, is_on_hold_order, update_time}`` and no line items.

Which statuses mean what (the statuses of Get Order Detail 202309, ``orders/GetOrderDetail.ts``):
UNPAID ("placed but payment has not been finished"), ON_HOLD, AWAITING_SHIPMENT,
AWAITING_COLLECTION and PARTIALLY_SHIPPING → ``order.created``: TikTok takes the units off the
listing when the buyer orders, and an unpaid order can turn paid without another notification we
could rely on, so the hold starts at the first status seen; a payment that never comes arrives as
CANCELLED and releases it. IN_TRANSIT, DELIVERED, COMPLETED → ``order.fulfilled``; CANCELLED →
``order.cancelled``. Event ids are ``{channel}:{order_id}:{created|cancelled|fulfilled}``, so the
repeats (UNPAID then AWAITING_SHIPMENT, IN_TRANSIT then DELIVERED, redeliveries) are one event.

Line items: the webhook has none, so a status meaning ``order.created`` is translated by
``parse_webhook_async`` (which the daemon awaits) calling ``GET /order/202309/orders?ids=`` while
the webhook waits for its answer: line items are one per unit, counted by ``seller_sku``;
``recipient_address`` gives the ship-to. The lookup is bounded by ``options.timeout_s`` and its
failures propagate (Throttled, Retryable, Unauthorized after one token refresh, Permanent): the
daemon answers 503 and TikTok delivers the webhook again, so nothing is acknowledged that was not
recorded and no lookup outlives its request. An order Get Order Detail does not return, one
already CANCELLED, or one without a line item carrying a seller SKU is acknowledged with no event
and logged: a redelivery would get the same answer. Cancellations and fulfilments need no lines
(the whole order) and come from the sync ``parse_webhook`` too, which refuses a creation.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Literal, NamedTuple

import msgspec
import structlog

from ...core.events import Event, OrderCancelled, OrderFulfilled, Ref, convert_events, holdable_sku
from ..base import BadWebhook, Retryable
from ..http import header
from .catalog import Catalog
from .client import API_VERSION, TikTokClient
from .signing import verify_webhook
from .wire import Address, OrdersData, OrderStatus, decode_data, decode_notification

__all__ = [
    "ORDER_STATUS_CHANGE",
    "STATUS_EVENTS",
    "US_STATES",
    "order_created",
    "parse_webhook",
    "parse_webhook_async",
]

log = structlog.get_logger("invsync.adapters.tiktok")

#: Webhook type of an order status change.
ORDER_STATUS_CHANGE = 1

Kind = Literal["created", "cancelled", "fulfilled"]
STATUS_EVENTS: dict[str, Kind] = {
    "UNPAID": "created",
    "ON_HOLD": "created",
    "AWAITING_SHIPMENT": "created",
    "AWAITING_COLLECTION": "created",
    "PARTIALLY_SHIPPING": "created",
    "IN_TRANSIT": "fulfilled",
    "DELIVERED": "fulfilled",
    "COMPLETED": "fulfilled",
    "CANCELLED": "cancelled",
}

#: US state codes and the names TikTok's recipient_address.district_info gives (level L1).
US_STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
    "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
    "VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin",
    "WY": "Wyoming",
}  # fmt: skip
_STATE_CODES = {name.lower(): code for code, name in US_STATES.items()}


class Change(NamedTuple):
    """An order status change that makes an event: ``kind`` is created, cancelled or fulfilled."""

    channel: str
    order_id: str
    kind: Kind

    @property
    def event_id(self) -> str:
        """One id per order and kind, so repeats and redeliveries are one event."""
        return f"{self.channel}:{self.order_id}:{self.kind}"

    def whole_order(self) -> Event:
        """The event of a cancellation or fulfilment: the whole order, no lines. Built directly:
        the order id was checked as a ``Ref`` when the webhook was read."""
        if self.kind == "cancelled":
            return OrderCancelled(id=self.event_id, channel=self.channel, order_id=self.order_id)
        assert self.kind == "fulfilled", "a creation needs its lines"
        return OrderFulfilled(id=self.event_id, channel=self.channel, order_id=self.order_id)


def parse_webhook(client: TikTokClient, headers: Mapping[str, str], body: bytes) -> list[Event]:
    """Verify and translate what needs no call back: a cancellation or fulfilment (the whole
    order); other types and statuses make no event. A creation is refused (BadWebhook): its
    lines need Get Order Detail, which only ``parse_webhook_async`` calls."""
    change = order_change(client, headers, body)
    if change is None:
        return []
    if change.kind == "created":
        raise BadWebhook(
            f"order {change.order_id} was created: its lines need Get Order Detail, which "
            "only parse_webhook_async calls"
        )
    return [change.whole_order()]


async def parse_webhook_async(
    client: TikTokClient, catalog: Catalog, headers: Mapping[str, str], body: bytes
) -> list[Event]:
    """Verify and translate as ``parse_webhook``, and a creation too: its ``order.created``
    from Get Order Detail, called now within ``options.timeout_s``. The lookup's
    ChannelErrors propagate (the daemon answers 503 and TikTok delivers the webhook again)."""
    change = order_change(client, headers, body)
    if change is None:
        return []
    if change.kind != "created":
        return [change.whole_order()]
    limit = client.options.timeout_s
    try:
        async with asyncio.timeout(limit):  # token refresh and retry included
            return await order_created(client, catalog, change.order_id, change.event_id)
    except TimeoutError:
        raise Retryable(
            f"Get Order Detail of order {change.order_id} took over {limit} s"
        ) from None


def order_change(client: TikTokClient, headers: Mapping[str, str], body: bytes) -> Change | None:
    """Verify ``Authorization`` and decode; the order status change, or None for a webhook
    that makes no event (another type, a status we do not act on)."""
    signature = header(headers, "Authorization")
    if not signature:
        raise BadWebhook("missing the Authorization signature", unauthorized=True)
    if not verify_webhook(client.options.app_key, client.app_secret, body, signature):
        raise BadWebhook("the Authorization signature does not match the body", unauthorized=True)
    try:
        note = decode_notification(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadWebhook(f"not a TikTok Shop webhook: {exc}") from None
    shop_id = client.options.own_shop_id
    if shop_id is not None and note.shop_id and note.shop_id != shop_id:
        raise BadWebhook(f"shop_id {note.shop_id!r} is not this channel's shop")
    if note.type != ORDER_STATUS_CHANGE:
        return None
    try:
        change = msgspec.json.decode(note.data, type=OrderStatus)
        msgspec.convert(change.order_id, Ref)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadWebhook(f"data of an order status change: {exc}") from None
    kind = STATUS_EVENTS.get(change.order_status)
    if kind is None:
        return None
    return Change(client.channel_id, change.order_id, kind)


async def order_created(
    client: TikTokClient, catalog: Catalog, order_id: str, event_id: str
) -> list[Event]:
    """The ``order.created`` event of ``order_id`` from Get Order Detail; empty (logged)
    when TikTok has no such order, it is already cancelled, or no line has a seller SKU."""
    raw = await client.request("GET", f"/order/{API_VERSION}/orders", params={"ids": order_id})
    data = decode_data(raw, OrdersData, "order detail")
    order = next((o for o in data.orders or () if o.id == order_id), None)
    bound = log.bind(channel=client.channel_id, order_id=order_id, event_id=event_id)
    if order is None:
        # Signed, of this shop, yet unknown to the shop's API: asking again (a 503 and a
        # redelivery) would get the same answer, so acknowledge it and say so.
        bound.error("tiktok_order_unknown")
        return []
    if order.status == "CANCELLED":
        # Cancelled before we looked (e.g. while this webhook was being redelivered): no
        # hold to start, and TikTok has put the units back on the listing.
        bound.info("tiktok_order_cancelled_before_lookup")
        return []
    units: Counter[str] = Counter()
    for item in order.line_items:
        if item.display_status == "CANCELLED":
            continue
        sku = item.seller_sku or catalog.seller_sku(item.sku_id)
        if sku and not holdable_sku(sku):
            bound.warning("order_line_sku_not_holdable", sku=sku[:200])
        elif sku:
            units[sku] += 1  # one line item per unit
        else:
            bound.warning("tiktok_line_without_seller_sku", sku_id=item.sku_id)
    if not units:
        bound.error("tiktok_order_without_lines")
        return []
    # Converted, not built: the SKUs and address come from the channel, and the conversion
    # checks them against the event schema (BadEvent, a 400, when they break it).
    event: dict[str, object] = {
        "id": event_id,
        "type": "order.created",
        "channel": client.channel_id,
        "order_id": order_id,
        "lines": [{"sku": sku, "qty": qty} for sku, qty in units.items()],
    }
    ship_to = _ship_to(order.recipient_address)
    if ship_to:
        event["ship_to"] = ship_to
    return convert_events([event])


def _ship_to(address: Address | None) -> dict[str, str]:
    if address is None:
        return {}
    out: dict[str, str] = {}
    if address.region_code:
        out["country"] = address.region_code
    state = next((d.address_name for d in address.district_info if d.address_level == "L1"), "")
    if state:
        code = _STATE_CODES.get(state.lower()) if address.region_code == "US" else None
        out["region"] = code or state
    if address.postal_code:
        out["postal_code"] = address.postal_code
    return out
