"""TikTok Shop (Partner API, version 202309): inventory pushes, read-back and order webhooks.

One module per job: ``wire`` (the API's types), ``options`` (the channel's ``options`` table),
``signing`` (request ``sign`` and webhook ``Authorization``), ``client`` (signed calls, error
codes, token refresh), ``catalog`` (seller SKU → product and SKU ids), ``push`` (one inventory
update per product), ``readback``, ``webhooks`` (order status changes into events, with Get
Order Detail for new orders) and ``adapter`` (``create`` and the adapter). Each module cites the
documentation it follows.
"""

from __future__ import annotations

from .adapter import TikTokAdapter, create
from .client import API_VERSION, AUTH_CODES, RETRYABLE_CODES, THROTTLE_CODES
from .options import DEFAULT_AUTH_URL, Options
from .push import MAX_QUANTITY
from .signing import sign_request, webhook_signature
from .webhooks import ORDER_STATUS_CHANGE, STATUS_EVENTS, US_STATES

__all__ = [
    "API_VERSION",
    "AUTH_CODES",
    "DEFAULT_AUTH_URL",
    "MAX_QUANTITY",
    "ORDER_STATUS_CHANGE",
    "RETRYABLE_CODES",
    "STATUS_EVENTS",
    "THROTTLE_CODES",
    "US_STATES",
    "Options",
    "TikTokAdapter",
    "create",
    "sign_request",
    "webhook_signature",
]
