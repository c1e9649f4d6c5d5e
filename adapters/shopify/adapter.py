"""The Shopify channel adapter: one store, one of its locations, assembled from the parts.

``push`` is ``push.QuantityPusher`` (compare-and-swap), ``read_back`` is
``readback.Inventory``, ``cancel_order`` is ``cancel.cancel_order``, ``parse_webhook`` is
``webhooks.ShopifyWebhooks``; all of them call the store through one ``client.GraphQLClient``,
so they share its cost budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import aiohttp

from ...core.config import Channel
from ...core.events import Event
from ..base import AdapterContext, BaseAdapter, Ingest, OrderLine, PushResult, Update
from ..http import base_url, client_timeout
from ..options import parse_options, require_env
from .cancel import cancel_order
from .client import GraphQLClient
from .options import Options
from .orders import OrderImporter
from .push import MAX_BATCH, QuantityPusher
from .readback import Inventory
from .webhooks import ShopifyWebhooks

__all__ = ["ShopifyAdapter", "create"]


def create(channel: Channel, ctx: AdapterContext) -> ShopifyAdapter:
    """The adapter for a ``shopify`` channel: token from ``token_env``, webhook secret from
    ``secret_env`` (optional: without it inbound webhooks are refused; named but unset, it is
    MissingSecret)."""
    options = parse_options(channel, Options)
    token = require_env(channel.id, "token_env", channel.token_env)
    secret = None
    if channel.secret_env:
        secret = require_env(channel.id, "secret_env", channel.secret_env)
    return ShopifyAdapter(
        channel,
        ctx.session,
        token,
        options=options,
        secret=secret,
        ingest=ctx.ingest,
        clock=ctx.monotonic,
        wall=ctx.wall,
    )


class ShopifyAdapter(BaseAdapter):
    """Speaks to one Shopify store about one of its locations (``options.location_id``).

    ``options`` are the channel's, parsed (``create`` parses them once; left out, they are
    parsed here). ``clock`` is monotonic seconds (the cost budget, stale holds), ``wall`` epoch
    seconds (the order poll's window, Retry-After dates).
    """

    max_batch: ClassVar[int | None] = MAX_BATCH

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        token: str,
        *,
        options: Options | None = None,
        secret: str | None = None,
        ingest: Ingest | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self.options = options = options or parse_options(channel, Options)
        self.location = options.location_gid()
        endpoint = f"{base_url(channel)}/admin/api/{options.api_version}/graphql.json"
        self.client = GraphQLClient(
            session,
            endpoint,
            token,
            timeout=client_timeout(options.timeout_s),
            clock=clock,
            wall=wall,
        )
        self.inventory = Inventory(self.client, self.location)
        orders = OrderImporter(
            channel.id, self.client, ingest, lookback_s=options.order_lookback_s, wall=wall
        )
        self.pusher = QuantityPusher(
            channel.id,
            self.client,
            self.inventory,
            orders,
            stale_wait_s=options.stale_wait_s,
            stale_retry_s=options.stale_retry_s,
            clock=clock,
        )
        self.webhooks = ShopifyWebhooks(channel.id, secret, return_location=options.return_location)

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Set ``available`` of each SKU at our location with compare-and-swap; one result per
        update. Whole-call failures raise Throttled/Retryable/Permanent (Unauthorized)."""
        return await self.pusher.push(updates)

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """``available`` at our location per SKU; SKUs Shopify does not list (or does not stock
        there, or lists twice) are left out."""
        return await self.inventory.read_back(skus)

    async def cancel_order(
        self, order_id: str, lines: Sequence[OrderLine] | None, reason: str
    ) -> None:
        """orderCancel the whole order (no restock: invsync pushes the released units itself);
        already cancelled is done; some lines only or an unknown order is Permanent."""
        await cancel_order(
            self.client,
            order_id,
            lines,
            reason,
            notify_customer=self.options.cancel_notify_customer,
            channel_id=self.channel.id,
        )

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify ``X-Shopify-Hmac-Sha256`` and translate by ``X-Shopify-Topic``: orders/create,
        orders/cancelled, orders/fulfilled, refunds/create; other topics give no events."""
        return self.webhooks.parse(headers, body)
