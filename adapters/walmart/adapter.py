"""Walmart Marketplace (US): inventory by SKU, read-back, order-line cancellation, PO notifications.

What it speaks, and where each piece is documented (stored copies read through the search tool):

- Token API, client-credentials grant: ``POST /v3/token`` with ``Authorization: Basic
  base64(clientId:clientSecret)``, form ``grant_type=client_credentials``, headers
  ``WM_SVC.NAME`` and ``WM_QOS.CORRELATION_ID``; answers ``{"access_token", "token_type",
  "expires_in"}``, an access token lives 900 s. Every other call carries it in
  ``WM_SEC.ACCESS_TOKEN``. https://developer.walmart.com/us-marketplace/docs/get-an-access-token,
  https://developer.walmart.com/us-marketplace/reference/tokenapi
- Inventory, OpenAPI "Inventory Management" (``GET``/``PUT /v3/inventory?sku=``, body and answer
  ``{"sku", "quantity": {"unit": "EACH", "amount"}}``; ``POST /v3/feeds?feedType=inventory`` as
  ``multipart/form-data`` with the feed in the ``file`` part; ``WM_SEC.ACCESS_TOKEN``,
  ``WM_QOS.CORRELATION_ID`` (a fresh GUID per call) and ``WM_SVC.NAME`` required on each):
  repository highsidelabs/walmart-api-php ``resources/schemas/us/mp/inventory.json`` and
  APIs-guru/openapi-directory
  ``APIs/walmart.com/inventory/1.0.0/python-client/docs/InventoryApi.md``;
  https://developer.walmart.com/us-marketplace/docs/update-single-item-inventory
- Bulk item inventory feed, spec 1.4 ``{"InventoryHeader": {"version": "1.4"}, "Inventory":
  [...]}``, 429 with ``Retry-After`` when feeds come too fast, 10 feeds an hour, 5 MB:
  https://developer.walmart.com/us-marketplace/docs/bulk-inventory-update-feed,
  https://developer.walmart.com/ca-marketplace/docs/throttling
- Feed item status ``GET /v3/feeds/{feedId}?includeDetails=true&offset=&limit=`` (limit at most
  1000, ``@`` in a feed id sent as ``%40``), feed statuses RECEIVED / INPROGRESS / PROCESSED /
  ERROR and per-item ``ingestionStatus`` SUCCESS / DATA_ERROR / SYSTEM_ERROR / TIMEOUT_ERROR:
  https://developer.walmart.com/us-marketplace/docs/feed-item-status-api-for-tracking-fitment-files,
  https://developer.walmart.com/cl-marketplace/docs/feeds-overview, models ``PartnerFeedResponse``
  and ``PartnerItemIngestionStatus`` (highsidelabs/walmart-api-php ``docs/Models/MP/US/Feeds``).
- Errors ``{"errors": [{"code", "field", "description", "info", "severity", "category"}]}``
  (the gateway has also been seen answering ``{"error": [...]}`` and XML-shaped
  ``{"errors": {"error": [...]}}``: all three are read), codes per status, 429
  ``REQUEST_THRESHOLD_VIOLATED``: https://developer.walmart.com/us-marketplace/docs/error-codes,
  https://developer.walmart.com/suppliers/docs/errors, issue highsidelabs/walmart-api-php#5.
  Rate-limit headers ``X-Current-Token-Count`` / ``X-Next-Replenishment-Time`` (when the window
  refills): https://developer.walmart.com/suppliers/docs/rate-limiting.
- Orders: ``GET /v3/orders/{purchaseOrderId}`` (``{"order": {..., "orderLines": {"orderLine":
  [{"lineNumber", "item": {"sku"}, "orderLineQuantity", "orderLineStatuses"}]}}}``) and ``POST
  /v3/orders/{purchaseOrderId}/cancel`` with ``{"orderCancellation": {"orderLines": {"orderLine":
  [{"lineNumber", "orderLineStatuses": {"orderLineStatus": [{"status": "Cancelled",
  "cancellationReason", "statusQuantity": {"unitOfMeasurement", "amount"}}]}}]}}}``; the five US
  reason codes: https://developer.walmart.com/us-marketplace/docs/cancel-orders,
  https://developer.walmart.com/us-marketplace/docs/cancel-one-or-more-order-lines.
- Notifications ``PO_CREATED`` and ``PO_LINE_AUTOCANCELLED`` (V1): ``{"source": {"eventType",
  "eventTime", "eventId"}, "payload": {"purchaseOrderId", "orderLines": [{"lineNumber", "sku",
  "quantity": {"unitOfMeasure", "measurementValue"}, "status"}]}}``:
  https://developer.walmart.com/us-marketplace/docs/purchase-order-po-created-event,
  https://developer.walmart.com/us-marketplace/docs/purchase-order-po-line-auto-cancelled-event.
  Their authentication is chosen per subscription (BASIC_AUTH, OAUTH, or "HMAC" whose signing
  is not specified: https://developer.walmart.com/us-marketplace/docs/subscribe-to-an-event-notification);
  the one precisely documented HMAC (``WM_SEC.SIGNATURE`` over method, path, timestamp and body
  digest, https://developer.walmart.com/us-marketplace/docs/security-and-authenticity) is for
  performance webhooks and covers the request path, which ``parse_webhook`` does not see. So
  notifications are taken only from a relay that verified them and signs the raw body with
  ``X-Invsync-Signature`` (hex HMAC-SHA256 under the secret named by ``secret_env``).

Batches of up to ``options.feed_threshold`` SKUs go one ``PUT`` per SKU (at most
``options.max_concurrency`` at a time); larger batches go as one inventory feed, polled every
``options.feed_poll_s`` until processed or ``options.feed_timeout_s`` ran out (then every SKU is
retryable: the feed is sent again, which is harmless as quantities are absolute).
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import ClassVar, TypeVar
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
    OrderLine,
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
)
from .registry import require_secret, secret_option
from .signing import SIGNATURE_HEADER, verify
from .tokens import TokenReply, TokenSource, form_grant, with_token

__all__ = [
    "CANCEL_REASONS",
    "DEFAULT_SERVICE_NAME",
    "FEED_PAGE_LIMIT",
    "WalmartAdapter",
    "create",
]

log = structlog.get_logger("invsync.adapters.walmart")

_T = TypeVar("_T")

DEFAULT_SERVICE_NAME = "Walmart Marketplace"
#: Item details per feed-status page: the documented maximum of ``limit``.
FEED_PAGE_LIMIT = 1000
#: The cancellation reasons the US marketplace accepts (Cancel order lines reference).
CANCEL_REASONS = frozenset(
    {
        "CUSTOMER_REQUESTED_SELLER_TO_CANCEL",
        "SELLER_CANCEL_PRICING_ERROR",
        "SELLER_CANCEL_OUT_OF_STOCK",
        "SELLER_CANCEL_FRAUD_STOP_SHIPMENT",
        "SELLER_CANCEL_ADDRESS_NOT_SERVICEABLE",
    }
)
_FINAL_FEED = frozenset({"PROCESSED", "ERROR"})
_OPEN_LINE = frozenset({"Created", "Acknowledged"})

# --- wire types -------------------------------------------------------------------------------


class Quantity(msgspec.Struct, kw_only=True):
    """``quantity``: the unit is always EACH; answers carry ``amount`` as a JSON number."""

    unit: str = "EACH"
    amount: int | float


class Inventory(msgspec.Struct, kw_only=True):
    """``PUT /v3/inventory`` body, its answer and the ``GET`` answer; one item of a feed."""

    sku: str
    quantity: Quantity


class InventoryHeader(msgspec.Struct, kw_only=True):
    version: str = "1.4"


class InventoryFeed(msgspec.Struct, kw_only=True):
    """The bulk item inventory feed file, spec 1.4."""

    header: InventoryHeader = msgspec.field(name="InventoryHeader")
    inventory: list[Inventory] = msgspec.field(name="Inventory")


class FeedAck(msgspec.Struct, kw_only=True, rename="camel"):
    feed_id: str


class IngestionError(msgspec.Struct, kw_only=True):
    type: str | None = None
    code: str | None = None
    field: str | None = None
    description: str | None = None


class IngestionErrors(msgspec.Struct, kw_only=True, rename="camel"):
    ingestion_error: list[IngestionError] | None = None


class ItemIngestionStatus(msgspec.Struct, kw_only=True, rename="camel"):
    sku: str | None = None
    index: int | None = None
    ingestion_status: str = "INPROGRESS"
    ingestion_errors: IngestionErrors | None = None


class ItemDetails(msgspec.Struct, kw_only=True, rename="camel"):
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
    unit_of_measurement: str = "EACH"
    amount: str = "1"


class OrderLineStatus(msgspec.Struct, kw_only=True, rename="camel"):
    status: str
    status_quantity: OrderQuantity | None = None
    cancellation_reason: str | None = None


class OrderLineStatuses(msgspec.Struct, kw_only=True, rename="camel"):
    order_line_status: list[OrderLineStatus] = []


class OrderItem(msgspec.Struct, kw_only=True, rename="camel"):
    sku: str
    product_name: str | None = None


class PurchaseOrderLine(msgspec.Struct, kw_only=True, rename="camel"):
    line_number: str
    item: OrderItem
    order_line_quantity: OrderQuantity
    order_line_statuses: OrderLineStatuses | None = None


class PurchaseOrderLines(msgspec.Struct, kw_only=True, rename="camel"):
    order_line: list[PurchaseOrderLine] = []


class PurchaseOrder(msgspec.Struct, kw_only=True, rename="camel"):
    purchase_order_id: str
    order_lines: PurchaseOrderLines


class OrderEnvelope(msgspec.Struct, kw_only=True):
    """``GET /v3/orders/{purchaseOrderId}``."""

    order: PurchaseOrder


class CancelStatus(msgspec.Struct, kw_only=True, rename="camel"):
    cancellation_reason: str
    status_quantity: OrderQuantity
    status: str = "Cancelled"


class CancelStatuses(msgspec.Struct, kw_only=True, rename="camel"):
    order_line_status: list[CancelStatus]


class CancelLine(msgspec.Struct, kw_only=True, rename="camel"):
    line_number: str
    order_line_statuses: CancelStatuses


class CancelLines(msgspec.Struct, kw_only=True, rename="camel"):
    order_line: list[CancelLine]


class OrderCancellation(msgspec.Struct, kw_only=True, rename="camel"):
    order_lines: CancelLines


class CancelRequest(msgspec.Struct, kw_only=True, rename="camel"):
    """``POST /v3/orders/{purchaseOrderId}/cancel`` body."""

    order_cancellation: OrderCancellation


class EventSource(msgspec.Struct, kw_only=True, rename="camel"):
    event_type: str
    event_id: str | None = None
    event_time: str | None = None


class EventQuantity(msgspec.Struct, kw_only=True, rename="camel"):
    measurement_value: str | int
    unit_of_measure: str | None = None


class EventLine(msgspec.Struct, kw_only=True, rename="camel"):
    line_number: str
    sku: str
    quantity: EventQuantity
    status: str | None = None


class EventPayload(msgspec.Struct, kw_only=True, rename="camel"):
    purchase_order_id: str
    order_lines: list[EventLine] = []


class Notification(msgspec.Struct, kw_only=True):
    """A ``PO_CREATED`` / ``PO_LINE_AUTOCANCELLED`` V1 notification."""

    source: EventSource
    payload: EventPayload | None = None


class _EventKind(msgspec.Struct, kw_only=True):
    source: EventSource


_encode = msgspec.json.Encoder().encode
_decode_feed_ack = msgspec.json.Decoder(FeedAck).decode
_decode_feed_status = msgspec.json.Decoder(FeedStatus).decode
_decode_inventory = msgspec.json.Decoder(Inventory).decode
_decode_order = msgspec.json.Decoder(OrderEnvelope).decode
_decode_kind = msgspec.json.Decoder(_EventKind).decode
_decode_notification = msgspec.json.Decoder(Notification).decode


# --- configuration --------------------------------------------------------------------------


def create(channel: Channel, ctx: AdapterContext) -> WalmartAdapter:
    """The adapter for a ``walmart`` channel: client id and secret from ``options.client_id_env``
    and ``options.client_secret_env``; ``secret_env`` (optional) signs relayed notifications."""
    if channel.token_env:
        raise ValueError(
            f"channel '{channel.id}': walmart does not use token_env; name the client "
            "credentials' variables in options.client_id_env and options.client_secret_env"
        )
    client_id = secret_option(channel, "client_id_env")
    client_secret = secret_option(channel, "client_secret_env")
    assert client_id is not None and client_secret is not None  # required=True
    relay_secret = require_secret(channel, "secret_env") if channel.secret_env else None
    return WalmartAdapter(
        channel,
        ctx.session,
        client_id=client_id,
        client_secret=client_secret,
        relay_secret=relay_secret,
        monotonic=ctx.monotonic,
        wall=ctx.wall,
    )




# --- errors ---------------------------------------------------------------------------------


def walmart_errors(body: bytes) -> list[WalmartError]:
    """The entries of Walmart's error envelope in ``body`` (any of its three shapes), else []."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return []
    if not isinstance(doc, dict):
        return []
    found = doc.get("errors", doc.get("error"))
    if isinstance(found, dict):  # the XML-derived {"errors": {"error": [...]}}
        found = found.get("error")
    if isinstance(found, dict):
        found = [found]
    if not isinstance(found, list):
        return []
    out: list[WalmartError] = []
    for entry in found:
        try:
            out.append(msgspec.convert(entry, WalmartError))
        except msgspec.ValidationError:
            continue
    return out


