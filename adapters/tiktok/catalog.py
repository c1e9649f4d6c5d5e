"""Seller SKU → (product id, SKU id): looked up once with Search Products, then cached.

``POST /product/202309/products/search?page_size=100`` with ``{"seller_skus": [...]}`` →
``data.products[].{id, status, skus[].{id, seller_sku, inventory}}``, paginated by
``next_page_token`` (lywzx/tiktok-partner-api ``products/SearchProducts.ts``). A SKU no product
carries is not listed; ids the shop later calls unknown are forgotten and looked up again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .client import API_VERSION, TikTokClient
from .wire import SearchBody, SearchData, decode_data, encode

__all__ = ["SEARCH_PAGE", "Catalog", "Listing"]

#: Products per search page (the API's maximum page_size).
SEARCH_PAGE = 100


class Listing(NamedTuple):
    """Where a seller SKU lives in the shop."""

    product_id: str
    sku_id: str


class Catalog:
    """The shop's ids of the seller SKUs seen so far, both ways."""

    def __init__(self, client: TikTokClient) -> None:
        self._client = client
        self._listings: dict[str, Listing] = {}  # seller SKU -> ids
        self._by_sku_id: dict[str, str] = {}  # SKU id -> seller SKU

    async def resolve(self, skus: Sequence[str]) -> dict[str, Listing]:
        """The ids of the seller SKUs the shop lists (searching the ones not cached yet)."""
        missing = [sku for sku in dict.fromkeys(skus) if sku not in self._listings]
        for start in range(0, len(missing), SEARCH_PAGE):
            chunk = missing[start : start + SEARCH_PAGE]
            wanted = set(chunk)
            page_token = ""
            body = encode(SearchBody(seller_skus=chunk))
            while wanted:
                params = {"page_size": str(SEARCH_PAGE)}
                if page_token:
                    params["page_token"] = page_token
                raw = await self._client.request(
                    "POST", f"/product/{API_VERSION}/products/search", params=params, body=body
                )
                page = decode_data(raw, SearchData, "product search")
                for product in page.products or ():
                    if product.status == "DELETED":
                        continue
                    for sku in product.skus:
                        if sku.seller_sku and sku.seller_sku not in self._listings:
                            self._remember(sku.seller_sku, Listing(product.id, sku.id))
                        wanted.discard(sku.seller_sku)
                page_token = page.next_page_token
                if not page_token:
                    break
        return {sku: self._listings[sku] for sku in skus if sku in self._listings}

    def seller_sku(self, sku_id: str) -> str:
        """The seller SKU of a SKU id seen before, else ``""``."""
        return self._by_sku_id.get(sku_id, "")

    def forget(self, skus: Sequence[str]) -> None:
        """Drop the ids of ``skus``: the shop no longer knows them, the next use looks again."""
        for sku in skus:
            listing = self._listings.pop(sku, None)
            if listing is not None:
                self._by_sku_id.pop(listing.sku_id, None)

    def _remember(self, seller_sku: str, listing: Listing) -> None:
        self._listings[seller_sku] = listing
        self._by_sku_id[listing.sku_id] = seller_sku
