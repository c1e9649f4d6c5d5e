"""The ``amazon`` channel adapter: options and credentials in, push / read-back / webhooks out.

Batches of up to ``options.feed_threshold`` SKUs go one ``patchListingsItem`` each (``push.py``);
larger batches go as one JSON_LISTINGS_FEED (``feeds.py``), at most 25 000 messages (``wire.py``
cites the schema). Both merge the quantity into the listing's ``fulfillment_availability``
(tutorial "Merge a listing", https://developer-docs.amazon.com/sp-api/docs/merge-a-listing), so
the seller's handling time and restock date stay. A SKU without a listing is refused by Amazon
with an ERROR issue and becomes a ``permanent`` result naming Amazon's issue, like the other
adapters' "not listed" SKUs. There is no ``cancel_order``:
seller-fulfilled cancellations go through order-acknowledgement feeds, not a JSON API of the
Listings or Orders models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import aiohttp

from ...core.clock import Clock, SystemClock
from ...core.config import Channel
from ...core.events import Event
from ..base import AdapterContext, BaseAdapter, PushResult, Update
from ..http import base_url
from ..options import option_secret, parse_options, require_env
from .client import SpApiClient
from .feeds import push_feed
from .options import Options
from .push import patch_each
from .readback import read_back
from .webhooks import parse_notification
from .wire import FEED_MAX_MESSAGES

__all__ = ["AmazonAdapter", "create"]


def create(channel: Channel, ctx: AdapterContext) -> AmazonAdapter:
    """The adapter for an ``amazon`` channel: the LWA refresh token from ``token_env``, the app's
    client id and secret from ``options.client_id_env`` / ``options.client_secret_env``;
    ``secret_env`` (optional) verifies relayed notifications. MissingSecret names an unset
    variable."""
    options = parse_options(channel, Options)
    refresh_token = require_env(channel.id, "token_env", channel.token_env)
    client_id = option_secret(channel, "client_id_env", options.client_id_env)
    client_secret = option_secret(channel, "client_secret_env", options.client_secret_env)
    relay_secret = (
        require_env(channel.id, "secret_env", channel.secret_env) if channel.secret_env else None
    )
    return AmazonAdapter(
        channel,
        ctx.session,
        options=options,
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
        relay_secret=relay_secret,
        clock=ctx.clock,
        monotonic=ctx.monotonic,
        wall=ctx.wall,
    )


class AmazonAdapter(BaseAdapter):
    """Sets MFN quantities on Amazon (one PATCH per SKU, or a JSON_LISTINGS_FEED for large
    batches), reads them back and translates relayed ORDER_CHANGE notifications.

    The HTTP session belongs to the caller; ``monotonic`` drives token expiry, ``clock`` paces
    feed polls and short throttle waits (and the feed deadline). ``options`` None reads them
    from ``channel``.
    """

    max_batch: ClassVar[int | None] = FEED_MAX_MESSAGES

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        *,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        relay_secret: str | None = None,
        options: Options | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not (refresh_token and client_id and client_secret):
            raise ValueError(
                f"channel '{channel.id}': amazon needs a refresh token, client id and secret"
            )
        self.channel = channel
        self.options = options if options is not None else parse_options(channel, Options)
        self._relay_secret = relay_secret
        self._client = SpApiClient(
            session,
            base_url(channel),
            self.options,
            channel_id=channel.id,
            refresh_token=refresh_token,
            client_id=client_id,
            client_secret=client_secret,
            clock=clock if clock is not None else SystemClock(),
            monotonic=monotonic,
            wall=wall,
        )
        self.tokens = self._client.tokens

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Set each SKU's quantity: per-SKU results, or Throttled/Retryable/Permanent when the
        very first call fails (nothing was applied)."""
        if not updates:
            return []
        if len(updates) > self.options.feed_threshold:
            return await push_feed(self._client, updates)
        return await patch_each(self._client, updates)

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """SKU -> the quantity its listing offers on the configured fulfillment channel; SKUs
        without a listing (404) or without such a quantity are left out."""
        return await read_back(self._client, skus)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify the relay's ``X-Invsync-Signature`` and translate an ORDER_CHANGE notification
        of a seller-fulfilled order into the spec's order events (other notification types and
        Amazon-fulfilled orders give none)."""
        return parse_notification(self.channel.id, self._relay_secret, headers, body)
