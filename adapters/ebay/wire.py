"""eBay's Inventory API types (camelCase on the wire) and what their errors mean.

Transcribed from eBay's Inventory API reference on developer.ebay.com (contract
``sell_inventory_v1_oas3.json`` 1.18.5):

- ``/api-docs/sell/inventory/types/slr:BulkPriceQuantity``, ``slr:PriceQuantity``,
  ``slr:OfferPriceQuantity`` (``offerId``, ``availableQuantity``), ``slr:BulkPriceQuantityResponse``
  and ``slr:PriceQuantityResponse`` (``statusCode``, ``sku``, ``offerId``, ``errors``,
  ``warnings``): HTTP 200 when every item succeeded, 207 when some did not;
- ``slr:BulkGetInventoryItem`` / ``slr:BulkGetInventoryItemResponse`` (read-back);
- ``slr:Offers`` (the getOffers page: ``offers``, ``next``, ``total``) and
  ``slr:EbayOfferDetailsWithAll`` (``offerId``, ``sku``, ``format``, ``availableQuantity``,
  ``status`` PUBLISHED/UNPUBLISHED, ``listing.listingId``);
- errors are ``ErrorDetailV3`` (``/develop/api/sell/error_codes``, "Handling error messages").
  Per item: 5xx / 25001 "A system error has occurred" / 25025 "Concurrent access ... try again
  later" are retryable; 429 / 2001 "Too many requests" throttled; any other 4xx (25702 "SKU ...
  is not available in the system", 25709 "Invalid value for ...", 25713 "This Offer is not
  available") is permanent for that SKU only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from ..base import PushResult

__all__ = [
    "NOT_FOUND_ERRORS",
    "OFFER_GONE_ERRORS",
    "BulkGetInventoryItem",
    "BulkGetInventoryItemResponse",
    "BulkPriceQuantity",
    "BulkPriceQuantityResponse",
    "ErrorDetail",
    "ErrorResponse",
    "GetInventoryItem",
    "OfferDetails",
    "OfferPriceQuantity",
    "Offers",
    "PriceQuantity",
    "ShipToLocationAvailability",
    "describe",
    "outcome_of",
]

#: errorIds eBay asks us to try again for: a system error, a concurrent update of the same item.
RETRYABLE_ERRORS = frozenset({25001, 25025})
#: The call-limit error ("Too many requests", domain ACCESS).
THROTTLE_ERROR = 2001
#: "SKU ... is not available in the system" / "We didn't find the resource/entity".
NOT_FOUND_ERRORS = frozenset({25702, 25710})
#: "This Offer is not available": an offer id we hold is no longer the SKU's published offer.
OFFER_GONE_ERRORS = frozenset({25713})


class ShipToLocationAvailability(msgspec.Struct, kw_only=True):
    """The total ship-to-home quantity of an inventory item."""

    quantity: int


class OfferPriceQuantity(msgspec.Struct, kw_only=True, rename="camel"):
    """One published offer's own quantity (no ``price``: invsync never changes prices)."""

    offer_id: str
    available_quantity: int


