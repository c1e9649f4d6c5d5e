"""The order poll: a store's recent orders of some SKUs, recorded as their webhooks would be.

A stale compare-and-set means Shopify sold units invsync has not heard of, usually an order
whose ``orders/create`` webhook is still on its way. ``orders(query: "sku:... created_at:>=...")``
finds the recent sales of those SKUs; each one not cancelled is translated exactly as the
webhook (same event id, so whichever arrives second is a duplicate) and recorded through the
daemon's intake (``ctx.ingest``, source ``poll:<channel>``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from ...core.errors import InvsyncError
from ...core.events import Event, convert_events
from ..base import ChannelError, Ingest
from .client import GraphQLClient
from .events import EventObject, created_event
from .readback import search_term
from .wire import ORDERS_QUERY, OrdersVariables, orders_decoder

__all__ = ["ORDERS_PAGE", "ORDER_LINES_PAGE", "OrderImporter"]

log = structlog.get_logger("invsync.adapters.shopify")

#: Orders per ``orders`` page and line items per order: 2 + 10 x (1 + 1 + 2 + 50) = 542 points,
#: under the 1000-point single-query limit.
ORDERS_PAGE = 10
ORDER_LINES_PAGE = 50


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class OrderImporter:
    """Records one channel's recent Shopify orders of given SKUs through ``ingest``.

    ``lookback_s`` is how far back it looks (``options.order_lookback_s``); ``ingest`` None
    (a context that cannot record) makes the import a no-op after the poll.
    """

    def __init__(
        self,
        channel_id: str,
        client: GraphQLClient,
        ingest: Ingest | None,
        *,
        lookback_s: float,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.channel_id = channel_id
        self.lookback_s = lookback_s
        self._client = client
        self._ingest = ingest
        self._wall = wall

    async def import_recent(self, skus: Sequence[str]) -> None:
        """Poll and record; failures are logged, never raised (the push answers retryable and
        the webhook, when it comes, records the order anyway)."""
        since = _iso(self._wall() - self.lookback_s)
        terms = " OR ".join(search_term("sku", sku) for sku in skus)
        variables = OrdersVariables(
            first=ORDERS_PAGE,
            lines=ORDER_LINES_PAGE,
            query=f"({terms}) AND created_at:>='{since}'",
        )
        try:
            data = await self._client.call(
                "orders",
                ORDERS_PAGE,
                ORDERS_QUERY,
                variables,
                orders_decoder,
                2 + ORDERS_PAGE * (4 + ORDER_LINES_PAGE),
            )
        except ChannelError as exc:
            log.warning("shopify_order_poll_failed", channel=self.channel_id, error=exc.message)
            return
        objects: list[EventObject] = []
        for order in data.orders.nodes:
            if order.cancelled_at is not None:
                continue  # its units are back on Shopify; nothing to reserve
            if order.line_items.page_info.has_next_page:
                # A partial line list would record a wrong reservation under the webhook's id.
                log.warning(
                    "shopify_order_too_long_to_poll",
                    channel=self.channel_id,
                    order_id=order.legacy_resource_id,
                )
                continue
            address = order.shipping_address
            event = created_event(
                self.channel_id,
                order.legacy_resource_id,
                [(line.sku, line.quantity) for line in order.line_items.nodes],
                address.country_code_v2 if address else None,
                address.province_code if address else None,
            )
            if event is not None:
                objects.append(event)
        if not objects or self._ingest is None:
            return
        try:
            events: list[Event] = convert_events(objects)  # BadEvent: a ValueError
            ids = await self._ingest(events, f"poll:{self.channel_id}")
        except (InvsyncError, ValueError, RuntimeError) as exc:
            log.warning("shopify_order_import_failed", channel=self.channel_id, error=str(exc))
            return
        log.info("shopify_orders_imported", channel=self.channel_id, ids=ids)
