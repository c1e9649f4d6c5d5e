"""Each SKU's published offers, learnt with getOffers and cached for ``options.offers_ttl_s``.

eBay's bulk-updates guide (``/api-docs/sell/static/inventory/bulk-updates.html``): a quantity
"must be updated at both the inventory item and offer level"; a listing shows the smaller of the
inventory item's ``shipToLocationAvailability.quantity`` and its offer's ``availableQuantity``.
So every push also sets each published offer's ``availableQuantity``, and needs the offer ids:

- ``GET {url}/sell/inventory/v1/offer?sku=...&limit=..&offset=..`` (getOffers,
  ``/api-docs/sell/inventory/resources/offer/methods/getOffers``) answers ``Offers {offers:
  [EbayOfferDetailsWithAll], next, total}``; a SKU can have two offers (an auction and a
  fixed-price listing at once). eBay answers 404 when the SKU has no offer at all.
- bulkUpdatePriceQuantity "is not designed to work with unpublished offers" (type
  ``slr:PriceQuantity``), and an auction's quantity cannot be changed by it (errorId 25759):
  only ``status == "PUBLISHED"`` offers of ``format == "FIXED_PRICE"`` are kept.
- ``listing.listingId`` names the live listing whose daily revisions ``revisions.py`` counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from ..base import Retryable
from ..http import HttpReply
from .client import EbayClient
from .wire import NOT_FOUND_ERRORS, OFFER_GONE_ERRORS, ErrorResponse, Offers

__all__ = ["OFFERS_PATH", "Offer", "OfferBook"]

OFFERS_PATH = "/sell/inventory/v1/offer"
#: getOffers' page size ("Max Occurs: 25" offers per page of slr:Offers).
OFFERS_PAGE = 25
#: More pages than a SKU can have offers (one per format per marketplace): a runaway guard.
MAX_PAGES = 8

_offers_reply = msgspec.json.Decoder(Offers).decode
_error_reply = msgspec.json.Decoder(ErrorResponse).decode


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    """A published fixed-price offer of a SKU and the listing it revises."""

    offer_id: str
    listing_id: str


class OfferBook:
    """SKU -> its published fixed-price offers, asked of eBay at most once per ``ttl_s``."""

    def __init__(
        self,
        client: EbayClient,
        *,
        ttl_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._known: dict[str, tuple[float, tuple[Offer, ...]]] = {}
        #: getOffers calls made (tests and the docs' cost figure read it).
        self.lookups = 0

    def forget(self, sku: str) -> None:
        """Ask eBay again next time (an offer id was refused, a listing ended)."""
        self._known.pop(sku, None)

    async def offers(self, sku: str) -> tuple[Offer, ...]:
        """The SKU's offers whose ``availableQuantity`` a push must set (maybe none)."""
        now = self._monotonic()
        cached = self._known.get(sku)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        found = await self._lookup(sku)
        self._known[sku] = (now, found)
        return found

    async def _lookup(self, sku: str) -> tuple[Offer, ...]:
        self.lookups += 1
        found: list[Offer] = []
        offset = 0
        for _ in range(MAX_PAGES):
            reply = await self._client.call(
                "GET",
                OFFERS_PATH,
                params={"sku": sku, "limit": str(OFFERS_PAGE), "offset": str(offset)},
                accept=_no_offers,
            )
            if reply.status >= 400:
                return ()
            try:
                page = _offers_reply(reply.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise Retryable(f"getOffers {sku}: unreadable answer: {exc}") from exc
            for offer in page.offers:
                if offer.status != "PUBLISHED" or offer.format != "FIXED_PRICE":
                    continue
                if not offer.offer_id or (offer.sku is not None and offer.sku != sku):
                    continue
                listing = offer.listing.listing_id if offer.listing else None
                found.append(Offer(offer_id=offer.offer_id, listing_id=listing or offer.offer_id))
            if not page.next or not page.offers:
                break
            offset += len(page.offers)
        return tuple(found)


def _no_offers(reply: HttpReply) -> bool:
    """A 404 (no offer for the SKU), or a 400 saying the SKU or offer does not exist."""
    if reply.status == 404:
        return True
    if reply.status != 400:
        return False
    try:
        errors = _error_reply(reply.body).errors
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return bool(errors) and all(
        err.error_id in NOT_FOUND_ERRORS | OFFER_GONE_ERRORS for err in errors
    )
