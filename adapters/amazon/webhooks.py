"""ORDER_CHANGE notifications, relayed and signed, translated into the spec's order events.

``ORDER_CHANGE`` (``schemas/notifications/OrderChangeNotification.json``) is delivered by Amazon
to SQS or EventBridge; a relay POSTs the notification (or the EventBridge event whose ``detail``
is the notification) signed with ``X-Invsync-Signature`` (hex HMAC-SHA256 of the raw body under
``secret_env``), SQS having no signature of its own.
https://developer-docs.amazon.com/sp-api/docs/tutorial-subscribe-to-order-change-notification
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec
import structlog

from ...core.events import Event, convert_events, holdable_sku
from ..base import BadWebhook
from ..http import header
from ..signing import SIGNATURE_HEADER, verify
from .wire import OrderChange, decode_envelope, decode_notification, decode_order_change

__all__ = ["MARKETPLACE_COUNTRIES", "STATUS_KINDS", "order_events", "parse_notification"]

log = structlog.get_logger("invsync.adapters.amazon")

#: Marketplace id -> ISO country of its buyers (https://developer-docs.amazon.com/sp-api/docs/
#: marketplace-ids); ORDER_CHANGE names the marketplace, not the ship-to country.
MARKETPLACE_COUNTRIES: dict[str, str] = {
    "ATVPDKIKX0DER": "US",
    "A2EUQ1WTGCTBG2": "CA",
    "A1AM78C64UM0Y8": "MX",
    "A2Q3Y263D00KWC": "BR",
    "A1F83G8C2ARO7P": "GB",
    "A1PA6795UKMFR9": "DE",
    "A13V1IB3VIYZZH": "FR",
    "APJ6JRA9NG5V4": "IT",
    "A1RKKUPIHCS9HS": "ES",
    "A1805IZSGTT6HS": "NL",
    "AMEN7PMS3EDWL": "BE",
    "A2NODRKZP88ZB9": "SE",
    "A1C3SOZRARQ6R3": "PL",
    "A33AVAJ2PDY3EV": "TR",
    "A21TJRUUN4KGV": "IN",
    "A1VC38T7YXB528": "JP",
    "A39IBJ37TRP1C6": "AU",
    "A19VAU5U5O7RUS": "SG",
    "A2VIGQ35RCS4UG": "AE",
    "A17E79C6D8DWNP": "SA",
}

#: ORDER_CHANGE ``OrderStatus`` -> the generic event kind. Pending (payment not yet authorized)
#: already holds the units on Amazon, so it reserves like Unshipped; both give the same event id,
#: so the later one is a duplicate. PartiallyShipped is left alone: its cumulative
#: ``QuantityShipped`` cannot be told apart from a repeat, and the reservation simply stays until
#: Shipped. InvoiceUnconfirmed means shipped. Unfulfillable (multi-channel orders) never ships.
STATUS_KINDS: dict[str, Literal["created", "cancelled", "fulfilled"]] = {
    "Pending": "created",
    "PendingAvailability": "created",
    "Unshipped": "created",
    "Shipped": "fulfilled",
    "InvoiceUnconfirmed": "fulfilled",
    "Canceled": "cancelled",
    "Unfulfillable": "cancelled",
}


def parse_notification(
    channel_id: str, relay_secret: str | None, headers: Mapping[str, str], body: bytes
) -> list[Event]:
    """Verify the relay's ``X-Invsync-Signature`` and translate an ORDER_CHANGE notification
    of a seller-fulfilled order into the spec's order events (other notification types and
    Amazon-fulfilled orders give none). BadWebhook when unsigned or unreadable, BadEvent when
    what it says is no valid event."""
    if relay_secret is None:
        raise BadWebhook(
            f"channel '{channel_id}' has no secret_env to verify relayed notifications",
            unauthorized=True,
        )
    signature = header(headers, SIGNATURE_HEADER)
    if signature is None:
        raise BadWebhook(f"missing {SIGNATURE_HEADER} header", unauthorized=True)
    if not verify(relay_secret, body, signature):
        raise BadWebhook(f"{SIGNATURE_HEADER} does not match the body", unauthorized=True)
    try:
        envelope = decode_envelope(body)
        raw = bytes(envelope.detail) if len(envelope.detail) else body
        notification = decode_notification(raw)
        if notification.notification_type != "ORDER_CHANGE":
            return []
        change = decode_order_change(bytes(notification.payload)).order_change_notification
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadWebhook(f"not an SP-API notification: {exc}") from None
    return order_events(channel_id, change)


def order_events(channel_id: str, change: OrderChange) -> list[Event]:
    """The event an order change makes (none for AFN orders and statuses left alone)."""
    summary = change.summary
    if summary.fulfillment_type != "MFN":
        return []  # Amazon ships these from its own stock: nothing of ours moves
    kind = STATUS_KINDS.get(summary.order_status)
    if kind is None:
        return []
    item_level = change.notification_level == "OrderItemLevel"
    lines = [
        {"sku": item.seller_sku, "qty": item.quantity}
        for item in summary.order_items
        if item.quantity > 0 and holdable_sku(item.seller_sku)
    ]
    for item in summary.order_items:
        if not holdable_sku(item.seller_sku):
            log.warning("order_line_sku_not_holdable", sku=item.seller_sku[:200])
    event_id = f"{channel_id}-{change.amazon_order_id}-{kind}"
    if item_level:  # one item per notification: each is its own event
        event_id += "-" + "-".join(i.order_item_id for i in summary.order_items)
    # Built as JSON-shaped data and converted: the order id and SKUs come from the channel, and
    # the conversion checks them against the event schema (BadEvent, a 400, when they break it).
    event: dict[str, object] = {
        "id": event_id,
        "type": f"order.{kind}",
        "channel": channel_id,
        "order_id": change.amazon_order_id,
    }
    if kind == "created":
        if not lines:
            raise BadWebhook(f"order {change.amazon_order_id} has no items to reserve")
        event["lines"] = lines
        ship_to: dict[str, str] = {}
        country = MARKETPLACE_COUNTRIES.get(summary.marketplace_id)
        if country:
            ship_to["country"] = country
        if summary.destination_postal_code:
            ship_to["postal_code"] = summary.destination_postal_code
        if ship_to:
            event["ship_to"] = ship_to
    elif item_level and lines:
        event["lines"] = lines
    return convert_events([event])
