"""A simulated Walmart Marketplace seller account: Token API, inventory, inventory feeds, orders.

It follows Walmart's documents (those ``docs/channels/walmart.md`` links to, and the shapes in
``tests/adapters/fixtures/walmart/``, each citing its source) and checks what the gateway
checks: ``WM_SVC.NAME`` and ``WM_QOS.CORRELATION_ID`` present (400 ``MISSING_REQUEST_HEADER``),
``Accept`` JSON (406), a live ``WM_SEC.ACCESS_TOKEN`` from its own Token API (401
``UNAUTHORIZED.GMP_GATEWAY_API``; tokens expire after ``token_lifetime_s``, 900 by default, and
``revoke_tokens()`` drops them), and the client credentials named by ``options.client_id_env`` /
``options.client_secret_env`` in the token call's Basic auth.

- The catalogue: Walmart takes inventory only for items set up on it, so a SKU the seller has
  not listed here (``SimChannel.list_skus``, the ``/_sim`` catalogue route, ``set_quantity``) is
  "not set up": 404 ``CONTENT_NOT_FOUND`` for a PUT or GET, ``DATA_ERROR`` in a feed. Pushing a
  quantity never lists a SKU; a listed SKU never given a quantity reads as 0.
- ``PUT /v3/inventory?sku=``: JSON ``{"sku", "quantity": {"unit": "EACH", "amount"}}`` with a
  whole ``amount`` >= 0 and the query's SKU, else 400.
- ``POST /v3/feeds?feedType=inventory``: the spec 1.4 feed in the multipart ``file`` part (or a
  JSON body), at most 5 MB (else 413, "Max file size limits" of the rate-limiting page) and
  50,000 items (else the feed is ERROR); answers ``{"feedId"}``. The feed is RECEIVED,
  processed ``feed_delay_s`` later (INPROGRESS before), then PROCESSED with a per-item
  ``ingestionStatus``: DATA_ERROR for an invalid item or a SKU not set up, whatever
  ``item_faults`` names for a SKU (SYSTEM_ERROR, ...), else SUCCESS; a file that is not a 1.4
  inventory feed makes the feed ERROR.
  ``GET /v3/feeds/{feedId}?includeDetails=true&offset=&limit=`` pages the items (limit <= 1000).
- ``GET /v3/orders/{purchaseOrderId}`` and ``POST .../cancel`` for the orders placed here
  (``SimOrder`` line i is ``lineNumber`` str(i + 1)); SELLER_CANCEL_OUT_OF_STOCK marks the SKU
  out of stock (quantity 0) as Walmart documents, other reasons put the units back.
- Rate limits per operation (``limits``, replaceable): token buckets refilling gradually, as
  Walmart describes its limits; a 429 carries ``Retry-After`` (unless ``send_retry_after`` is
  False) and ``X-Next-Replenishment-Time`` (epoch ms).
- ``order_notification``: ``PO_CREATED`` / ``PO_LINE_AUTOCANCELLED`` V1 payloads, signed with
  ``X-Invsync-Signature`` under ``secret_env`` as the relay in front of the daemon signs them
  (none without ``secret_env``; none for fulfilled/refunded orders, which Walmart does not notify).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import random
import uuid
from collections.abc import Sequence
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..core.config import Channel, Faults
from .core import SimChannel, SimOrder, json_response, optional_secret, required_secret
from .limits import TokenBucket
from .signing import INVSYNC_SIGNATURE, hmac_hex

__all__ = ["DEFAULT_LIMITS", "WalmartSim", "create"]

#: Operation -> (requests, per seconds), the marketplace's own figures where it publishes one.
#: Inventory feeds: 10 an hour (Seller Center's feed limits table, marketplacelearn.walmart.com
#: "Track item setup or maintenance activity"; developer.walmart.com/cl-marketplace/docs/
#: bulk-inventory-update). The single-item inventory PUT: the marketplace's rate-limiting page
#: calls it highly throttled and meant for exception scenarios, and publishes no figure in the
#: pages read; this simulator allows 100 a minute, a deliberately tight assumption (the old
#: 1500 a minute was the 1P suppliers' table, another API). Token, inventory GET, orders: no
#: marketplace figure read either; the suppliers' synchronous table's numbers stand in. Feed
#: status: none published, a generous 600 a minute.
DEFAULT_LIMITS: dict[str, tuple[int, float]] = {
    "token": (100, 3600.0),
    "inventory_put": (100, 60.0),
    "inventory_get": (2500, 60.0),
    "feed_submit": (10, 3600.0),
    "feed_status": (600, 60.0),
    "order_get": (60, 60.0),
    "order_cancel": (750, 60.0),
}
#: One inventory feed: 5 MB and 50,000 items at most (the same feed limits table).
FEED_MAX_BYTES = 5 * 1024 * 1024
FEED_MAX_ITEMS = 50_000
CANCEL_REASONS = frozenset(
    {
        "CUSTOMER_REQUESTED_SELLER_TO_CANCEL",
        "SELLER_CANCEL_PRICING_ERROR",
        "SELLER_CANCEL_OUT_OF_STOCK",
        "SELLER_CANCEL_FRAUD_STOP_SHIPMENT",
        "SELLER_CANCEL_ADDRESS_NOT_SERVICEABLE",
    }
)


class _Quantity(msgspec.Struct, kw_only=True):
    unit: str
    amount: int | float


class _Inventory(msgspec.Struct, kw_only=True):
    sku: str
    quantity: _Quantity


class _StatusQuantity(msgspec.Struct, kw_only=True, rename="camel"):
    unit_of_measurement: str
    amount: str


class _CancelStatus(msgspec.Struct, kw_only=True, rename="camel"):
    status: str
    cancellation_reason: str
    status_quantity: _StatusQuantity


class _CancelStatuses(msgspec.Struct, kw_only=True, rename="camel"):
    order_line_status: list[_CancelStatus]


class _CancelLine(msgspec.Struct, kw_only=True, rename="camel"):
    line_number: str
    order_line_statuses: _CancelStatuses


class _CancelLines(msgspec.Struct, kw_only=True, rename="camel"):
    order_line: list[_CancelLine]


class _Cancellation(msgspec.Struct, kw_only=True, rename="camel"):
    order_lines: _CancelLines


class _CancelRequest(msgspec.Struct, kw_only=True, rename="camel"):
    order_cancellation: _Cancellation


class _Item(msgspec.Struct, kw_only=True):
    """One ingested feed item, as the feed status reports it."""

    index: int
    sku: str | None
    status: str = "INPROGRESS"
    errors: list[dict[str, str]] = []


class _Feed(msgspec.Struct, kw_only=True):
    feed_id: str
    submitted_at: float
    submitted_ms: int
    status: str = "RECEIVED"
    items: list[_Item] = []
    #: what to apply when processed: (index, sku, amount) of the valid items
    pending: list[tuple[int, str, int]] = []
    errors: list[dict[str, str]] = []


class Seen(msgspec.Struct, kw_only=True):
    """One request as it reached the simulator (for tests: headers and body as sent)."""

    operation: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


_decode_inventory = msgspec.json.Decoder(_Inventory).decode
_decode_cancel = msgspec.json.Decoder(_CancelRequest).decode


def create(channel: Channel, faults: Faults, rng: random.Random) -> WalmartSim:
    """The simulated account of a ``walmart`` channel (credentials from the same env vars)."""
    client_id = required_secret(channel, "options.client_id_env")
    client_secret = required_secret(channel, "options.client_secret_env")
    relay = optional_secret(channel, "secret_env")
    return WalmartSim(channel, client_id, client_secret, relay, faults=faults, rng=rng)


def _error(
    status: int,
    code: str,
    description: str,
    *,
    field: str | None = None,
    category: str = "DATA",
    severity: str = "ERROR",
    headers: dict[str, str] | None = None,
) -> Response:
    """Walmart's error envelope (error-codes page, OpenAPI ``Error`` fields)."""
    entry: dict[str, Any] = {
        "code": code,
        "field": field,
        "description": description,
        "info": description,
        "severity": severity,
        "category": category,
        "causes": [],
        "errorIdentifiers": {},
    }
    return json_response({"errors": [entry]}, status, headers)


