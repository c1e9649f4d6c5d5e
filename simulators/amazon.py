"""A simulated Amazon Selling Partner API: LWA, Listings Items, JSON_LISTINGS_FEED, ORDER_CHANGE.

Served under the channel's url path (``{url}`` below), as the adapter calls it:

- ``POST {url}/auth/o2/token``: Login with Amazon's refresh-token grant (point the adapter's
  ``options.token_url`` here). Checks the refresh token (``token_env``) and the client id and
  secret (``options.client_id_env`` / ``options.client_secret_env``); answers LWA's error shapes
  (400 ``invalid_grant``, 401 ``invalid_client``). Tokens live ``token_lifetime_s`` (3600 by
  default) on the simulator's clock; ``revoke()`` kills one.
- Every SP-API route wants ``x-amz-access-token``: missing -> 403, revoked or unknown -> 401,
  expired -> 403, all with ``{"errors": [{"code": "Unauthorized", ...}]}``. Each operation has its
  usage plan as a token bucket (the models' defaults, ``set_limit()`` to change); an empty bucket
  answers 429 ``QuotaExceeded``. ``x-amzn-RateLimit-Limit`` is on every SP-API answer.
- ``PATCH``/``GET {url}/listings/2021-08-01/items/{sellerId}/{sku}``: patchListingsItem validates
  the ``ListingsItemPatchRequest`` (400 ``InvalidInput`` for a bad op, a nested or
  non-attribute path, a missing body part) and applies it to the listing's
  ``fulfillment_availability`` as Amazon does (``amazon_listings.py``: ``merge`` keeps the
  seller's other fields, ``replace`` loses them); ``quantities`` is the quantity of the
  configured channel code. Only SKUs the seller listed (``list_skus``, ``set_quantity``,
  ``set_fulfillment``; not in ``unlisted`` nor under ``options.unlisted_prefix``) have a
  listing: a patch of any other SKU answers ``INVALID`` with an ERROR issue (the model's
  ``ListingsItemSubmissionResponse``; the model declares no 404 for patchListingsItem), a feed
  message about it an ERROR issue with its ``messageId`` in the processing report, and
  getListingsItem 404 ``NOT_FOUND``.
- The feeds flow: createFeedDocument hands out a presigned-style upload URL on the simulator
  (``{url}/feeds-documents/{id}?X-Amz-Signature=...``), createFeed queues the JSON_LISTINGS_FEED,
  JSON_LISTINGS_FEED's own limit (five per five minutes, ``feed_submissions``) answers 429 too;
  getFeed moves it IN_QUEUE -> IN_PROGRESS -> DONE over ``feed_delay_s`` (processed when polled:
  no background task), writes a processing report (gzip, like Amazon's) and getFeedDocument
  points at it.
- ``order_notification()``: an ORDER_CHANGE notification (OrderLevel, MFN) signed with
  ``X-Invsync-Signature`` under ``secret_env``, as the SQS relay in front of invsync would POST it.
"""

from __future__ import annotations

import gzip
import hmac
import random
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..core.config import Channel, Faults
from .amazon_listings import ATTRIBUTE, SELECTOR, Entry, apply_patch, invalid_issue
from .amazon_requests import (
    JSON_LISTINGS_FEED_PLAN,
    USAGE_PLANS,
    FeedMessage,
    Patch,
    decode_document_spec,
    decode_feed,
    decode_feed_spec,
    decode_patch,
)
from .core import (
    SimChannel,
    SimOrder,
    json_response,
    option_text,
    optional_secret,
    required_secret,
)
from .limits import TokenBucket
from .signing import INVSYNC_SIGNATURE, hmac_hex

__all__ = ["AmazonSellingPartner", "create"]

_Body = TypeVar("_Body")

_LISTINGS = "/listings/2021-08-01/items"
_FEEDS = "/feeds/2021-06-30"
_DENIED = "Access to requested resource is denied."
_INVALID_INPUT = "Request has missing or invalid parameters and cannot be parsed."
_INCLUDED_DATA = frozenset(
    {
        "summaries",
        "attributes",
        "issues",
        "offers",
        "fulfillmentAvailability",
        "procurement",
        "relationships",
        "productTypes",
    }
)
#: SimOrder status -> ORDER_CHANGE OrderStatus (refunds do not change an Amazon order's status).
_ORDER_STATUS = {"created": "Unshipped", "cancelled": "Canceled", "fulfilled": "Shipped"}
_POSTAL = {"CA": "94105", "NY": "10001", "WA": "98101", "TX": "73301"}


