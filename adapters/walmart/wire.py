"""Walmart Marketplace's wire formats as msgspec Structs: inventory, the inventory feed and its
status, purchase orders and their cancellation, PO notifications.

Sources: the OpenAPI "Inventory Management" (repository highsidelabs/walmart-api-php
``resources/schemas/us/mp/inventory.json``; APIs-guru/openapi-directory
``APIs/walmart.com/inventory/1.0.0``), the bulk item inventory feed spec 1.4, the models
``PartnerFeedResponse`` and ``PartnerItemIngestionStatus`` (highsidelabs/walmart-api-php
``docs/Models/MP/US/Feeds``), the cancel-order-lines reference and the PO_CREATED /
PO_LINE_AUTOCANCELLED event pages (developer.walmart.com/us-marketplace).
"""

from __future__ import annotations

import msgspec


class Quantity(msgspec.Struct, kw_only=True):
    """``quantity``: the unit is always EACH; answers carry ``amount`` as a JSON number."""

    unit: str = "EACH"
    amount: int | float


class Inventory(msgspec.Struct, kw_only=True):
    """``PUT /v3/inventory`` body, its answer and the ``GET`` answer; one item of a feed."""

    sku: str
    quantity: Quantity


class InventoryHeader(msgspec.Struct, kw_only=True):
    """``InventoryHeader`` of the feed file: its spec version."""

    version: str = "1.4"


class InventoryFeed(msgspec.Struct, kw_only=True):
    """The bulk item inventory feed file, spec 1.4."""

    header: InventoryHeader = msgspec.field(name="InventoryHeader")
    inventory: list[Inventory] = msgspec.field(name="Inventory")


class FeedAck(msgspec.Struct, kw_only=True, rename="camel"):
    """The feed upload's answer: the id to poll."""

    feed_id: str


class IngestionError(msgspec.Struct, kw_only=True):
    """One ``ingestionError`` of a feed or of one of its items."""

    type: str | None = None
    code: str | None = None
    field: str | None = None
    description: str | None = None


class IngestionErrors(msgspec.Struct, kw_only=True, rename="camel"):
    """``ingestionErrors``: the list around them."""

    ingestion_error: list[IngestionError] | None = None


class ItemIngestionStatus(msgspec.Struct, kw_only=True, rename="camel"):
    """``PartnerItemIngestionStatus``: how one feed item fared (``index`` when no SKU)."""

    sku: str | None = None
    index: int | None = None
    ingestion_status: str = "INPROGRESS"
    ingestion_errors: IngestionErrors | None = None


class ItemDetails(msgspec.Struct, kw_only=True, rename="camel"):
    """``itemDetails`` of a feed status page."""

    item_ingestion_status: list[ItemIngestionStatus] | None = None


class FeedStatus(msgspec.Struct, kw_only=True, rename="camel"):
    """``GET /v3/feeds/{feedId}`` (``PartnerFeedResponse``)."""

    feed_id: str | None = None
    feed_status: str = "RECEIVED"
    ingestion_errors: IngestionErrors | None = None
    items_received: int | None = None
    item_details: ItemDetails | None = None


class WalmartError(msgspec.Struct, kw_only=True):
    """One entry of Walmart's error envelope (``message`` on newer pages, ``description`` in the
    OpenAPI ``Error`` schema)."""

    code: str | None = None
    field: str | None = None
    description: str | None = None
    message: str | None = None
    info: str | None = None
    severity: str | None = None
    category: str | None = None


class OrderQuantity(msgspec.Struct, kw_only=True, rename="camel"):
    """A quantity of an order line, its amount a string."""

    unit_of_measurement: str = "EACH"
    amount: str = "1"


class OrderLineStatus(msgspec.Struct, kw_only=True, rename="camel"):
    """One status of some units of an order line."""

    status: str
    status_quantity: OrderQuantity | None = None
    cancellation_reason: str | None = None


