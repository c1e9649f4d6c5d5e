"""Read-back for the drift check: ``GET /v3/inventory?sku=`` per SKU, ``max_concurrency`` at a
time, the quantity at the default ship node."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..base import ChannelError, Retryable
from .client import WalmartClient
from .wire import decode_inventory

__all__ = ["read_back"]


async def read_back(client: WalmartClient, skus: Sequence[str]) -> dict[str, int]:
    """Each SKU's quantity at the default ship node; SKUs Walmart does not know (404) are left
    out. The first failed read is raised."""

    async def one(sku: str) -> int | None:
        reply = await client.call("GET", "/v3/inventory", params={"sku": sku}, allow=(404,))
        if reply.status == 404:
            return None
        try:
            return int(decode_inventory(reply.body).quantity.amount)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Retryable(f"unreadable inventory of {sku!r}: {exc}") from exc

    results = await client.each(skus, one)
    out: dict[str, int] = {}
    for sku, result in zip(skus, results, strict=True):
        if isinstance(result, ChannelError):
            raise result
        if isinstance(result, int):
            out[sku] = result
    return out
