"""The SP-API's wire formats as msgspec Structs: Listings Items, JSON_LISTINGS_FEED and its
processing report, the Feeds API, and ORDER_CHANGE notifications.

Each type names its definition in ``amzn/selling-partner-api-models`` (read at commit
34dc93fe45f37c9a0b2e56823c808f68b4f81754, August 2026): ``models/listings-items-api-model/
listingsItems_2021-08-01.json``, ``models/feeds-api-model/feeds_2021-06-30.json``,
``schemas/feeds/listings-feed-schema-v2.json`` (``messages.maxItems`` 25 000 since commit
c146214, 2026-01-22, as announced in the changelog "Feed size and rate limit changes for the
JSON_LISTINGS_FEED", 2025-05-06, https://developer-docs.amazon.com/sp-api/changelog/
update-feed-size-and-rate-limit-changes-for-the-json_listings_feed),
``schemas/feeds/listings-feed-processing-report-schema-v2.json`` and
``schemas/notifications/OrderChangeNotification.json``.

The quantity goes as a JSON Patch ``merge`` on ``/attributes/fulfillment_availability``: a
``replace`` replaces the whole attribute entry, so it would clear what the seller set beside the
quantity (``lead_time_to_ship_max_days``, ``restock_date``...). "Partially update a listing"
(https://developer-docs.amazon.com/sp-api/docs/partially-update-a-listing: patches add, replace
or delete entire attributes); ``merge`` since 2025-06-16 (changelog "Listings Items v2021-08-01
API and JSON_LISTING_FEED now include a JSON patch merge operation", tutorial "Merge a listing",
https://developer-docs.amazon.com/sp-api/docs/merge-a-listing: fields left out of a merge keep
their values; the selector ``fulfillment_channel_code`` must be given).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from urllib.parse import quote

import msgspec

__all__ = [
    "FEEDS_PATH",
    "FEED_CONTENT_TYPE",
    "FEED_MAX_MESSAGES",
    "FEED_TYPE",
    "FULFILLMENT_AVAILABILITY",
    "LISTINGS_PATH",
    "encode",
    "issue_text",
    "item_path",
]

LISTINGS_PATH = "/listings/2021-08-01/items"
FEEDS_PATH = "/feeds/2021-06-30"
FEED_TYPE = "JSON_LISTINGS_FEED"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
#: ``messages.maxItems`` of listings-feed-schema-v2 (25 000 since 2026-01-22; 10 000 before).
FEED_MAX_MESSAGES = 25_000
FULFILLMENT_AVAILABILITY = "/attributes/fulfillment_availability"

# --- Listings Items ---------------------------------------------------------------------------


class FulfillmentAvailabilityValue(msgspec.Struct, kw_only=True):
    """One entry of the ``fulfillment_availability`` attribute (product type schema names)."""

    fulfillment_channel_code: str
    quantity: int


class PatchOperation(msgspec.Struct, kw_only=True):
    """``PatchOperation``: a JSON Patch on one top-level attribute."""

    op: Literal["add", "replace", "merge", "delete"]
    path: str
    value: list[FulfillmentAvailabilityValue]


class ListingsItemPatchRequest(msgspec.Struct, kw_only=True, rename="camel"):
    """``ListingsItemPatchRequest``: the ``patchListingsItem`` body."""

    product_type: str
    patches: list[PatchOperation]


class Issue(msgspec.Struct, kw_only=True, rename="camel"):
    """``Issue`` of a submission (and of the feed processing report)."""

    message: str = ""
    severity: str = "ERROR"
    code: str | None = None
    attribute_names: list[str] | None = None


class ListingsItemSubmissionResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """``ListingsItemSubmissionResponse``."""

    sku: str
    status: str
    submission_id: str = ""
    issues: list[Issue] = []


class FulfillmentAvailability(msgspec.Struct, kw_only=True, rename="camel"):
    """``FulfillmentAvailability`` of an ``Item`` (quantity absent for Amazon-fulfilled offers)."""

    fulfillment_channel_code: str
    quantity: int | None = None


class Item(msgspec.Struct, kw_only=True, rename="camel"):
    """``Item`` as ``getListingsItem`` answers it with ``includedData=fulfillmentAvailability``."""

    sku: str
    fulfillment_availability: list[FulfillmentAvailability] = []


# --- JSON_LISTINGS_FEED and the Feeds API -----------------------------------------------------


class FeedHeader(msgspec.Struct, kw_only=True, rename="camel"):
    """The feed's ``header``: whose listings it patches."""

    seller_id: str
    version: str = "2.0"


class FeedMessage(msgspec.Struct, kw_only=True, rename="camel"):
    """One message of the feed: a PATCH of one SKU."""

    message_id: int
    sku: str
    operation_type: Literal["PATCH"]
    product_type: str
    patches: list[PatchOperation]


class ListingsFeed(msgspec.Struct, kw_only=True):
    """A JSON_LISTINGS_FEED document (listings-feed-schema-v2)."""

    header: FeedHeader
    messages: list[FeedMessage]


