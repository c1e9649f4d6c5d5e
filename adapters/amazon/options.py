"""The ``options`` table of an ``amazon`` channel, checked when the config is loaded.

Names, defaults and meanings are those of ``docs/channels/amazon.md``; ``*_env`` options name an
environment variable (the secret itself never sits in the config file).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ..options import EnvName, HttpUrl, NonEmpty, Seconds, SecondsOrZero, Timeout

__all__ = ["DEFAULT_TOKEN_URL", "Options"]

DEFAULT_TOKEN_URL = "https://api.amazon.com/auth/o2/token"


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[[channels]] options`` of kind ``amazon``."""

    #: The selling partner id (merchant token): ``{sellerId}`` of every Listings call.
    seller_id: NonEmpty
    #: The one marketplace this channel sells on, e.g. ``ATVPDKIKX0DER`` (US).
    marketplace_id: NonEmpty
    #: Variables holding the LWA app's client id and client secret.
    client_id_env: EnvName
    client_secret_env: EnvName
    #: Login with Amazon token endpoint.
    token_url: HttpUrl = DEFAULT_TOKEN_URL
    #: ``productType`` of every patch and feed message.
    product_type: NonEmpty = "PRODUCT"
    #: The ``fulfillment_channel_code`` whose quantity is set and read back.
    fulfillment_channel_code: NonEmpty = "DEFAULT"
    #: Batches of up to this many SKUs go one patch per SKU; larger ones as one feed.
    feed_threshold: Annotated[int, msgspec.Meta(ge=0)] = 20
    #: Seconds between ``getFeed`` polls.
    feed_poll_s: Seconds = 15.0
    #: How long one push waits for its feed before every SKU of it is retryable.
    feed_timeout_s: Seconds = 300.0
    #: Total seconds one batch of single patches may wait out 429s (0: never waits).
    throttle_wait_s: SecondsOrZero = 1.0
    #: Per-request timeout.
    timeout_s: Timeout = 10.0
    #: Simulator only: SKUs starting with it have no listing (the adapter ignores it).
    unlisted_prefix: str | None = None
