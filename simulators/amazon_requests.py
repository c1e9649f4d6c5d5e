"""What the simulated SP-API accepts: its usage plans, the feed's size limit and the request
bodies it decodes (leniently where Amazon is lenient), read from Amazon's own definitions.

Sources, in ``amzn/selling-partner-api-models`` (read at commit
34dc93fe45f37c9a0b2e56823c808f68b4f81754): ``models/listings-items-api-model/
listingsItems_2021-08-01.json`` (``ListingsItemPatchRequest``, ``PatchOperation``: op one of
add, replace, merge, delete; ``patches`` at least one), ``models/feeds-api-model/
feeds_2021-06-30.json`` (``CreateFeedDocumentSpecification``, ``CreateFeedSpecification``:
1..25 ``marketplaceIds``), ``schemas/feeds/listings-feed-schema-v2.json`` (header ``version``
"2.0", ``messageId`` 1..2147483647, ``operationType`` enum, ``messages`` 1..25 000). The
simulator keeps its own numbers: it never reads the adapter's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "FEED_MAX_MESSAGES",
    "JSON_LISTINGS_FEED_PLAN",
    "USAGE_PLANS",
    "DocumentSpec",
    "FeedMessage",
    "FeedSpec",
    "ListingsFeed",
    "Patch",
    "PatchRequest",
    "decode_document_spec",
    "decode_feed",
    "decode_feed_spec",
    "decode_patch",
]

#: ``messages.maxItems`` of listings-feed-schema-v2.json (amzn/selling-partner-api-models
#: ``schemas/feeds/``): 25,000 since commit c146214 (January 2026), 10,000 before.
FEED_MAX_MESSAGES = 25_000

#: operationId -> (requests per second, burst): the default usage plans the API models state in
#: each operation's description (amzn/selling-partner-api-models ``models/``
#: listingsItems_2021-08-01.json and feeds_2021-06-30.json, checked again at commit 34dc93f of
#: August 2026; the "Feeds API Rate Limits" page agrees). createFeedDocument has been 0.5/15
#: since February 2023 (0.0083 before). Where the "Listings Items API Rate Limits" page
#: differs (a getListingsItem burst of 5, not 10), the simulator follows the model.
USAGE_PLANS: dict[str, tuple[float, int]] = {
    "patchListingsItem": (5.0, 5),
    "getListingsItem": (5.0, 10),
    "createFeedDocument": (0.5, 15),
    "createFeed": (0.0083, 15),
    "getFeed": (2.0, 15),
    "getFeedDocument": (0.0222, 10),
}

#: JSON_LISTINGS_FEED's own limit on top of createFeed's plan: five feed submissions per five
#: minutes per region (changelog "Feed size and rate limit changes for the JSON_LISTINGS_FEED",
#: 2025-05-06, https://developer-docs.amazon.com/sp-api/changelog/update-feed-size-and-rate-
#: limit-changes-for-the-json_listings_feed; one per five minutes before). As (rate, burst).
JSON_LISTINGS_FEED_PLAN: tuple[float, int] = (5 / 300, 5)


class Patch(msgspec.Struct, kw_only=True):
    op: Literal["add", "replace", "merge", "delete"]
    path: str
    value: list[dict[str, Any]] | None = None


class PatchRequest(msgspec.Struct, kw_only=True, rename="camel"):
    product_type: Annotated[str, msgspec.Meta(min_length=1)]
    patches: Annotated[list[Patch], msgspec.Meta(min_length=1)]


class DocumentSpec(msgspec.Struct, kw_only=True, rename="camel"):
    content_type: str


class FeedSpec(msgspec.Struct, kw_only=True, rename="camel"):
    feed_type: str
    marketplace_ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=25)]
    input_feed_document_id: str
    feed_options: dict[str, str] | None = None


class FeedHeader(msgspec.Struct, kw_only=True, rename="camel"):
    seller_id: str
    version: Literal["2.0"]


class FeedMessage(msgspec.Struct, kw_only=True, rename="camel"):
    message_id: Annotated[int, msgspec.Meta(ge=1, le=2_147_483_647)]
    sku: Annotated[str, msgspec.Meta(min_length=1)]
    operation_type: Literal["UPDATE", "PARTIAL_UPDATE", "PATCH", "DELETE"]
    product_type: str | None = None
    patches: list[Patch] | None = None


class ListingsFeed(msgspec.Struct, kw_only=True):
    header: FeedHeader
    messages: Annotated[list[FeedMessage], msgspec.Meta(min_length=1, max_length=FEED_MAX_MESSAGES)]


decode_patch = msgspec.json.Decoder(PatchRequest).decode
decode_document_spec = msgspec.json.Decoder(DocumentSpec).decode
decode_feed_spec = msgspec.json.Decoder(FeedSpec).decode
decode_feed = msgspec.json.Decoder(ListingsFeed).decode