def _summary(errors: Sequence[WalmartError]) -> str:
    parts = []
    for e in errors:
        text = e.description or e.message or e.info or ""
        where = f" ({e.field})" if e.field else ""
        parts.append(f"{e.code or 'ERROR'}{where}: {text}".rstrip(": "))
    return "; ".join(parts)


def replenished_in(reply: HttpReply, wall: float) -> float | None:
    """Seconds until ``X-Next-Replenishment-Time`` (an epoch time, in ms or s), else None."""
    raw = reply.header("X-Next-Replenishment-Time")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if value > 1e11:  # epoch milliseconds, Walmart's usual timestamp unit
        value /= 1000.0
    if value < 1e9:  # not an epoch time: nothing documented to read it as
        return None
    return max(0.0, value - wall)


# --- the adapter ----------------------------------------------------------------------------


class WalmartAdapter(BaseAdapter):
    """Pushes quantities to Walmart Marketplace (single PUTs or the inventory feed), reads them
    back, cancels order lines and translates relayed PO notifications.

    The HTTP session belongs to the caller; ``monotonic`` drives token expiry, ``wall`` turns
    ``X-Next-Replenishment-Time`` into seconds, ``sleep`` paces feed-status polls.
    """

    #: One inventory feed; Walmart caps a feed file at 5 MB (ca-marketplace throttling table),
    #: far above this many ~80-byte items.
    max_batch: ClassVar[int | None] = 10_000

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        *,
        client_id: str,
        client_secret: str,
        relay_secret: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError(f"channel '{channel.id}': walmart client id and secret are required")
        self.channel = channel
        self._session = session
        self._url = base_url(channel)
        self._timeout = timeout_for(channel)
        self._service = option_str(channel, "service_name", DEFAULT_SERVICE_NAME)
        token_url = option_str(channel, "token_url", f"{self._url}/v3/token")
        self._feed_threshold = option_int(channel, "feed_threshold", 50, minimum=0)
        self._feed_poll_s = option_number(channel, "feed_poll_s", 5.0, minimum=0.0)
        self._feed_timeout_s = option_number(channel, "feed_timeout_s", 120.0, minimum=0.0)
        self._slots = asyncio.Semaphore(option_int(channel, "max_concurrency", 4, minimum=1))
        reason = option_str(channel, "cancel_reason", "SELLER_CANCEL_OUT_OF_STOCK")
        if reason not in CANCEL_REASONS:
            raise ValueError(
                f"channel '{channel.id}': options.cancel_reason must be one of "
                f"{', '.join(sorted(CANCEL_REASONS))} (got {reason!r})"
            )
        self._cancel_reason = reason
        self._relay_secret = relay_secret
        self._wall = wall
        self._sleep = sleep
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")

        async def fetch() -> TokenReply:
            # A fresh correlation id for every token call, hence a new grant each time.
            headers = {**self._wm_headers(), "Authorization": f"Basic {basic}"}
            grant = form_grant(
                session,
                token_url,
                {"grant_type": "client_credentials"},
                headers=headers,
                timeout=self._timeout,
            )
            return await grant()

        self.tokens = TokenSource(fetch, clock=monotonic)

    # -- HTTP plumbing ---------------------------------------------------------------------

    def _wm_headers(self) -> dict[str, str]:
        return {
            "WM_SVC.NAME": self._service,
            "WM_QOS.CORRELATION_ID": str(uuid.uuid4()),
            "Accept": "application/json",
        }

    def _check(self, reply: HttpReply) -> HttpReply:
        """``http.check`` with Walmart's error text, and ``X-Next-Replenishment-Time`` standing
        in for a missing ``Retry-After`` on a 429."""
        now = self._wall()
        try:
            return check(reply, now=now)
        except ChannelError as exc:
            errors = walmart_errors(reply.body)
            message = f"HTTP {reply.status}: {_summary(errors)}" if errors else exc.message
            retry_after = exc.retry_after
            if isinstance(exc, Throttled) and retry_after is None:
                retry_after = replenished_in(reply, now)
            raise type(exc)(message, retry_after=retry_after) from None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        allow: tuple[int, ...] = (),
    ) -> HttpReply:
        """One authenticated call (a 401 refreshes the token once); statuses in ``allow`` come
        back unchecked."""

        async def attempt(token: str) -> HttpReply:
            headers = {**self._wm_headers(), "WM_SEC.ACCESS_TOKEN": token}
            if body is not None:
                headers["Content-Type"] = "application/json"
            reply = await send(
                self._session,
                method,
                self._url + path,
                timeout=self._timeout,
                headers=headers,
                body=body,
                params=params,
                data=form() if form is not None else None,  # a FormData is sent only once
            )
            return reply if reply.status in allow else self._check(reply)

        return await with_token(self.tokens, attempt)

    async def _each(
        self, items: Sequence[_T], call: Callable[[_T], Awaitable[PushResult | int | None]]
    ) -> list[PushResult | int | ChannelError | None]:
        """``call`` for every item, at most ``max_concurrency`` at a time; a channel error of one
        item is its result, so the others always finish."""

        async def one(item: _T) -> PushResult | int | ChannelError | None:
            async with self._slots:
                try:
                    return await call(item)
                except ChannelError as exc:
                    return exc

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(item)) for item in items]
        return [task.result() for task in tasks]

    # -- push ------------------------------------------------------------------------------

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Set each SKU's quantity: one PUT per SKU up to ``feed_threshold``, else one feed."""
        if not updates:
            return []
        if len(updates) <= self._feed_threshold:
            return await self._push_each(updates)
        return await self._push_feed(updates)

    async def _put(self, update: Update) -> PushResult:
        # A negative availability (never expected) means nothing to sell; Walmart refuses < 0.
        amount = max(0, update.available)
        body = _encode(Inventory(sku=update.sku, quantity=Quantity(amount=amount)))
        try:
            await self._call("PUT", "/v3/inventory", params={"sku": update.sku}, body=body)
        except Unauthorized:
            raise
        except Permanent as exc:  # unknown SKU (404), invalid listing (400): this SKU only
            return PushResult(sku=update.sku, outcome="permanent", error=exc.message)
        return PushResult(sku=update.sku, outcome="ok")

    async def _push_each(self, updates: Sequence[Update]) -> list[PushResult]:
        results = await self._each(updates, self._put)
        failures = [r for r in results if isinstance(r, ChannelError)]
        for failure in failures:
            if isinstance(failure, Unauthorized):
                raise failure
        if len(failures) == len(results):  # nothing got through: a failure of the whole call
            raise failures[0]
        out: list[PushResult] = []
        for update, result in zip(updates, results, strict=True):
            if isinstance(result, PushResult):
                out.append(result)
            elif isinstance(result, Throttled):
                out.append(
                    PushResult(
                        sku=update.sku,
                        outcome="throttled",
                        retry_after=result.retry_after,
                        error=result.message,
                    )
                )
            else:
                assert isinstance(result, ChannelError)
                out.append(
                    PushResult(
                        sku=update.sku,
                        outcome="retryable",
                        retry_after=result.retry_after,
                        error=result.message,
                    )
                )
        return out

    async def _push_feed(self, updates: Sequence[Update]) -> list[PushResult]:
        latest: dict[str, int] = {}
        for update in updates:  # the last word on a SKU wins, as it would in sequence
            latest[update.sku] = max(0, update.available)
        feed = InventoryFeed(
            header=InventoryHeader(version="1.4"),
            inventory=[Inventory(sku=s, quantity=Quantity(amount=a)) for s, a in latest.items()],
        )
        raw = _encode(feed)

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("file", raw, filename="inventory.json", content_type="application/json")
            return data

        reply = await self._call("POST", "/v3/feeds", params={"feedType": "inventory"}, form=form)
        try:
            feed_id = _decode_feed_ack(reply.body).feed_id
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Retryable(f"the feed upload answered no feedId: {exc}") from exc
        done = await self._await_feed(feed_id)
        if done is None:
            why = f"feed {feed_id} not processed within {self._feed_timeout_s:g} s"
            return [PushResult(sku=u.sku, outcome="retryable", error=why) for u in updates]
        status, items = done
        if status.feed_status == "ERROR":
            errors = status.ingestion_errors.ingestion_error if status.ingestion_errors else None
            text = f"feed {feed_id} failed as a whole: {_ingestion_text(errors)}"
            if any(e.type == "DATA_ERROR" for e in errors or ()):
                raise Permanent(text)
            raise Retryable(text)
        order = list(latest)
        by_sku: dict[str, ItemIngestionStatus] = {}
        for item in items:
            sku = item.sku
            if sku is None and item.index is not None and 0 <= item.index < len(order):
                sku = order[item.index]
            if sku is not None:
                by_sku[sku] = item
        return [_feed_result(u.sku, by_sku.get(u.sku), feed_id) for u in updates]

    async def _await_feed(
        self, feed_id: str
    ) -> tuple[FeedStatus, list[ItemIngestionStatus]] | None:
        """Poll the feed until it is processed (or failed); None when ``feed_timeout_s`` ran out.
        Throttled or failed polls wait and poll again; refused credentials end it."""
        polls = 1 + (
            math.ceil(self._feed_timeout_s / self._feed_poll_s) if self._feed_poll_s > 0 else 0
        )
        for attempt in range(polls):
            if attempt:
                await self._sleep(self._feed_poll_s)
            try:
                done = await self._feed_status(feed_id)
            except Unauthorized:
                raise
            except (Throttled, Retryable):
                continue
            if done is not None:
                return done
        return None

    async def _feed_status(
        self, feed_id: str
    ) -> tuple[FeedStatus, list[ItemIngestionStatus]] | None:
        path = f"/v3/feeds/{quote(feed_id, safe='')}"
        items: list[ItemIngestionStatus] = []
        while True:
            params = {"includeDetails": "true", "offset": str(len(items)),
                      "limit": str(FEED_PAGE_LIMIT)}
            reply = await self._call("GET", path, params=params)
            try:
                page = _decode_feed_status(reply.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise Retryable(f"unreadable status of feed {feed_id}: {exc}") from exc
            if page.feed_status not in _FINAL_FEED:
                return None
            got = (page.item_details.item_ingestion_status if page.item_details else None) or []
            items.extend(got)
            if not got or len(items) >= (page.items_received or 0):
                return page, items

    # -- read-back -------------------------------------------------------------------------

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """Each SKU's quantity at the default ship node; SKUs Walmart does not know (404) are
        left out."""

        async def one(sku: str) -> int | None:
            reply = await self._call("GET", "/v3/inventory", params={"sku": sku}, allow=(404,))
            if reply.status == 404:
                return None
            try:
                return int(_decode_inventory(reply.body).quantity.amount)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise Retryable(f"unreadable inventory of {sku!r}: {exc}") from exc

        results = await self._each(skus, one)
        out: dict[str, int] = {}
        for sku, result in zip(skus, results, strict=True):
            if isinstance(result, ChannelError):
                raise result
            if isinstance(result, int):
                out[sku] = result
        return out

    # -- cancellation ----------------------------------------------------------------------

    async def cancel_order(
        self, order_id: str, lines: Sequence[OrderLine] | None, reason: str
    ) -> None:
        """Cancel the open units of ``lines`` (by SKU; None: every line) of purchase order
        ``order_id``. ``reason`` is used when it is one of Walmart's codes, else
        ``options.cancel_reason``. Units already cancelled count as done."""
        path = f"/v3/orders/{quote(order_id, safe='')}"
        try:
            order = _decode_order((await self._call("GET", path)).body).order
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Retryable(f"unreadable purchase order {order_id}: {exc}") from exc
        picked = _lines_to_cancel(order, lines)
        if not picked:
            return  # everything asked for is cancelled already
        code = reason if reason in CANCEL_REASONS else self._cancel_reason
        request = CancelRequest(
            order_cancellation=OrderCancellation(
                order_lines=CancelLines(
                    order_line=[
                        CancelLine(
                            line_number=number,
                            order_line_statuses=CancelStatuses(
                                order_line_status=[
                                    CancelStatus(
                                        cancellation_reason=code,
                                        status_quantity=OrderQuantity(
                                            unit_of_measurement=unit, amount=str(qty)
                                        ),
                                    )
                                ]
                            ),
                        )
                        for number, unit, qty in picked
                    ]
                )
            )
        )
        await self._call("POST", f"{path}/cancel", body=_encode(request))

    # -- notifications ---------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[dict[str, object]]:
        """A relayed ``PO_CREATED`` (order.created) or ``PO_LINE_AUTOCANCELLED``
        (order.cancelled of its lines) notification; other event types are acknowledged and
        dropped. The relay's ``X-Invsync-Signature`` is required."""
        if self._relay_secret is None:
            raise BadWebhook(
                f"channel '{self.channel.id}' has no secret_env: Walmart notifications are taken "
                f"only from a relay that signs them with {SIGNATURE_HEADER}",
                unauthorized=True,
            )
        signature = header(headers, SIGNATURE_HEADER)
        if signature is None:
            raise BadWebhook(f"missing {SIGNATURE_HEADER} header", unauthorized=True)
        if not verify(self._relay_secret, body, signature):
            raise BadWebhook(f"{SIGNATURE_HEADER} does not match the body", unauthorized=True)
        try:
            kind = _decode_kind(body).source.event_type
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadWebhook(f"not a Walmart notification: {exc}") from None
        if kind not in ("PO_CREATED", "PO_LINE_AUTOCANCELLED"):
            return []
        try:
            note = _decode_notification(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadWebhook(f"malformed {kind} notification: {exc}") from None
        if note.payload is None:
            raise BadWebhook(f"{kind} notification without a payload")
        order_id = note.payload.purchase_order_id
        lines = _event_lines(note.payload.order_lines)
        if not lines:
            raise BadWebhook(f"{kind} notification of order {order_id} names no lines")
        if kind == "PO_CREATED":
            # A new PO is created once: its id is the idempotency key of redeliveries.
            return [
                {
                    "id": f"{self.channel.id}-{order_id}-created",
                    "type": "order.created",
                    "channel": self.channel.id,
                    "order_id": order_id,
                    "lines": lines,
                }
            ]
        numbers = ".".join(sorted({x.line_number for x in note.payload.order_lines}))
        return [
            {
                "id": f"{self.channel.id}-{order_id}-cancelled-{numbers}",
                "type": "order.cancelled",
                "channel": self.channel.id,
                "order_id": order_id,
                "lines": lines,
            }
        ]


# --- pure helpers ---------------------------------------------------------------------------


def _ingestion_text(errors: Sequence[IngestionError] | None) -> str:
    if not errors:
        return "no reason given"
    return "; ".join(
        f"{e.code or e.type or 'ERROR'}: {e.description or ''}".rstrip(": ") for e in errors
    )


def _feed_result(sku: str, item: ItemIngestionStatus | None, feed_id: str) -> PushResult:
    """A SKU's outcome from its feed item: SUCCESS ok, DATA_ERROR permanent, else retryable."""
    if item is None:
        return PushResult(
            sku=sku, outcome="retryable", error=f"feed {feed_id} reported nothing for this SKU"
        )
    status = item.ingestion_status
    if status == "SUCCESS":
        return PushResult(sku=sku, outcome="ok")
    errors = item.ingestion_errors.ingestion_error if item.ingestion_errors else None
    text = f"{status}: {_ingestion_text(errors)}"
    if status == "DATA_ERROR":
        return PushResult(sku=sku, outcome="permanent", error=text)
    return PushResult(sku=sku, outcome="retryable", error=text)  # SYSTEM_/TIMEOUT_ERROR, ...


def _amount(text: str) -> int:
    try:
        return max(0, int(float(text)))
    except ValueError:
        return 0


def _open_units(line: PurchaseOrderLine) -> tuple[int, int]:
    """(units still cancellable, units already cancelled) of an order line."""
    statuses = line.order_line_statuses.order_line_status if line.order_line_statuses else []
    if not statuses:
        return _amount(line.order_line_quantity.amount), 0
    open_units = cancelled = 0
    for status in statuses:
        qty = _amount(status.status_quantity.amount) if status.status_quantity else 0
        if status.status in _OPEN_LINE:
            open_units += qty
        elif status.status == "Cancelled":
            cancelled += qty
    return open_units, cancelled


def _lines_to_cancel(
    order: PurchaseOrder, lines: Sequence[OrderLine] | None
) -> list[tuple[str, str, int]]:
    """(lineNumber, unit, qty) to cancel; Permanent when a SKU is not on the order or its
    units can no longer be cancelled (shipped)."""
    order_lines = order.order_lines.order_line
    if lines is None:
        picked = []
        for line in order_lines:
            open_units, _ = _open_units(line)
            if open_units > 0:
                unit = line.order_line_quantity.unit_of_measurement
                picked.append((line.line_number, unit, open_units))
        return picked
    wanted: dict[str, int] = {}
    for asked in lines:
        wanted[asked.sku] = wanted.get(asked.sku, 0) + asked.qty
    picked = []
    for sku, qty in wanted.items():
        mine = [line for line in order_lines if line.item.sku == sku]
        if not mine:
            raise Permanent(f"purchase order {order.purchase_order_id} has no line for {sku!r}")
        remaining = qty
        cancelled = 0
        for line in mine:
            open_units, done = _open_units(line)
            cancelled += done
            take = min(open_units, remaining)
            if take > 0:
                picked.append((line.line_number, line.order_line_quantity.unit_of_measurement,
                               take))
                remaining -= take
        if remaining > cancelled:  # neither open nor cancelled: shipped
            raise Permanent(
                f"purchase order {order.purchase_order_id}: {remaining} unit(s) of {sku!r} "
                "can no longer be cancelled (shipped)"
            )
    return picked


def _event_lines(lines: Sequence[EventLine]) -> list[dict[str, object]]:
    """The notification's lines as the spec's ``[{"sku", "qty"}]``, one entry per SKU."""
    qty: dict[str, int] = {}
    for line in lines:
        try:
            value = float(line.quantity.measurement_value)
        except ValueError:
            raise BadWebhook(
                f"line {line.line_number}: measurementValue {line.quantity.measurement_value!r} "
                "is not a number"
            ) from None
        if not value.is_integer() or value <= 0:
            raise BadWebhook(f"line {line.line_number}: quantity must be a positive integer")
        if not holdable_sku(line.sku):
            log.warning("order_line_sku_not_holdable", sku=line.sku[:200])
            continue
        qty[line.sku] = qty.get(line.sku, 0) + int(value)
    return [{"sku": sku, "qty": n} for sku, n in qty.items()]
