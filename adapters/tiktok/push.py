"""Pushes: one Update Inventory call per product, all the batch's SKUs of that product in it.

``POST /product/202309/products/{product_id}/inventory/update`` with ``{"skus": [{"id",
"inventory": [{"warehouse_id", "quantity"}]}]}``. Quantities are absolute per warehouse,
"non-negative … and less than 99999"; failures of single SKUs come back in
``data.errors[].{code, message, detail.{sku_id, extra_errors[].{warehouse_id, code, message}}}``
(lywzx/tiktok-partner-api ``products/UpdateInventory.ts``; help.useresponse.com "TikTok Update
Stock").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..base import ChannelError, Outcome, Permanent, PushResult, Throttled, Update
from .catalog import Catalog, Listing
from .client import (
    API_VERSION,
    DEFAULT_THROTTLE_S,
    REFUSED_CODES,
    RETRYABLE_CODES,
    STALE_CODES,
    THROTTLE_CODES,
    ApiError,
    TikTokClient,
)
from .wire import (
    ErrorDetail,
    InventoryUpdate,
    SkuUpdate,
    UpdateBody,
    UpdateData,
    decode_data,
    encode,
)

__all__ = ["MAX_QUANTITY", "push"]

#: "The value should be non-negative numbers (include number 0) and less than 99999".
MAX_QUANTITY = 99_998


async def push(
    client: TikTokClient, catalog: Catalog, updates: Sequence[Update]
) -> list[PushResult]:
    """One inventory update per product; per-SKU results, or the shared failure raised when
    every SKU ended with it."""
    failures: dict[str, PushResult] = {}
    wanted: dict[str, int] = {}
    for update in updates:
        if update.available < 0:
            failures[update.sku] = _failed(
                update.sku,
                "permanent",
                f"negative quantity {update.available}: TikTok Shop takes >= 0",
            )
        elif update.available > MAX_QUANTITY:
            failures[update.sku] = _failed(
                update.sku,
                "permanent",
                f"{update.available} units: TikTok Shop takes less than 99999 per warehouse",
            )
        else:
            wanted[update.sku] = update.available
    shared: ChannelError | None = None
    try:
        listings = await catalog.resolve(list(wanted))
    except ChannelError as exc:
        if not failures:
            raise
        shared, listings = exc, {}
        for sku in wanted:
            failures[sku] = _from_error(sku, exc)
    if shared is None:
        for sku in wanted:
            if sku not in listings:
                failures[sku] = _failed(
                    sku,
                    "permanent",
                    "not listed on TikTok Shop: no product of the shop has this seller SKU",
                )
    by_product: dict[str, list[str]] = {}
    for sku, listing in listings.items():
        by_product.setdefault(listing.product_id, []).append(sku)
    affected = 0  # SKUs whose result is the shared failure
    for product_id, skus in by_product.items():
        if shared is not None:  # the API is throttling or failing: do not call again
            failures.update({sku: _from_error(sku, shared) for sku in skus})
            affected += len(skus)
            continue
        try:
            failures.update(await _update(client, catalog, product_id, skus, listings, wanted))
        except ChannelError as exc:
            if isinstance(exc, ApiError) and exc.code in STALE_CODES:
                catalog.forget(skus)
            elif not isinstance(exc, ApiError) or exc.code in REFUSED_CODES:
                shared = exc  # not about this product: the next call would fail alike
                affected += len(skus)
            failures.update({sku: _from_error(sku, exc) for sku in skus})
    if shared is not None and affected == len({u.sku for u in updates}):
        raise shared
    return [failures.get(u.sku) or PushResult(sku=u.sku, outcome="ok") for u in updates]


async def _update(
    client: TikTokClient,
    catalog: Catalog,
    product_id: str,
    skus: list[str],
    listings: Mapping[str, Listing],
    quantities: Mapping[str, int],
) -> dict[str, PushResult]:
    warehouse = client.options.warehouse_id
    body = UpdateBody(
        skus=[
            SkuUpdate(
                id=listings[sku].sku_id,
                inventory=[InventoryUpdate(warehouse_id=warehouse, quantity=quantities[sku])],
            )
            for sku in skus
        ]
    )
    raw = await client.request(
        "POST",
        f"/product/{API_VERSION}/products/{product_id}/inventory/update",
        body=encode(body),
    )
    data = decode_data(raw, UpdateData, "inventory update answer")
    by_id = {listings[sku].sku_id: sku for sku in skus}
    out: dict[str, PushResult] = {}
    for error in data.errors or ():
        detail = error.detail or ErrorDetail()
        sku = by_id.get(detail.sku_id)
        if sku is None:
            continue
        code, message = error.code, error.message
        for extra in detail.extra_errors:
            code, message = extra.code or code, extra.message or message
            break
        text = f"TikTok Shop {code}: {message}"
        if code in THROTTLE_CODES:
            out[sku] = _failed(sku, "throttled", text, DEFAULT_THROTTLE_S)
        elif code in RETRYABLE_CODES:
            out[sku] = _failed(sku, "retryable", text)
        else:
            if code in STALE_CODES:
                catalog.forget([sku])
            out[sku] = _failed(sku, "permanent", text)
    return out


def _failed(sku: str, outcome: Outcome, error: str, retry_after: float | None = None) -> PushResult:
    return PushResult(sku=sku, outcome=outcome, error=error, retry_after=retry_after)


def _from_error(sku: str, exc: ChannelError) -> PushResult:
    if isinstance(exc, Throttled):
        return _failed(sku, "throttled", exc.message, exc.retry_after)
    if isinstance(exc, Permanent):
        return _failed(sku, "permanent", exc.message)
    return _failed(sku, "retryable", exc.message, exc.retry_after)
