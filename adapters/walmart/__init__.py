"""Walmart Marketplace (US): inventory by SKU, read-back, order-line cancellation, PO notifications.

One module per job: ``wire`` (Walmart's types), ``options`` (the channel's ``options`` table),
``client`` (token, ``WM_*`` headers, error envelope), ``lanes`` (which change goes which way),
``push`` (one ``PUT /v3/inventory`` per urgent SKU), ``feeds`` (the inventory feed for every other
change), ``pacing`` (the feeds-per-hour allowance), ``readback``, ``cancel`` (order lines),
``webhooks`` (relayed PO notifications into events) and ``adapter`` (``create`` and the adapter).
Each module cites the documentation it follows.
"""

from __future__ import annotations

from .adapter import WalmartAdapter, create
from .feeds import FEED_PAGE_LIMIT
from .options import CANCEL_REASONS, DEFAULT_SERVICE_NAME, Options

__all__ = [
    "CANCEL_REASONS",
    "DEFAULT_SERVICE_NAME",
    "FEED_PAGE_LIMIT",
    "Options",
    "WalmartAdapter",
    "create",
]
