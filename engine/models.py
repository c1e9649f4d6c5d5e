"""Plain data of the engine: order lines, per-location stock, orders and call outcomes."""

from __future__ import annotations

import msgspec

from .availability import LocationStock


class Line(msgspec.Struct, frozen=True, kw_only=True):
    """One order line: ``qty`` units of ``sku``, taken from ``location`` when reserving."""

    sku: str
    qty: int
    location: str | None = None


class LocationState(msgspec.Struct, frozen=True, kw_only=True):
    """The counters of one SKU at one location, and what is free to sell there."""

    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0
    damaged: int = 0
    incoming: int = 0
    available: int = 0

    def stock(self) -> LocationStock:
        """The availability rules' view of these counters."""
        return LocationStock(
            on_hand=self.on_hand,
            reserved=self.reserved,
            safety_stock=self.safety_stock,
            damaged=self.damaged,
            incoming=self.incoming,
        )


class SkuState(msgspec.Struct, frozen=True, kw_only=True):
    """Every location's counters of one SKU at one version (bumped by every change)."""

    sku: str
    version: int
    locations: dict[str, LocationState]

    def stock(self) -> dict[str, LocationStock]:
        """Location id -> counters, as the availability rules take them."""
        return {loc: state.stock() for loc, state in self.locations.items()}


class OrderLine(msgspec.Struct, kw_only=True):
    """A line of an order record: where it was reserved and what has happened to its units."""

    sku: str
    location: str
    qty: int
    reserved: int = 0
    fulfilled: int = 0
    released: int = 0
    returned: int = 0


class Order(msgspec.Struct, kw_only=True):
    """An order (or hold) record as kept in Redis.

    ``state`` is one of reserved, partially_fulfilled, fulfilled, cancelled, returned (orders) or
    held, released, expired, converted (holds).
    """

    kind: str
    channel: str
    order_id: str
    state: str
    lines: list[OrderLine]
    created_ms: int
    updated_ms: int
    expires_ms: int | None = None
    converted_to: str | None = None
    requested: list[Line] | None = None


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What an engine call did: the new state of every SKU it touched, and the order if any.

    ``duplicate`` is true when the event id had already been applied: nothing changed, and the
    states are the current ones.
    """

    duplicate: bool
    skus: dict[str, SkuState]
    order: Order | None = None
