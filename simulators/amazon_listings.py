"""The simulated SP-API's reading of a listing's ``fulfillment_availability`` and of the JSON Patch
operations that change it, as Amazon's pages and maintainers describe them.

The attribute is a list of entries, one per fulfillment channel: ``fulfillment_channel_code`` is
the selector that names an entry, the rest are the seller's fields (``quantity``,
``lead_time_to_ship_max_days``, ``restock_date``, ``is_inventory_available``...), and
``getListingsItem`` shows each entry with its ``marketplace_id``.

- ``add`` / ``replace`` put the given entry in place of the whole entry of its selector: fields
  left out are gone. "Partially update a listing" (https://developer-docs.amazon.com/sp-api/docs/
  partially-update-a-listing): patches add, replace or delete entire attributes, patching
  content within attributes is not supported; amzn/selling-partner-api-models issue #4406
  (2024-12-10) shows a replace of ``{fulfillment_channel_code, quantity}`` dropping the
  listing's ``lead_time_to_ship_max_days``; issue #2061 (2021-11-24) shows a replace naming
  another channel code adding that entry beside the existing one.
- ``merge`` (since 2025-06-16) changes only the fields given in the entry of its selector; the
  selector must be given, non-empty; a field given as ``null`` is removed. Tutorial "Merge a
  listing" (https://developer-docs.amazon.com/sp-api/docs/merge-a-listing) and the changelog
  "Listings Items v2021-08-01 API and JSON_LISTING_FEED now include a JSON patch merge
  operation".
- ``delete`` removes the entries of the given selectors, or the whole attribute without a value.

A seller-fulfilled (``DEFAULT``) entry must keep a whole ``quantity`` >= 0 (``minimum: 0`` in the
model's ``FulfillmentAvailability``); what breaks it is an ``INVALID`` submission.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ATTRIBUTE", "SELECTOR", "Entry", "apply_patch", "invalid_issue"]

#: The one attribute the simulator models.
ATTRIBUTE = "/attributes/fulfillment_availability"
SELECTOR = "fulfillment_channel_code"
#: The seller-fulfilled channel code: its entries carry the quantity Amazon sells from.
_MFN = "DEFAULT"

Entry = dict[str, Any]


def invalid_issue(message: str) -> dict[str, Any]:
    """The ERROR issue of an ``INVALID`` submission about ``fulfillment_availability``."""
    return {
        "code": "4000001",
        "message": message,
        "severity": "ERROR",
        "attributeNames": ["fulfillment_availability"],
        "categories": ["INVALID_ATTRIBUTE"],
    }


def apply_patch(
    entries: Sequence[Entry], op: str, value: Sequence[Any] | None, marketplace_id: str
) -> list[Entry] | str:
    """The attribute's entries after one patch operation, or why Amazon would refuse it."""
    if op == "delete":
        if value is None:
            return []
        gone = {given.get(SELECTOR) for given in value if isinstance(given, dict)}
        return [entry for entry in entries if entry.get(SELECTOR) not in gone]
    by_code: dict[str, Entry] = {str(entry[SELECTOR]): dict(entry) for entry in entries}
    for given in value or []:
        if not isinstance(given, dict):
            return "each value of 'Fulfillment Availability' must be an object"
        code = given.get(SELECTOR)
        if not isinstance(code, str) or not code:
            return f"'{SELECTOR}' is required for '{op}' and must not be empty"
        if op == "merge":
            entry = by_code.get(code, {SELECTOR: code, "marketplace_id": marketplace_id})
            for key, field_value in given.items():
                if field_value is None:
                    entry.pop(key, None)
                else:
                    entry[key] = field_value
        else:  # add, replace: the entry of this selector is what was given, nothing more
            entry = {"marketplace_id": marketplace_id, **given}
        problem = _check(entry)
        if problem:
            return problem
        by_code[code] = entry
    return list(by_code.values())


def _check(entry: Entry) -> str | None:
    quantity = entry.get("quantity")
    if "quantity" in entry and not _whole(quantity):
        return f"The provided value for 'quantity' ({quantity!r}) is invalid."
    if entry[SELECTOR] == _MFN and "quantity" not in entry:
        return "'quantity' is required for fulfillment_channel_code DEFAULT."
    lead = entry.get("lead_time_to_ship_max_days")
    if "lead_time_to_ship_max_days" in entry and not _whole(lead):
        return f"The provided value for 'lead_time_to_ship_max_days' ({lead!r}) is invalid."
    if "restock_date" in entry and not isinstance(entry["restock_date"], str):
        return "The provided value for 'restock_date' is invalid."
    if "is_inventory_available" in entry and not isinstance(entry["is_inventory_available"], bool):
        return "The provided value for 'is_inventory_available' is invalid."
    return None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