class OrderLineStatuses(msgspec.Struct, kw_only=True, rename="camel"):
    """``orderLineStatuses``: the list around them."""

    order_line_status: list[OrderLineStatus] = []


class OrderItem(msgspec.Struct, kw_only=True, rename="camel"):
    """``item`` of an order line: the SKU ordered."""

    sku: str
    product_name: str | None = None


class PurchaseOrderLine(msgspec.Struct, kw_only=True, rename="camel"):
    """One ``orderLine`` of a purchase order."""

    line_number: str
    item: OrderItem
    order_line_quantity: OrderQuantity
    order_line_statuses: OrderLineStatuses | None = None


class PurchaseOrderLines(msgspec.Struct, kw_only=True, rename="camel"):
    """``orderLines``: the list around them."""

    order_line: list[PurchaseOrderLine] = []


class PurchaseOrder(msgspec.Struct, kw_only=True, rename="camel"):
    """A purchase order, as far as cancelling its lines needs."""

    purchase_order_id: str
    order_lines: PurchaseOrderLines


class OrderEnvelope(msgspec.Struct, kw_only=True):
    """``GET /v3/orders/{purchaseOrderId}``."""

    order: PurchaseOrder


class CancelStatus(msgspec.Struct, kw_only=True, rename="camel"):
    """A cancellation of some units, with its reason code."""

    cancellation_reason: str
    status_quantity: OrderQuantity
    status: str = "Cancelled"


class CancelStatuses(msgspec.Struct, kw_only=True, rename="camel"):
    """``orderLineStatuses`` of a cancelled line."""

    order_line_status: list[CancelStatus]


class CancelLine(msgspec.Struct, kw_only=True, rename="camel"):
    """One line to cancel, by ``lineNumber``."""

    line_number: str
    order_line_statuses: CancelStatuses


class CancelLines(msgspec.Struct, kw_only=True, rename="camel"):
    """``orderLines`` of a cancellation."""

    order_line: list[CancelLine]


class OrderCancellation(msgspec.Struct, kw_only=True, rename="camel"):
    """``orderCancellation`` of the cancel body."""

    order_lines: CancelLines


class CancelRequest(msgspec.Struct, kw_only=True, rename="camel"):
    """``POST /v3/orders/{purchaseOrderId}/cancel`` body."""

    order_cancellation: OrderCancellation


class EventSource(msgspec.Struct, kw_only=True, rename="camel"):
    """``source`` of a notification: its type and id."""

    event_type: str
    event_id: str | None = None
    event_time: str | None = None


class EventQuantity(msgspec.Struct, kw_only=True, rename="camel"):
    """``quantity`` of a notified line (``measurementValue`` a string or a number)."""

    measurement_value: str | int
    unit_of_measure: str | None = None


class EventLine(msgspec.Struct, kw_only=True, rename="camel"):
    """One ``orderLines`` entry of a notification."""

    line_number: str
    sku: str
    quantity: EventQuantity
    status: str | None = None


class EventPayload(msgspec.Struct, kw_only=True, rename="camel"):
    """``payload`` of a PO notification."""

    purchase_order_id: str
    order_lines: list[EventLine] = []


class Notification(msgspec.Struct, kw_only=True):
    """A ``PO_CREATED`` / ``PO_LINE_AUTOCANCELLED`` V1 notification."""

    source: EventSource
    payload: EventPayload | None = None


class EventKind(msgspec.Struct, kw_only=True):
    """Just the ``source`` of a notification: which type it is, read before the rest."""

    source: EventSource


encode = msgspec.json.Encoder().encode
decode_feed_ack = msgspec.json.Decoder(FeedAck).decode
decode_feed_status = msgspec.json.Decoder(FeedStatus).decode
decode_inventory = msgspec.json.Decoder(Inventory).decode
decode_order = msgspec.json.Decoder(OrderEnvelope).decode
decode_kind = msgspec.json.Decoder(EventKind).decode
decode_notification = msgspec.json.Decoder(Notification).decode
