"""eBay (Sell Inventory and Sell Fulfillment APIs): quantity pushes at the inventory item and
offer level, the daily revision guard, read-back, and the order poll.

One job per module (``docs/channels/ebay.md`` tells the behaviour; each module cites the eBay
pages it follows):

- ``options``: the channel's ``options`` table (``Options``), checked when the config loads;
- ``wire``: the Inventory API's request and answer types, and what their errors mean;
- ``client``: one call with a user access token (the refresh-token grant);
- ``offers``: each SKU's published offers (getOffers), cached;
- ``revisions``: the 250 revisions per listing per day, counted in the store;
- ``push``: bulkUpdatePriceQuantity of the inventory item and its offers;
- ``readback``: bulkGetInventoryItem, for drift detection;
- ``orders``: getOrders by last-modified date -> ``order.created`` / ``order.cancelled``;
- ``adapter``: ``EbayAdapter`` and ``create``, which the registry calls.
"""

from __future__ import annotations

from .adapter import EbayAdapter, create
from .options import DEFAULT_SCOPE, MAX_SKUS_PER_CALL, REVISIONS_PER_DAY, Options
from .orders import ORDERS_PATH, OrderPoller, order_event_id
from .push import UPDATE_PATH

__all__ = [
    "DEFAULT_SCOPE",
    "MAX_SKUS_PER_CALL",
    "ORDERS_PATH",
    "REVISIONS_PER_DAY",
    "UPDATE_PATH",
    "EbayAdapter",
    "Options",
    "OrderPoller",
    "create",
    "order_event_id",
]
