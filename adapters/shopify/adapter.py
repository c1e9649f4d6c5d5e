"""Shopify (Admin GraphQL API): compare-and-swap quantity pushes, read-back, webhooks, cancels.

What it follows (shopify.dev, read through the stored copies of the ``search`` tool):

- ``POST {url}/admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token`` (the app's
  Admin API access token, ``token_env``); ``options.api_version`` defaults to ``2026-04``.
- ``inventorySetQuantities(input: InventorySetQuantitiesInput!)``
  (``/docs/api/admin-graphql/latest/mutations/inventorySetQuantities``,
  ``.../input-objects/InventorySetQuantitiesInput``, ``.../input-objects/InventoryQuantityInput``):
  ``{name: "available", reason: "correction", referenceDocumentUri, quantities:
  [{inventoryItemId, locationId, quantity, changeFromQuantity}]}``. The changelog posts
  "compare and swap redesign for inventory set quantities" (2026-01) and "New compare and swap
  syntax for the inventorySetQuantities mutation" (2026-04, "finalizing-compare-and-swap-...")
  make ``changeFromQuantity`` mandatory from 2026-04 (``null`` opts out; omitting it is an
  error) and remove ``compareQuantity``/``ignoreCompareQuantity``. A mismatch answers the
  userError ``CHANGE_FROM_QUANTITY_STALE``. ``referenceDocumentUri`` prefers the GID form
  ``gid://<app>/<entity>/<id>``. ``reason: "correction"`` is one of the documented reasons.
- ``InventorySetQuantitiesUserErrorCode`` (``.../enums/InventorySetQuantitiesUserErrorCode``):
  CHANGE_FROM_QUANTITY_STALE, COMPARE_QUANTITY_REQUIRED, COMPARE_QUANTITY_STALE,
  IDEMPOTENCY_CONCURRENT_REQUEST, IDEMPOTENCY_KEY_PARAMETER_MISMATCH,
  IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED, INVALID_INVENTORY_ITEM, INVALID_LOCATION, INVALID_NAME,
  INVALID_QUANTITY_NEGATIVE, INVALID_QUANTITY_TOO_HIGH (1,000,000,000), INVALID_QUANTITY_TOO_LOW,
  INVALID_REASON, INVALID_REFERENCE_DOCUMENT, ITEM_NOT_STOCKED_AT_LOCATION,
  NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR, NON_MUTABLE_INVENTORY_ITEM. ``field`` is the
  input path (``["input", "quantities", "<i>", ...]``): it names the failing quantity.
- Idempotency (changelogs "Adding idempotency for inventory adjustments and refund mutations",
  "Making idempotency mandatory ..." for 2026-04; ``/docs/api/usage/idempotent-requests``): the
  mutation carries ``@idempotent(key:)``; a retry of the same request reuses its key, which is
  why the key is derived from the request's content.
- Rate limits (``/docs/apps/build/apis/graphql-admin/rate-limits``, ``/docs/api/usage/limits``):
  a leaky bucket of query-cost points per app and store (Standard plan: 100 points/s restore,
  ``maximumAvailable`` 2000 as Shopify's answers show); every answer carries ``extensions.cost
  {requestedQueryCost, actualQueryCost, throttleStatus {maximumAvailable, currentlyAvailable,
  restoreRate}}``; an over-budget call answers HTTP 200 with ``errors[].extensions.code ==
  "THROTTLED"``; a mutation costs 10 points, a connection 2 + ``first`` x its node's cost.
- ``inventoryItems(first:, query: "sku:...")`` with ``inventoryLevel(locationId:)
  { quantities(names: ["available"]) }`` maps SKUs to inventory items and reads ``available``;
  ``orders(query: "sku:... created_at:>=...")`` finds recent sales of a SKU;
  ``orderCancel(orderId, reason, refundMethod, restock, notifyCustomer, staffNote)`` returns
  ``job`` and ``orderCancelUserErrors`` (codes INTERNAL_ERROR, INVALID, NOT_FOUND,
  NO_REFUND_PERMISSION, ...); it cancels whole orders only.
- Webhooks (``/docs/apps/build/webhooks``): ``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256
  of the raw body under the app's client secret (``secret_env``); ``X-Shopify-Topic``,
  ``X-Shopify-Webhook-Id``. Payloads are the REST order / refund JSON (``line_items[].sku``,
  ``quantity``, ``shipping_address.country_code``/``province_code``, ``refunds[]``,
  ``refund_line_items[].restock_type`` in ``no_restock``/``cancel``/``return``/
  ``legacy_restock``).

Behaviour worth knowing (see ``docs/channels/shopify.md``):

- ``changeFromQuantity`` is what Shopify held when we last looked: read with the SKU lookup,
  then the quantity we set. CHANGE_FROM_QUANTITY_STALE means Shopify sold (or someone changed)
  units invsync has not heard of. Retrying with the fresh number would relist a sold unit, so the
  adapter re-reads the SKU, imports its recent orders through ``ctx.ingest`` (the same event ids
  the ``orders/create`` webhook gives, so whichever comes second is a duplicate), answers
  "retryable" and holds the SKU: pushes of versions up to the stale one are answered "retryable"
  without a call until a newer version arrives (the imported order changed our number) or
  ``options.stale_wait_s`` passes (then our number wins, from the fresh quantity).
- The reference does not say whether a batch with a userError applies its other quantities;
  when ``inventoryAdjustmentGroup`` is null nothing was applied and the clean quantities are sent
  once more on their own, so only the failing SKUs get non-ok outcomes either way.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
import structlog

from ..core.config import Channel, resolve_secret
from ..core.errors import InvsyncError
from ..core.events import holdable_sku
from .base import (
    AdapterContext,
    BadWebhook,
    BaseAdapter,
    ChannelError,
    Ingest,
    OrderLine,
    Outcome,
    Permanent,
    PushResult,
    Retryable,
    Throttled,
    Unauthorized,
    Update,
)
from .http import base_url, check, header, option_number, option_str, send, timeout_for
from .registry import MissingSecret, require_secret
from .signing import verify_b64

__all__ = [
    "CAS_REQUIRED_FROM",
    "DEFAULT_API_VERSION",
    "MAX_BATCH",
    "ShopifyAdapter",
    "create",
    "location_gid",
    "order_events_id",
]

log = structlog.get_logger("invsync.adapters.shopify")

DEFAULT_API_VERSION = "2026-04"
#: The first API version where every quantity must carry ``changeFromQuantity``.
CAS_REQUIRED_FROM = "2026-04"
#: Quantities per inventorySetQuantities call. The reference states no maximum; 250 is the
#: Admin API's page size and keeps one call's cost and size bounded.
MAX_BATCH = 250
#: SKUs per inventoryItems lookup (one ``sku:`` term each in the search string).
LOOKUP_CHUNK = 50
#: Orders per ``orders`` page and line items per order: 2 + 10 x (1 + 1 + 2 + 50) = 542 points,
#: under the 1000-point single-query limit.
ORDERS_PAGE = 10
ORDER_LINES_PAGE = 50
#: Line items read for a cancellation (one order: 1 + 2 + 250 points).
CANCEL_LINES_PAGE = 250
DEFAULT_STALE_WAIT_S = 30.0
DEFAULT_STALE_RETRY_S = 1.0
DEFAULT_ORDER_LOOKBACK_S = 86_400.0
MUTATION_COST = 10.0
_GID_LOCATION = re.compile(r"^gid://shopify/Location/(\d+)$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")
_QUANTITY_INDEX = 2  # field == ["input", "quantities", "<i>", ...]

#: userError codes that say "Shopify's quantity is not the one you think".
_STALE = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
#: userError codes worth trying again as they are (a concurrent call with the same key).
_RETRYABLE = frozenset({"IDEMPOTENCY_CONCURRENT_REQUEST", "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"})
_ORDER_CANCEL_REASONS = frozenset({"CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"})


# --- GraphQL documents ------------------------------------------------------------------------

_ITEMS_QUERY = """
query InvsyncInventoryItems($first: Int!, $query: String!, $locationId: ID!) {
  inventoryItems(first: $first, query: $query) {
    nodes {
      id
      sku
      inventoryLevel(locationId: $locationId) {
        quantities(names: ["available"]) { name quantity }
      }
    }
  }
}
"""

_SET_MUTATION = """
mutation InvsyncSetQuantities($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""

_ORDERS_QUERY = """
query InvsyncRecentOrders($first: Int!, $lines: Int!, $query: String!) {
  orders(first: $first, query: $query, sortKey: CREATED_AT, reverse: true) {
    nodes {
      legacyResourceId
      createdAt
      cancelledAt
      lineItems(first: $lines) {
        nodes { sku quantity currentQuantity }
        pageInfo { hasNextPage }
      }
      shippingAddress { countryCodeV2 provinceCode }
    }
  }
}
"""

_ORDER_QUERY = """
query InvsyncOrder($id: ID!, $lines: Int!) {
  order(id: $id) {
    legacyResourceId
    cancelledAt
    lineItems(first: $lines) {
      nodes { sku quantity currentQuantity }
      pageInfo { hasNextPage }
    }
  }
}
"""

_CANCEL_MUTATION = """
mutation InvsyncOrderCancel($orderId: ID!, $reason: OrderCancelReason!,
    $refundMethod: OrderCancelRefundMethodInput, $restock: Boolean!, $notifyCustomer: Boolean,
    $staffNote: String) {
  orderCancel(orderId: $orderId, reason: $reason, refundMethod: $refundMethod, restock: $restock,
      notifyCustomer: $notifyCustomer, staffNote: $staffNote) {
    job { id done }
    orderCancelUserErrors { code field message }
  }
}
"""


# --- request bodies -----------------------------------------------------------------------------

V = TypeVar("V")
T = TypeVar("T")


class _Request(msgspec.Struct, Generic[V], kw_only=True):
    query: str
    variables: V


class _ItemsVariables(msgspec.Struct, kw_only=True, rename="camel"):
    first: int
    query: str
    location_id: str


class _QuantityInput(msgspec.Struct, kw_only=True, rename="camel"):
    """``InventoryQuantityInput``: ``change_from_quantity`` has no default, so it is always sent
    (``null`` would opt out of the check; we never send null)."""

    inventory_item_id: str
    location_id: str
    quantity: int
    change_from_quantity: int | None


class _SetInput(msgspec.Struct, kw_only=True, rename="camel"):
    """``InventorySetQuantitiesInput``."""

    name: str
    reason: str
    reference_document_uri: str
    quantities: list[_QuantityInput]


class _SetVariables(msgspec.Struct, kw_only=True, rename="camel"):
    input: _SetInput
    idempotency_key: str


class _OrdersVariables(msgspec.Struct, kw_only=True):
    first: int
    lines: int
    query: str


class _OrderVariables(msgspec.Struct, kw_only=True):
    id: str
    lines: int


class _RefundMethod(msgspec.Struct, kw_only=True, rename="camel"):
    original_payment_methods_refund: bool


class _CancelVariables(msgspec.Struct, kw_only=True, rename="camel"):
    order_id: str
    reason: str
    refund_method: _RefundMethod
    restock: bool
    notify_customer: bool
    staff_note: str


# --- answers ------------------------------------------------------------------------------------


class _ThrottleStatus(msgspec.Struct, kw_only=True, rename="camel"):
    maximum_available: float
    currently_available: float
    restore_rate: float


class _Cost(msgspec.Struct, kw_only=True, rename="camel"):
    requested_query_cost: float | None = None
    actual_query_cost: float | None = None
    throttle_status: _ThrottleStatus | None = None


class _Extensions(msgspec.Struct, kw_only=True):
    cost: _Cost | None = None


class _ErrorExtensions(msgspec.Struct, kw_only=True):
    code: str | None = None


class _GraphQLError(msgspec.Struct, kw_only=True):
    message: str = ""
    extensions: _ErrorExtensions | None = None


class _Reply(msgspec.Struct, Generic[T], kw_only=True):
    data: T | None = None
    errors: list[_GraphQLError] | str | None = None
    extensions: _Extensions | None = None


class _Quantity(msgspec.Struct, kw_only=True):
    name: str
    quantity: int


class _Level(msgspec.Struct, kw_only=True):
    quantities: list[_Quantity] = []


class _Item(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    sku: str | None = None
    inventory_level: _Level | None = None


class _Items(msgspec.Struct, kw_only=True):
    nodes: list[_Item] = []


class _ItemsData(msgspec.Struct, kw_only=True, rename="camel"):
    inventory_items: _Items


class _UserError(msgspec.Struct, kw_only=True):
    code: str | None = None
    field: list[str] | None = None
    message: str = ""


class _Group(msgspec.Struct, kw_only=True):
    id: str | None = None


class _SetPayload(msgspec.Struct, kw_only=True, rename="camel"):
    inventory_adjustment_group: _Group | None = None
    user_errors: list[_UserError] = []


class _SetData(msgspec.Struct, kw_only=True, rename="camel"):
    inventory_set_quantities: _SetPayload | None = None


class _LineItem(msgspec.Struct, kw_only=True, rename="camel"):
    sku: str | None = None
    quantity: int = 0
    current_quantity: int | None = None


class _PageInfo(msgspec.Struct, kw_only=True, rename="camel"):
    has_next_page: bool = False


class _LineItems(msgspec.Struct, kw_only=True, rename="camel"):
    nodes: list[_LineItem] = []
    page_info: _PageInfo = msgspec.field(default_factory=_PageInfo)


class _Address(msgspec.Struct, kw_only=True, rename="camel"):
    country_code_v2: str | None = None
    province_code: str | None = None


class _Order(msgspec.Struct, kw_only=True, rename="camel"):
    legacy_resource_id: str
    created_at: str | None = None
    cancelled_at: str | None = None
    line_items: _LineItems = msgspec.field(default_factory=_LineItems)
    shipping_address: _Address | None = None


class _Orders(msgspec.Struct, kw_only=True):
    nodes: list[_Order] = []


class _OrdersData(msgspec.Struct, kw_only=True):
    orders: _Orders


class _OrderData(msgspec.Struct, kw_only=True):
    order: _Order | None = None


class _Job(msgspec.Struct, kw_only=True):
    id: str | None = None
    done: bool = False


class _CancelPayload(msgspec.Struct, kw_only=True, rename="camel"):
    job: _Job | None = None
    order_cancel_user_errors: list[_UserError] = []


class _CancelData(msgspec.Struct, kw_only=True, rename="camel"):
    order_cancel: _CancelPayload | None = None


_encode = msgspec.json.Encoder().encode
_items_decoder = msgspec.json.Decoder(_Reply[_ItemsData])
_set_decoder = msgspec.json.Decoder(_Reply[_SetData])
_orders_decoder = msgspec.json.Decoder(_Reply[_OrdersData])
_order_decoder = msgspec.json.Decoder(_Reply[_OrderData])
_cancel_decoder = msgspec.json.Decoder(_Reply[_CancelData])


# --- webhook payloads (the REST JSON Shopify posts) ---------------------------------------------


class _HookAddress(msgspec.Struct, kw_only=True):
    country_code: str | None = None
    province_code: str | None = None


class _HookLineItem(msgspec.Struct, kw_only=True):
    id: int | str | None = None
    sku: str | None = None
    quantity: int = 0


class _HookRefundLine(msgspec.Struct, kw_only=True):
    line_item_id: int | str | None = None
    quantity: int = 0
    restock_type: str | None = None
    line_item: _HookLineItem | None = None


class _HookRefund(msgspec.Struct, kw_only=True):
    id: int | str
    order_id: int | str
    refund_line_items: list[_HookRefundLine] = []


class _HookOrder(msgspec.Struct, kw_only=True):
    id: int | str
    line_items: list[_HookLineItem] = []
    shipping_address: _HookAddress | None = None
    refunds: list[_HookRefund] = []


_hook_order = msgspec.json.Decoder(_HookOrder)
_hook_refund = msgspec.json.Decoder(_HookRefund)


# --- adapter state ------------------------------------------------------------------------------


class _Found(msgspec.Struct, kw_only=True):
    """What the lookup saw of one SKU: its item(s) and ``available`` at our location."""

    gid: str
    matches: int = 1
    available: int | None = None  # None: the item is not stocked at our location


class _Hold(msgspec.Struct, kw_only=True):
    """A SKU held after CHANGE_FROM_QUANTITY_STALE (see the module docstring)."""

    version: int
    until: float


class _Budget(msgspec.Struct, kw_only=True):
    """Shopify's cost bucket as its last answer showed it, at ``at`` (monotonic seconds)."""

    maximum: float
    available: float
    restore_rate: float
    at: float

    def level(self, now: float) -> float:
        """Points available at ``now``: the bucket refills at ``restore_rate`` up to its size."""
        return min(self.maximum, self.available + max(0.0, now - self.at) * self.restore_rate)


def location_gid(channel: Channel) -> str:
    """``options.location_id`` (numeric or ``gid://shopify/Location/N``) as a GID; ValueError
    naming the option when it is missing or neither."""
    value = option_str(channel, "location_id").strip()
    if value.isdigit():
        return f"gid://shopify/Location/{value}"
    if _GID_LOCATION.match(value):
        return value
    raise ValueError(
        f"channel '{channel.id}': options.location_id must be a Shopify location id "
        f"(123 or gid://shopify/Location/123), got {value!r}"
    )


def order_events_id(channel_id: str, order_id: str, what: str) -> str:
    """The event id of an order notification: stable per order and what happened to it, so the
    webhook and the order poll give the same id and the second is a duplicate."""
    return f"{channel_id}-{order_id}-{what}"


def _search_term(field: str, value: str) -> str:
    """``field:"value"`` in Shopify's search syntax (quotes and backslashes escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{field}:"{escaped}"'


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge(lines: Iterable[tuple[str | None, int]]) -> dict[str, int]:
    """SKU -> units, in first-seen order; lines without a SKU (custom items, tips, gift cards:
    nothing invsync stocks), with a SKU invsync cannot hold, or with non-positive quantities
    are left out."""
    merged: dict[str, int] = {}
    for sku, qty in lines:
        name = (sku or "").strip()
        if name and not holdable_sku(name):
            log.warning("order_line_sku_not_holdable", sku=name[:200])
            continue
        if name and qty > 0:
            merged[name] = merged.get(name, 0) + qty
    return merged


def _lines(merged: Mapping[str, int]) -> list[dict[str, object]]:
    return [{"sku": sku, "qty": qty} for sku, qty in merged.items()]


def create(channel: Channel, ctx: AdapterContext) -> ShopifyAdapter:
    """The adapter for a ``shopify`` channel: token from ``token_env``, webhook secret from
    ``secret_env`` (optional: without it inbound webhooks are refused)."""
    token = require_secret(channel, "token_env")
    secret: str | None = None
    if channel.secret_env:
        secret = resolve_secret(channel.secret_env)
        if secret is None:
            raise MissingSecret(channel.id, "secret_env", channel.secret_env)
    return ShopifyAdapter(
        channel,
        ctx.session,
        token,
        secret=secret,
        ingest=ctx.ingest,
        clock=ctx.monotonic,
        wall=ctx.wall,
    )


class ShopifyAdapter(BaseAdapter):
    """Speaks to one Shopify store about one of its locations (``options.location_id``)."""

    max_batch: ClassVar[int | None] = MAX_BATCH

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        token: str,
        *,
        secret: str | None = None,
        ingest: Ingest | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        version = option_str(channel, "api_version", DEFAULT_API_VERSION)
        if not _VERSION.match(version):
            raise ValueError(
                f"channel '{channel.id}': options.api_version must look like 2026-04 "
                f"(got {version!r})"
            )
        self.api_version = version
        self.location = location_gid(channel)
        return_location = channel.options.get("return_location")
        if return_location is not None and not _REF.match(str(return_location)):
            raise ValueError(
                f"channel '{channel.id}': options.return_location must be an invsync "
                f"location id (got {return_location!r})"
            )
        self.return_location = None if return_location is None else str(return_location)
        self.stale_wait_s = option_number(
            channel, "stale_wait_s", DEFAULT_STALE_WAIT_S, what="seconds"
        )
        self.stale_retry_s = option_number(
            channel, "stale_retry_s", DEFAULT_STALE_RETRY_S, what="seconds"
        )
        self.order_lookback_s = option_number(
            channel, "order_lookback_s", DEFAULT_ORDER_LOOKBACK_S, what="seconds"
        )
        self.cancel_notify_customer = bool(channel.options.get("cancel_notify_customer", True))
        self._endpoint = f"{base_url(channel)}/admin/api/{version}/graphql.json"
        self._timeout = timeout_for(channel)
        self._session = session
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Shopify-Access-Token": token,
        }
        self._secret = secret
        self._ingest = ingest
        self._clock = clock
        self._wall = wall
        #: SKU -> inventory item GID (kept for the adapter's life: items rarely change).
        self._items: dict[str, str] = {}
        #: SKU -> ``available`` Shopify holds as we last saw it (our changeFromQuantity).
        self._known: dict[str, int] = {}
        self._push_seq = 0  # bumped as every push starts and ends (guards read-backs)
        self._pushing = 0  # pushes in progress
        self._holds: dict[str, _Hold] = {}
        self._budget: _Budget | None = None
        #: (operation, size) -> the requestedQueryCost Shopify last charged for it.
        self._costs: dict[tuple[str, int], float] = {}
        #: Bumped when Shopify says a key's previous attempt failed: the next keys differ.
        self._key_epoch = 0
        self._topics: dict[str, Callable[[bytes], list[dict[str, object]]]] = {
            "orders/create": self._order_created,
            "orders/cancelled": self._order_cancelled,
            "orders/fulfilled": self._order_fulfilled,
            "refunds/create": self._refund_created,
        }

    # -- push ---------------------------------------------------------------------------------

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Set ``available`` of each SKU at our location with compare-and-swap; one result per
        update. Whole-call failures raise Throttled/Retryable/Permanent (Unauthorized)."""
        now = self._clock()
        latest: dict[str, Update] = {}
        for update in updates:  # one quantity per item per call (duplicates are refused)
            seen = latest.get(update.sku)
            if seen is None or update.version >= seen.version:
                latest[update.sku] = update
        results: dict[str, PushResult] = {}
        to_send: list[Update] = []
        for update in latest.values():
            hold = self._holds.get(update.sku)
            if hold is not None:
                if update.version <= hold.version and now < hold.until:
                    results[update.sku] = PushResult(
                        sku=update.sku,
                        outcome="retryable",
                        retry_after=min(self.stale_retry_s, hold.until - now),
                        error="held after CHANGE_FROM_QUANTITY_STALE: waiting for the imported "
                        "Shopify order to change this SKU's number",
                    )
                    continue
                del self._holds[update.sku]
            to_send.append(update)
        if to_send:
            self._push_seq += 1
            self._pushing += 1
            try:
                results.update(await self._push(to_send))
            finally:
                self._pushing -= 1
                self._push_seq += 1
        return [results[update.sku] for update in updates]

    async def _push(self, updates: list[Update]) -> dict[str, PushResult]:
        missing = {u.sku for u in updates if u.sku not in self._items or u.sku not in self._known}
        found = await self._lookup([u.sku for u in updates if u.sku in missing])
        failures: dict[str, PushResult] = {}
        ready: list[Update] = []
        for update in updates:
            seen = found.get(update.sku)
            if update.sku not in missing:
                ready.append(update)
            elif seen is None:
                failures[update.sku] = _permanent(
                    update.sku, "Shopify has no inventory item with this SKU"
                )
            elif seen.matches > 1:
                failures[update.sku] = _permanent(
                    update.sku, f"{seen.matches} Shopify inventory items have this SKU"
                )
            elif seen.available is None:
                failures[update.sku] = _permanent(
                    update.sku, f"the item is not stocked at {self.location}"
                )
            else:
                ready.append(update)
        if ready:
            failures.update(await self._set(ready))
        return {u.sku: failures.get(u.sku) or PushResult(sku=u.sku, outcome="ok") for u in updates}

    async def _set(self, updates: list[Update]) -> dict[str, PushResult]:
        """inventorySetQuantities for ``updates`` (all resolved); failures by SKU."""
        failures: dict[str, PushResult] = {}
        batch = updates
        for attempt in range(2):
            try:
                payload = await self._set_call(batch)
            except (Throttled, Retryable) as exc:
                if attempt == 0:
                    raise
                # The first call settled the other SKUs: only the resent ones wait.
                outcome: Outcome = "throttled" if isinstance(exc, Throttled) else "retryable"
                for update in batch:
                    failures[update.sku] = PushResult(
                        sku=update.sku,
                        outcome=outcome,
                        retry_after=exc.retry_after,
                        error=exc.message,
                    )
                return failures
            by_sku, everyone = self._user_errors(payload.user_errors, batch)
            if everyone is not None:
                for update in batch:
                    failures[update.sku] = self._outcome(update, everyone)
                return failures
            applied = payload.inventory_adjustment_group is not None or not by_sku
            stale: list[Update] = []
            for update in batch:
                error = by_sku.get(update.sku)
                if error is None:
                    if applied:
                        self._known[update.sku] = update.available
                elif error.code in _STALE:
                    stale.append(update)
                else:
                    failures[update.sku] = self._outcome(update, error)
            if stale:
                failures.update(await self._on_stale(stale))
            clean = [u for u in batch if u.sku not in by_sku]
            if applied or not clean:
                return failures
            if attempt == 1:  # refused as a whole twice: let the channel actor retry them
                for update in clean:
                    failures[update.sku] = PushResult(
                        sku=update.sku,
                        outcome="retryable",
                        retry_after=self.stale_retry_s,
                        error="Shopify refused the batch because of other SKUs in it",
                    )
                return failures
            batch = clean  # nothing applied: the SKUs without errors go again on their own
        return failures

    async def _set_call(self, updates: list[Update]) -> _SetPayload:
        quantities = [
            _QuantityInput(
                inventory_item_id=self._items[u.sku],
                location_id=self.location,
                quantity=u.available,
                change_from_quantity=self._known[u.sku],
            )
            for u in updates
        ]
        set_input = _SetInput(
            name="available",
            reason="correction",
            reference_document_uri=self._reference(updates),
            quantities=quantities,
        )
        variables = _SetVariables(input=set_input, idempotency_key=self._key(set_input))
        data = await self._call(
            "inventorySetQuantities", 0, _SET_MUTATION, variables, _set_decoder, MUTATION_COST
        )
        if data.inventory_set_quantities is None:
            raise Retryable("Shopify answered inventorySetQuantities without a payload")
        return data.inventory_set_quantities

    def _reference(self, updates: list[Update]) -> str:
        """``gid://invsync/ChannelSync/<channel>-<sku>-<version>`` (one SKU) or
        ``gid://invsync/ChannelSync/<channel>-<n>skus-<digest>``: shown in Shopify's history."""
        channel = quote(self.channel.id, safe="")
        if len(updates) == 1:
            only = updates[0]
            return f"gid://invsync/ChannelSync/{channel}-{quote(only.sku, safe='')}-{only.version}"
        digest = hashlib.sha256(
            "\n".join(f"{u.sku}\t{u.version}" for u in updates).encode()
        ).hexdigest()[:12]
        return f"gid://invsync/ChannelSync/{channel}-{len(updates)}skus-{digest}"

    def _key(self, set_input: _SetInput) -> str:
        """The idempotency key: a digest of the request, so a resend of the same request (after a
        timeout) is recognised by Shopify, and distinct requests never share a key."""
        digest = hashlib.sha256(_encode(set_input) + f"/{self._key_epoch}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=5))

    def _user_errors(
        self, errors: list[_UserError], batch: list[Update]
    ) -> tuple[dict[str, _UserError], _UserError | None]:
        """userErrors by the SKU their ``field`` path names; an error naming no quantity (the
        input's name, reason, reference) is for the whole batch."""
        by_sku: dict[str, _UserError] = {}
        for error in errors:
            path = error.field or []
            index = path[_QUANTITY_INDEX] if len(path) > _QUANTITY_INDEX else None
            if path[:2] == ["input", "quantities"] and index is not None and index.isdigit():
                position = int(index)
                if position < len(batch):
                    by_sku.setdefault(batch[position].sku, error)
                    continue
            return by_sku, error
        return by_sku, None

    def _outcome(self, update: Update, error: _UserError) -> PushResult:
        code = error.code or "UNKNOWN"
        text = f"{code}: {error.message}".strip()
        if code == "INVALID_INVENTORY_ITEM":  # the item went away: look it up again next time
            self._items.pop(update.sku, None)
            self._known.pop(update.sku, None)
        if code == "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED":
            self._key_epoch += 1
        if code in _RETRYABLE:
            return PushResult(
                sku=update.sku, outcome="retryable", retry_after=self.stale_retry_s, error=text
            )
        return PushResult(sku=update.sku, outcome="permanent", error=text)

    async def _on_stale(self, stale: list[Update]) -> dict[str, PushResult]:
        """CHANGE_FROM_QUANTITY_STALE: re-read, import the sales invsync missed, hold the SKUs."""
        skus = [u.sku for u in stale]
        for sku in skus:
            self._known.pop(sku, None)  # unknown until read again
        try:
            found = await self._lookup(skus)
        except ChannelError as exc:
            log.warning("shopify_stale_reread_failed", channel=self.channel.id, error=exc.message)
            found = {}
        for sku, seen in found.items():
            if seen.available is not None and seen.matches == 1:
                self._known[sku] = seen.available
        results: dict[str, PushResult] = {}
        held: list[Update] = []
        for update in stale:
            if self._known.get(update.sku) == update.available:
                results[update.sku] = PushResult(sku=update.sku, outcome="ok")  # ours landed
            else:
                held.append(update)
        if not held:
            return results
        await self._import_orders([u.sku for u in held])
        until = self._clock() + self.stale_wait_s
        for update in held:
            self._holds[update.sku] = _Hold(version=update.version, until=until)
            shopify = self._known.get(update.sku)
            results[update.sku] = PushResult(
                sku=update.sku,
                outcome="retryable",
                retry_after=min(self.stale_retry_s, self.stale_wait_s),
                error=f"CHANGE_FROM_QUANTITY_STALE: Shopify holds {shopify} where invsync "
                f"expected another number; its recent orders were imported and the SKU is "
                f"held until a newer version (or {self.stale_wait_s:g} s)",
            )
        log.info("shopify_stale_hold", channel=self.channel.id, skus=[u.sku for u in held])
        return results

    async def _import_orders(self, skus: list[str]) -> None:
        """Recent Shopify orders with these SKUs, recorded as the orders/create webhook would."""
        since = _iso(self._wall() - self.order_lookback_s)
        terms = " OR ".join(_search_term("sku", sku) for sku in skus)
        variables = _OrdersVariables(
            first=ORDERS_PAGE,
            lines=ORDER_LINES_PAGE,
            query=f"({terms}) AND created_at:>='{since}'",
        )
        try:
            data = await self._call(
                "orders",
                ORDERS_PAGE,
                _ORDERS_QUERY,
                variables,
                _orders_decoder,
                2 + ORDERS_PAGE * (4 + ORDER_LINES_PAGE),
            )
        except ChannelError as exc:
            log.warning("shopify_order_poll_failed", channel=self.channel.id, error=exc.message)
            return
        events: list[dict[str, object]] = []
        for order in data.orders.nodes:
            if order.cancelled_at is not None:
                continue  # its units are back on Shopify; nothing to reserve
            if order.line_items.page_info.has_next_page:
                # A partial line list would record a wrong reservation under the webhook's id.
                log.warning(
                    "shopify_order_too_long_to_poll",
                    channel=self.channel.id,
                    order_id=order.legacy_resource_id,
                )
                continue
            address = order.shipping_address
            event = self._created_event(
                order.legacy_resource_id,
                [(line.sku, line.quantity) for line in order.line_items.nodes],
                address.country_code_v2 if address else None,
                address.province_code if address else None,
            )
            if event is not None:
                events.append(event)
        if not events or self._ingest is None:
            return
        try:
            ids = await self._ingest(events, f"poll:{self.channel.id}")
        except (InvsyncError, ValueError, RuntimeError) as exc:
            log.warning("shopify_order_import_failed", channel=self.channel.id, error=str(exc))
            return
        log.info("shopify_orders_imported", channel=self.channel.id, ids=ids)

    # -- lookup and read-back -----------------------------------------------------------------

    async def _lookup(self, skus: Sequence[str], *, guarded: bool = False) -> dict[str, _Found]:
        """Inventory items and ``available`` at our location by exact SKU (missing: unknown to
        Shopify). Caches item GIDs and quantities of the SKUs with exactly one item."""
        found: dict[str, _Found] = {}
        unique = list(dict.fromkeys(skus))
        for start in range(0, len(unique), LOOKUP_CHUNK):
            chunk = unique[start : start + LOOKUP_CHUNK]
            wanted = set(chunk)
            first = min(250, 2 * len(chunk))  # room to notice a SKU shared by two items
            variables = _ItemsVariables(
                first=first,
                query=" OR ".join(_search_term("sku", sku) for sku in chunk),
                location_id=self.location,
            )
            pushes_before = self._push_seq
            data = await self._call(
                "inventoryItems", first, _ITEMS_QUERY, variables, _items_decoder, 2 + 3 * first
            )
            # A guarded lookup (the drift read-back) runs beside the pushes: its reading is
            # kept as the compare-and-set value only when no push ran meanwhile, else an
            # older reading could replace what a push just set (and the next push go stale).
            remember = not guarded or (self._push_seq == pushes_before and not self._pushing)
            for item in data.inventory_items.nodes:
                sku = item.sku
                if sku is None or sku not in wanted:  # the search matched loosely
                    continue
                if sku in found:
                    found[sku].matches += 1
                    continue
                available: int | None = None
                if item.inventory_level is not None:
                    available = next(
                        (
                            q.quantity
                            for q in item.inventory_level.quantities
                            if q.name == "available"
                        ),
                        0,
                    )
                found[sku] = _Found(gid=item.id, available=available)
            # Cached chunk by chunk: a lookup throttled half-way keeps what it already paid for.
            for sku in chunk:
                seen = found.get(sku)
                if seen is not None and seen.matches == 1:
                    self._items[sku] = seen.gid
                    if seen.available is not None and remember:
                        self._known[sku] = seen.available
        return found

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """``available`` at our location per SKU; SKUs Shopify does not list (or does not stock
        there, or lists twice) are left out."""
        found = await self._lookup(skus, guarded=True)
        return {
            sku: seen.available
            for sku, seen in found.items()
            if seen.matches == 1 and seen.available is not None
        }

    # -- cancel -------------------------------------------------------------------------------

    async def cancel_order(
        self, order_id: str, lines: Sequence[OrderLine] | None, reason: str
    ) -> None:
        """orderCancel the whole order (no restock: invsync pushes the released units itself).
        Already cancelled: nothing to do. Some lines only: Permanent (Shopify's orderCancel
        takes whole orders; removing lines needs an order edit)."""
        gid = order_id if order_id.startswith("gid://") else f"gid://shopify/Order/{order_id}"
        found = await self._call(
            "order",
            CANCEL_LINES_PAGE,
            _ORDER_QUERY,
            _OrderVariables(id=gid, lines=CANCEL_LINES_PAGE),
            _order_decoder,
            3 + CANCEL_LINES_PAGE,
        )
        order = found.order
        if order is None:
            raise Permanent(f"Shopify has no order {order_id}")
        if order.cancelled_at is not None:
            return
        if lines is not None:
            wanted = _merge((line.sku, line.qty) for line in lines)
            current = _merge(
                (
                    item.sku,
                    item.quantity if item.current_quantity is None else item.current_quantity,
                )
                for item in order.line_items.nodes
            )
            if wanted != current or order.line_items.page_info.has_next_page:
                raise Permanent(
                    f"Shopify cancels whole orders only: order {order_id} has {current}, "
                    f"cancelling {wanted} needs an order edit on Shopify"
                )
        upper = reason.strip().upper()
        variables = _CancelVariables(
            order_id=gid,
            reason=upper if upper in _ORDER_CANCEL_REASONS else "INVENTORY",
            refund_method=_RefundMethod(original_payment_methods_refund=True),
            restock=False,
            notify_customer=self.cancel_notify_customer,
            staff_note=f"invsync: {reason}"[:255],
        )
        data = await self._call(
            "orderCancel", 0, _CANCEL_MUTATION, variables, _cancel_decoder, MUTATION_COST
        )
        payload = data.order_cancel
        if payload is None:
            raise Retryable("Shopify answered orderCancel without a payload")
        for error in payload.order_cancel_user_errors:
            text = f"orderCancel {order_id}: {error.code}: {error.message}"
            if error.code == "INTERNAL_ERROR":
                raise Retryable(text)
            raise Permanent(text)
        log.info(
            "shopify_order_cancelled",
            channel=self.channel.id,
            order_id=order_id,
            job=payload.job.id if payload.job else None,
        )

    # -- one GraphQL call ---------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        size: int,
        document: str,
        variables: Any,
        decoder: msgspec.json.Decoder[_Reply[T]],
        estimate: float,
    ) -> T:
        """POST one operation; its ``data``, or the error kind Shopify's answer means. Refuses to
        send (Throttled) when the cost bucket, restored since its last reading, cannot pay."""
        expected = self._costs.get((operation, size), estimate)
        budget = self._budget
        if budget is not None and budget.restore_rate > 0:
            have = budget.level(self._clock())
            if have < expected:
                raise Throttled(
                    f"Shopify cost budget: {have:.0f} points available, {operation} needs "
                    f"{expected:.0f} (restores {budget.restore_rate:g}/s)",
                    retry_after=(expected - have) / budget.restore_rate,
                )
        reply = await send(
            self._session,
            "POST",
            self._endpoint,
            timeout=self._timeout,
            headers=self._headers,
            body=_encode(_Request(query=document, variables=variables)),
        )
        check(reply, now=self._wall())
        try:
            answer = decoder.decode(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Retryable(f"Shopify answered {operation} unreadably: {exc}") from exc
        cost = answer.extensions.cost if answer.extensions else None
        self._observe(operation, size, cost)
        if answer.errors:
            self._raise(operation, answer.errors, cost, expected)
        if answer.data is None:
            raise Retryable(f"Shopify answered {operation} without data")
        return answer.data

    def _observe(self, operation: str, size: int, cost: _Cost | None) -> None:
        if cost is None:
            return
        if cost.requested_query_cost is not None:
            self._costs[(operation, size)] = cost.requested_query_cost
        status = cost.throttle_status
        if status is not None:
            self._budget = _Budget(
                maximum=status.maximum_available,
                available=status.currently_available,
                restore_rate=status.restore_rate,
                at=self._clock(),
            )

    def _raise(
        self,
        operation: str,
        errors: list[_GraphQLError] | str,
        cost: _Cost | None,
        expected: float,
    ) -> None:
        if isinstance(errors, str):
            raise Retryable(f"Shopify {operation}: {errors[:300]}")
        codes = {e.extensions.code for e in errors if e.extensions is not None}
        text = f"Shopify {operation}: " + "; ".join(e.message for e in errors)[:300]
        if "THROTTLED" in codes:
            wait = 1.0
            status = cost.throttle_status if cost else None
            if status is not None and status.restore_rate > 0:
                needed = (
                    cost.requested_query_cost if cost and cost.requested_query_cost else expected
                )
                wait = max(0.05, (needed - status.currently_available) / status.restore_rate)
            raise Throttled(text, retry_after=wait)
        if "ACCESS_DENIED" in codes:  # a missing access scope does not fix itself
            raise Unauthorized(text)
        if "MAX_COST_EXCEEDED" in codes:
            raise Permanent(text)
        raise Retryable(text)

    # -- webhooks -----------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[dict[str, object]]:
        """Verify ``X-Shopify-Hmac-Sha256`` and translate by ``X-Shopify-Topic``: orders/create,
        orders/cancelled, orders/fulfilled, refunds/create; other topics give no events."""
        if self._secret is None:
            raise BadWebhook(
                f"channel '{self.channel.id}' has no secret_env: Shopify webhooks cannot be "
                "verified",
                unauthorized=True,
            )
        signature = header(headers, "X-Shopify-Hmac-Sha256")
        if signature is None:
            raise BadWebhook("missing X-Shopify-Hmac-Sha256 header", unauthorized=True)
        if not verify_b64(self._secret, body, signature):
            raise BadWebhook("X-Shopify-Hmac-Sha256 does not match the body", unauthorized=True)
        topic = (header(headers, "X-Shopify-Topic") or "").strip().lower()
        if not topic:
            raise BadWebhook("missing X-Shopify-Topic header")
        translate = self._topics.get(topic)
        if translate is None:
            return []
        try:
            return translate(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            delivery = header(headers, "X-Shopify-Webhook-Id") or "?"
            raise BadWebhook(f"{topic} (webhook {delivery}): malformed payload: {exc}") from None

    def _created_event(
        self,
        order_id: str,
        lines: Iterable[tuple[str | None, int]],
        country: str | None,
        region: str | None,
    ) -> dict[str, object] | None:
        """order.created for an order, the same from the webhook and from the order poll."""
        merged = _merge(lines)
        if not merged:
            return None  # nothing invsync stocks (a gift card, a custom item)
        event: dict[str, object] = {
            "id": order_events_id(self.channel.id, order_id, "created"),
            "type": "order.created",
            "channel": self.channel.id,
            "order_id": order_id,
            "lines": _lines(merged),
        }
        if country or region:
            event["ship_to"] = {"country": country, "region": region}
        return event

    def _order_created(self, body: bytes) -> list[dict[str, object]]:
        order = _hook_order.decode(body)
        address = order.shipping_address
        event = self._created_event(
            str(order.id),
            [(line.sku, line.quantity) for line in order.line_items],
            address.country_code if address else None,
            address.province_code if address else None,
        )
        return [] if event is None else [event]

    def _order_cancelled(self, body: bytes) -> list[dict[str, object]]:
        # Lines a refund already cancelled (restock_type "cancel", translated from its own
        # refunds/create) are not released twice: only the rest of the order is.
        order = _hook_order.decode(body)
        everything = _merge((line.sku, line.quantity) for line in order.line_items)
        refunded = _merge(
            (_refund_sku(line, order.line_items), line.quantity)
            for refund in order.refunds
            for line in refund.refund_line_items
            if (line.restock_type or "").lower() == "cancel"
        )
        rest = {sku: qty - refunded.get(sku, 0) for sku, qty in everything.items()}
        rest = {sku: qty for sku, qty in rest.items() if qty > 0}
        if not rest:
            return []
        order_id = str(order.id)
        event: dict[str, object] = {
            "id": order_events_id(self.channel.id, order_id, "cancelled"),
            "type": "order.cancelled",
            "channel": self.channel.id,
            "order_id": order_id,
        }
        if rest != everything:
            event["lines"] = _lines(rest)
        return [event]

    def _order_fulfilled(self, body: bytes) -> list[dict[str, object]]:
        order = _hook_order.decode(body)
        if not _merge((line.sku, line.quantity) for line in order.line_items):
            return []
        order_id = str(order.id)
        return [
            {
                "id": order_events_id(self.channel.id, order_id, "fulfilled"),
                "type": "order.fulfilled",
                "channel": self.channel.id,
                "order_id": order_id,
            }
        ]

    def _refund_created(self, body: bytes) -> list[dict[str, object]]:
        # restock_type "return": units came back (order.returned at options.return_location);
        # "cancel": unfulfilled units were taken off the order (order.cancelled of those lines);
        # "no_restock": nothing comes back.
        refund = _hook_refund.decode(body)
        order_id = str(refund.order_id)
        returned = _merge(
            (_refund_sku(line, ()), line.quantity)
            for line in refund.refund_line_items
            if (line.restock_type or "").lower() in ("return", "legacy_restock")
        )
        cancelled = _merge(
            (_refund_sku(line, ()), line.quantity)
            for line in refund.refund_line_items
            if (line.restock_type or "").lower() == "cancel"
        )
        events: list[dict[str, object]] = []
        if cancelled:
            events.append(
                {
                    "id": order_events_id(
                        self.channel.id, order_id, f"refund-{refund.id}-cancelled"
                    ),
                    "type": "order.cancelled",
                    "channel": self.channel.id,
                    "order_id": order_id,
                    "lines": _lines(cancelled),
                }
            )
        if returned:
            if self.return_location is None:
                raise BadWebhook(
                    f"refunds/create for order {order_id} restocks returned units, but channel "
                    f"'{self.channel.id}' has no options.return_location (the invsync location "
                    "returns go to)"
                )
            events.append(
                {
                    "id": order_events_id(
                        self.channel.id, order_id, f"refund-{refund.id}-returned"
                    ),
                    "type": "order.returned",
                    "channel": self.channel.id,
                    "order_id": order_id,
                    "location": self.return_location,
                    "lines": _lines(returned),
                }
            )
        return events


def _refund_sku(line: _HookRefundLine, items: Sequence[_HookLineItem]) -> str | None:
    """The SKU of a refunded line: its embedded ``line_item``, else the order's line by id."""
    if line.line_item is not None and line.line_item.sku:
        return line.line_item.sku
    for item in items:
        if item.id is not None and str(item.id) == str(line.line_item_id):
            return item.sku
    return None


def _permanent(sku: str, error: str) -> PushResult:
    return PushResult(sku=sku, outcome="permanent", error=error)