def _iso(epoch_s: float) -> str:
    when = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _multipart_file(content_type: str, body: bytes) -> bytes | None:
    """The ``file`` part of a multipart/form-data body (stdlib parser: no extra dependency)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


def _whole(value: object) -> int | None:
    """A JSON number that is a whole count >= 0, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return None
    return int(value) if value >= 0 else None


class WalmartSim(SimChannel):
    """The Walmart Marketplace seller API of one channel (routes relative to its ``url``)."""

    kind = "walmart"

    def __init__(
        self,
        channel: Channel,
        client_id: str,
        client_secret: str,
        relay_secret: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(channel, **kwargs)
        self.client_id = client_id
        self.client_secret = client_secret
        self.relay_secret = relay_secret
        self.token_lifetime_s = 900.0
        #: access token -> monotonic expiry
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        #: seconds from a feed's upload to its processing
        self.feed_delay_s = 0.2
        #: SKU -> ingestion status a feed reports for it (SYSTEM_ERROR, TIMEOUT_ERROR, ...)
        self.item_faults: dict[str, str] = {}
        self.feeds: dict[str, _Feed] = {}
        self.send_retry_after = True
        self.limits: dict[str, TokenBucket] = {
            op: TokenBucket(n / window, n, clock=self.clock)
            for op, (n, window) in DEFAULT_LIMITS.items()
        }
        #: (purchaseOrderId, lineNumber) -> units cancelled through the API, and the reason
        self.cancelled: dict[tuple[str, str], tuple[int, str]] = {}
        self.seen: list[Seen] = []

    # -- what the tests and the operator use ----------------------------------------------

    def revoke_tokens(self) -> None:
        """Every access token issued so far stops working (as a credential rotation would)."""
        self.tokens.clear()

    def requests(self, operation: str | None = None) -> list[Seen]:
        """The requests seen (of one operation)."""
        return [s for s in self.seen if operation is None or s.operation == operation]

    # -- SimChannel ----------------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        """Token, inventory, feeds and orders routes."""
        return [
            self.route("/v3/token", self._token, methods=["POST"], operation="token"),
            self.route("/v3/inventory", self._inventory_get, methods=["GET"],
                       operation="inventory_get"),
            self.route("/v3/inventory", self._inventory_put, methods=["PUT"],
                       operation="inventory_put"),
            self.route("/v3/feeds", self._feed_submit, methods=["POST"], operation="feed_submit"),
            self.route("/v3/feeds/{feed_id}", self._feed_status, methods=["GET"],
                       operation="feed_status"),
            self.route("/v3/orders/{po}", self._order_get, methods=["GET"],
                       operation="order_get"),
            self.route("/v3/orders/{po}/cancel", self._order_cancel, methods=["POST"],
                       operation="order_cancel"),
        ]

    def throttle_response(self) -> Response:
        """429 REQUEST_THRESHOLD_VIOLATED, one second to wait."""
        return self._throttled(1.0)

    def error_response(self, status: int) -> Response:
        """Walmart's envelope for its own failures (SYSTEM_ERROR, DOWNSTREAM_SYSTEM_TIME_OUT)."""
        code = "DOWNSTREAM_SYSTEM_TIME_OUT" if status == 504 else "SYSTEM_ERROR"
        return _error(status, code, "Internal error, please retry", category="SYSTEM")

    def order_notification(self, order: SimOrder) -> tuple[dict[str, str], bytes] | None:
        """PO_CREATED for a new order, PO_LINE_AUTOCANCELLED for a cancelled one, signed by the
        relay (``X-Invsync-Signature``); None without ``secret_env`` or for other statuses."""
        if self.relay_secret is None or order.status not in ("created", "cancelled"):
            return None
        created = order.status == "created"
        event_type = "PO_CREATED" if created else "PO_LINE_AUTOCANCELLED"
        at = order.created_ms / 1000 if order.created_ms else self.wall()
        lines = []
        for number, line in enumerate(order.lines, start=1):
            entry: dict[str, Any] = {
                "lineNumber": str(number),
                "sku": line.sku,
                "productName": f"Item {line.sku}",
                "quantity": {"unitOfMeasure": "EACH", "measurementValue": str(line.qty)},
                "status": "CREATED" if created else "CANCELLED",
                "statusDate": _iso(self.wall()),
                "shippingProgramType": "THREE_DAY",
                "shippingMethod": "Standard",
            }
            if not created:
                entry["cancellationReason"] = "Auto-cancelled due to expiry of ESD"
            lines.append(entry)
        body = msgspec.json.encode(
            {
                "source": {
                    "eventType": event_type,
                    "eventTime": _iso(self.wall()),
                    "eventId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.id}/{order.order_id}/"
                                                                  f"{event_type}")),
                },
                "payload": {
                    "partnerId": "10001234567",
                    "purchaseOrderId": order.order_id,
                    "customerOrderId": f"2{order.order_id.zfill(12)}",
                    "orderDate": _iso(at),
                    "estimatedDeliveryDate": _iso(at + 3 * 86400),
                    "estimatedShipDate": _iso(at + 86400),
                    "orderLines": lines,
                },
            }
        )
        headers = {"Content-Type": "application/json",
                   INVSYNC_SIGNATURE: hmac_hex(self.relay_secret, body)}
        return headers, body

    # -- the gateway: headers, token, rate limit --------------------------------------------

    def _throttled(self, wait_s: float) -> Response:
        headers = {"X-Next-Replenishment-Time": str(int((self.wall() + wait_s) * 1000))}
        if self.send_retry_after:
            headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
        return _error(429, "REQUEST_THRESHOLD_VIOLATED", "Too many requests",
                      category="REQUEST", headers=headers)

    async def _seen(self, request: Request, operation: str) -> bytes:
        body = await request.body()
        self.seen.append(
            Seen(
                operation=operation,
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )
        return body

    def _gate(self, request: Request, operation: str, *, token: bool = True) -> Response | None:
        """The gateway's checks, in its order: headers, accept type, token, rate limit."""
        self._settle_feeds()
        for name in ("WM_SVC.NAME", "WM_QOS.CORRELATION_ID"):
            if not request.headers.get(name, "").strip():
                return _error(400, "MISSING_REQUEST_HEADER", f"{name} header is required",
                              field=name)
        accept = request.headers.get("Accept", "")
        if "json" not in accept and "*/*" not in accept:
            return _error(406, "INVALID_ACCEPT_TYPE", "this simulator answers application/json",
                          category="APPLICATION")
        if token:
            given = request.headers.get("WM_SEC.ACCESS_TOKEN", "")
            expiry = self.tokens.get(given)
            if expiry is None or self.clock() >= expiry:
                return _error(401, "UNAUTHORIZED.GMP_GATEWAY_API", "Unauthorized",
                              field="UNAUTHORIZED")
        bucket = self.limits.get(operation)
        if bucket is not None and not bucket.take():
            self.calls[f"{operation}:throttled"] += 1
            return self._throttled(bucket.wait_s())
        return None

    async def _token(self, request: Request) -> Response:
        raw = await self._seen(request, "token")
        refused = self._gate(request, "token", token=False)
        if refused is not None:
            return refused
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            pair = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            pair = ""
        if scheme.lower() != "basic" or pair != f"{self.client_id}:{self.client_secret}":
            return _error(401, "UNAUTHORIZED.GMP_GATEWAY_API",
                          "Unauthorized token or incorrect authorization header",
                          field="UNAUTHORIZED")
        if "x-www-form-urlencoded" not in request.headers.get("Content-Type", ""):
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", "send the grant form-encoded")
        form = parse_qs(raw.decode("utf-8", "replace"))
        if form.get("grant_type") != ["client_credentials"]:
            return _error(400, "INVALID_REQUEST_PARAM", "grant_type must be client_credentials",
                          field="grant_type")
        token = f"wm-{uuid.uuid4().hex}"
        self.tokens[token] = self.clock() + self.token_lifetime_s
        self.tokens_issued += 1
        return json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime_s}
        )

    # -- inventory ---------------------------------------------------------------------------

    async def _inventory_get(self, request: Request) -> Response:
        await self._seen(request, "inventory_get")
        refused = self._gate(request, "inventory_get")
        if refused is not None:
            return refused
        sku = request.query_params.get("sku")
        if not sku:
            return _error(400, "MISSING_REQUEST_PARAM", "sku is required", field="sku")
        if not self.is_listed(sku):
            return _error(404, "CONTENT_NOT_FOUND", f"no inventory for SKU {sku}",
                          category="APPLICATION", severity="INFO")
        return json_response(
            {"sku": sku, "quantity": {"unit": "EACH", "amount": self.quantities.get(sku, 0)}}
        )

    async def _inventory_put(self, request: Request) -> Response:
        raw = await self._seen(request, "inventory_put")
        refused = self._gate(request, "inventory_put")
        if refused is not None:
            return refused
        sku = request.query_params.get("sku")
        if not sku:
            return _error(400, "MISSING_REQUEST_PARAM", "sku is required", field="sku")
        if "json" not in request.headers.get("Content-Type", ""):
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", "send application/json")
        try:
            body = _decode_inventory(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _error(400, "INVALID_REQUEST_CONTENT", str(exc))
        problem = self._invalid(body.sku, body.quantity)
        if problem is not None:
            return _error(400, "INVALID_REQUEST_CONTENT", problem[1], field=problem[0])
        if body.sku != sku:
            return _error(400, "INVALID_REQUEST_CONTENT",
                          f"body sku {body.sku!r} does not match the sku parameter {sku!r}",
                          field="sku")
        if not self.is_listed(sku):
            return _error(404, "CONTENT_NOT_FOUND", f"item {sku} is not set up",
                          category="APPLICATION", severity="INFO")
        amount = _whole(body.quantity.amount)
        assert amount is not None
        self.quantities[sku] = amount
        return json_response({"sku": sku, "quantity": {"unit": "EACH", "amount": amount}})

    @staticmethod
    def _invalid(sku: str, quantity: _Quantity) -> tuple[str, str] | None:
        if not sku:
            return "sku", "sku is required"
        if quantity.unit != "EACH":
            return "quantity.unit", f"unit must be EACH (got {quantity.unit!r})"
        if _whole(quantity.amount) is None:
            return "quantity.amount", f"amount must be a whole number >= 0 (got {quantity.amount})"
        return None

    # -- feeds ------------------------------------------------------------------------------

    async def _feed_submit(self, request: Request) -> Response:
        raw = await self._seen(request, "feed_submit")
        refused = self._gate(request, "feed_submit")
        if refused is not None:
            return refused
        feed_type = request.query_params.get("feedType")
        if not feed_type:
            return _error(400, "MISSING_REQUEST_PARAM", "feedType is required", field="feedType")
        if feed_type != "inventory":
            return _error(400, "INVALID_REQUEST_PARAM",
                          f"feedType {feed_type!r} is not simulated (only inventory)",
                          field="feedType")
        content_type = request.headers.get("Content-Type", "")
        if len(raw) > FEED_MAX_BYTES:
            return _error(413, "REQUEST_ENTITY_TOO_LARGE",
                          f"an inventory feed may be {FEED_MAX_BYTES} bytes at most",
                          category="REQUEST")
        if content_type.startswith("multipart/form-data"):
            file = _multipart_file(content_type, raw)
            if file is None:
                return _error(400, "INVALID_REQUEST_CONTENT", "no file part in the upload",
                              field="file")
        elif "json" in content_type:
            file = raw
        else:
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", "upload the feed as multipart/form-data")
        feed = _Feed(
            feed_id=f"{uuid.uuid4().hex.upper()}@AQMBCgA",
            submitted_at=self.clock(),
            submitted_ms=int(self.wall() * 1000),
        )
        self._ingest(feed, file)
        self.feeds[feed.feed_id] = feed
        return json_response({"feedId": feed.feed_id, "additionalAttributes": None,
                              "errors": None})

    def _ingest(self, feed: _Feed, file: bytes) -> None:
        """Validate the file now (applied when processed): spec 1.4 envelope, then each item."""

        def fail(description: str) -> None:
            feed.errors = [{"type": "DATA_ERROR", "code": "ERR_EXT_DATA_0503009",
                            "field": "", "description": description}]

        try:
            doc = msgspec.json.decode(file)
        except msgspec.DecodeError:
            return fail("the feed file is not JSON")
        if not isinstance(doc, dict) or not isinstance(doc.get("InventoryHeader"), dict):
            return fail("InventoryHeader is required")
        if doc["InventoryHeader"].get("version") != "1.4":
            return fail("InventoryHeader.version must be 1.4 for feedType inventory")
        items = doc.get("Inventory")
        if not isinstance(items, list) or not items:
            return fail("Inventory must be a non-empty array")
        if len(items) > FEED_MAX_ITEMS:
            return fail(f"an inventory feed may hold {FEED_MAX_ITEMS} items at most")
        for index, entry in enumerate(items):
            sku = entry.get("sku") if isinstance(entry, dict) else None
            item = _Item(index=index, sku=sku if isinstance(sku, str) else None)
            feed.items.append(item)
            try:
                parsed = msgspec.convert(entry, _Inventory)
            except msgspec.ValidationError as exc:
                item.status = "DATA_ERROR"
                item.errors = [{"type": "DATA_ERROR", "code": "INVALID_REQUEST_CONTENT",
                                "field": "Inventory", "description": str(exc)}]
                continue
            problem = self._invalid(parsed.sku, parsed.quantity)
            if problem is not None:
                item.status = "DATA_ERROR"
                item.errors = [{"type": "DATA_ERROR", "code": "INVALID_REQUEST_CONTENT",
                                "field": problem[0], "description": problem[1]}]
                continue
            amount = _whole(parsed.quantity.amount)
            assert amount is not None
            feed.pending.append((index, parsed.sku, amount))

    def _settle_feeds(self) -> None:
        """Feeds move on with time: INPROGRESS once received, PROCESSED (or ERROR) after
        ``feed_delay_s``, when their valid items are applied."""
        now = self.clock()
        for feed in self.feeds.values():
            if feed.status in ("PROCESSED", "ERROR"):
                continue
            if now - feed.submitted_at < self.feed_delay_s:
                feed.status = "INPROGRESS"
                continue
            if feed.errors:
                feed.status = "ERROR"
                continue
            for index, sku, amount in feed.pending:
                item = feed.items[index]
                fault = self.item_faults.get(sku)
                if not self.is_listed(sku):
                    item.status = "DATA_ERROR"
                    item.errors = [{"type": "DATA_ERROR", "code": "CONTENT_NOT_FOUND",
                                    "field": "sku", "description": f"item {sku} is not set up"}]
                elif fault is not None:
                    item.status = fault
                    item.errors = [{"type": fault, "code": fault, "field": "",
                                    "description": "downstream system failed, retry later"}]
                else:
                    self.quantities[sku] = amount
                    item.status = "SUCCESS"
            feed.pending = []
            feed.status = "PROCESSED"

    async def _feed_status(self, request: Request) -> Response:
        await self._seen(request, "feed_status")
        refused = self._gate(request, "feed_status")
        if refused is not None:
            return refused
        feed = self.feeds.get(request.path_params["feed_id"])
        if feed is None:
            return _error(404, "CONTENT_NOT_FOUND", "no such feed", category="APPLICATION",
                          severity="INFO")
        try:
            offset = int(request.query_params.get("offset", "0"))
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            return _error(400, "INVALID_REQUEST_PARAM", "offset and limit are integers")
        if offset < 0 or not 1 <= limit <= 1000:
            return _error(400, "INVALID_REQUEST_PARAM", "limit must be 1..1000, offset >= 0",
                          field="limit")
        final = feed.status in ("PROCESSED", "ERROR")
        succeeded = sum(1 for i in feed.items if i.status == "SUCCESS") if final else 0
        failed = sum(1 for i in feed.items if i.status not in ("SUCCESS", "INPROGRESS"))
        answer: dict[str, Any] = {
            "feedId": feed.feed_id,
            "feedStatus": feed.status,
            "feedSubmissionDate": feed.submitted_ms,
            "ingestionErrors": {"ingestionError": feed.errors} if feed.errors else None,
            "itemsReceived": len(feed.items),
            "itemsSucceeded": succeeded,
            "itemsFailed": failed if final else 0,
            "itemsProcessing": 0 if final else len(feed.items),
            "offset": offset,
            "limit": limit,
        }
        if request.query_params.get("includeDetails") == "true":
            answer["itemDetails"] = {
                "itemIngestionStatus": [
                    {
                        "martId": 0,
                        "sku": item.sku,
                        "index": item.index,
                        "ingestionStatus": item.status if final else "INPROGRESS",
                        "ingestionErrors": {"ingestionError": item.errors or None},
                    }
                    for item in feed.items[offset : offset + limit]
                ]
            }
        return json_response(answer)

    # -- orders -----------------------------------------------------------------------------

    def _order_lines(self, order: SimOrder) -> list[dict[str, Any]]:
        out = []
        for number, line in enumerate(order.lines, start=1):
            key = (order.order_id, str(number))
            done, reason = self.cancelled.get(key, (0, ""))
            unit = {"unitOfMeasurement": "EACH"}
            if order.status == "cancelled" and done < line.qty:
                statuses = [{"status": "Cancelled", "statusQuantity": {**unit,
                             "amount": str(line.qty)}, "cancellationReason": reason or
                             "CUSTOMER_REQUESTED_SELLER_TO_CANCEL"}]
            elif order.status in ("fulfilled", "refunded"):
                statuses = [{"status": "Shipped",
                             "statusQuantity": {**unit, "amount": str(line.qty - done)}}]
                if done:
                    statuses.append({"status": "Cancelled", "cancellationReason": reason,
                                     "statusQuantity": {**unit, "amount": str(done)}})
            else:
                statuses = []
                if line.qty - done > 0:
                    statuses.append({"status": "Created",
                                     "statusQuantity": {**unit, "amount": str(line.qty - done)}})
                if done:
                    statuses.append({"status": "Cancelled", "cancellationReason": reason,
                                     "statusQuantity": {**unit, "amount": str(done)}})
            out.append(
                {
                    "lineNumber": str(number),
                    "item": {"productName": f"Item {line.sku}", "sku": line.sku},
                    "charges": {"charge": []},
                    "orderLineQuantity": {**unit, "amount": str(line.qty)},
                    "statusDate": order.created_ms,
                    "orderLineStatuses": {"orderLineStatus": statuses},
                }
            )
        return out

    def _order_body(self, order: SimOrder) -> dict[str, Any]:
        return {
            "order": {
                "purchaseOrderId": order.order_id,
                "customerOrderId": f"2{order.order_id.zfill(12)}",
                "customerEmailId": "relay@relay.walmart.com",
                "orderDate": order.created_ms,
                "shippingInfo": {
                    "phone": "5555555555",
                    "estimatedDeliveryDate": order.created_ms + 3 * 86_400_000,
                    "estimatedShipDate": order.created_ms + 86_400_000,
                    "methodCode": "Standard",
                    "postalAddress": {
                        "name": "Buyer",
                        "address1": "1 Main St",
                        "city": "Anytown",
                        "state": order.region,
                        "postalCode": "00000",
                        "country": "USA",
                        "addressType": "RESIDENTIAL",
                    },
                },
                "orderLines": {"orderLine": self._order_lines(order)},
            }
        }

    async def _order_get(self, request: Request) -> Response:
        await self._seen(request, "order_get")
        refused = self._gate(request, "order_get")
        if refused is not None:
            return refused
        order = self.orders.get(request.path_params["po"])
        if order is None:
            return _error(404, "CONTENT_NOT_FOUND", "no such purchase order",
                          category="APPLICATION", severity="INFO")
        return json_response(self._order_body(order))

    async def _order_cancel(self, request: Request) -> Response:
        raw = await self._seen(request, "order_cancel")
        refused = self._gate(request, "order_cancel")
        if refused is not None:
            return refused
        po = request.path_params["po"]
        order = self.orders.get(po)
        if order is None:
            return _error(404, "CONTENT_NOT_FOUND", "no such purchase order",
                          category="APPLICATION", severity="INFO")
        try:
            body = _decode_cancel(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _error(400, "INVALID_REQUEST_CONTENT", str(exc))
        asked = body.order_cancellation.order_lines.order_line
        if not asked:
            return _error(400, "INVALID_REQUEST_CONTENT", "no order lines to cancel",
                          field="orderLine")
        changes: list[tuple[str, str, int, str]] = []  # lineNumber, sku, qty, reason
        for line in asked:
            number = line.line_number
            if not number.isdigit() or not 1 <= int(number) <= len(order.lines):
                return _error(400, "INVALID_REQUEST_CONTENT", f"no line {number} on {po}",
                              field="lineNumber")
            sim_line = order.lines[int(number) - 1]
            done, _ = self.cancelled.get((po, number), (0, ""))
            if order.status != "created":
                return _error(400, "INVALID_REQUEST_CONTENT",
                              f"line {number} is {order.status}, it cannot be cancelled",
                              field="lineNumber")
            for status in line.order_line_statuses.order_line_status:
                if status.status != "Cancelled":
                    return _error(400, "INVALID_REQUEST_CONTENT", "status must be Cancelled",
                                  field="status")
                if status.cancellation_reason not in CANCEL_REASONS:
                    return _error(400, "INVALID_REQUEST_CONTENT",
                                  f"unknown cancellationReason {status.cancellation_reason!r}",
                                  field="cancellationReason")
                try:
                    qty = int(status.status_quantity.amount)
                except ValueError:
                    qty = 0
                if qty < 1 or done + qty > sim_line.qty:
                    return _error(400, "INVALID_REQUEST_CONTENT",
                                  f"line {number}: cannot cancel {status.status_quantity.amount}"
                                  f" of {sim_line.qty - done} open unit(s)",
                                  field="statusQuantity")
                done += qty
                changes.append((number, sim_line.sku, qty, status.cancellation_reason))
        for number, sku, qty, reason in changes:
            before, _ = self.cancelled.get((po, number), (0, ""))
            self.cancelled[(po, number)] = (before + qty, reason)
            if sku in self.quantities:
                if reason == "SELLER_CANCEL_OUT_OF_STOCK":
                    self.quantities[sku] = 0  # Walmart marks the item out of stock
                else:
                    self.quantities[sku] += qty
        if all(
            self.cancelled.get((po, str(n)), (0, ""))[0] >= line.qty
            for n, line in enumerate(order.lines, start=1)
        ):
            order = msgspec.structs.replace(order, status="cancelled")
            self.orders[po] = order
        return json_response(self._order_body(order))
