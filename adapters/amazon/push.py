"""Small batches: one ``patchListingsItem`` per SKU, in order.

Listings Items API 2021-08-01 (``models/listings-items-api-model/listingsItems_2021-08-01.json``):
``PATCH /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=`` with a
``ListingsItemPatchRequest`` answers ``ListingsItemSubmissionResponse`` ``{"sku", "status":
ACCEPTED|INVALID|VALID, "submissionId", "issues": [{"code", "message", "severity"}]}`` (usage plan
5 rps, burst 5). Short throttles are waited out on the clock within ``options.throttle_wait_s``
(each counted as a throttled push, ``client.py``). A SKU without a listing answers ``INVALID``
with an ERROR issue (``Issue`` of the model): ``permanent`` for that SKU alone.
https://developer-docs.amazon.com/sp-api/docs/listings-items-api-v2021-08-01-reference
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..base import (
    ChannelError,
    Outcome,
    Permanent,
    PushResult,
    Retryable,
    Throttled,
    Unauthorized,
    Update,
)
from .client import SpApiClient
from .wire import (
    ListingsItemPatchRequest,
    decode_submission,
    encode,
    issue_text,
    item_path,
    patches,
)

__all__ = ["patch_each"]


async def patch_each(client: SpApiClient, updates: Sequence[Update]) -> list[PushResult]:
    """Set each SKU's quantity with its own patch: per-SKU results, or the failure of the very
    first call raised (nothing was applied)."""
    results: list[PushResult] = []
    waited = 0.0
    budget = client.options.throttle_wait_s
    i = 0
    while i < len(updates):
        update = updates[i]
        try:
            results.append(await _patch(client, update))
        except Throttled as exc:
            wait = exc.retry_after
            if wait is not None and 0 < wait and waited + wait <= budget:
                waited += wait
                client.throttled()  # absorbed here, so the actor would never see it
                await client.clock.sleep(wait)
                continue  # the same SKU again once a slot is free
            if not results:
                raise
            results.extend(_rest(updates[i:], "throttled", exc))
            break
        except (Retryable, Unauthorized) as exc:
            if not results:
                raise
            # Refused credentials mid-batch are an outage, not a verdict on these SKUs.
            results.extend(_rest(updates[i:], "retryable", exc))
            break
        except Permanent as exc:  # a 4xx about this SKU's request alone
            results.append(PushResult(sku=update.sku, outcome="permanent", error=exc.message))
        i += 1
    return results


async def _patch(client: SpApiClient, update: Update) -> PushResult:
    options = client.options
    body = encode(
        ListingsItemPatchRequest(
            product_type=options.product_type,
            patches=patches(options.fulfillment_channel_code, update.available),
        )
    )
    reply = await client.call(
        "patchListingsItem",
        "PATCH",
        item_path(options.seller_id, update.sku),
        params={"marketplaceIds": options.marketplace_id},
        body=body,
    )
    try:
        answer = decode_submission(reply.body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Retryable(f"patchListingsItem answered no submission: {exc}") from exc
    errors = [i for i in answer.issues if i.severity == "ERROR"]
    if answer.status == "ACCEPTED" and not errors:
        return PushResult(sku=update.sku, outcome="ok")
    text = issue_text(errors) or f"submission {answer.status}"
    return PushResult(sku=update.sku, outcome="permanent", error=text)


def _rest(updates: Sequence[Update], outcome: Outcome, exc: ChannelError) -> list[PushResult]:
    return [
        PushResult(sku=u.sku, outcome=outcome, retry_after=exc.retry_after, error=exc.message)
        for u in updates
    ]
