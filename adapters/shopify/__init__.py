"""Shopify (Admin GraphQL API): compare-and-swap quantity pushes, read-back, webhooks, cancels.

``POST {url}/admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token`` (the app's Admin
API access token, ``token_env``); ``options.api_version`` defaults to ``2026-04``. One job per
module (``docs/channels/shopify.md`` tells the behaviour; each module cites what it follows):

- ``options``: the channel's ``options`` table (``Options``), checked when the config loads;
- ``wire``: the GraphQL documents, variables and answers as msgspec types;
- ``client``: one GraphQL call, paced by the store's query-cost budget;
- ``push``: ``inventorySetQuantities`` with compare-and-swap and the stale-value holds;
- ``readback``: SKU -> inventory item lookups and the drift read-back;
- ``orders``: the order poll that imports sales a stale compare-and-set revealed;
- ``cancel``: ``orderCancel``;
- ``events`` and ``webhooks``: the HMAC check and the translation into invsync events;
- ``adapter``: ``ShopifyAdapter`` and ``create``, which the registry calls.
"""

from __future__ import annotations

from .adapter import ShopifyAdapter, create
from .events import order_events_id
from .options import CAS_REQUIRED_FROM, DEFAULT_API_VERSION, Options
from .push import MAX_BATCH

__all__ = [
    "CAS_REQUIRED_FROM",
    "DEFAULT_API_VERSION",
    "MAX_BATCH",
    "Options",
    "ShopifyAdapter",
    "create",
    "order_events_id",
]
