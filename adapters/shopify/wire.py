"""Shopify Admin GraphQL on the wire: the documents invsync sends, their variables and the
answers, as msgspec types (camelCase on the wire).

Followed (shopify.dev admin-graphql 2026-04): ``mutations/inventorySetQuantities`` with
``input-objects/InventorySetQuantitiesInput`` and ``InventoryQuantityInput``
(``changeFromQuantity`` mandatory from 2026-04; ``null`` would opt out of the check),
``@idempotent(key:)`` (``/docs/api/usage/idempotent-requests``), ``queries/inventoryItems``,
``queries/orders``, ``queries/order``, ``mutations/orderCancel`` (``$refundMethod`` is declared
``OrderCancelRefundMethodInput!`` as the page's own example declares it: the adapter always
sends one, and a nullable variable in a non-null argument is a validation error); every answer's
``extensions.cost`` (``requestedQueryCost``, ``actualQueryCost``, ``throttleStatus
{maximumAvailable, currentlyAvailable, restoreRate}``) from
``/docs/apps/build/apis/graphql-admin/rate-limits``.

Every document here is validated, in the tests and by the simulated store on every request,
against invsync's SDL of these types (``simulators/schemas/shopify_admin.graphql``) with
graphql-core.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

# --- GraphQL documents ------------------------------------------------------------------------

ITEMS_QUERY = """
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

SET_MUTATION = """
mutation InvsyncSetQuantities($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""

ORDERS_QUERY = """
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

