"""Amazon Selling Partner API: MFN quantity by SKU, read-back, and ORDER_CHANGE notifications.

One module per job: ``wire`` (the SP-API's types), ``options`` (the channel's ``options``
table), ``client`` (LWA token, usage-plan waits), ``push`` (one ``patchListingsItem`` per SKU),
``feeds`` (JSON_LISTINGS_FEED for large batches), ``readback`` (``getListingsItem``),
``webhooks`` (relayed ORDER_CHANGE into events) and ``adapter`` (``create`` and the adapter).
Each module cites the definitions it follows in ``amzn/selling-partner-api-models``.
"""

from __future__ import annotations

from .adapter import AmazonAdapter, create
from .client import USAGE_PLANS
from .options import DEFAULT_TOKEN_URL, Options
from .webhooks import MARKETPLACE_COUNTRIES
from .wire import FEED_CONTENT_TYPE, FEED_MAX_MESSAGES

__all__ = [
    "DEFAULT_TOKEN_URL",
    "FEED_CONTENT_TYPE",
    "FEED_MAX_MESSAGES",
    "MARKETPLACE_COUNTRIES",
    "USAGE_PLANS",
    "AmazonAdapter",
    "Options",
    "create",
]
