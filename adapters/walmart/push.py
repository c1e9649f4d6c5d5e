"""Changes that cannot wait: one ``PUT /v3/inventory?sku=`` per SKU, ``max_concurrency`` at a
time (``lanes.py`` says which changes those are).

Body and answer ``{"sku", "quantity": {"unit": "EACH", "amount"}}``
(https://developer.walmart.com/us-marketplace/docs/update-single-item-inventory).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..base import ChannelError, Permanent, PushResult, Throttled, Unauthorized, Update
from .client import WalmartClient
from .wire import Inventory, Quantity, encode

__all__ = ["put_each"]


async def put_each(client: WalmartClient, updates: Sequence[Update]) -> list[PushResult]:
    """Set each SKU's quantity with its own PUT: per-SKU results; refused credentials, or a
    failure of every PUT, raised for the whole call."""

    async def put(update: Update) -> PushResult:
        return await _put(client, update)

    results = await client.each(updates, put)
    failures = [r for r in results if isinstance(r, ChannelError)]
    for failure in failures:
        if isinstance(failure, Unauthorized):
            raise failure
    if len(failures) == len(results):  # nothing got through: a failure of the whole call
        raise failures[0]
    out: list[PushResult] = []
    for update, result in zip(updates, results, strict=True):
        if isinstance(result, PushResult):
            out.append(result)
        elif isinstance(result, Throttled):
            out.append(
                PushResult(
                    sku=update.sku,
                    outcome="throttled",
                    retry_after=result.retry_after,
                    error=result.message,
                )
            )
        else:
            assert isinstance(result, ChannelError)
            out.append(
                PushResult(
                    sku=update.sku,
                    outcome="retryable",
                    retry_after=result.retry_after,
                    error=result.message,
                )
            )
    return out


async def _put(client: WalmartClient, update: Update) -> PushResult:
    # A negative availability (never expected) means nothing to sell; Walmart refuses < 0.
    amount = max(0, update.available)
    body = encode(Inventory(sku=update.sku, quantity=Quantity(amount=amount)))
    try:
        await client.call("PUT", "/v3/inventory", params={"sku": update.sku}, body=body)
    except Unauthorized:
        raise
    except Permanent as exc:  # unknown SKU (404), invalid listing (400): this SKU only
        return PushResult(sku=update.sku, outcome="permanent", error=exc.message)
    return PushResult(sku=update.sku, outcome="ok")
