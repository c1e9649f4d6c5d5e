"""A Shopify store's Admin GraphQL API, as much of it as invsync's Shopify adapter speaks.

One route, ``POST {url}/admin/api/{version}/graphql.json``, checks ``X-Shopify-Access-Token``
against the channel's ``token_env`` (401 ``{"errors": "[API] Invalid API key or access token
(unrecognized login or wrong password)"}`` like Shopify), then parses and validates the document
with graphql-core against invsync's SDL of the Admin API 2026-04
(``schemas/shopify_admin.graphql``; ``shopify_graphql.py``) and coerces its variables to the
declared types: a misspelt field, a wrong argument, a variable of the wrong nullability or a
value of the wrong type answers Shopify's top-level ``errors`` (``undefinedField``,
``variableMismatch``, ``INVALID_VARIABLE``...), nothing charged or applied. A valid operation is
answered by its root field (``inventoryItems``, ``inventorySetQuantities``, ``orders``,
``order``, ``orderCancel``), read from the AST with its coerced arguments and directives, and
the answer is cut to the document's selection.

What it reproduces (shopify.dev pages listed in ``docs/channels/shopify.md``, "Sources"):

- ``inventorySetQuantities``: besides the SDL's types, ``changeFromQuantity`` present on every
  quantity from 2026-04 (an ``INVALID_FIELD_ARGUMENTS`` error otherwise), the
  ``@idempotent(key:)`` directive from 2026-04 (``BAD_REQUEST`` otherwise); userErrors with
  the documented codes and ``field`` paths
  (``INVALID_NAME``, ``INVALID_REASON``, ``INVALID_REFERENCE_DOCUMENT``, ``INVALID_INVENTORY_ITEM``,
  ``INVALID_LOCATION``, ``ITEM_NOT_STOCKED_AT_LOCATION``, ``INVALID_QUANTITY_NEGATIVE``,
  ``INVALID_QUANTITY_TOO_HIGH``, ``NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR``,
  ``CHANGE_FROM_QUANTITY_STALE``, ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``). Compare-and-set per
  quantity; a call with any userError applies nothing (``inventoryAdjustmentGroup: null``); a
  repeated idempotency key with the same variables answers the first answer again.
- The catalog: a SKU the seller listed (``SimChannel.listed``: the ``--catalogue`` of
  ``invsync simulate``, the catalogue control route, ``set_quantity``) has an inventory item,
  stocked at the channel's ``options.location_id`` with ``available`` 0 unless set otherwise;
  SKUs in ``unstocked`` have one that is not stocked at the location, SKUs in ``duplicated`` have
  two. A SKU not listed has none: ``inventoryItems(query: "sku:...")`` returns no node for it
  (queries/inventoryItems: the search matches items by ``sku``), which is how the adapter learns
  Shopify does not list it; an ``inventorySetQuantities`` naming an item id that does not exist
  answers the userError ``INVALID_INVENTORY_ITEM`` ("The specified inventory item could not be
  found.", ``field: ["input", "quantities", "<i>", "inventoryItemId"]``,
  enums/InventorySetQuantitiesUserErrorCode) and applies nothing.
- Cost-based throttling: a ``CostBucket`` of 2000 points restoring 100/s (a Standard plan, as
  Shopify's answers show it; tests may replace ``bucket``); costs follow Shopify's rule roughly
  (mutation 10, connection 2 + first x node, node = its objects); the requested cost is taken
  before running and the unused part refunded; a query over 1000 points is ``MAX_COST_EXCEEDED``;
  an empty bucket answers HTTP 200 ``errors: [{message: "Throttled", extensions: {code:
  "THROTTLED"}}]`` with ``extensions.cost``, and so does an injected throttle fault.
- ``orders`` over ``self.orders`` (``sku:`` terms and ``created_at:>=`` of Shopify's search
  syntax, ``reverse``; the ``first`` of the ``lineItems`` selected), ``order(id:)``,
  ``orderCancel`` (NOT_FOUND / INVALID userErrors, restock or not).
- Signed webhooks for orders in Shopify's REST JSON: orders/create, orders/cancelled,
  orders/fulfilled and refunds/create (every line returned, ``restock_type: "return"``) with
  ``X-Shopify-Topic``, ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 under ``secret_env``),
  ``X-Shopify-Shop-Domain``, ``X-Shopify-Webhook-Id``, ``X-Shopify-API-Version``.
  A cancelled order's payload has no refunds (a cancellation without restock).

The store keeps one number per SKU, ``available`` at the channel's location (``quantities``).
"""