class CreateFeedDocumentSpecification(msgspec.Struct, kw_only=True, rename="camel"):
    """``createFeedDocument`` body."""

    content_type: str


class CreateFeedDocumentResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """``createFeedDocument`` answer: the document id and its presigned upload URL."""

    feed_document_id: str
    url: str


class CreateFeedSpecification(msgspec.Struct, kw_only=True, rename="camel"):
    """``createFeed`` body."""

    feed_type: str
    marketplace_ids: list[str]
    input_feed_document_id: str


class CreateFeedResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """``createFeed`` answer."""

    feed_id: str


class Feed(msgspec.Struct, kw_only=True, rename="camel"):
    """``Feed`` as ``getFeed`` answers it."""

    feed_id: str
    processing_status: str
    result_feed_document_id: str | None = None


class FeedDocument(msgspec.Struct, kw_only=True, rename="camel"):
    """``FeedDocument``: where to download a document and whether it is compressed."""

    feed_document_id: str
    url: str
    compression_algorithm: str | None = None


class ReportIssue(msgspec.Struct, kw_only=True, rename="camel"):
    """An issue of the processing report; no ``messageId`` for feed-level issues."""

    severity: str
    message: str
    message_id: int | None = None
    sku: str | None = None
    code: str | None = None


class ProcessingReport(msgspec.Struct, kw_only=True):
    """The JSON listings feed processing report (only what outcomes need)."""

    issues: list[ReportIssue] = []


# --- ORDER_CHANGE -----------------------------------------------------------------------------


class OrderItem(msgspec.Struct, kw_only=True, rename="pascal"):
    """``OrderItems[]`` of an ORDER_CHANGE summary."""

    order_item_id: str
    seller_sku: str = msgspec.field(name="SellerSKU")
    quantity: int
    quantity_shipped: int | None = None


class OrderSummary(msgspec.Struct, kw_only=True, rename="pascal"):
    """``Summary`` of an ORDER_CHANGE notification."""

    marketplace_id: str
    order_status: str
    fulfillment_type: str
    order_items: list[OrderItem]
    destination_postal_code: str | None = None


class OrderChange(msgspec.Struct, kw_only=True, rename="pascal"):
    """``OrderChangeNotification``."""

    notification_level: str
    seller_id: str
    amazon_order_id: str
    order_change_type: str
    summary: OrderSummary


class OrderChangePayload(msgspec.Struct, kw_only=True, rename="pascal"):
    """``Payload`` of an ORDER_CHANGE notification."""

    order_change_notification: OrderChange


class NotificationMetadata(msgspec.Struct, kw_only=True, rename="pascal"):
    """``NotificationMetadata`` of any SP-API notification."""

    notification_id: str


class Notification(msgspec.Struct, kw_only=True, rename="pascal"):
    """An SP-API notification; ``payload`` is read only for ``ORDER_CHANGE``."""

    notification_type: str
    payload: msgspec.Raw
    notification_metadata: NotificationMetadata | None = None


class Envelope(msgspec.Struct, kw_only=True):
    """What a relay may POST: the notification itself, or an EventBridge event around it."""

    detail: msgspec.Raw = msgspec.Raw(b"")


encode = msgspec.json.Encoder().encode
decode_submission = msgspec.json.Decoder(ListingsItemSubmissionResponse).decode
decode_item = msgspec.json.Decoder(Item).decode
decode_document = msgspec.json.Decoder(CreateFeedDocumentResponse).decode
decode_created_feed = msgspec.json.Decoder(CreateFeedResponse).decode
decode_feed = msgspec.json.Decoder(Feed).decode
decode_feed_document = msgspec.json.Decoder(FeedDocument).decode
decode_report = msgspec.json.Decoder(ProcessingReport).decode
decode_envelope = msgspec.json.Decoder(Envelope).decode
decode_notification = msgspec.json.Decoder(Notification).decode
decode_order_change = msgspec.json.Decoder(OrderChangePayload).decode


def item_path(seller_id: str, sku: str) -> str:
    """The Listings Items path of one SKU, both ids percent-encoded (SP-API "URL encoding")."""
    return f"{LISTINGS_PATH}/{quote(seller_id, safe='')}/{quote(sku, safe='')}"


def patches(channel_code: str, available: int) -> list[PatchOperation]:
    """The JSON Patch merging ``available`` into the ``fulfillment_availability`` entry of
    ``channel_code`` (never below 0: ``quantity`` has ``minimum: 0``); the entry's other fields
    (handling time, restock date...) stay as the seller set them."""
    value = FulfillmentAvailabilityValue(
        fulfillment_channel_code=channel_code, quantity=max(0, available)
    )
    return [PatchOperation(op="merge", path=FULFILLMENT_AVAILABILITY, value=[value])]


def issue_text(issues: Sequence[Issue | ReportIssue]) -> str:
    """Issues as one error text, ``code: message; ...``."""
    return "; ".join(f"{i.code}: {i.message}" if i.code else i.message for i in issues)
