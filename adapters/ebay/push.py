"""Quantity pushes: bulkUpdatePriceQuantity with the inventory item and every published offer.

``POST {url}/sell/inventory/v1/bulk_update_price_quantity``
(``/api-docs/sell/inventory/resources/inventory_item/methods/bulkUpdatePriceQuantity``), body
``{"requests": [{"sku", "shipToLocationAvailability": {"quantity"}, "offers": [{"offerId",
"availableQuantity"}]}]}``.

- Both levels, one request: the bulk-updates guide (``/api-docs/sell/static/inventory/
  bulk-updates.html``) says a quantity "must be updated at both the inventory item and offer
  level", and a listing shows the smaller of the two; so each published offer's
  ``availableQuantity`` is set to the same number (``offers.py`` finds them), and no offer
  keeps an old cap. ``options.update_offers = false`` sends the inventory item's alone (eBay's
  knowledge-base article 5100 calls that the best practice when offers never had their own).
- SKUs per call: the method page says "Only one SKU (one product) can be updated per call" (with
  up to 25 of its offers); the type page ``slr:BulkPriceQuantity`` says "one or more inventory
  items (up to 25)". We follow the stricter reading: ``options.skus_per_call`` defaults to 1
  (``max_batch``); a seller whom eBay confirms the 25 can raise it.
- Each item's ``responses[]`` entry (one per offer when offers are sent) carries its own HTTP-like
  ``statusCode``; a SKU succeeds when all of its entries do. An offer eBay no longer has (errorId
  25713) makes the SKU retryable and its offers are looked up again.
- The 250 revisions per listing per day are guarded by ``revisions.py``: a SKU whose listing
  used them up is held (``retryable``) without a call.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ...metrics import definitions as m
from ..base import ChannelError, Outcome, Permanent, PushResult, Throttled, Update
from ..http import HttpReply
from .client import EbayClient
from .offers import Offer, OfferBook
from .revisions import RevisionBudget
from .wire import (
    OFFER_GONE_ERRORS,
    BulkPriceQuantity,
    BulkPriceQuantityResponse,
    OfferPriceQuantity,
    PriceQuantity,
    ShipToLocationAvailability,
    describe,
    outcome_of,
)

__all__ = ["UPDATE_PATH", "Pusher"]

UPDATE_PATH = "/sell/inventory/v1/bulk_update_price_quantity"

_encode = msgspec.json.Encoder().encode
_update_reply = msgspec.json.Decoder(BulkPriceQuantityResponse).decode


class Pusher:
    """Sets SKUs' quantities on eBay, ``skus_per_call`` at a time."""

    def __init__(
        self,
        channel_id: str,
        client: EbayClient,
        offers: OfferBook,
        budget: RevisionBudget,
        *,
        skus_per_call: int,
        update_offers: bool,
    ) -> None:
        self.channel_id = channel_id
        self.skus_per_call = skus_per_call
        self._client = client
        self._offers = offers
        self._budget = budget
        self._update_offers = update_offers
        self._holds = m.LISTING_REVISION_HOLDS.labels(channel=channel_id)

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Per-SKU results, or Throttled/Retryable/Permanent when the batch is one call.

        A longer list is sent ``skus_per_call`` at a time; a failed call then fails only its own
        SKUs, and once eBay throttles the rest is not sent.
        """
        latest = {u.sku: u.available for u in updates}  # a repeated SKU: the last value wins
        skus = list(latest)
        whole = len(skus) <= self.skus_per_call  # one call: its failure is the whole batch's
        results: dict[str, PushResult] = {}
        held: Throttled | None = None
        for start in range(0, len(skus), self.skus_per_call):
            chunk = skus[start : start + self.skus_per_call]
            if held is not None:
                results.update({sku: _failed(sku, held) for sku in chunk})
                continue
            try:
                ready = await self._prepare(chunk, results)
                if ready:
                    results.update(await self._update(ready, latest))
            except ChannelError as exc:
                if whole:
                    raise
                results.update({sku: _failed(sku, exc) for sku in chunk if sku not in results})
                held = exc if isinstance(exc, Throttled) else None
        return [msgspec.structs.replace(results[u.sku], sku=u.sku) for u in updates]

    async def _prepare(
        self, chunk: Sequence[str], results: dict[str, PushResult]
    ) -> list[tuple[str, tuple[Offer, ...]]]:
        """Each SKU of ``chunk`` with its offers, but those held by the revision budget (their
        result goes in ``results``)."""
        ready: list[tuple[str, tuple[Offer, ...]]] = []
        for sku in chunk:
            offers = await self._offers.offers(sku)
            spent = await self._budget.spent(o.listing_id for o in offers)
            if spent:
                self._holds.inc()
                results[sku] = PushResult(
                    sku=sku,
                    outcome="retryable",
                    error=f"held: listing {', '.join(spent)} used its {self._budget.limit} "
                    f"revisions of the day (UTC); eBay takes more after midnight UTC, in "
                    f"{round(self._budget.seconds_to_next_day())} s",
                )
                continue
            ready.append((sku, offers))
        return ready

    async def _update(
        self, chunk: Sequence[tuple[str, tuple[Offer, ...]]], quantity: dict[str, int]
    ) -> dict[str, PushResult]:
        requests = [
            PriceQuantity(
                sku=sku,
                ship_to_location_availability=ShipToLocationAvailability(quantity=quantity[sku]),
                offers=[
                    OfferPriceQuantity(offer_id=o.offer_id, available_quantity=quantity[sku])
                    for o in offers
                ]
                if self._update_offers and offers
                else None,
            )
            for sku, offers in chunk
        ]
        reply = await self._client.call(
            "POST", UPDATE_PATH, body=_encode(BulkPriceQuantity(requests=requests))
        )
        results, revised = self._results(reply, chunk)
        await self._budget.spend(
            o.listing_id for sku, offers in chunk if sku in revised for o in offers
        )
        return results

    def _results(
        self, reply: HttpReply, chunk: Sequence[tuple[str, tuple[Offer, ...]]]
    ) -> tuple[dict[str, PushResult], set[str]]:
        """Per-SKU results, and the SKUs eBay changed (whose listings were revised)."""
        try:
            parsed = _update_reply(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            parsed = BulkPriceQuantityResponse()
        offer_skus = {o.offer_id: sku for sku, offers in chunk for o in offers}
        failed: dict[str, PushResult] = {}
        answered: set[str] = set()
        revised: set[str] = set()
        for item in parsed.responses:
            sku = item.sku or offer_skus.get(item.offer_id or "")
            if sku is None:
                continue
            answered.add(sku)
            bad = outcome_of(item.status_code, item.errors)
            if bad is None:
                revised.add(sku)
                continue
            if {e.error_id for e in item.errors} & OFFER_GONE_ERRORS:
                # Our offer id is stale (the offer was withdrawn or replaced): learn them again.
                self._offers.forget(sku)
                bad = PushResult(sku="", outcome="retryable", error=bad.error)
            if sku not in failed or _worse(bad.outcome, failed[sku].outcome):
                failed[sku] = bad
        # A 200 is eBay's "every item succeeded". In a 207 an item without its own result is
        # unknown: setting an absolute quantity again is harmless, so it is retried.
        ok = PushResult(sku="", outcome="ok")
        unknown = PushResult(
            sku="",
            outcome="retryable",
            error=f"HTTP {reply.status}: no result for this SKU"
            + (f" ({describe(parsed.errors)})" if parsed.errors else ""),
        )
        missing = ok if reply.status == 200 and not parsed.errors else unknown
        out: dict[str, PushResult] = {}
        for sku, _ in chunk:
            out[sku] = failed.get(sku) or (ok if sku in answered else missing)
            if sku not in answered and missing is ok:
                revised.add(sku)
        return out, revised


_RANK: dict[Outcome, int] = {"ok": 0, "throttled": 1, "retryable": 2, "permanent": 3}


def _worse(a: Outcome, b: Outcome) -> bool:
    return _RANK[a] > _RANK[b]


def _failed(sku: str, exc: ChannelError) -> PushResult:
    """The result of a SKU whose call (or offer lookup) failed as a whole."""
    outcome: Outcome
    if isinstance(exc, Throttled):
        outcome = "throttled"
    elif isinstance(exc, Permanent):
        outcome = "permanent"
    else:
        outcome = "retryable"
    return PushResult(sku=sku, outcome=outcome, retry_after=exc.retry_after, error=exc.message)