ORDER_QUERY = """
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

CANCEL_MUTATION = """
mutation InvsyncOrderCancel($orderId: ID!, $reason: OrderCancelReason!,
    $refundMethod: OrderCancelRefundMethodInput!, $restock: Boolean!, $notifyCustomer: Boolean,
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


class Request(msgspec.Struct, Generic[V], kw_only=True):
    """A GraphQL request body: the document and its variables."""

    query: str
    variables: V


class ItemsVariables(msgspec.Struct, kw_only=True, rename="camel"):
    """Variables of ``ITEMS_QUERY``: the SKU search and our location."""

    first: int
    query: str
    location_id: str


class QuantityInput(msgspec.Struct, kw_only=True, rename="camel"):
    """``InventoryQuantityInput``: ``change_from_quantity`` has no default, so it is always sent
    (``null`` would opt out of the check; we never send null)."""

    inventory_item_id: str
    location_id: str
    quantity: int
    change_from_quantity: int | None


class SetInput(msgspec.Struct, kw_only=True, rename="camel"):
    """``InventorySetQuantitiesInput``."""

    name: str
    reason: str
    reference_document_uri: str
    quantities: list[QuantityInput]


class SetVariables(msgspec.Struct, kw_only=True, rename="camel"):
    """Variables of ``SET_MUTATION``: the input and its idempotency key."""

    input: SetInput
    idempotency_key: str


class OrdersVariables(msgspec.Struct, kw_only=True):
    """Variables of ``ORDERS_QUERY``: a page of orders matching ``query``."""

    first: int
    lines: int
    query: str


class OrderVariables(msgspec.Struct, kw_only=True):
    """Variables of ``ORDER_QUERY``: one order by GID."""

    id: str
    lines: int


class RefundMethod(msgspec.Struct, kw_only=True, rename="camel"):
    """``OrderCancelRefundMethodInput``."""

    original_payment_methods_refund: bool


class CancelVariables(msgspec.Struct, kw_only=True, rename="camel"):
    """Variables of ``CANCEL_MUTATION`` (``orderCancel``'s arguments)."""

    order_id: str
    reason: str
    refund_method: RefundMethod
    restock: bool
    notify_customer: bool
    staff_note: str


# --- answers ------------------------------------------------------------------------------------


class ThrottleStatus(msgspec.Struct, kw_only=True, rename="camel"):
    """The cost bucket as Shopify saw it when answering."""

    maximum_available: float
    currently_available: float
    restore_rate: float


class Cost(msgspec.Struct, kw_only=True, rename="camel"):
    """``extensions.cost`` of an answer."""

    requested_query_cost: float | None = None
    actual_query_cost: float | None = None
    throttle_status: ThrottleStatus | None = None


class Extensions(msgspec.Struct, kw_only=True):
    """An answer's ``extensions``."""

    cost: Cost | None = None


class ErrorExtensions(msgspec.Struct, kw_only=True):
    """A top-level error's ``extensions`` (``code``: THROTTLED, ACCESS_DENIED, ...)."""

    code: str | None = None


class GraphQLError(msgspec.Struct, kw_only=True):
    """A top-level GraphQL error."""

    message: str = ""
    extensions: ErrorExtensions | None = None


class Reply(msgspec.Struct, Generic[T], kw_only=True):
    """Any answer: ``data`` of the operation, top-level ``errors`` (a string on a 401) and
    ``extensions``."""

    data: T | None = None
    errors: list[GraphQLError] | str | None = None
    extensions: Extensions | None = None


class Quantity(msgspec.Struct, kw_only=True):
    """One named quantity of an inventory level."""

    name: str
    quantity: int


class Level(msgspec.Struct, kw_only=True):
    """An item's inventory level at our location."""

    quantities: list[Quantity] = []


class Item(msgspec.Struct, kw_only=True, rename="camel"):
    """An inventory item; ``inventory_level`` None when it is not stocked at our location."""

    id: str
    sku: str | None = None
    inventory_level: Level | None = None


class Items(msgspec.Struct, kw_only=True):
    """A page of ``inventoryItems``."""

    nodes: list[Item] = []


class ItemsData(msgspec.Struct, kw_only=True, rename="camel"):
    """``data`` of ``ITEMS_QUERY``."""

    inventory_items: Items


class UserError(msgspec.Struct, kw_only=True):
    """A userError; ``field`` is the input path it names."""

    code: str | None = None
    field: list[str] | None = None
    message: str = ""


class Group(msgspec.Struct, kw_only=True):
    """The ``inventoryAdjustmentGroup`` a mutation created (None: nothing applied)."""

    id: str | None = None


class SetPayload(msgspec.Struct, kw_only=True, rename="camel"):
    """``InventorySetQuantitiesPayload``."""

    inventory_adjustment_group: Group | None = None
    user_errors: list[UserError] = []


class SetData(msgspec.Struct, kw_only=True, rename="camel"):
    """``data`` of ``SET_MUTATION``."""

    inventory_set_quantities: SetPayload | None = None


class LineItem(msgspec.Struct, kw_only=True, rename="camel"):
    """An order's line item (``current_quantity`` after removals)."""

    sku: str | None = None
    quantity: int = 0
    current_quantity: int | None = None


class PageInfo(msgspec.Struct, kw_only=True, rename="camel"):
    """Whether a connection has more pages."""

    has_next_page: bool = False


class LineItems(msgspec.Struct, kw_only=True, rename="camel"):
    """A page of an order's line items."""

    nodes: list[LineItem] = []
    page_info: PageInfo = msgspec.field(default_factory=PageInfo)


class Address(msgspec.Struct, kw_only=True, rename="camel"):
    """An order's shipping address."""

    country_code_v2: str | None = None
    province_code: str | None = None


class Order(msgspec.Struct, kw_only=True, rename="camel"):
    """An order, as the order poll and the cancellation read it."""

    legacy_resource_id: str
    created_at: str | None = None
    cancelled_at: str | None = None
    line_items: LineItems = msgspec.field(default_factory=LineItems)
    shipping_address: Address | None = None


class Orders(msgspec.Struct, kw_only=True):
    """A page of ``orders``."""

    nodes: list[Order] = []


class OrdersData(msgspec.Struct, kw_only=True):
    """``data`` of ``ORDERS_QUERY``."""

    orders: Orders


class OrderData(msgspec.Struct, kw_only=True):
    """``data`` of ``ORDER_QUERY`` (``order`` None: no such order)."""

    order: Order | None = None


class Job(msgspec.Struct, kw_only=True):
    """The job an ``orderCancel`` started."""

    id: str | None = None
    done: bool = False


class CancelPayload(msgspec.Struct, kw_only=True, rename="camel"):
    """``OrderCancelPayload``."""

    job: Job | None = None
    order_cancel_user_errors: list[UserError] = []


class CancelData(msgspec.Struct, kw_only=True, rename="camel"):
    """``data`` of ``CANCEL_MUTATION``."""

    order_cancel: CancelPayload | None = None


#: JSON of a request body.
encode = msgspec.json.Encoder().encode
items_decoder = msgspec.json.Decoder(Reply[ItemsData])
set_decoder = msgspec.json.Decoder(Reply[SetData])
orders_decoder = msgspec.json.Decoder(Reply[OrdersData])
order_decoder = msgspec.json.Decoder(Reply[OrderData])
cancel_decoder = msgspec.json.Decoder(Reply[CancelData])
