"""Amazon Selling Partner API: MFN quantity by SKU, read-back, and ORDER_CHANGE notifications.

What it speaks, and where each piece is defined (repository ``amzn/selling-partner-api-models``,
read through the search tool; the vendored copies and their commits are listed in
``tests/adapters/schemas/amazon/SOURCES.md``):

- Login with Amazon, refresh-token grant: ``POST https://api.amazon.com/auth/o2/token`` form
  ``grant_type=refresh_token&refresh_token=&client_id=&client_secret=``, answering
  ``{"access_token", "refresh_token", "token_type": "bearer", "expires_in": 3600}``; every call
  carries the access token in ``x-amz-access-token`` (no AWS SigV4 since 2023).
  https://developer-docs.amazon.com/sp-api/docs/connecting-to-the-selling-partner-api
- Listings Items API 2021-08-01 (``models/listings-items-api-model/listingsItems_2021-08-01.json``):
  ``patchListingsItem`` ``PATCH /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=`` with a
  ``ListingsItemPatchRequest`` ``{"productType", "patches": [{"op": "replace", "path":
  "/attributes/fulfillment_availability", "value": [{"fulfillment_channel_code", "quantity"}]}]}``,
  answering ``ListingsItemSubmissionResponse`` ``{"sku", "status": ACCEPTED|INVALID|VALID,
  "submissionId", "issues": [{"code", "message", "severity": ERROR|WARNING|INFO}]}`` (usage plan
  5 rps, burst 5); ``getListingsItem`` ``GET`` the same path with ``includedData=
  fulfillmentAvailability`` answering ``Item`` ``{"sku", "fulfillmentAvailability":
  [{"fulfillmentChannelCode", "quantity"}]}`` or 404 (5 rps, burst 10). SKUs are percent-encoded
  in the path (https://developer-docs.amazon.com/sp-api/docs/url-encoding).
- JSON_LISTINGS_FEED (``schemas/feeds/listings-feed-schema-v2.json``): ``{"header": {"sellerId",
  "version": "2.0"}, "messages": [{"messageId", "sku", "operationType": "PATCH", "productType",
  "patches"}]}``, at most 10 000 messages; its processing report
  (``schemas/feeds/listings-feed-processing-report-schema-v2.json``) ``{"header", "issues":
  [{"messageId", "sku", "code", "severity", "message"}], "summary"}``.
- Feeds API 2021-06-30 (``models/feeds-api-model/feeds_2021-06-30.json``): ``createFeedDocument``
  ``POST /feeds/2021-06-30/documents`` ``{"contentType"}`` -> 201 ``{"feedDocumentId", "url"}``
  (0.0083 rps, burst 15), ``PUT`` the document to that presigned ``url`` with the same
  Content-Type, ``createFeed`` ``POST /feeds/2021-06-30/feeds`` ``{"feedType", "marketplaceIds",
  "inputFeedDocumentId"}`` -> 202 ``{"feedId"}`` (0.0083 rps, burst 15), ``getFeed`` ``GET
  /feeds/2021-06-30/feeds/{feedId}`` -> ``{"processingStatus": IN_QUEUE|IN_PROGRESS|DONE|FATAL|
  CANCELLED, "resultFeedDocumentId"}`` (2 rps, burst 15), ``getFeedDocument`` ``GET
  /feeds/2021-06-30/documents/{id}`` -> ``{"url", "compressionAlgorithm": "GZIP"?}`` (0.0222 rps,
  burst 10). https://developer-docs.amazon.com/sp-api/docs/feeds-api-v2021-06-30-use-case-guide
- Errors ``{"errors": [{"code", "message", "details"}]}`` (``ErrorList``); 429 when a usage plan is
  exhausted. ``x-amzn-RateLimit-Limit`` carries the rate applied (requests per second; the Feeds
  model notes it is no longer sent with 429s), so a wait is derived from it, else from the
  documented rate of the operation.
  https://developer-docs.amazon.com/sp-api/docs/usage-plans-and-rate-limits-in-the-sp-api
- ``ORDER_CHANGE`` notifications (``schemas/notifications/OrderChangeNotification.json``), delivered
  by Amazon to SQS or EventBridge; a relay POSTs the notification (or the EventBridge event whose
  ``detail`` is the notification) signed with ``X-Invsync-Signature`` (hex HMAC-SHA256 of the raw
  body under ``secret_env``), SQS having no signature of its own.
  https://developer-docs.amazon.com/sp-api/docs/tutorial-subscribe-to-order-change-notification

Batches of up to ``options.feed_threshold`` SKUs go one ``patchListingsItem`` each; larger
batches go as one JSON_LISTINGS_FEED, polled every ``options.feed_poll_s`` until processed or
``options.feed_timeout_s`` ran out (then every SKU is retryable: quantities are absolute, so the
feed is simply sent again). There is no ``cancel_order``: seller-fulfilled cancellations go through
order-acknowledgement feeds, not a JSON API of the Listings or Orders models.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import math
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import ClassVar, Literal, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
import structlog

from ..core.config import Channel
from ..core.events import holdable_sku
from .base import (
    AdapterContext,
    BadWebhook,
    BaseAdapter,
    ChannelError,
    Outcome,
    Permanent,
    PushResult,
    Retryable,
    Throttled,
    Unauthorized,
    Update,
)
from .http import (
    HttpReply,
    base_url,
    check,
    header,
    option_int,
    option_number,
    option_str,
    send,
    timeout_for,
    waiting_out_throttles,
)
from .registry import require_secret, secret_option
from .signing import SIGNATURE_HEADER, verify
from .tokens import TokenSource, form_grant, with_token

__all__ = [
    "DEFAULT_TOKEN_URL",
    "FEED_CONTENT_TYPE",
    "FEED_MAX_MESSAGES",
    "MARKETPLACE_COUNTRIES",
    "USAGE_PLANS",
    "AmazonAdapter",
    "create",
]

log = structlog.get_logger("invsync.adapters.amazon")

_T = TypeVar("_T")

DEFAULT_TOKEN_URL = "https://api.amazon.com/auth/o2/token"
LISTINGS_PATH = "/listings/2021-08-01/items"
FEEDS_PATH = "/feeds/2021-06-30"
FEED_TYPE = "JSON_LISTINGS_FEED"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
#: ``messages.maxItems`` of listings-feed-schema-v2.
FEED_MAX_MESSAGES = 10_000
FULFILLMENT_AVAILABILITY = "/attributes/fulfillment_availability"
USER_AGENT = "invsync/1.0 (Language=Python)"

#: operationId -> (requests per second, burst): the default usage plans in the API models.
USAGE_PLANS: dict[str, tuple[float, int]] = {
    "patchListingsItem": (5.0, 5),
    "getListingsItem": (5.0, 10),
    "createFeedDocument": (0.0083, 15),
    "createFeed": (0.0083, 15),
    "getFeed": (2.0, 15),
    "getFeedDocument": (0.0222, 10),
}

#: Marketplace id -> ISO country of its buyers (https://developer-docs.amazon.com/sp-api/docs/
#: marketplace-ids); ORDER_CHANGE names the marketplace, not the ship-to country.
MARKETPLACE_COUNTRIES: dict[str, str] = {
    "ATVPDKIKX0DER": "US",
    "A2EUQ1WTGCTBG2": "CA",
    "A1AM78C64UM0Y8": "MX",
    "A2Q3Y263D00KWC": "BR",
    "A1F83G8C2ARO7P": "GB",
    "A1PA6795UKMFR9": "DE",
    "A13V1IB3VIYZZH": "FR",
    "APJ6JRA9NG5V4": "IT",
    "A1RKKUPIHCS9HS": "ES",
    "A1805IZSGTT6HS": "NL",
    "AMEN7PMS3EDWL": "BE",
    "A2NODRKZP88ZB9": "SE",
    "A1C3SOZRARQ6R3": "PL",
    "A33AVAJ2PDY3EV": "TR",
    "A21TJRUUN4KGV": "IN",
    "A1VC38T7YXB528": "JP",
    "A39IBJ37TRP1C6": "AU",
    "A19VAU5U5O7RUS": "SG",
    "A2VIGQ35RCS4UG": "AE",
    "A17E79C6D8DWNP": "SA",
}

#: ORDER_CHANGE ``OrderStatus`` -> the generic event kind. Pending (payment not yet authorized)
#: already holds the units on Amazon, so it reserves like Unshipped; both give the same event id,
#: so the later one is a duplicate. PartiallyShipped is left alone: its cumulative
#: ``QuantityShipped`` cannot be told apart from a repeat, and the reservation simply stays until
#: Shipped. InvoiceUnconfirmed means shipped. Unfulfillable (multi-channel orders) never ships.
_STATUS_KINDS: dict[str, Literal["created", "cancelled", "fulfilled"]] = {
    "Pending": "created",
    "PendingAvailability": "created",
    "Unshipped": "created",
    "Shipped": "fulfilled",
    "InvoiceUnconfirmed": "fulfilled",
    "Canceled": "cancelled",
    "Unfulfillable": "cancelled",
}
_FINAL_FEED = frozenset({"DONE", "FATAL", "CANCELLED"})

# --- wire types: Listings Items ---------------------------------------------------------------


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


# --- wire types: JSON_LISTINGS_FEED and the Feeds API -----------------------------------------


class FeedHeader(msgspec.Struct, kw_only=True, rename="camel"):
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
    content_type: str


class CreateFeedDocumentResponse(msgspec.Struct, kw_only=True, rename="camel"):
    feed_document_id: str
    url: str


class CreateFeedSpecification(msgspec.Struct, kw_only=True, rename="camel"):
    feed_type: str
    marketplace_ids: list[str]
    input_feed_document_id: str


class CreateFeedResponse(msgspec.Struct, kw_only=True, rename="camel"):
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


# --- wire types: ORDER_CHANGE -----------------------------------------------------------------


class OrderItem(msgspec.Struct, kw_only=True, rename="pascal"):
    order_item_id: str
    seller_sku: str = msgspec.field(name="SellerSKU")
    quantity: int
    quantity_shipped: int | None = None


class OrderSummary(msgspec.Struct, kw_only=True, rename="pascal"):
    marketplace_id: str
    order_status: str
    fulfillment_type: str
    order_items: list[OrderItem]
    destination_postal_code: str | None = None


class OrderChange(msgspec.Struct, kw_only=True, rename="pascal"):
    notification_level: str
    seller_id: str
    amazon_order_id: str
    order_change_type: str
    summary: OrderSummary


class OrderChangePayload(msgspec.Struct, kw_only=True, rename="pascal"):
    order_change_notification: OrderChange


class NotificationMetadata(msgspec.Struct, kw_only=True, rename="pascal"):
    notification_id: str


class Notification(msgspec.Struct, kw_only=True, rename="pascal"):
    """An SP-API notification; ``payload`` is read only for ``ORDER_CHANGE``."""

    notification_type: str
    payload: msgspec.Raw
    notification_metadata: NotificationMetadata | None = None


class _Envelope(msgspec.Struct, kw_only=True):
    """What a relay may POST: the notification itself, or an EventBridge event around it."""

    detail: msgspec.Raw = msgspec.Raw(b"")


_encode = msgspec.json.Encoder().encode
_decode_submission = msgspec.json.Decoder(ListingsItemSubmissionResponse).decode
_decode_item = msgspec.json.Decoder(Item).decode
_decode_document = msgspec.json.Decoder(CreateFeedDocumentResponse).decode
_decode_created_feed = msgspec.json.Decoder(CreateFeedResponse).decode
_decode_feed = msgspec.json.Decoder(Feed).decode
_decode_feed_document = msgspec.json.Decoder(FeedDocument).decode
_decode_report = msgspec.json.Decoder(ProcessingReport).decode
_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_notification = msgspec.json.Decoder(Notification).decode
_decode_order_change = msgspec.json.Decoder(OrderChangePayload).decode


# --- configuration --------------------------------------------------------------------------


def create(channel: Channel, ctx: AdapterContext) -> AmazonAdapter:
    """The adapter for an ``amazon`` channel: the LWA refresh token from ``token_env``, the app's
    client id and secret from ``options.client_id_env`` / ``options.client_secret_env``;
    ``secret_env`` (optional) verifies relayed notifications."""
    refresh_token = require_secret(channel, "token_env")
    client_id = secret_option(channel, "client_id_env")
    client_secret = secret_option(channel, "client_secret_env")
    assert client_id is not None and client_secret is not None  # required=True
    relay_secret = require_secret(channel, "secret_env") if channel.secret_env else None
    return AmazonAdapter(
        channel,
        ctx.session,
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
        relay_secret=relay_secret,
        monotonic=ctx.monotonic,
        wall=ctx.wall,
    )




def rate_limit_wait(reply: HttpReply, operation: str) -> float:
    """Seconds until the usage plan of ``operation`` grants one more request: one period of the
    rate in ``x-amzn-RateLimit-Limit``, else of the documented default rate."""
    raw = reply.header("x-amzn-RateLimit-Limit")
    try:
        rate = float(raw) if raw is not None else 0.0
    except ValueError:
        rate = 0.0
    if not (math.isfinite(rate) and rate > 0):
        rate = USAGE_PLANS.get(operation, (1.0, 1))[0]
    return 1.0 / rate


def _issue_text(issues: Sequence[Issue | ReportIssue]) -> str:
    return "; ".join(f"{i.code}: {i.message}" if i.code else i.message for i in issues)


# --- the adapter ----------------------------------------------------------------------------


class AmazonAdapter(BaseAdapter):
    """Sets MFN quantities on Amazon (one PATCH per SKU, or a JSON_LISTINGS_FEED for large
    batches), reads them back and translates relayed ORDER_CHANGE notifications.

    The HTTP session belongs to the caller; ``monotonic`` drives token expiry and the feed
    deadline, ``sleep`` paces feed polls and short throttle waits.
    """

    max_batch: ClassVar[int | None] = FEED_MAX_MESSAGES

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        *,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        relay_secret: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not (refresh_token and client_id and client_secret):
            raise ValueError(
                f"channel '{channel.id}': amazon needs a refresh token, client id and secret"
            )
        self.channel = channel
        self._session = session
        self._url = base_url(channel)
        self._timeout = timeout_for(channel)
        self._seller = option_str(channel, "seller_id")
        self._marketplace = option_str(channel, "marketplace_id")
        self._product_type = option_str(channel, "product_type", "PRODUCT")
        self._channel_code = option_str(channel, "fulfillment_channel_code", "DEFAULT")
        self._feed_threshold = option_int(channel, "feed_threshold", 20)
        self._feed_poll_s = option_number(channel, "feed_poll_s", 15.0, above=True)
        self._feed_timeout_s = option_number(channel, "feed_timeout_s", 300.0, above=True)
        # Throttled single PATCHes wait this long in all (a patch slot frees every 0.2 s) before
        # the rest of the batch is handed back as throttled.
        self._throttle_wait_s = option_number(channel, "throttle_wait_s", 1.0)
        self._relay_secret = relay_secret
        self._monotonic = monotonic
        self._wall = wall
        self._sleep = sleep
        grant = form_grant(
            session,
            option_str(channel, "token_url", DEFAULT_TOKEN_URL),
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": client_id,
                "client_secret": client_secret,
            },
            timeout=self._timeout,
        )
        self.tokens = TokenSource(grant, clock=monotonic)

    # -- calls ---------------------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        passthrough: frozenset[int] = frozenset(),
    ) -> HttpReply:
        """One SP-API call with the access token (refreshed once after a 401/403); the reply when
        2xx or in ``passthrough``, else the error its status means."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/json"

        async def attempt(token: str) -> HttpReply:
            reply = await send(
                self._session,
                method,
                self._url + path,
                timeout=self._timeout,
                headers={**headers, "x-amz-access-token": token},
                body=body,
                params=params,
            )
            if reply.status in passthrough:
                return reply
            try:
                return check(reply, now=self._wall())
            except Throttled as exc:
                if exc.retry_after is not None:
                    raise
                raise Throttled(exc.message, retry_after=rate_limit_wait(reply, operation)) from exc

        return await with_token(self.tokens, attempt)

    def _item_path(self, sku: str) -> str:
        return f"{LISTINGS_PATH}/{quote(self._seller, safe='')}/{quote(sku, safe='')}"

    def _patches(self, available: int) -> list[PatchOperation]:
        value = FulfillmentAvailabilityValue(
            fulfillment_channel_code=self._channel_code, quantity=max(0, available)
        )
        return [PatchOperation(op="replace", path=FULFILLMENT_AVAILABILITY, value=[value])]

    # -- push ----------------------------------------------------------------------------------

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Set each SKU's quantity: per-SKU results, or Throttled/Retryable/Permanent when the
        very first call fails (nothing was applied)."""
        if not updates:
            return []
        if len(updates) > self._feed_threshold:
            return await self._push_feed(updates)
        return await self._push_each(updates)

    async def _push_each(self, updates: Sequence[Update]) -> list[PushResult]:
        results: list[PushResult] = []
        waited = 0.0
        i = 0
        while i < len(updates):
            update = updates[i]
            try:
                results.append(await self._patch(update))
            except Throttled as exc:
                wait = exc.retry_after
                if wait is not None and 0 < wait and waited + wait <= self._throttle_wait_s:
                    waited += wait
                    await self._sleep(wait)
                    continue  # the same SKU again once a slot is free
                if not results:
                    raise
                results.extend(_rest(updates[i:], "throttled", exc))
                break
            except (Retryable, Unauthorized) as exc:
                if not results:
                    raise
                # Refused credentials mid-batch are an outage, not a verdict on these SKUs.
                results.extend(_rest(updates[i:], "retryable", exc))
                break
            except Permanent as exc:  # a 4xx about this SKU's request alone
                results.append(
                    PushResult(sku=update.sku, outcome="permanent", error=exc.message)
                )
            i += 1
        return results

    async def _patch(self, update: Update) -> PushResult:
        body = _encode(
            ListingsItemPatchRequest(
                product_type=self._product_type, patches=self._patches(update.available)
            )
        )
        reply = await self._call(
            "patchListingsItem",
            "PATCH",
            self._item_path(update.sku),
            params={"marketplaceIds": self._marketplace},
            body=body,
        )
        try:
            answer = _decode_submission(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Retryable(f"patchListingsItem answered no submission: {exc}") from exc
        errors = [i for i in answer.issues if i.severity == "ERROR"]
        if answer.status == "ACCEPTED" and not errors:
            return PushResult(sku=update.sku, outcome="ok")
        text = _issue_text(errors) or f"submission {answer.status}"
        return PushResult(sku=update.sku, outcome="permanent", error=text)

    async def _push_feed(self, updates: Sequence[Update]) -> list[PushResult]:
        feed = ListingsFeed(
            header=FeedHeader(seller_id=self._seller),
            messages=[
                FeedMessage(
                    message_id=n,
                    sku=u.sku,
                    operation_type="PATCH",
                    product_type=self._product_type,
                    patches=self._patches(u.available),
                )
                for n, u in enumerate(updates, start=1)
            ],
        )
        # Until createFeed answers nothing can be applied: failures are the whole call's.
        spec = CreateFeedDocumentSpecification(content_type=FEED_CONTENT_TYPE)
        reply = await self._call(
            "createFeedDocument", "POST", f"{FEEDS_PATH}/documents", body=_encode(spec)
        )
        document = _decode_or_retry(_decode_document, reply, "createFeedDocument")
        await self._upload(document.url, _encode(feed))
        create_spec = CreateFeedSpecification(
            feed_type=FEED_TYPE,
            marketplace_ids=[self._marketplace],
            input_feed_document_id=document.feed_document_id,
        )
        reply = await self._call(
            "createFeed", "POST", f"{FEEDS_PATH}/feeds", body=_encode(create_spec)
        )
        feed_id = _decode_or_retry(_decode_created_feed, reply, "createFeed").feed_id
        # From here the feed may be applied whatever we hear: no failure is permanent.
        try:
            return await self._feed_results(feed_id, updates)
        except ChannelError as exc:
            error = f"feed {feed_id}: {exc.message}"
            return [
                PushResult(sku=u.sku, outcome="retryable", retry_after=exc.retry_after, error=error)
                for u in updates
            ]

    async def _upload(self, url: str, body: bytes) -> None:
        """PUT the feed document to its presigned URL (no access token: the URL is the grant)."""
        reply = await send(
            self._session,
            "PUT",
            url,
            timeout=self._timeout,
            headers={"Content-Type": FEED_CONTENT_TYPE},
            body=body,
        )
        try:
            check(reply, now=self._wall())
        except Permanent as exc:  # an expired presigned URL: a new document fixes it
            raise Retryable(f"feed document upload refused: {exc.message}") from exc

    async def _feed_results(self, feed_id: str, updates: Sequence[Update]) -> list[PushResult]:
        deadline = self._monotonic() + self._feed_timeout_s
        while True:
            wait = self._feed_poll_s
            try:
                reply = await self._call("getFeed", "GET", f"{FEEDS_PATH}/feeds/{feed_id}")
                feed = _decode_or_retry(_decode_feed, reply, "getFeed")
                if feed.processing_status in _FINAL_FEED:
                    break
            except Throttled as exc:
                wait = max(wait, exc.retry_after or 0.0)
            except Retryable:
                pass  # a lost poll: the feed goes on regardless
            if self._monotonic() + wait > deadline:
                raise Retryable(f"not processed within {self._feed_timeout_s:g} s")
            await self._sleep(wait)
        if feed.processing_status == "CANCELLED":
            raise Retryable("cancelled before processing")
        if feed.result_feed_document_id is None:
            raise Retryable(f"{feed.processing_status} without a processing report")
        report = await self._report(feed.result_feed_document_id)
        return _feed_outcomes(updates, report, fatal=feed.processing_status == "FATAL")

    async def _report(self, document_id: str) -> ProcessingReport:
        reply = await self._call("getFeedDocument", "GET", f"{FEEDS_PATH}/documents/{document_id}")
        document = _decode_or_retry(_decode_feed_document, reply, "getFeedDocument")
        raw = check(
            await send(self._session, "GET", document.url, timeout=self._timeout),
            now=self._wall(),
        ).body
        if document.compression_algorithm == "GZIP":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as exc:
                raise Retryable(f"processing report is not valid gzip: {exc}") from exc
        try:
            return _decode_report(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Retryable(f"unreadable processing report: {exc}") from exc

    # -- read-back -----------------------------------------------------------------------------

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """SKU -> the quantity its listing offers on the configured fulfillment channel; SKUs
        without a listing (404) or without such a quantity are left out."""
        out: dict[str, int] = {}
        params = {"marketplaceIds": self._marketplace, "includedData": "fulfillmentAvailability"}
        for sku in skus:
            # Paced to getListingsItem's rate (5/s): 429s are waited out, not a failed check.
            reply = await waiting_out_throttles(
                functools.partial(
                    self._call,
                    "getListingsItem",
                    "GET",
                    self._item_path(sku),
                    params=params,
                    passthrough=frozenset({404}),
                )
            )
            if reply.status == 404:
                continue
            item = _decode_or_retry(_decode_item, reply, "getListingsItem")
            for entry in item.fulfillment_availability:
                if entry.fulfillment_channel_code != self._channel_code:
                    continue
                if entry.quantity is not None:
                    out[sku] = entry.quantity
                break
        return out

    # -- notifications -------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[dict[str, object]]:
        """Verify the relay's ``X-Invsync-Signature`` and translate an ORDER_CHANGE notification
        of a seller-fulfilled order into the spec's order events (other notification types and
        Amazon-fulfilled orders give none)."""
        if self._relay_secret is None:
            raise BadWebhook(
                f"channel '{self.channel.id}' has no secret_env to verify relayed notifications",
                unauthorized=True,
            )
        signature = header(headers, SIGNATURE_HEADER)
        if signature is None:
            raise BadWebhook(f"missing {SIGNATURE_HEADER} header", unauthorized=True)
        if not verify(self._relay_secret, body, signature):
            raise BadWebhook(f"{SIGNATURE_HEADER} does not match the body", unauthorized=True)
        try:
            envelope = _decode_envelope(body)
            raw = bytes(envelope.detail) if len(envelope.detail) else body
            notification = _decode_notification(raw)
            if notification.notification_type != "ORDER_CHANGE":
                return []
            change = _decode_order_change(bytes(notification.payload)).order_change_notification
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadWebhook(f"not an SP-API notification: {exc}") from None
        return self._order_events(change)

    def _order_events(self, change: OrderChange) -> list[dict[str, object]]:
        summary = change.summary
        if summary.fulfillment_type != "MFN":
            return []  # Amazon ships these from its own stock: nothing of ours moves
        kind = _STATUS_KINDS.get(summary.order_status)
        if kind is None:
            return []
        item_level = change.notification_level == "OrderItemLevel"
        lines = [
            {"sku": item.seller_sku, "qty": item.quantity}
            for item in summary.order_items
            if item.quantity > 0 and holdable_sku(item.seller_sku)
        ]
        for item in summary.order_items:
            if not holdable_sku(item.seller_sku):
                log.warning("order_line_sku_not_holdable", sku=item.seller_sku[:200])
        event_id = f"{self.channel.id}-{change.amazon_order_id}-{kind}"
        if item_level:  # one item per notification: each is its own event
            event_id += "-" + "-".join(i.order_item_id for i in summary.order_items)
        event: dict[str, object] = {
            "id": event_id,
            "type": f"order.{kind}",
            "channel": self.channel.id,
            "order_id": change.amazon_order_id,
        }
        if kind == "created":
            if not lines:
                raise BadWebhook(f"order {change.amazon_order_id} has no items to reserve")
            event["lines"] = lines
            ship_to: dict[str, str] = {}
            country = MARKETPLACE_COUNTRIES.get(summary.marketplace_id)
            if country:
                ship_to["country"] = country
            if summary.destination_postal_code:
                ship_to["postal_code"] = summary.destination_postal_code
            if ship_to:
                event["ship_to"] = ship_to
        elif item_level and lines:
            event["lines"] = lines
        return [event]


def _rest(updates: Sequence[Update], outcome: Outcome, exc: ChannelError) -> list[PushResult]:
    return [
        PushResult(sku=u.sku, outcome=outcome, retry_after=exc.retry_after, error=exc.message)
        for u in updates
    ]


def _decode_or_retry(decode: Callable[[bytes], _T], reply: HttpReply, operation: str) -> _T:
    try:
        return decode(reply.body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Retryable(f"{operation} answered an unreadable body: {exc}") from exc


def _feed_outcomes(
    updates: Sequence[Update], report: ProcessingReport, *, fatal: bool
) -> list[PushResult]:
    """Per-SKU results from the processing report: messages with ERROR issues are refused for
    good, feed-level ERRORs refuse every message, a FATAL feed leaves the rest unknown."""
    by_message: dict[int, list[ReportIssue]] = {}
    feed_level: list[ReportIssue] = []
    for issue in report.issues:
        if issue.severity != "ERROR":
            continue
        if issue.message_id is None:
            feed_level.append(issue)
        else:
            by_message.setdefault(issue.message_id, []).append(issue)
    out: list[PushResult] = []
    for n, update in enumerate(updates, start=1):
        errors = by_message.get(n) or feed_level
        if errors:
            out.append(PushResult(sku=update.sku, outcome="permanent", error=_issue_text(errors)))
        elif fatal:
            out.append(
                PushResult(sku=update.sku, outcome="retryable", error="feed aborted (FATAL)")
            )
        else:
            out.append(PushResult(sku=update.sku, outcome="ok"))
    return out
