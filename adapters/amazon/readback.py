"""Read-back for the drift check: ``getListingsItem`` per SKU, paced to its usage plan.

``GET /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=&includedData=
fulfillmentAvailability`` answers ``Item`` ``{"sku", "fulfillmentAvailability":
[{"fulfillmentChannelCode", "quantity"}]}`` or 404 (5 rps, burst 10).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ..http import waiting_out_throttles
from .client import SpApiClient, decode_or_retry
from .wire import decode_item, item_path

__all__ = ["read_back"]


async def read_back(client: SpApiClient, skus: Sequence[str]) -> dict[str, int]:
    """SKU -> the quantity its listing offers on the configured fulfillment channel; SKUs
    without a listing (404) or without such a quantity are left out."""
    options = client.options
    out: dict[str, int] = {}
    params = {"marketplaceIds": options.marketplace_id, "includedData": "fulfillmentAvailability"}
    for sku in skus:
        # Paced to getListingsItem's rate (5/s): 429s are waited out, not a failed check.
        reply = await waiting_out_throttles(
            functools.partial(
                client.call,
                "getListingsItem",
                "GET",
                item_path(options.seller_id, sku),
                params=params,
                passthrough=frozenset({404}),
            ),
            sleep=client.clock.sleep,
        )
        if reply.status == 404:
            continue
        item = decode_or_retry(decode_item, reply, "getListingsItem")
        for entry in item.fulfillment_availability:
            if entry.fulfillment_channel_code != options.fulfillment_channel_code:
                continue
            if entry.quantity is not None:
                out[sku] = entry.quantity
            break
    return out
