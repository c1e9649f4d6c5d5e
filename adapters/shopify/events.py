"""Shopify orders as invsync events: one translation for the webhooks and the order poll.

Event ids depend on the order and what happened to it (``<channel>-<order>-created``), never on
the delivery, so an order seen by both the ``orders/create`` webhook and the poll of a stale
compare-and-set is recorded once: whichever comes second is a duplicate.

The builders make the spec's JSON objects; ``core.events.convert_events`` turns them into typed
events at the edge (``webhooks.py``, ``orders.py``), validating what Shopify sent (an order id
invsync cannot keep is ``BadEvent``, answered 400 like any bad event).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import structlog

from ...core.events import holdable_sku

__all__ = ["created_event", "line_objects", "merge_lines", "order_events_id"]

log = structlog.get_logger("invsync.adapters.shopify")

#: An event as the spec's JSON object, before ``convert_events`` types it.
EventObject = dict[str, object]


def order_events_id(channel_id: str, order_id: str, what: str) -> str:
    """The event id of an order notification: stable per order and what happened to it, so the
    webhook and the order poll give the same id and the second is a duplicate."""
    return f"{channel_id}-{order_id}-{what}"


def merge_lines(lines: Iterable[tuple[str | None, int]]) -> dict[str, int]:
    """SKU -> units, in first-seen order; lines without a SKU (custom items, tips, gift cards:
    nothing invsync stocks), with a SKU invsync cannot hold, or with non-positive quantities
    are left out."""
    merged: dict[str, int] = {}
    for sku, qty in lines:
        name = (sku or "").strip()
        if name and not holdable_sku(name):
            log.warning("order_line_sku_not_holdable", sku=name[:200])
            continue
        if name and qty > 0:
            merged[name] = merged.get(name, 0) + qty
    return merged


def line_objects(merged: Mapping[str, int]) -> list[EventObject]:
    """The ``lines`` of an event from ``merge_lines``' result."""
    return [{"sku": sku, "qty": qty} for sku, qty in merged.items()]


def created_event(
    channel_id: str,
    order_id: str,
    lines: Iterable[tuple[str | None, int]],
    country: str | None,
    region: str | None,
) -> EventObject | None:
    """order.created for an order, the same from the webhook and from the order poll; None when
    none of its lines is something invsync stocks (a gift card, a custom item)."""
    merged = merge_lines(lines)
    if not merged:
        return None
    event: EventObject = {
        "id": order_events_id(channel_id, order_id, "created"),
        "type": "order.created",
        "channel": channel_id,
        "order_id": order_id,
        "lines": line_objects(merged),
    }
    if country or region:
        event["ship_to"] = {"country": country, "region": region}
    return event
