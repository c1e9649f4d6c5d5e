"""The ``options`` table of a ``walmart`` channel, checked when the config is loaded.

Names, defaults and meanings are those of ``docs/channels/walmart.md``; ``*_env`` options name an
environment variable (the secret itself never sits in the config file).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from ..options import EnvName, HttpUrl, NonEmpty, SecondsOrZero, Timeout

__all__ = ["CANCEL_REASONS", "DEFAULT_SERVICE_NAME", "CancelReason", "Options"]

DEFAULT_SERVICE_NAME = "Walmart Marketplace"

#: The cancellation reasons the US marketplace accepts (Cancel order lines reference).
CancelReason = Literal[
    "CUSTOMER_REQUESTED_SELLER_TO_CANCEL",
    "SELLER_CANCEL_PRICING_ERROR",
    "SELLER_CANCEL_OUT_OF_STOCK",
    "SELLER_CANCEL_FRAUD_STOP_SHIPMENT",
    "SELLER_CANCEL_ADDRESS_NOT_SERVICEABLE",
]
CANCEL_REASONS: frozenset[str] = frozenset(get_args(CancelReason))


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[[channels]] options`` of kind ``walmart``."""

    #: Variables holding the API key's Client ID and Client Secret.
    client_id_env: EnvName
    client_secret_env: EnvName
    #: Token API endpoint; None means ``{url}/v3/token``.
    token_url: HttpUrl | None = None
    #: Sent as ``WM_SVC.NAME``.
    service_name: NonEmpty = DEFAULT_SERVICE_NAME
    #: A SKU whose new quantity is 0 or below this goes at once as a single PUT; any other
    #: change waits for the next inventory feed.
    urgent_below: Annotated[int, msgspec.Meta(ge=0)] = 2
    #: At most this many urgent SKUs of one push go as PUTs; the rest join the feed (a full sync
    #: of a catalogue with many sold-out SKUs must not become thousands of PUTs).
    urgent_max: Annotated[int, msgspec.Meta(ge=0)] = 50
    #: Inventory feeds sent per hour at most (Walmart: 10 an hour, replenished gradually).
    feeds_per_hour: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 10
    #: Single PUTs / read-back GETs in flight at once.
    max_concurrency: Annotated[int, msgspec.Meta(ge=1)] = 4
    #: Seconds between feed-status polls.
    feed_poll_s: SecondsOrZero = 5.0
    #: How long one push waits for its feed to be processed before every SKU of it is
    #: retryable (Walmart: up to 30 minutes for an inventory feed).
    feed_timeout_s: SecondsOrZero = 1800.0
    #: Reason code of cancellations whose own reason is none of Walmart's.
    cancel_reason: CancelReason = "SELLER_CANCEL_OUT_OF_STOCK"
    #: Per-request timeout.
    timeout_s: Timeout = 10.0
