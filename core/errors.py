"""Typed errors of the inventory engine and its store.

Each error carries a stable ``code`` (what API clients and the CLI match on) and the HTTP status the
daemon answers with, plus the fields a caller needs to decide what to do next.
"""

from __future__ import annotations

from typing import Any, ClassVar


class InvsyncError(Exception):
    """Base of every error invsync reports to a user: a stable code, an HTTP status, a message."""

    code: ClassVar[str] = "INTERNAL"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        """The spec's error body: ``{"error": {"code", "message", ...details}}``."""
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class StoreError(InvsyncError):
    """The store (Redis/Valkey) could not be used as configured."""

    code = "STORE_ERROR"
    http_status = 503


class StoreUnavailable(StoreError):
    """The store does not answer; nothing was applied by the failed call (retry it as is)."""

    code = "STORE_UNAVAILABLE"
    http_status = 503


class InvalidRequest(InvsyncError):
    """Malformed input: a negative or non-integer quantity, an empty order, a bad SKU id."""

    code = "INVALID_REQUEST"
    http_status = 400


class InvalidQuantity(InvalidRequest):
    """A quantity is negative, zero where it must be positive, or not an integer."""

    code = "INVALID_QUANTITY"


class Conflict(InvsyncError):
    """The request is well formed but conflicts with the current state; nothing was applied."""

    code = "CONFLICT"
    http_status = 409


class OutOfStock(Conflict):
    """Some line of a reservation cannot be met; nothing was reserved.

    ``shortages`` lists ``{"sku", "location", "requested", "free"}`` for every short line.
    """

    code = "INSUFFICIENT_STOCK"

    @property
    def shortages(self) -> list[dict[str, Any]]:
        """Every (sku, location) that could not be met, with requested and free units."""
        value = self.details.get("shortages", [])
        return list(value) if isinstance(value, list) else []


class BelowReserved(Conflict):
    """A count or adjustment would leave ``on_hand`` below what open orders have reserved."""

    code = "BELOW_RESERVED"


class NegativeStock(Conflict):
    """An adjustment would make ``on_hand`` negative."""

    code = "NEGATIVE_STOCK"


class OrderExists(Conflict):
    """An order (or hold) with this id already exists under a different event id."""

    code = "ORDER_EXISTS"


class HoldExists(Conflict):
    """A hold id that is taken: held with other quantities, or already released, expired or
    converted (a hold id is used once; ``state`` says which)."""

    code = "HOLD_EXISTS"


class NothingReserved(Conflict):
    """The order has nothing left reserved to release or fulfil (already fulfilled or cancelled)."""

    code = "NOTHING_RESERVED"


class ExceedsReserved(Conflict):
    """A partial release/fulfilment asks for more units than the order still has reserved."""

    code = "EXCEEDS_RESERVED"


class ExceedsFulfilled(Conflict):
    """A return asks for more units than were fulfilled and not yet returned."""

    code = "EXCEEDS_FULFILLED"


class NotExpired(Conflict):
    """An expiry sweep raced a hold that was converted or extended; nothing changed."""

    code = "NOT_EXPIRED"


class NotFound(InvsyncError):
    """Unknown order, hold, SKU or location."""

    code = "NOT_FOUND"
    http_status = 404


class UnknownOrder(NotFound):
    """The order (or hold) does not exist."""

    code = "UNKNOWN_ORDER"


class UnknownHold(NotFound):
    """No hold with this id (never placed, refused, or its record has aged out)."""

    code = "UNKNOWN_HOLD"


class UnknownSku(NotFound):
    """The SKU has never been stocked."""

    code = "UNKNOWN_SKU"


class UnknownLocation(NotFound):
    """The location is not in the config."""

    code = "UNKNOWN_LOCATION"


#: Lua scripts report errors by code; this maps a code back to its exception type.
BY_CODE: dict[str, type[InvsyncError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidQuantity,
        OutOfStock,
        BelowReserved,
        NegativeStock,
        OrderExists,
        HoldExists,
        NothingReserved,
        ExceedsReserved,
        ExceedsFulfilled,
        NotExpired,
        UnknownOrder,
        UnknownHold,
        UnknownSku,
        UnknownLocation,
    )
}


def from_code(code: str, message: str, **details: Any) -> InvsyncError:
    """The typed exception for a code reported by a Lua script (unknown codes become internal)."""
    cls = BY_CODE.get(code, InvsyncError)
    return cls(message, **details)
