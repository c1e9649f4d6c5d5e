"""The ``options`` table of an ``ebay`` channel, checked when the config is loaded.

Names, defaults and meanings are those of ``docs/channels/ebay.md``; the limits they may not
exceed are eBay's (cited in ``push.py``, ``revisions.py`` and ``orders.py``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ..options import EnvName, HttpUrl, NonEmpty, Seconds, SecondsOrZero, Timeout

__all__ = [
    "DEFAULT_SCOPE",
    "MAX_SKUS_PER_CALL",
    "REVISIONS_PER_DAY",
    "SCOPE_FULFILLMENT",
    "SCOPE_INVENTORY",
    "Options",
]

SCOPE_INVENTORY = "https://api.ebay.com/oauth/api_scope/sell.inventory"
SCOPE_FULFILLMENT = "https://api.ebay.com/oauth/api_scope/sell.fulfillment.readonly"
#: What a refresh asks for: quantity updates and the order poll.
DEFAULT_SCOPE = f"{SCOPE_INVENTORY} {SCOPE_FULFILLMENT}"
DEFAULT_LANGUAGE = "en-US"
#: The type page's "up to 25" inventory items per bulkUpdatePriceQuantity call.
MAX_SKUS_PER_CALL = 25
#: "Each listing can be revised up to 250 times in one calendar day" (bulkUpdatePriceQuantity).
REVISIONS_PER_DAY = 250

Language = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z]{2}-[A-Z]{2}$", description="a language tag like en-US")
]
SkusPerCall = Annotated[
    int, msgspec.Meta(ge=1, le=MAX_SKUS_PER_CALL, description="SKUs per call, 1 to 25")
]
RevisionBudget = Annotated[
    int, msgspec.Meta(ge=1, le=REVISIONS_PER_DAY, description="revisions a day, 1 to 250")
]


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[[channels]] options`` of kind ``ebay`` (docs/channels/ebay.md)."""

    #: Variables holding the app's Client ID (App ID) and Client Secret (Cert ID).
    client_id_env: EnvName
    client_secret_env: EnvName
    #: The OAuth token endpoint; None: ``{url}/identity/v1/oauth2/token``.
    token_url: HttpUrl | None = None
    #: Space-separated scopes asked for on refresh (the consented ones or a subset).
    scope: NonEmpty = DEFAULT_SCOPE
    #: ``Content-Language`` and ``Accept-Language`` (the language of eBay's messages).
    content_language: Language = DEFAULT_LANGUAGE
    #: Per-request timeout.
    timeout_s: Timeout = 10.0
    #: SKUs per bulkUpdatePriceQuantity call: 1, the method page's "only one SKU per call",
    #: unless eBay confirms the type page's "up to 25" for the seller's account.
    skus_per_call: SkusPerCall = 1
    #: Set each published offer's ``availableQuantity`` with the inventory item's quantity
    #: (eBay's bulk-updates guide: "updated at both the inventory item and offer level").
    update_offers: bool = True
    #: How long a SKU's offers (ids, listing ids) are trusted before getOffers is asked again.
    offers_ttl_s: Seconds = 3600.0
    #: Revisions per listing per UTC day before updates of it are held until the next day.
    revisions_per_day: RevisionBudget = REVISIONS_PER_DAY
    #: Seconds between getOrders polls; 0 turns the order poll off.
    order_poll_s: SecondsOrZero = 60.0
    #: How far before the last poll's start the next one looks again (late-indexed orders).
    order_overlap_s: SecondsOrZero = 120.0
