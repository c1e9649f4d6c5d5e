"""Shopify's order webhooks: the HMAC check, then the translation into invsync events.

``/docs/apps/build/webhooks``: ``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of the raw
body under the app's client secret (``secret_env``); ``X-Shopify-Topic`` names what happened,
``X-Shopify-Webhook-Id`` the delivery. Payloads are the REST order / refund JSON
(``line_items[].sku``, ``quantity``, ``shipping_address.country_code``/``province_code``,
``refunds[]``, ``refund_line_items[].restock_type`` in ``no_restock``/``cancel``/``return``/
``legacy_restock``). Topics: orders/create, orders/cancelled, orders/fulfilled, refunds/create;
any other gives no events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import msgspec

from ...core.events import Event, convert_events
from ..base import BadWebhook
from ..http import header
from ..signing import verify_b64
from .events import EventObject, created_event, line_objects, merge_lines, order_events_id

__all__ = ["ShopifyWebhooks"]


class HookAddress(msgspec.Struct, kw_only=True):
    """``shipping_address`` of an order."""

    country_code: str | None = None
    province_code: str | None = None


class HookLineItem(msgspec.Struct, kw_only=True):
    """One of an order's ``line_items``."""

    id: int | str | None = None
    sku: str | None = None
    quantity: int = 0


class HookRefundLine(msgspec.Struct, kw_only=True):
    """One of a refund's ``refund_line_items``: how many units of which line, and where they go."""

    line_item_id: int | str | None = None
    quantity: int = 0
    restock_type: str | None = None
    line_item: HookLineItem | None = None


class HookRefund(msgspec.Struct, kw_only=True):
    """The ``refunds/create`` payload (and an order's ``refunds[]``)."""

    id: int | str
    order_id: int | str
    refund_line_items: list[HookRefundLine] = []


class HookOrder(msgspec.Struct, kw_only=True):
    """The payload of the ``orders/*`` topics."""

    id: int | str
    line_items: list[HookLineItem] = []
    shipping_address: HookAddress | None = None
    refunds: list[HookRefund] = []


_hook_order = msgspec.json.Decoder(HookOrder)
_hook_refund = msgspec.json.Decoder(HookRefund)


