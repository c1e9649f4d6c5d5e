"""The messages a location receives about its order parts (docs/fulfillment.md).

``fulfillment.requested`` asks the location to ship ``lines`` of an order; ``fulfillment.cancelled``
withdraws ``lines`` from what it was asked (``remaining`` is what it still ships; empty: nothing).
``id`` is unique per message and stable across re-deliveries, so a location that receives a
message twice (at-least-once delivery) recognises the copy. Messages of one order to one location
are delivered in ``seq`` order.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["Message", "MessageLine", "MessageType"]

MessageType = Literal["fulfillment.requested", "fulfillment.cancelled"]


class MessageLine(msgspec.Struct, frozen=True, kw_only=True):
    """Units of one SKU in a message."""

    sku: str
    qty: int


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One handoff message, as the location receives it (the JSON body of a webhook or MQTT
    message; the content of a 940 transaction set)."""

    type: MessageType
    id: str
    order_id: str
    channel: str
    location: str
    lines: list[MessageLine]
    ship_to: dict[str, Any] | None = None
    sla_days: int | None = None
    late: bool = False
    #: The part's short reference (the X12 depositor order number, at most 22 characters).
    ref: str = ""
    seq: int = 0
    #: After a cancellation: what of the part the location still ships (empty: nothing).
    remaining: list[MessageLine] | None = None
    created_ms: int = 0