@dataclass
class _Document:
    content_type: str
    signature: str
    content: bytes | None = None
    compressed: bool = False


@dataclass
class _Feed:
    feed_id: str
    feed_type: str
    marketplace_ids: list[str]
    document_id: str
    created_at: float  # simulator clock
    created_wall: float
    status: str = "IN_QUEUE"
    result_document_id: str | None = None
    ended_wall: float | None = None


@dataclass
class _Listing:
    created_wall: float
    updated_wall: float
    issues: list[dict[str, Any]] = field(default_factory=list)
    #: ``fulfillment_availability`` entries; the configured channel's quantity is ``quantities``
    fulfillment: list[Entry] = field(default_factory=list)


def create(channel: Channel, faults: Faults, rng: random.Random) -> AmazonSellingPartner:
    """The simulator of an ``amazon`` channel, with the adapter's credentials (same env names)."""
    client_id = required_secret(channel, "options.client_id_env")
    client_secret = required_secret(channel, "options.client_secret_env")
    return AmazonSellingPartner(
        channel,
        refresh_token=required_secret(channel, "token_env"),
        client_id=client_id,
        client_secret=client_secret,
        relay_secret=optional_secret(channel, "secret_env"),
        faults=faults,
        rng=rng,
    )


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _errors(status: int, code: str, message: str, details: str = "",
            headers: dict[str, str] | None = None) -> Response:
    return json_response(
        {"errors": [{"code": code, "message": message, "details": details}]}, status, headers
    )


