"""Read-back for the drift check: ``GET /product/202309/products/{product_id}`` per product →
``skus[].inventory[].quantity`` at ``options.warehouse_id`` (``products/GetProduct.ts``)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ..http import waiting_out_throttles
from .catalog import Catalog
from .client import API_VERSION, STALE_CODES, ApiError, TikTokClient
from .wire import Product, decode_data

__all__ = ["read_back"]


async def read_back(client: TikTokClient, catalog: Catalog, skus: Sequence[str]) -> dict[str, int]:
    """What the shop shows at ``options.warehouse_id``; SKUs it does not list are left out."""
    listings = await catalog.resolve(skus)
    by_product: dict[str, set[str]] = {}
    for sku, listing in listings.items():
        by_product.setdefault(listing.product_id, set()).add(sku)
    warehouse = client.options.warehouse_id
    out: dict[str, int] = {}
    for product_id, members in by_product.items():
        try:
            # Paced to the API's per-second limit: throttle answers are waited out.
            path = f"/product/{API_VERSION}/products/{product_id}"
            raw = await waiting_out_throttles(
                functools.partial(client.request, "GET", path), sleep=client.clock.sleep
            )
        except ApiError as exc:
            if exc.code in STALE_CODES:
                catalog.forget(sorted(members))
                continue
            raise
        product = decode_data(raw, Product, "product")
        for entry in product.skus:
            if entry.seller_sku in members:
                out[entry.seller_sku] = sum(
                    inv.quantity for inv in entry.inventory if inv.warehouse_id == warehouse
                )
    return out