from __future__ import annotations

import itertools
import random
import re
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..core.config import Channel, Faults
from .core import (
    SimChannel,
    SimOrder,
    json_response,
    option_text,
    optional_secret,
    required_secret,
)
from .limits import CostBucket
from .shopify_graphql import DocumentError, Operation, prepare
from .signing import SHOPIFY_HMAC, hmac_b64

__all__ = ["ShopifyStore", "create"]

#: The version the store answers webhooks in when ``options.api_version`` names none: the
#: newest stable Admin API version whose behaviour it reproduces (shopify.dev/docs/api/usage/
#: versioning: stable versions are named YYYY-MM, one per quarter).
DEFAULT_API_VERSION = "2026-04"
#: From this version every quantity of inventorySetQuantities must carry ``changeFromQuantity``
#: (changelog "New compare and swap syntax for the inventorySetQuantities mutation", effective
#: API version 2026-04: "making the changeFromQuantity field ... mandatory").
CAS_REQUIRED_FROM = "2026-04"
BUCKET_SIZE = 2000.0
RESTORE_RATE = 100.0
MAX_QUERY_COST = 1000.0
MAX_QUANTITY = 1_000_000_000
MUTATION_COST = 10
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
#: Reasons ``inventorySetQuantities`` accepts (the "possible reasons" of the quantities guide).
REASONS = frozenset({
    "correction", "cycle_count_available", "damaged", "movement_created", "movement_updated",
    "movement_received", "movement_canceled", "other", "promotion", "quality_control",
    "received", "reservation_created", "reservation_deleted", "reservation_updated", "restock",
    "safety_stock", "shrinkage",
})

_VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")
_SKU_TERM = re.compile(r"""sku:(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^\s()"']+))""")
_CREATED_SINCE = re.compile(r"""created_at:>=?['"]?([0-9T:\-.Z+]+)['"]?""")
_GID = re.compile(r"^gid://shopify/([A-Za-z]+)/(\d+)$")
_LOCATION_GID = re.compile(r"^gid://shopify/Location/\d+$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:.+$")
_APP_GID = re.compile(r"^gid://[^/\s]+/[^/\s]+/\S+$")
_UNESCAPE = re.compile(r"\\(.)")


class _Body(msgspec.Struct, kw_only=True):
    query: str
    variables: dict[str, Any] | None = None
    operationName: str | None = None


#: A root field's answer: (API version, operation, variables as sent) -> (data, actual cost).
_Run = Callable[[str, Operation, dict[str, Any]], tuple[Any, int]]


class _Refused(Exception):
    """A top-level GraphQL error (the request as a whole is refused; nothing is charged)."""

    def __init__(self, message: str, code: str, **extensions: Any) -> None:
        super().__init__(message)
        self.error = {"message": message, "extensions": {"code": code, **extensions}}


def create(channel: Channel, faults: Faults, rng: random.Random) -> ShopifyStore:
    """The store behind a ``shopify`` channel: its token (``token_env``), its webhook secret
    (``secret_env``, optional: without one it sends no webhooks)."""
    token = required_secret(channel, "token_env")
    secret = optional_secret(channel, "secret_env")
    return ShopifyStore(channel, token, secret, faults=faults, rng=rng)


def location_gid(channel: Channel) -> str:
    """The store's location, ``options.location_id``, as the GID its Admin GraphQL API names it
    by: ``gid://shopify/Location/<id>`` (shopify.dev/docs/api/usage/gids); a bare number is the
    REST id of the same location. ValueError naming the option otherwise."""
    value = option_text(channel, "location_id").strip()
    if value.isdigit():
        return f"gid://shopify/Location/{value}"
    if _LOCATION_GID.match(value):
        return value
    raise ValueError(
        f"channel '{channel.id}': options.location_id must be a Shopify location "
        f"(123 or gid://shopify/Location/123), got {value!r}"
    )


