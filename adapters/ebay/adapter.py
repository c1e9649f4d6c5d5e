"""``EbayAdapter``: pushes, read-back and the order poll of one ``ebay`` channel; ``create``.

Credentials: the seller's refresh token in ``token_env``, the app's client id and secret in the
variables named by ``options.client_id_env`` and ``options.client_secret_env`` (``client.py``).
eBay takes no inbound webhooks here: its sales arrive through the order poll (``orders.py``),
which the daemon runs beside the channel's worker (``RunsInBackground``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import aiohttp

from ...core.clock import Clock
from ...core.config import Channel
from ..base import AdapterContext, BaseAdapter, Ingest, PushResult, Update
from ..http import base_url
from ..options import option_secret, parse_options, require_env
from .client import EbayClient
from .offers import OfferBook
from .options import Options
from .orders import OrderPoller
from .push import Pusher
from .readback import read_back
from .revisions import RevisionBudget

__all__ = ["EbayAdapter", "create"]


def create(channel: Channel, ctx: AdapterContext) -> EbayAdapter:
    """The adapter for an ``ebay`` channel (MissingSecret names an unset variable)."""
    options = parse_options(channel, Options)
    return EbayAdapter(
        channel,
        ctx.session,
        refresh_token=require_env(channel.id, "token_env", channel.token_env),
        client_id=option_secret(channel, "client_id_env", options.client_id_env),
        client_secret=option_secret(channel, "client_secret_env", options.client_secret_env),
        options=options,
        ctx=ctx,
    )


class EbayAdapter(BaseAdapter):
    """Sets quantities with bulkUpdatePriceQuantity, reads them back, polls orders.

    ``options`` (``Options``; parsed from the channel when left out). ``tokens`` is its
    user-token source (``tokens.fetches`` counts the grants made), ``offers`` the offer cache,
    ``revisions`` the daily revision budget, ``orders`` the order poller (None when
    ``options.order_poll_s`` is 0).
    """

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        *,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        options: Options | None = None,
        ctx: AdapterContext | None = None,
        monotonic: Callable[[], float] | None = None,
        wall: Callable[[], float] | None = None,
        clock: Clock | None = None,
        ingest: Ingest | None = None,
    ) -> None:
        ctx = ctx or AdapterContext(session=session)
        monotonic = monotonic or ctx.monotonic
        wall = wall or ctx.wall
        self.channel = channel
        self.options = options = options or parse_options(channel, Options)
        self.client = EbayClient(
            session,
            base_url(channel),
            options,
            refresh_token=refresh_token,
            client_id=client_id,
            client_secret=client_secret,
            monotonic=monotonic,
            wall=wall,
        )
        self.tokens = self.client.tokens
        self.offers = OfferBook(self.client, ttl_s=options.offers_ttl_s, monotonic=monotonic)
        self.revisions = RevisionBudget(channel.id, options.revisions_per_day, ctx.redis, wall=wall)
        self._pusher = Pusher(
            channel.id,
            self.client,
            self.offers,
            self.revisions,
            skus_per_call=options.skus_per_call,
            update_offers=options.update_offers,
        )
        self.max_batch = options.skus_per_call  # type: ignore[misc]
        self.orders: OrderPoller | None = None
        if options.order_poll_s > 0:
            self.orders = OrderPoller(
                channel.id,
                self.client,
                ingest or ctx.ingest,
                ctx.redis,
                interval_s=options.order_poll_s,
                overlap_s=options.order_overlap_s,
                wall=wall,
                clock=clock or ctx.clock,
            )

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Set each SKU's quantity (inventory item and published offers); see ``push.py``."""
        return await self._pusher.push(updates)

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """SKU -> eBay's ship-to-home quantity; SKUs eBay does not have are left out."""
        return await read_back(self.client, skus)

    async def run(self) -> None:
        """The order poll, until cancelled (``RunsInBackground``); returns at once when the
        poll is off."""
        if self.orders is not None:
            await self.orders.run()
