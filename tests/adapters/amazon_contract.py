"""The parts of Amazon's published definitions the Amazon tests check payloads against, in this
project's own transcription (msgspec Structs: required members have no default, enums are
Literals, limits are ``Meta`` constraints; members a test does not need are left out, and unknown
members are allowed, as the definitions allow them).

Each fact comes from ``amzn/selling-partner-api-models`` at commit
34dc93fe45f37c9a0b2e56823c808f68b4f81754 (August 2026), file named on each Struct:

- L = ``models/listings-items-api-model/listingsItems_2021-08-01.json`` (its ``definitions``)
- F = ``models/feeds-api-model/feeds_2021-06-30.json`` (its ``definitions``)
- J = ``schemas/feeds/listings-feed-schema-v2.json`` (JSON_LISTINGS_FEED, draft-07)
- R = ``schemas/feeds/listings-feed-processing-report-schema-v2.json``
- O = ``schemas/notifications/OrderChangeNotification.json``

``conforms(document, Type)`` raises ``msgspec.ValidationError`` naming the path that breaks it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec

_T = TypeVar("_T")

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Whole = Annotated[int, msgspec.Meta(ge=0)]


def conforms(document: Any, kind: type[_T]) -> _T:
    """``document`` (decoded JSON) read strictly as ``kind``; ValidationError when it breaks it."""
    return msgspec.convert(document, kind, strict=True)


# --- L: Listings Items API 2021-08-01 ----------------------------------------------------------


class PatchOperation(msgspec.Struct, kw_only=True):
    """L ``PatchOperation``: required op, path; op enum add/replace/merge/delete; value an array
    of objects."""

    op: Literal["add", "replace", "merge", "delete"]
    path: str
    value: list[dict[str, Any]] | None = None


class ListingsItemPatchRequest(msgspec.Struct, kw_only=True, rename="camel"):
    """L ``ListingsItemPatchRequest``: required productType, patches (minItems 1)."""

    product_type: str
    patches: Annotated[list[PatchOperation], msgspec.Meta(min_length=1)]


class Issue(msgspec.Struct, kw_only=True, rename="camel"):
    """L ``Issue``: required code, message, severity (ERROR/WARNING/INFO), categories."""

    code: str
    message: str
    severity: Literal["ERROR", "WARNING", "INFO"]
    categories: list[str]
    attribute_names: list[str] | None = None


class ListingsItemSubmissionResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """L ``ListingsItemSubmissionResponse``: required sku, status (ACCEPTED/INVALID/VALID),
    submissionId."""

    sku: str
    status: Literal["ACCEPTED", "INVALID", "VALID"]
    submission_id: str
    issues: list[Issue] | None = None


class FulfillmentAvailability(msgspec.Struct, kw_only=True, rename="camel"):
    """L ``FulfillmentAvailability``: required fulfillmentChannelCode; quantity minimum 0."""

    fulfillment_channel_code: str
    quantity: Whole | None = None


class Item(msgspec.Struct, kw_only=True, rename="camel"):
    """L ``Item``: required sku; ``attributes`` an object, ``fulfillmentAvailability`` an array
    of FulfillmentAvailability."""

    sku: str
    attributes: dict[str, Any] | None = None
    fulfillment_availability: list[FulfillmentAvailability] | None = None


class Error(msgspec.Struct, kw_only=True):
    """L and F ``Error``: required code, message."""

    code: str
    message: str
    details: str | None = None


class ErrorList(msgspec.Struct, kw_only=True):
    """L and F ``ErrorList``: required errors."""

    errors: list[Error]


# --- F: Feeds API 2021-06-30 -------------------------------------------------------------------


class CreateFeedDocumentSpecification(msgspec.Struct, kw_only=True, rename="camel"):
    """F: required contentType."""

    content_type: str


class CreateFeedDocumentResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """F: required feedDocumentId, url."""

    feed_document_id: str
    url: str


class CreateFeedSpecification(msgspec.Struct, kw_only=True, rename="camel"):
    """F: required feedType, marketplaceIds (1..25 items), inputFeedDocumentId."""

    feed_type: str
    marketplace_ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=25)]
    input_feed_document_id: str
    feed_options: dict[str, str] | None = None


class CreateFeedResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """F: required feedId."""

    feed_id: str


class Feed(msgspec.Struct, kw_only=True, rename="camel"):
    """F ``Feed``: required feedId, feedType, createdTime, processingStatus (enum)."""

    feed_id: str
    feed_type: str
    created_time: str
    processing_status: Literal["CANCELLED", "DONE", "FATAL", "IN_PROGRESS", "IN_QUEUE"]
    marketplace_ids: list[str] | None = None
    result_feed_document_id: str | None = None


class FeedDocument(msgspec.Struct, kw_only=True, rename="camel"):
    """F ``FeedDocument``: required feedDocumentId, url; compressionAlgorithm only GZIP."""

    feed_document_id: str
    url: str
    compression_algorithm: Literal["GZIP"] | None = None


# --- J: JSON_LISTINGS_FEED ---------------------------------------------------------------------


class FeedHeader(msgspec.Struct, kw_only=True, rename="camel"):
    """J ``header``: required sellerId, version (const "2.0")."""

    seller_id: str
    version: Literal["2.0"]


class PatchMessage(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """J message of ``operationType`` PATCH: required messageId (1..2147483647), sku (minLength
    1), productType (minLength 1), patches (minItems 1); ``attributes`` and ``requirements`` are
    not applicable to PATCH (the schema's ``oneOf`` forbids them)."""

    message_id: Annotated[int, msgspec.Meta(ge=1, le=2_147_483_647)]
    sku: NonEmpty
    operation_type: Literal["PATCH"]
    product_type: NonEmpty
    patches: Annotated[list[PatchOperation], msgspec.Meta(min_length=1)]


class ListingsFeed(msgspec.Struct, kw_only=True):
    """J: required header, messages (1..25 000 since commit c146214, 2026-01-22)."""

    header: FeedHeader
    messages: Annotated[list[PatchMessage], msgspec.Meta(min_length=1, max_length=25_000)]


# --- R: the processing report ------------------------------------------------------------------


class ReportHeader(msgspec.Struct, kw_only=True, rename="camel"):
    """R ``header``: required sellerId, version (const "2.0"), feedId."""

    seller_id: str
    version: Literal["2.0"]
    feed_id: str


class ReportIssue(msgspec.Struct, kw_only=True, rename="camel"):
    """R issue: required severity (ERROR/WARNING/INFO), message (minLength 1); messageId >= 1,
    sku and code minLength 1 when present."""

    severity: Literal["ERROR", "WARNING", "INFO"]
    message: NonEmpty
    message_id: Annotated[int, msgspec.Meta(ge=1)] | None = None
    sku: NonEmpty | None = None
    code: NonEmpty | None = None


class ReportSummary(msgspec.Struct, kw_only=True, rename="camel"):
    """R ``summary``: required errors, warnings, messagesProcessed, messagesAccepted,
    messagesInvalid, each an integer >= 0."""

    errors: Whole
    warnings: Whole
    messages_processed: Whole
    messages_accepted: Whole
    messages_invalid: Whole


class ProcessingReport(msgspec.Struct, kw_only=True):
    """R: required header, issues, summary."""

    header: ReportHeader
    issues: list[ReportIssue]
    summary: ReportSummary


# --- O: ORDER_CHANGE ---------------------------------------------------------------------------


class OrderItem(msgspec.Struct, kw_only=True, rename="pascal"):
    """O ``OrderItems[]``: required OrderItemId, SellerSKU, SupplySourceId (string or null),
    Quantity; OrderItemStatus Unshipped/Shipped."""

    order_item_id: str
    seller_sku: str = msgspec.field(name="SellerSKU")
    supply_source_id: str | None
    quantity: int
    order_item_status: Literal["Unshipped", "Shipped"] | None = None
    quantity_shipped: int | None = None
    is_buyer_requested_cancel: bool | None = None


class Summary(msgspec.Struct, kw_only=True, rename="pascal"):
    """O ``Summary``: required MarketplaceId, OrderStatus (enum), PurchaseDate and
    DestinationPostalCode (string or null), FulfillmentType (AFN/MFN), OrderType (enum),
    OrderItems."""

    marketplace_id: str
    order_status: Literal[
        "Pending",
        "Unshipped",
        "PartiallyShipped",
        "Shipped",
        "Canceled",
        "Unfulfillable",
        "InvoiceUnconfirmed",
        "PendingAvailability",
    ]
    purchase_date: str | None
    destination_postal_code: str | None
    fulfillment_type: Literal["AFN", "MFN"]
    order_type: Literal[
        "StandardOrder", "LongLeadTimeOrder", "Preorder", "BackOrder", "SourcingOnDemandOrder"
    ]
    order_items: list[OrderItem]
    number_of_items_shipped: int | None = None
    number_of_items_unshipped: int | None = None


class OrderChangeTrigger(msgspec.Struct, kw_only=True, rename="pascal"):
    """O: required TimeOfOrderChange (string or null), ChangeReason."""

    time_of_order_change: str | None
    change_reason: str


class OrderChangeNotification(msgspec.Struct, kw_only=True, rename="pascal"):
    """O: required NotificationLevel (OrderItemLevel/OrderLevel), SellerId, AmazonOrderId,
    OrderChangeType (enum), OrderChangeTrigger, Summary."""

    notification_level: Literal["OrderItemLevel", "OrderLevel"]
    seller_id: str
    amazon_order_id: str
    order_change_type: Literal["BuyerRequestedChange", "DeliveryTipChange", "OrderStatusChange"]
    order_change_trigger: OrderChangeTrigger
    summary: Summary


class OrderChangePayload(msgspec.Struct, kw_only=True, rename="pascal"):
    """O ``Payload``: required OrderChangeNotification."""

    order_change_notification: OrderChangeNotification


class NotificationMetadata(msgspec.Struct, kw_only=True, rename="pascal"):
    """O: required ApplicationId, SubscriptionId, PublishTime, NotificationId."""

    application_id: str
    subscription_id: str
    publish_time: str
    notification_id: str


class OrderChange(msgspec.Struct, kw_only=True, rename="pascal"):
    """O: required NotificationVersion, NotificationType, PayloadVersion, EventTime, Payload,
    NotificationMetadata."""

    notification_version: str
    notification_type: str
    payload_version: str
    event_time: str
    payload: OrderChangePayload
    notification_metadata: NotificationMetadata