def _iso(epoch_ms: float) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch_ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def _stable_id(*parts: object) -> int:
    """A positive id derived from ``parts`` (webhook line and refund ids stay the same)."""
    return 10_000_000 + zlib.crc32("/".join(map(str, parts)).encode())


def _numeric(order_id: str) -> int | str:
    return int(order_id) if order_id.isdigit() else order_id


def _skus(search: str) -> list[str]:
    """The ``sku:`` terms of a search string, unquoted."""
    found = []
    for double, single, bare in _SKU_TERM.findall(search):
        value = double or single or bare
        found.append(_UNESCAPE.sub(r"\1", value))
    return found


class ShopifyStore(SimChannel):
    """A simulated Shopify store: one location (``options.location_id``) of one app's view."""

    kind = "shopify"

    def __init__(
        self, channel: Channel, token: str, secret: str | None, **kwargs: Any
    ) -> None:
        super().__init__(channel, **kwargs)
        self.token = token
        self.secret = secret
        self.location = location_gid(channel)
        self.api_version = str(channel.options.get("api_version", DEFAULT_API_VERSION))
        self.shop_domain = f"{channel.id}.myshopify.com"
        self.bucket = CostBucket(BUCKET_SIZE, RESTORE_RATE, self.clock)
        #: Listed SKUs stocked elsewhere only, or on two items (unlisted ones have no item).
        self.unstocked: set[str] = set()
        self.duplicated: set[str] = set()
        #: SKU -> inventory item id (numeric part of the GID)
        self.items: dict[str, int] = {}
        #: Variables of every inventorySetQuantities / orderCancel call, in order (tests look).
        self.set_requests: list[dict[str, Any]] = []
        self.cancel_requests: list[dict[str, Any]] = []
        self._item_ids = itertools.count(44_000_001)
        self._idempotency: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self._cancelled_ms: dict[str, float] = {}
        #: Root field -> (its answer, its cost as requested).
        self._fields: dict[str, tuple[_Run, Callable[[Operation], int]]] = {
            "inventoryItems": (self._inventory_items, self._items_cost),
            "orders": (self._orders, self._orders_cost),
            "order": (self._order, self._order_cost),
            "inventorySetQuantities": (self._set_quantities, lambda op: MUTATION_COST),
            "orderCancel": (self._order_cancel, lambda op: MUTATION_COST),
        }

    def routes(self) -> Sequence[BaseRoute]:
        """``POST /admin/api/{version}/graphql.json``."""
        return [
            self.route(
                "/admin/api/{version}/graphql.json", self._graphql, methods=["POST"],
                operation="graphql",
            )
        ]

    # -- the answers every call can get -----------------------------------------------------

    def _cost(self, requested: float, actual: float | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": float(self.bucket.capacity),
                "currentlyAvailable": int(self.bucket.available()),
                "restoreRate": float(self.bucket.restore_rate),
            },
        }

    def _throttled(self, requested: float) -> Response:
        return json_response({
            "errors": [{
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }],
            "extensions": {"cost": self._cost(requested, None)},
        })

    def throttle_response(self) -> Response:
        """Shopify throttles GraphQL with HTTP 200 and a THROTTLED error, not a 429."""
        return self._throttled(MUTATION_COST)

    def error_response(self, status: int) -> Response:
        """Shopify's answer to its own failure."""
        request_id = uuid.UUID(int=self.rng.getrandbits(128))
        return json_response(
            {"errors": f"Internal error. Looks like something went wrong on our end.\n"
                       f"Request ID: {request_id}"},
            status,
        )

    # -- the route ---------------------------------------------------------------------------

    async def _graphql(self, request: Request) -> Response:
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            return json_response({"errors": INVALID_TOKEN}, 401)
        version = request.path_params["version"]
        if not _VERSION.match(version):
            return json_response({"errors": "Not Found"}, 404)
        try:
            body = msgspec.json.decode(await request.body(), type=_Body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return json_response({"errors": {"query": "Required parameter missing or invalid"}},
                                 400)
        variables = body.variables or {}
        try:
            op = prepare(body.query, variables, body.operationName)
        except DocumentError as exc:
            self.calls["document:refused"] += 1
            return json_response({"errors": exc.errors})
        field = op.field_name
        entry = self._fields.get(field)
        if entry is None:  # in the SDL, but this store does not simulate it
            return json_response({"errors": [{
                "message": f"The simulated store does not answer '{field}'",
                "extensions": {"code": "BAD_REQUEST"},
            }]})
        run, cost_of = entry
        try:
            requested = cost_of(op)
        except _Refused as exc:
            return json_response({"errors": [exc.error]})
        if requested > MAX_QUERY_COST:
            return json_response({
                "errors": [{
                    "message": f"Query cost is {requested}, which exceeds the single query "
                               f"max cost limit ({MAX_QUERY_COST:g}).",
                    "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                                   "maxCost": MAX_QUERY_COST},
                }],
            })
        if not self.bucket.take(requested):
            self.calls[f"{field}:throttled"] += 1
            return self._throttled(requested)
        try:
            data, actual = run(version, op, variables)
        except _Refused as exc:
            self.bucket.refund(requested)
            self.calls[f"{field}:refused"] += 1
            return json_response({"errors": [exc.error],
                                  "extensions": {"cost": self._cost(requested, 0)}})
        self.bucket.refund(max(0, requested - actual))
        self.calls[f"{field}:ok"] += 1
        return json_response({"data": {op.response_key: op.shape(data)},
                              "extensions": {"cost": self._cost(requested, actual)}})

    # -- inventory ----------------------------------------------------------------------------

    def _item(self, sku: str) -> int | None:
        """The SKU's inventory item id (made the first time it is asked for); None when the seller
        has not listed the SKU."""
        if not self.is_listed(sku):
            return None
        if sku not in self.items:
            self.items[sku] = next(self._item_ids)
            self.quantities.setdefault(sku, 0)
        return self.items[sku]

    def _sku_of(self, item_gid: object) -> str | None:
        match = _GID.match(item_gid) if isinstance(item_gid, str) else None
        if match is None or match.group(1) != "InventoryItem":
            return None
        number = int(match.group(2))
        return next((sku for sku, item in self.items.items() if item == number), None)

    @staticmethod
    def _first(arguments: dict[str, Any] | None, connection: str) -> int:
        """A connection's page size: ``first`` from 1 to 250 (Shopify's page limit)."""
        value = (arguments or {}).get("first")
        if not isinstance(value, int) or not 0 < value <= 250:
            raise _Refused(
                f"{connection}: first must be given, from 1 to 250 (got {value!r})",
                "BAD_REQUEST",
            )
        return value

    def _items_cost(self, op: Operation) -> int:
        return 2 + 3 * self._first(op.arguments, "inventoryItems")

    def _inventory_items(
        self, version: str, op: Operation, variables: dict[str, Any]
    ) -> tuple[Any, int]:
        arguments = op.arguments
        first = self._first(arguments, "inventoryItems")
        at = (op.nested_arguments("nodes", "inventoryLevel") or {}).get("locationId")
        asked = op.nested_arguments("nodes", "inventoryLevel", "quantities") or {}
        names = [n for n in asked.get("names", []) if n == "available"]  # the one kept here
        nodes: list[dict[str, Any]] = []
        for sku in _skus(str(arguments.get("query") or "")):
            item = self._item(sku)
            if item is None:
                continue
            level = None
            if at == self.location and sku not in self.unstocked:
                level = {"quantities": [{"name": name, "quantity": self.quantities.get(sku, 0)}
                                        for name in names]}
            nodes.append({"id": f"gid://shopify/InventoryItem/{item}", "sku": sku,
                          "legacyResourceId": str(item), "tracked": True,
                          "inventoryLevel": level})
            if sku in self.duplicated:
                twin = item + 500_000_000
                nodes.append({"id": f"gid://shopify/InventoryItem/{twin}", "sku": sku,
                              "legacyResourceId": str(twin), "tracked": True,
                              "inventoryLevel": level})
        nodes = nodes[:first]
        return {"nodes": nodes, "pageInfo": {"hasNextPage": False}}, 2 + 3 * len(nodes)

    def _set_quantities(
        self, version: str, op: Operation, variables: dict[str, Any]
    ) -> tuple[Any, int]:
        strict = version >= CAS_REQUIRED_FROM  # "unstable" sorts after every dated version
        raw_input: dict[str, Any] = op.arguments["input"]  # typed by the SDL already
        quantities: list[dict[str, Any]] = raw_input["quantities"]
        if strict and any("changeFromQuantity" not in q for q in quantities):
            raise _Refused("InventoryQuantityInput must include the following argument: "
                           "changeFromQuantity", "INVALID_FIELD_ARGUMENTS")
        directive = op.directive("idempotent")
        key: str | None = directive["key"] if directive else None
        if strict and not key:
            raise _Refused("The @idempotent directive is required for this mutation but was not "
                           "provided.", "BAD_REQUEST")
        self.set_requests.append(msgspec.json.decode(msgspec.json.encode(variables)))  # as sent
        fingerprint = msgspec.json.encode(raw_input)
        if key is not None and key in self._idempotency:
            seen, answer = self._idempotency[key]
            if seen == fingerprint:
                return answer, MUTATION_COST
            return self._refusal([{
                "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH", "field": None,
                "message": "The same idempotency key cannot be used with different operation "
                           "parameters.",
            }]), MUTATION_COST
        answer = self._apply(raw_input, quantities)
        if key is not None:
            self._idempotency[key] = (fingerprint, answer)
        return answer, MUTATION_COST

    @staticmethod
    def _refusal(errors: list[dict[str, Any]]) -> dict[str, Any]:
        return {"inventoryAdjustmentGroup": None, "userErrors": errors}

    def _apply(self, raw_input: dict[str, Any], quantities: list[dict[str, Any]]) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []

        def refuse(code: str, field: list[str], message: str) -> None:
            errors.append({"code": code, "field": field, "message": message})

        if raw_input["name"] not in ("available", "on_hand"):
            refuse("INVALID_NAME", ["input", "name"],
                   "The quantity name must be either 'available' or 'on_hand'.")
        if raw_input["reason"] not in REASONS:
            refuse("INVALID_REASON", ["input", "reason"], "The specified reason is invalid.")
        uri = raw_input.get("referenceDocumentUri")
        if uri is not None and (
            not isinstance(uri, str) or not _URI.match(uri)
            or (uri.startswith("gid://") and not _APP_GID.match(uri))
        ):
            refuse("INVALID_REFERENCE_DOCUMENT", ["input", "referenceDocumentUri"],
                   "The specified reference document is invalid.")
        seen: set[str] = set()
        changes: list[tuple[str, int, int]] = []
        for i, quantity in enumerate(quantities):
            path = ["input", "quantities", str(i)]
            sku = self._sku_of(quantity["inventoryItemId"])
            if sku is None:
                refuse("INVALID_INVENTORY_ITEM", [*path, "inventoryItemId"],
                       "The specified inventory item could not be found.")
                continue
            if quantity["locationId"] != self.location:
                refuse("INVALID_LOCATION", [*path, "locationId"],
                       "The specified location could not be found.")
                continue
            if sku in self.unstocked:
                refuse("ITEM_NOT_STOCKED_AT_LOCATION", [*path, "locationId"],
                       "The specified inventory item is not stocked at the location.")
                continue
            if sku in seen:
                refuse("NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR", [*path, "inventoryItemId"],
                       "The combination of inventoryItemId and locationId must be unique.")
                continue
            seen.add(sku)
            target = quantity["quantity"]
            if target < 0:
                refuse("INVALID_QUANTITY_NEGATIVE", [*path, "quantity"],
                       "The quantity can't be negative.")
                continue
            if target > MAX_QUANTITY:
                refuse("INVALID_QUANTITY_TOO_HIGH", [*path, "quantity"],
                       "The total quantity can't be higher than 1,000,000,000.")
                continue
            current = self.quantities.get(sku, 0)
            change_from = quantity.get("changeFromQuantity")
            if change_from is not None and change_from != current:
                refuse("CHANGE_FROM_QUANTITY_STALE", [*path, "changeFromQuantity"],
                       "The changeFromQuantity value does not match persisted value.")
                continue
            changes.append((sku, target, target - current))
        if errors:
            return self._refusal(errors)
        for sku, target, _ in changes:
            self.quantities[sku] = target
        group = {
            "id": f"gid://shopify/InventoryAdjustmentGroup/{_stable_id(uri, self.wall())}",
            "createdAt": _iso(self.wall() * 1000),
            "reason": raw_input["reason"],
            "referenceDocumentUri": uri,
            "changes": [
                {"name": raw_input["name"], "delta": delta, "quantityAfterChange": target,
                 "item": {"id": f"gid://shopify/InventoryItem/{self.items[sku]}", "sku": sku}}
                for sku, target, delta in changes
            ],
        }
        return {"inventoryAdjustmentGroup": group, "userErrors": []}

    # -- orders -------------------------------------------------------------------------------

    def change_order(self, order_id: str, status: str) -> SimOrder:
        """As the base class, remembering when an order was cancelled."""
        order = super().change_order(order_id, status)
        if status == "cancelled":
            self._cancelled_ms[order_id] = self.wall() * 1000
        return order

    def _lines(self, op: Operation, *path: str) -> int:
        """The page size of the ``lineItems`` selected at ``path`` (0 when not selected)."""
        arguments = op.nested_arguments(*path, "lineItems")
        return 0 if arguments is None else self._first(arguments, "lineItems")

    def _orders_cost(self, op: Operation) -> int:
        return 2 + self._first(op.arguments, "orders") * (4 + self._lines(op, "nodes"))

    def _order_cost(self, op: Operation) -> int:
        return 3 + self._lines(op)

    def _order_node(self, order: SimOrder, lines: int) -> dict[str, Any]:
        cancelled = order.order_id in self._cancelled_ms or order.status == "cancelled"
        return {
            "id": f"gid://shopify/Order/{order.order_id}",
            "legacyResourceId": str(order.order_id),
            "name": f"#{order.order_id}",
            "createdAt": _iso(order.created_ms),
            "cancelledAt": (_iso(self._cancelled_ms.get(order.order_id, order.created_ms))
                            if cancelled else None),
            "lineItems": {
                "nodes": [
                    {"id": f"gid://shopify/LineItem/{_stable_id(order.order_id, 'line', i)}",
                     "sku": line.sku, "quantity": line.qty,
                     "currentQuantity": 0 if cancelled else line.qty}
                    for i, line in enumerate(order.lines[:lines])
                ],
                "pageInfo": {"hasNextPage": len(order.lines) > lines,
                             "hasPreviousPage": False},
            },
            "shippingAddress": {"countryCodeV2": order.country, "provinceCode": order.region},
        }

    def _orders(
        self, version: str, op: Operation, variables: dict[str, Any]
    ) -> tuple[Any, int]:
        arguments = op.arguments
        first = self._first(arguments, "orders")
        lines = self._lines(op, "nodes")
        search = str(arguments.get("query") or "")
        skus = set(_skus(search))
        since = _CREATED_SINCE.search(search)
        cutoff = _epoch_ms(since.group(1)) if since else 0.0
        matching = [
            order for order in self.orders.values()
            if order.created_ms >= cutoff
            and (not skus or any(line.sku in skus for line in order.lines))
        ]
        # Every sort key but ID follows creation here; ``reverse`` turns it round.
        matching.sort(key=lambda o: (o.created_ms, str(o.order_id)),
                      reverse=bool(arguments.get("reverse")))
        nodes = [self._order_node(order, lines) for order in matching[:first]]
        page = {"hasNextPage": len(matching) > first, "hasPreviousPage": False}
        return {"nodes": nodes, "pageInfo": page}, 2 + len(nodes) * (4 + lines)

    def _order_by_gid(self, gid: object) -> SimOrder | None:
        match = _GID.match(gid) if isinstance(gid, str) else None
        if match is None or match.group(1) != "Order":
            return None
        return self.orders.get(match.group(2))

    def _order(
        self, version: str, op: Operation, variables: dict[str, Any]
    ) -> tuple[Any, int]:
        lines = self._lines(op)
        order = self._order_by_gid(op.arguments["id"])
        return (None if order is None else self._order_node(order, lines)), 3 + lines

    def _order_cancel(
        self, version: str, op: Operation, variables: dict[str, Any]
    ) -> tuple[Any, int]:
        arguments = op.arguments  # orderId, reason, refundMethod, restock: typed by the SDL
        self.cancel_requests.append(dict(variables))
        order = self._order_by_gid(arguments["orderId"])

        def refused(code: str, message: str) -> tuple[Any, int]:
            return {"job": None, "orderCancelUserErrors": [
                {"code": code, "field": ["orderId"], "message": message}]}, MUTATION_COST

        if order is None:
            return refused("NOT_FOUND", "Order does not exist")
        if order.status == "cancelled":
            return refused("INVALID", "Cannot cancel an order that has already been cancelled")
        if arguments["restock"]:
            self.change_order(order.order_id, "cancelled")
        else:  # the committed units leave the store; available stays as it is
            self.orders[order.order_id] = msgspec.structs.replace(order, status="cancelled")
            self._cancelled_ms[order.order_id] = self.wall() * 1000
        job = {"id": f"gid://shopify/Job/{uuid.UUID(int=self.rng.getrandbits(128))}",
               "done": False}
        return {"job": job, "orderCancelUserErrors": []}, MUTATION_COST

    # -- webhooks -----------------------------------------------------------------------------

    def _line_json(self, order: SimOrder, index: int) -> dict[str, Any]:
        line = order.lines[index]
        line_id = _stable_id(order.order_id, "line", index)
        done = order.status in ("fulfilled", "refunded")
        return {
            "id": line_id,
            "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
            "variant_id": _stable_id("variant", line.sku),
            "sku": line.sku,
            "title": line.sku,
            "quantity": line.qty,
            "current_quantity": 0 if order.status == "cancelled" else line.qty,
            "fulfillable_quantity": 0 if done or order.status == "cancelled" else line.qty,
            "fulfillment_status": "fulfilled" if done else None,
            "requires_shipping": True,
            "price": "10.00",
        }

    def _order_json(self, order: SimOrder) -> dict[str, Any]:
        number = _numeric(order.order_id)
        cancelled = order.status == "cancelled"
        return {
            "id": number,
            "admin_graphql_api_id": f"gid://shopify/Order/{number}",
            "name": f"#{number}",
            "order_number": number,
            "created_at": _iso(order.created_ms),
            "updated_at": _iso(self.wall() * 1000),
            "cancelled_at": (_iso(self._cancelled_ms.get(order.order_id, self.wall() * 1000))
                             if cancelled else None),
            "cancel_reason": "customer" if cancelled else None,
            "financial_status": "refunded" if order.status == "refunded" else "paid",
            "fulfillment_status": ("fulfilled" if order.status in ("fulfilled", "refunded")
                                   else None),
            "currency": "USD",
            "line_items": [self._line_json(order, i) for i in range(len(order.lines))],
            "shipping_address": {
                "country_code": order.country, "province_code": order.region,
                "country": order.country, "province": order.region,
            },
            "refunds": [],
        }

    def _refund_json(self, order: SimOrder) -> dict[str, Any]:
        refund_id = _stable_id(order.order_id, "refund")
        location = int(self.location.rsplit("/", 1)[1])
        return {
            "id": refund_id,
            "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
            "order_id": _numeric(order.order_id),
            "created_at": _iso(self.wall() * 1000),
            "note": None,
            "restock": True,
            "refund_line_items": [
                {
                    "id": _stable_id(order.order_id, "refund-line", i),
                    "line_item_id": _stable_id(order.order_id, "line", i),
                    "location_id": location,
                    "quantity": line.qty,
                    "restock_type": "return",
                    "subtotal": 10.0 * line.qty,
                    "line_item": self._line_json(order, i),
                }
                for i, line in enumerate(order.lines)
            ],
            "transactions": [],
            "order_adjustments": [],
        }

    def order_notification(self, order: SimOrder) -> tuple[dict[str, str], bytes] | None:
        """The webhook Shopify sends for ``order``, signed with the app's secret."""
        if self.secret is None:
            return None
        topics = {"created": "orders/create", "cancelled": "orders/cancelled",
                  "fulfilled": "orders/fulfilled", "refunded": "refunds/create"}
        topic = topics[order.status]
        payload = self._refund_json(order) if topic == "refunds/create" else self._order_json(order)
        body = msgspec.json.encode(payload)
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            SHOPIFY_HMAC: hmac_b64(self.secret, body),
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Webhook-Id": str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                   f"{self.id}/{order.order_id}/{topic}")),
            "X-Shopify-Triggered-At": _iso(self.wall() * 1000),
        }
        return headers, body