class PriceQuantity(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """One item of a bulkUpdatePriceQuantity request: the SKU's total and its offers' own."""

    sku: str
    ship_to_location_availability: ShipToLocationAvailability
    offers: list[OfferPriceQuantity] | None = None


class BulkPriceQuantity(msgspec.Struct, kw_only=True):
    """The bulkUpdatePriceQuantity request."""

    requests: list[PriceQuantity]


class ErrorParameter(msgspec.Struct, kw_only=True):
    """A name/value that gives an error its context (often the offending field)."""

    name: str | None = None
    value: str | None = None


class ErrorDetail(msgspec.Struct, kw_only=True, rename="camel"):
    """eBay's ErrorDetailV3 (also the shape of warnings)."""

    error_id: int | None = None
    domain: str | None = None
    subdomain: str | None = None
    category: str | None = None
    message: str | None = None
    long_message: str | None = None
    parameters: list[ErrorParameter] = []


class PriceQuantityResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """The result of one item (or one offer of it) of a bulkUpdatePriceQuantity call."""

    status_code: int | None = None
    sku: str | None = None
    offer_id: str | None = None
    errors: list[ErrorDetail] = []
    warnings: list[ErrorDetail] = []


class BulkPriceQuantityResponse(msgspec.Struct, kw_only=True):
    """The bulkUpdatePriceQuantity answer; ``errors`` for a 207 typed as eBay's Error."""

    responses: list[PriceQuantityResponse] = []
    errors: list[ErrorDetail] = []


class GetInventoryItem(msgspec.Struct, kw_only=True):
    """One SKU of a bulkGetInventoryItem request."""

    sku: str


class BulkGetInventoryItem(msgspec.Struct, kw_only=True):
    """The bulkGetInventoryItem request: at most 25 SKUs."""

    requests: list[GetInventoryItem]


class ShipToLocationAvailabilityWithAll(msgspec.Struct, kw_only=True):
    """The quantity part of a read inventory item (allocations are not needed here)."""

    quantity: int | None = None


class AvailabilityWithAll(msgspec.Struct, kw_only=True, rename="camel"):
    """An inventory item's availability."""

    ship_to_location_availability: ShipToLocationAvailabilityWithAll | None = None


class InventoryItem(msgspec.Struct, kw_only=True):
    """The parts of InventoryItemWithSkuLocaleGroupKeys that read-back needs."""

    sku: str | None = None
    availability: AvailabilityWithAll | None = None


class GetInventoryItemResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """The result of one SKU of a bulkGetInventoryItem call."""

    status_code: int | None = None
    sku: str | None = None
    inventory_item: InventoryItem | None = None
    errors: list[ErrorDetail] = []
    warnings: list[ErrorDetail] = []


class BulkGetInventoryItemResponse(msgspec.Struct, kw_only=True):
    """The bulkGetInventoryItem answer."""

    responses: list[GetInventoryItemResponse] = []
    errors: list[ErrorDetail] = []


class ListingDetails(msgspec.Struct, kw_only=True, rename="camel"):
    """The live listing of a published offer."""

    listing_id: str | None = None
    listing_status: str | None = None


class OfferDetails(msgspec.Struct, kw_only=True, rename="camel"):
    """The parts of EbayOfferDetailsWithAll the quantity push needs."""

    offer_id: str | None = None
    sku: str | None = None
    marketplace_id: str | None = None
    format: str | None = None
    available_quantity: int | None = None
    status: str | None = None
    listing: ListingDetails | None = None


class Offers(msgspec.Struct, kw_only=True):
    """One page of getOffers."""

    offers: list[OfferDetails] = []
    next: str | None = None
    total: int | None = None


class ErrorResponse(msgspec.Struct, kw_only=True):
    """Any eBay REST error body."""

    errors: list[ErrorDetail] = []


def describe(errors: Iterable[ErrorDetail]) -> str:
    """``errorId domain: message`` of each error, for logs and PushResult.error."""
    parts = []
    for err in errors:
        where = " ".join(str(x) for x in (err.error_id, err.domain) if x is not None)
        parts.append(f"{where}: {err.long_message or err.message or 'no message'}")
    return "; ".join(parts)


def outcome_of(status: int | None, errors: Sequence[ErrorDetail]) -> PushResult | None:
    """What one item's ``statusCode`` and ``errors`` mean; None when it succeeded.

    The ``sku`` of the returned result is empty: the caller fills it in.
    """
    code = status or 0
    if 200 <= code < 300 or (code == 0 and not errors):
        return None
    ids = {err.error_id for err in errors}
    text = f"statusCode {code}: {describe(errors) or 'no error details'}"
    if code == 429 or THROTTLE_ERROR in ids:
        return PushResult(sku="", outcome="throttled", error=text)
    if code >= 500 or ids & RETRYABLE_ERRORS:
        return PushResult(sku="", outcome="retryable", error=text)
    return PushResult(sku="", outcome="permanent", error=text)
