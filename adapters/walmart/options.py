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
    #: Batches of up to this many SKUs go one PUT per SKU; larger ones as one feed.
    feed_threshold: Annotated[int, msgspec.Meta(ge=0)] = 50
    #: Single PUTs / read-back GETs in flight at once.
    max_concurrency: Annotated[int, msgspec.Meta(ge=1)] = 4
    #: Seconds between feed-status polls.
    feed_poll_s: SecondsOrZero = 5.0
    #: How long one push waits for its feed before every SKU of it is retryable.
    feed_timeout_s: SecondsOrZero = 120.0
    #: Reason code of cancellations whose own reason is none of Walmart's.
    cancel_reason: CancelReason = "SELLER_CANCEL_OUT_OF_STOCK"
    #: Per-request timeout.
    timeout_s: Timeout = 10.0
    #: Simulator only: SKUs starting with it are "not set up" (the adapter ignores it).
    unlisted_prefix: str | None = None
