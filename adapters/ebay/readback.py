"""Read-back for drift detection: eBay's ship-to-home quantity of each SKU.

``POST {url}/sell/inventory/v1/bulk_get_inventory_item`` (bulkGetInventoryItem,
``/api-docs/sell/inventory/resources/inventory_item/methods/bulkGetInventoryItem``), up to 25
SKUs -> ``responses[].inventoryItem.availability.shipToLocationAvailability.quantity``. SKUs eBay
answers for with anything but 200 are not listed there and are left out; a 400 whose every
error is 25702/25710 is eBay's answer when it has none of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..base import Retryable, Throttled
from ..http import HttpReply
from .client import EbayClient
from .wire import (
    NOT_FOUND_ERRORS,
    BulkGetInventoryItem,
    BulkGetInventoryItemResponse,
    ErrorResponse,
    GetInventoryItem,
    outcome_of,
)

__all__ = ["READ_BATCH", "READ_PATH", "read_back"]

READ_PATH = "/sell/inventory/v1/bulk_get_inventory_item"
#: bulkGetInventoryItem's limit (errorId 25727 beyond it).
READ_BATCH = 25

_encode = msgspec.json.Encoder().encode
_get_reply = msgspec.json.Decoder(BulkGetInventoryItemResponse).decode
_error_reply = msgspec.json.Decoder(ErrorResponse).decode


async def read_back(client: EbayClient, skus: Sequence[str]) -> dict[str, int]:
    """SKU -> eBay's ship-to-home quantity, 25 SKUs per call.

    SKUs eBay does not have are left out; a per-SKU system error fails the whole read
    (Retryable), since leaving the SKU out would read as "not listed".
    """
    out: dict[str, int] = {}
    wanted = list(dict.fromkeys(skus))
    for start in range(0, len(wanted), READ_BATCH):
        chunk = wanted[start : start + READ_BATCH]
        body = _encode(BulkGetInventoryItem(requests=[GetInventoryItem(sku=s) for s in chunk]))
        reply = await client.call("POST", READ_PATH, body=body, accept=_none_found)
        if reply.status >= 400:
            continue  # eBay has none of these SKUs
        try:
            parsed = _get_reply(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Retryable(f"bulkGetInventoryItem: unreadable answer: {exc}") from exc
        asked = set(chunk)
        for item in parsed.responses:
            if item.sku not in asked:
                continue
            bad = outcome_of(item.status_code, item.errors)
            if bad is None:
                availability = item.inventory_item.availability if item.inventory_item else None
                ship = availability.ship_to_location_availability if availability else None
                # An item whose ship-to-home quantity was never set sells nothing.
                out[item.sku] = ship.quantity if ship and ship.quantity is not None else 0
            elif bad.outcome == "throttled":
                raise Throttled(f"bulkGetInventoryItem {item.sku}: {bad.error}")
            elif bad.outcome == "retryable":
                raise Retryable(f"bulkGetInventoryItem {item.sku}: {bad.error}")
    return out


def _none_found(reply: HttpReply) -> bool:
    """A 400 whose every error says the SKU is not there (eBay's answer when none are)."""
    if reply.status != 400:
        return False
    try:
        errors = _error_reply(reply.body).errors
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return bool(errors) and all(err.error_id in NOT_FOUND_ERRORS for err in errors)