class AmazonSellingPartner(SimChannel):
    """One seller account on one marketplace of the Selling Partner API."""

    kind = "amazon"

    def __init__(
        self,
        channel: Channel,
        *,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        relay_secret: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(channel, **kwargs)
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.relay_secret = relay_secret
        self.seller_id = option_text(channel, "seller_id")
        self.marketplace_id = option_text(channel, "marketplace_id")
        self.channel_code = option_text(channel, "fulfillment_channel_code", "DEFAULT")
        prefix = channel.options.get("unlisted_prefix")
        self.unlisted_prefix = prefix if isinstance(prefix, str) and prefix else None
        #: SKUs refused even when listed (a test knob): patches are INVALID, reads are 404.
        self.unlisted: set[str] = set()
        self.token_lifetime_s = 3600.0
        self.feed_delay_s = 0.2
        self.compress_reports = True
        #: access token -> expiry on the simulator clock
        self.tokens: dict[str, float] = {}
        self.revoked: set[str] = set()
        self.token_grants = 0
        self.listings: dict[str, _Listing] = {}
        self.documents: dict[str, _Document] = {}
        self.feeds: dict[str, _Feed] = {}
        #: (operation, raw request body) of the latest bodies received, for schema checks
        self.received: deque[tuple[str, bytes]] = deque(maxlen=1000)
        self.limits: dict[str, TokenBucket] = {
            op: TokenBucket(rate, burst, clock=self._now)
            for op, (rate, burst) in USAGE_PLANS.items()
        }
        rate, burst = JSON_LISTINGS_FEED_PLAN
        #: JSON_LISTINGS_FEED submissions, on top of createFeed's own plan
        self.feed_submissions = TokenBucket(rate, burst, clock=self._now)
        self._feed_ids = iter(range(50_001, 10**9))

    def _now(self) -> float:
        return self.clock()

    # -- knobs for tests and operators --------------------------------------------------------

    def set_limit(self, operation: str, rate: float, burst: int) -> None:
        """Replace an operation's usage plan (a full bucket of ``burst``)."""
        self.limits[operation] = TokenBucket(rate, burst, clock=self._now)

    def revoke(self, token: str | None = None) -> None:
        """Revoke one access token, or every one handed out so far."""
        self.revoked.update([token] if token else list(self.tokens))

    def is_listed(self, sku: str) -> bool:
        """Whether the seller listed ``sku`` here (and it is not ``unlisted`` nor under the
        prefix)."""
        if not super().is_listed(sku) or sku in self.unlisted:
            return False
        return not (self.unlisted_prefix and sku.startswith(self.unlisted_prefix))

    def set_quantity(self, sku: str, quantity: int) -> None:
        """A manual edit in Seller Central: the SKU is listed from then on (the entry's other
        fields stay)."""
        super().set_quantity(sku, quantity)
        self._listing(sku)

    def set_fulfillment(self, sku: str, **fields: Any) -> None:
        """The seller edits the listing's entry of the configured channel code in Seller Central
        (``lead_time_to_ship_max_days=12``, ``restock_date=...``, ``quantity=...``); fields not
        named stay. Lists the SKU; ValueError when Amazon would refuse the values."""
        self.list_skus([sku])
        given = [{SELECTOR: self.channel_code, **fields}]
        entries = apply_patch(self._entries(sku), "merge", given, self.marketplace_id)
        if isinstance(entries, str):
            raise ValueError(entries)
        self._store(sku, entries)

    def fulfillment(self, sku: str) -> list[Entry]:
        """The listing's ``fulfillment_availability`` as getListingsItem shows it."""
        return self._entries(sku)

    def _listing(self, sku: str) -> _Listing:
        now = self.wall()
        return self.listings.setdefault(sku, _Listing(created_wall=now, updated_wall=now))

    def _entries(self, sku: str) -> list[Entry]:
        """The stored entries, with the configured channel's entry carrying ``quantities``
        (orders and manual edits change that number only)."""
        listing = self.listings.get(sku)
        out: list[Entry] = []
        mine = False
        for stored in listing.fulfillment if listing else []:
            entry = dict(stored)
            if entry[SELECTOR] == self.channel_code:
                mine = True
                entry.pop("quantity", None)
                if sku in self.quantities:
                    entry["quantity"] = self.quantities[sku]
            out.append(entry)
        if not mine and sku in self.quantities:
            out.append({SELECTOR: self.channel_code, "marketplace_id": self.marketplace_id,
                        "quantity": self.quantities[sku]})
        return out

    def _store(self, sku: str, entries: list[Entry]) -> None:
        self._listing(sku).fulfillment = entries
        mine = next((e for e in entries if e[SELECTOR] == self.channel_code), None)
        if mine is not None and "quantity" in mine:
            self.quantities[sku] = mine["quantity"]
        else:
            self.quantities.pop(sku, None)

    # -- SimChannel ----------------------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        """LWA, Listings Items, Feeds, and the presigned document URLs."""
        item = _LISTINGS + "/{seller_id}/{sku:path}"
        return [
            self.route("/auth/o2/token", self._token, methods=["POST"], operation="lwaToken"),
            self.route(item, self._patch, methods=["PATCH"], operation="patchListingsItem"),
            self.route(item, self._get_item, methods=["GET"], operation="getListingsItem"),
            self.route(_FEEDS + "/documents", self._create_document, methods=["POST"],
                       operation="createFeedDocument"),
            self.route(_FEEDS + "/documents/{document_id}", self._get_document, methods=["GET"],
                       operation="getFeedDocument"),
            self.route(_FEEDS + "/feeds", self._create_feed, methods=["POST"],
                       operation="createFeed"),
            self.route(_FEEDS + "/feeds/{feed_id}", self._get_feed, methods=["GET"],
                       operation="getFeed"),
            self.route("/feeds-documents/{document_id}", self._upload, methods=["PUT"],
                       operation="uploadFeedDocument"),
            self.route("/feeds-documents/{document_id}", self._download, methods=["GET"],
                       operation="downloadFeedDocument"),
        ]

    def throttle_response(self) -> Response:
        """SP-API's 429 (no Retry-After; the rate-limit header is not sent with 429s)."""
        return _errors(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")

    def error_response(self, status: int) -> Response:
        """SP-API's answer to an internal failure."""
        if status == 503:
            return _errors(503, "ServiceUnavailable", "Service temporarily unavailable.")
        return _errors(status, "InternalFailure", "We encountered an internal error. "
                       "Please try again.")

    def order_notification(self, order: SimOrder) -> tuple[dict[str, str], bytes] | None:
        """The ORDER_CHANGE notification of ``order``, relayed with ``X-Invsync-Signature``;
        None without a relay secret or for a refund (Amazon sends no ORDER_CHANGE for it)."""
        status = _ORDER_STATUS.get(order.status)
        if self.relay_secret is None or status is None:
            return None
        now = self.wall()
        shipped = order.status == "fulfilled"
        items = [
            {
                "OrderItemId": f"{order.order_id}-{n}",
                "SellerSKU": line.sku,
                "SupplySourceId": None,
                "OrderItemStatus": "Shipped" if shipped else "Unshipped",
                "Quantity": line.qty,
                "QuantityShipped": line.qty if shipped else 0,
                "IsBuyerRequestedCancel": False,
            }
            for n, line in enumerate(order.lines, start=1)
        ]
        units = sum(line.qty for line in order.lines)
        key = f"{self.id}/{order.order_id}/{status}"
        notification_id = str(uuid.uuid5(uuid.NAMESPACE_URL, key))
        document = {
            "NotificationVersion": "1.0",
            "NotificationType": "ORDER_CHANGE",
            "PayloadVersion": "1.0",
            "EventTime": _iso(now),
            "Payload": {
                "OrderChangeNotification": {
                    "NotificationLevel": "OrderLevel",
                    "SellerId": self.seller_id,
                    "AmazonOrderId": order.order_id,
                    "OrderChangeType": "OrderStatusChange",
                    "OrderChangeTrigger": {
                        "TimeOfOrderChange": _iso(now),
                        "ChangeReason": "Order status changed",
                    },
                    "Summary": {
                        "MarketplaceId": self.marketplace_id,
                        "OrderStatus": status,
                        "PurchaseDate": _iso((order.created_ms or now * 1000) / 1000),
                        "DestinationPostalCode": _POSTAL.get(order.region),
                        "FulfillmentType": "MFN",
                        "OrderType": "StandardOrder",
                        "NumberOfItemsShipped": units if shipped else 0,
                        "NumberOfItemsUnshipped": 0 if shipped else units,
                        "OrderItems": items,
                    },
                }
            },
            "NotificationMetadata": {
                "ApplicationId": "amzn1.sellerapps.app.invsync-simulator",
                "SubscriptionId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.id}/ORDER_CHANGE")),
                "PublishTime": _iso(now),
                "NotificationId": notification_id,
            },
        }
        body = msgspec.json.encode(document)
        signature = hmac_hex(self.relay_secret, body)
        return {"Content-Type": "application/json", INVSYNC_SIGNATURE: signature}, body

    # -- Login with Amazon ---------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        raw = (await request.body()).decode("utf-8", "replace")
        form = {k: v[-1] for k, v in parse_qs(raw).items()}
        if form.get("grant_type") != "refresh_token":
            return json_response({"error": "unsupported_grant_type",
                                  "error_description": "The authorization grant type is not "
                                  "supported by the authorization server"}, 400)
        if not (
            hmac.compare_digest(form.get("client_id", ""), self.client_id)
            and hmac.compare_digest(form.get("client_secret", ""), self.client_secret)
        ):
            return json_response({"error": "invalid_client",
                                  "error_description": "Client authentication failed"}, 401)
        if not hmac.compare_digest(form.get("refresh_token", ""), self.refresh_token):
            return json_response({"error": "invalid_grant", "error_description": "The request "
                                  "has an invalid grant parameter : refresh_token"}, 400)
        token = "Atza|" + secrets.token_urlsafe(24)
        self.tokens[token] = self.clock() + self.token_lifetime_s
        self.token_grants += 1
        return json_response({
            "access_token": token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": int(self.token_lifetime_s) if self.token_lifetime_s >= 1 else 1,
        })

    # -- the gateway in front of every SP-API operation ----------------------------------------

    def _gate(self, request: Request, operation: str) -> Response | None:
        """Auth, then the usage plan: an error answer, or None to go on."""
        token = request.headers.get("x-amz-access-token")
        if not token:
            return _errors(403, "Unauthorized", _DENIED, "The access token is missing.")
        expires = self.tokens.get(token)
        if expires is None or token in self.revoked:
            return _errors(401, "Unauthorized", _DENIED,
                           "The access token you provided is revoked, malformed or invalid.")
        if self.clock() >= expires:
            return _errors(403, "Unauthorized", _DENIED,
                           "The access token you provided has expired.")
        bucket = self.limits[operation]
        if not bucket.take():
            return _errors(429, "QuotaExceeded", "You exceeded your quota for the requested "
                           "resource.", headers=self._rate_headers(operation))
        return None

    def _rate_headers(self, operation: str) -> dict[str, str]:
        return {
            "x-amzn-RateLimit-Limit": str(float(self.limits[operation].rate)),
            "x-amzn-RequestId": str(uuid.uuid4()),
        }

    def _ok(self, operation: str, body: Any, status: int = 200) -> Response:
        return json_response(body, status, self._rate_headers(operation))

    def _invalid(self, operation: str, details: str) -> Response:
        return _errors(400, "InvalidInput", _INVALID_INPUT, details, self._rate_headers(operation))

    def _check_item_request(self, request: Request, operation: str) -> Response | None:
        if request.path_params["seller_id"] != self.seller_id:
            return _errors(403, "Unauthorized", _DENIED,
                           "The selling partner did not authorize this application.")
        marketplaces = request.query_params.get("marketplaceIds", "")
        if not marketplaces:
            return self._invalid(operation, "Missing required parameter: marketplaceIds")
        if marketplaces.split(",") != [self.marketplace_id]:
            return self._invalid(operation, f"Invalid marketplaceIds: {marketplaces}")
        return None

    async def _accept(
        self,
        request: Request,
        op: str,
        decode: Callable[[bytes], _Body],
        *,
        item: bool = False,
    ) -> _Body | Response:
        """Gate (auth, rate, and for item routes the path checks), record and decode a request
        body; the error answer instead when any of it refuses."""
        refused = self._gate(request, op)
        if refused is None and item:
            refused = self._check_item_request(request, op)
        if refused is not None:
            return refused
        raw = await request.body()
        self.received.append((op, raw))
        try:
            return decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._invalid(op, str(exc))

    # -- Listings Items ------------------------------------------------------------------------

    async def _patch(self, request: Request) -> Response:
        op = "patchListingsItem"
        body = await self._accept(request, op, decode_patch, item=True)
        if isinstance(body, Response):
            return body
        sku = request.path_params["sku"]
        bad_path = self._bad_paths(body.patches)
        if bad_path:
            return self._invalid(op, bad_path)
        issues = self._apply(sku, body.patches)
        return self._ok(op, {
            "sku": sku,
            "status": "INVALID" if issues else "ACCEPTED",
            "submissionId": uuid.uuid4().hex,
            "issues": issues,
        })

    @staticmethod
    def _bad_paths(patches: Sequence[Patch]) -> str | None:
        """Why a patch cannot be parsed: only top-level attributes can be patched."""
        for n, patch in enumerate(patches):
            parts = patch.path.split("/")
            if len(parts) != 3 or parts[0] != "" or parts[1] != "attributes" or not parts[2]:
                return (f"patches[{n}].path {patch.path!r}: only top-level attributes "
                        "(/attributes/<name>) can be patched")
            if patch.op != "delete" and patch.value is None:
                return f"patches[{n}].value is required for {patch.op!r}"
        return None

    def _apply(self, sku: str, patches: Sequence[Patch]) -> list[dict[str, Any]]:
        """Apply validated patches to ``sku``; the submission's ERROR issues ([] = accepted).
        A SKU the seller never listed is refused as a listing Amazon would have to create
        from a quantity alone: its product facts are missing."""
        if not self.is_listed(sku):
            return [{
                "code": "90220",
                "message": "'condition_type' is required but not supplied.",
                "severity": "ERROR",
                "attributeNames": ["condition_type"],
                "categories": ["MISSING_ATTRIBUTE"],
            }]
        entries = self._entries(sku)
        for patch in patches:
            if patch.path != ATTRIBUTE:
                continue  # other attributes are accepted and not modelled
            result = apply_patch(entries, patch.op, patch.value, self.marketplace_id)
            if isinstance(result, str):
                return [invalid_issue(result)]
            entries = result
        self._listing(sku).updated_wall = self.wall()
        self._store(sku, entries)
        return []

    async def _get_item(self, request: Request) -> Response:
        op = "getListingsItem"
        refused = self._gate(request, op) or self._check_item_request(request, op)
        if refused is not None:
            return refused
        included = request.query_params.get("includedData", "summaries").split(",")
        unknown = [x for x in included if x not in _INCLUDED_DATA]
        if unknown:
            return self._invalid(op, f"Invalid includedData: {','.join(unknown)}")
        sku = request.path_params["sku"]
        if not self.is_listed(sku):
            return _errors(404, "NOT_FOUND", f"SKU '{sku}' not found in marketplace "
                           f"{self.marketplace_id}", headers=self._rate_headers(op))
        listing = self._listing(sku)
        entries = self._entries(sku)
        item: dict[str, Any] = {"sku": sku}
        if "summaries" in included:
            item["summaries"] = [{
                "marketplaceId": self.marketplace_id,
                "productType": "PRODUCT",
                "status": ["BUYABLE", "DISCOVERABLE"] if self.quantities.get(sku) else
                ["DISCOVERABLE"],
                "createdDate": _iso(listing.created_wall),
                "lastUpdatedDate": _iso(listing.updated_wall),
            }]
        if "attributes" in included:
            item["attributes"] = {"fulfillment_availability": entries} if entries else {}
        if "fulfillmentAvailability" in included:
            item["fulfillmentAvailability"] = [
                {"fulfillmentChannelCode": e[SELECTOR]}
                | ({"quantity": e["quantity"]} if "quantity" in e else {})
                for e in entries
            ]
        if "issues" in included:
            item["issues"] = listing.issues
        return self._ok(op, item)

    # -- Feeds ---------------------------------------------------------------------------------

    async def _create_document(self, request: Request) -> Response:
        op = "createFeedDocument"
        spec = await self._accept(request, op, decode_document_spec)
        if isinstance(spec, Response):
            return spec
        document_id = str(uuid.uuid4())
        self.documents[document_id] = _Document(spec.content_type, secrets.token_hex(16))
        return self._ok(op, {"feedDocumentId": document_id, "url": self._document_url(document_id)},
                        201)

    def _document_url(self, document_id: str) -> str:
        base = (self.channel.url or "").rstrip("/")
        signature = self.documents[document_id].signature
        return (f"{base}/feeds-documents/{document_id}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                f"&X-Amz-Expires=300&X-Amz-Signature={signature}")

    def _presigned(self, request: Request) -> _Document | Response:
        """The document a presigned URL names, or S3's 403 for a wrong signature."""
        document = self.documents.get(request.path_params["document_id"])
        given = request.query_params.get("X-Amz-Signature", "")
        if document is None or not hmac.compare_digest(given, document.signature):
            return Response(
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch"
                b"</Code><Message>The request signature we calculated does not match the "
                b"signature you provided.</Message></Error>",
                status_code=403,
                media_type="application/xml",
            )
        return document

    async def _upload(self, request: Request) -> Response:
        document = self._presigned(request)
        if isinstance(document, Response):
            return document
        if request.headers.get("content-type") != document.content_type:
            return Response(b"<Error><Code>SignatureDoesNotMatch</Code><Message>Content-Type "
                            b"differs from the one the URL was signed for</Message></Error>",
                            status_code=403, media_type="application/xml")
        document.content = await request.body()
        self.received.append(("uploadFeedDocument", document.content))
        return Response(b"", status_code=200)

    async def _download(self, request: Request) -> Response:
        document = self._presigned(request)
        if isinstance(document, Response):
            return document
        if document.content is None:
            return Response(b"<Error><Code>NoSuchKey</Code></Error>", status_code=404,
                            media_type="application/xml")
        return Response(document.content, media_type="application/octet-stream")

    async def _create_feed(self, request: Request) -> Response:
        op = "createFeed"
        feed_spec = await self._accept(request, op, decode_feed_spec)
        if isinstance(feed_spec, Response):
            return feed_spec
        spec = feed_spec
        if spec.input_feed_document_id not in self.documents:
            return self._invalid(op, f"Unknown inputFeedDocumentId {spec.input_feed_document_id}")
        if spec.feed_type != "JSON_LISTINGS_FEED":
            return self._invalid(op, f"This simulator processes JSON_LISTINGS_FEED, not "
                                 f"{spec.feed_type}")
        if self.marketplace_id not in spec.marketplace_ids:
            return self._invalid(op, f"Invalid marketplaceIds: {','.join(spec.marketplace_ids)}")
        if not self.feed_submissions.take():  # JSON_LISTINGS_FEED's own five per five minutes
            return _errors(429, "QuotaExceeded", "You exceeded your quota for the requested "
                           "resource.", headers=self._rate_headers(op))
        feed_id = str(next(self._feed_ids))
        self.feeds[feed_id] = _Feed(
            feed_id=feed_id,
            feed_type=spec.feed_type,
            marketplace_ids=spec.marketplace_ids,
            document_id=spec.input_feed_document_id,
            created_at=self.clock(),
            created_wall=self.wall(),
        )
        return self._ok(op, {"feedId": feed_id}, 202)

    async def _get_feed(self, request: Request) -> Response:
        op = "getFeed"
        refused = self._gate(request, op)
        if refused is not None:
            return refused
        feed = self.feeds.get(request.path_params["feed_id"])
        if feed is None:
            return _errors(404, "NotFound", "The requested feed was not found.",
                           headers=self._rate_headers(op))
        self._advance(feed)
        answer: dict[str, Any] = {
            "feedId": feed.feed_id,
            "feedType": feed.feed_type,
            "marketplaceIds": feed.marketplace_ids,
            "createdTime": _iso(feed.created_wall),
            "processingStatus": feed.status,
        }
        if feed.status != "IN_QUEUE":
            answer["processingStartTime"] = _iso(feed.created_wall)
        if feed.ended_wall is not None:
            answer["processingEndTime"] = _iso(feed.ended_wall)
        if feed.result_document_id is not None:
            answer["resultFeedDocumentId"] = feed.result_document_id
        return self._ok(op, answer)

    async def _get_document(self, request: Request) -> Response:
        op = "getFeedDocument"
        refused = self._gate(request, op)
        if refused is not None:
            return refused
        document_id = request.path_params["document_id"]
        document = self.documents.get(document_id)
        if document is None:
            return _errors(404, "NotFound", "The requested feed document was not found.",
                           headers=self._rate_headers(op))
        answer = {"feedDocumentId": document_id, "url": self._document_url(document_id)}
        if document.compressed:
            answer["compressionAlgorithm"] = "GZIP"
        return self._ok(op, answer)

    def _advance(self, feed: _Feed) -> None:
        """Move a feed along with the time since createFeed; process it when its time is up."""
        if feed.status in ("DONE", "FATAL", "CANCELLED"):
            return
        elapsed = self.clock() - feed.created_at
        if elapsed < self.feed_delay_s / 2:
            feed.status = "IN_QUEUE"
        elif elapsed < self.feed_delay_s:
            feed.status = "IN_PROGRESS"
        else:
            self._process(feed)

    def _process(self, feed: _Feed) -> None:
        content = self.documents[feed.document_id].content
        issues: list[dict[str, Any]] = []
        processed = accepted = 0
        fatal = False
        try:
            if content is None:
                raise ValueError("The feed document was never uploaded.")
            document = decode_feed(content)
            if document.header.seller_id != self.seller_id:
                raise ValueError(f"sellerId {document.header.seller_id} does not match the "
                                 "selling partner of this feed.")
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            fatal = True
            issues.append({"code": "4000000", "severity": "ERROR",
                           "message": f"The feed could not be processed: {exc}"})
        else:
            for message in document.messages:
                processed += 1
                found = self._apply_message(message)
                for issue in found:
                    issues.append({"messageId": message.message_id, "sku": message.sku,
                                   "code": issue["code"], "severity": issue["severity"],
                                   "message": issue["message"]})
                if not found:
                    accepted += 1
        errors = sum(1 for i in issues if i["severity"] == "ERROR")
        report = {
            "header": {"sellerId": self.seller_id, "version": "2.0", "feedId": feed.feed_id},
            "issues": issues,
            "summary": {
                "errors": errors,
                "warnings": len(issues) - errors,
                "messagesProcessed": processed,
                "messagesAccepted": accepted,
                "messagesInvalid": processed - accepted,
            },
        }
        raw = msgspec.json.encode(report)
        result_id = str(uuid.uuid4())
        self.documents[result_id] = _Document(
            content_type="application/json",
            signature=secrets.token_hex(16),
            content=gzip.compress(raw) if self.compress_reports else raw,
            compressed=self.compress_reports,
        )
        feed.status = "FATAL" if fatal else "DONE"
        feed.result_document_id = result_id
        feed.ended_wall = self.wall()

    def _apply_message(self, message: FeedMessage) -> list[dict[str, Any]]:
        if message.operation_type != "PATCH":
            return [{"code": "4000004", "severity": "ERROR",
                     "message": f"operationType {message.operation_type} is not simulated."}]
        if not message.product_type or not message.patches:
            return [{"code": "4000001", "severity": "ERROR",
                     "message": "PATCH messages require productType and patches."}]
        bad = self._bad_paths(message.patches)
        if bad:
            return [{"code": "4000001", "severity": "ERROR", "message": bad}]
        return self._apply(message.sku, message.patches)