class ShopifyWebhooks:
    """Verifies and translates one channel's webhooks.

    ``secret`` None refuses every webhook (nothing can be verified); ``return_location`` is the
    invsync location returned units go to (None refuses refunds that restock returns).
    """

    def __init__(
        self, channel_id: str, secret: str | None, *, return_location: str | None = None
    ) -> None:
        self.channel_id = channel_id
        self.return_location = return_location
        self._secret = secret
        self._topics: dict[str, Callable[[bytes], list[EventObject]]] = {
            "orders/create": self._order_created,
            "orders/cancelled": self._order_cancelled,
            "orders/fulfilled": self._order_fulfilled,
            "refunds/create": self._refund_created,
        }

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify ``X-Shopify-Hmac-Sha256`` and translate by ``X-Shopify-Topic``.

        BadWebhook (unauthorized) for a missing or wrong signature, BadWebhook for a missing
        topic or a malformed payload, BadEvent when the translation is no valid event.
        """
        if self._secret is None:
            raise BadWebhook(
                f"channel '{self.channel_id}' has no secret_env: Shopify webhooks cannot be "
                "verified",
                unauthorized=True,
            )
        signature = header(headers, "X-Shopify-Hmac-Sha256")
        if signature is None:
            raise BadWebhook("missing X-Shopify-Hmac-Sha256 header", unauthorized=True)
        if not verify_b64(self._secret, body, signature):
            raise BadWebhook("X-Shopify-Hmac-Sha256 does not match the body", unauthorized=True)
        topic = (header(headers, "X-Shopify-Topic") or "").strip().lower()
        if not topic:
            raise BadWebhook("missing X-Shopify-Topic header")
        translate = self._topics.get(topic)
        if translate is None:
            return []
        try:
            objects = translate(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            delivery = header(headers, "X-Shopify-Webhook-Id") or "?"
            raise BadWebhook(f"{topic} (webhook {delivery}): malformed payload: {exc}") from None
        return convert_events(objects)

    def _order_created(self, body: bytes) -> list[EventObject]:
        order = _hook_order.decode(body)
        address = order.shipping_address
        event = created_event(
            self.channel_id,
            str(order.id),
            [(line.sku, line.quantity) for line in order.line_items],
            address.country_code if address else None,
            address.province_code if address else None,
        )
        return [] if event is None else [event]

    def _order_cancelled(self, body: bytes) -> list[EventObject]:
        # Lines a refund already cancelled (restock_type "cancel", translated from its own
        # refunds/create) are not released twice: only the rest of the order is.
        order = _hook_order.decode(body)
        everything = merge_lines((line.sku, line.quantity) for line in order.line_items)
        refunded = merge_lines(
            (_refund_sku(line, order.line_items), line.quantity)
            for refund in order.refunds
            for line in refund.refund_line_items
            if (line.restock_type or "").lower() == "cancel"
        )
        rest = {sku: qty - refunded.get(sku, 0) for sku, qty in everything.items()}
        rest = {sku: qty for sku, qty in rest.items() if qty > 0}
        if not rest:
            return []
        order_id = str(order.id)
        event: EventObject = {
            "id": order_events_id(self.channel_id, order_id, "cancelled"),
            "type": "order.cancelled",
            "channel": self.channel_id,
            "order_id": order_id,
        }
        if rest != everything:
            event["lines"] = line_objects(rest)
        return [event]

    def _order_fulfilled(self, body: bytes) -> list[EventObject]:
        order = _hook_order.decode(body)
        if not merge_lines((line.sku, line.quantity) for line in order.line_items):
            return []
        order_id = str(order.id)
        return [
            {
                "id": order_events_id(self.channel_id, order_id, "fulfilled"),
                "type": "order.fulfilled",
                "channel": self.channel_id,
                "order_id": order_id,
            }
        ]

    def _refund_created(self, body: bytes) -> list[EventObject]:
        # restock_type "return": units came back (order.returned at options.return_location);
        # "cancel": unfulfilled units were taken off the order (order.cancelled of those lines);
        # "no_restock": nothing comes back.
        refund = _hook_refund.decode(body)
        order_id = str(refund.order_id)
        returned = merge_lines(
            (_refund_sku(line, ()), line.quantity)
            for line in refund.refund_line_items
            if (line.restock_type or "").lower() in ("return", "legacy_restock")
        )
        cancelled = merge_lines(
            (_refund_sku(line, ()), line.quantity)
            for line in refund.refund_line_items
            if (line.restock_type or "").lower() == "cancel"
        )
        events: list[EventObject] = []
        if cancelled:
            events.append(
                {
                    "id": order_events_id(
                        self.channel_id, order_id, f"refund-{refund.id}-cancelled"
                    ),
                    "type": "order.cancelled",
                    "channel": self.channel_id,
                    "order_id": order_id,
                    "lines": line_objects(cancelled),
                }
            )
        if returned:
            if self.return_location is None:
                raise BadWebhook(
                    f"refunds/create for order {order_id} restocks returned units, but channel "
                    f"'{self.channel_id}' has no options.return_location (the invsync location "
                    "returns go to)"
                )
            events.append(
                {
                    "id": order_events_id(
                        self.channel_id, order_id, f"refund-{refund.id}-returned"
                    ),
                    "type": "order.returned",
                    "channel": self.channel_id,
                    "order_id": order_id,
                    "location": self.return_location,
                    "lines": line_objects(returned),
                }
            )
        return events


def _refund_sku(line: HookRefundLine, items: Sequence[HookLineItem]) -> str | None:
    """The SKU of a refunded line: its embedded ``line_item``, else the order's line by id."""
    if line.line_item is not None and line.line_item.sku:
        return line.line_item.sku
    for item in items:
        if item.id is not None and str(item.id) == str(line.line_item_id):
            return item.sku
    return None
