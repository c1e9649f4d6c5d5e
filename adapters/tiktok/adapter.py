"""TikTok Shop (Partner API, version 202309): inventory pushes, read-back and order webhooks.

Every call is ``{url}{path}?app_key=…&timestamp=…&shop_cipher=…&sign=…`` with the seller's access
token in ``x-tts-access-token`` and a JSON body; every answer is the envelope
``{"code", "message", "request_id", "data"}`` where ``code`` 0 is success.

- ``sign`` is the lowercase hex HMAC-SHA256, keyed by the app secret, of
  ``app_secret + path + key1value1key2value2… (query parameters sorted by key, without sign and
  access_token) + body + app_secret`` (the body is left out for GET and multipart requests):
  partner.tiktokshop.com/docv2/page/sign-your-api-request as implemented by EcomPHP/tiktokshop-php
  ``src/Client.php`` ``prepareSignature`` and hsib19/tiktok-shop-sdk ``src/utils/signature.ts``.
- Seller SKU → (product id, SKU id): ``POST /product/202309/products/search?page_size=100`` with
  ``{"seller_skus": [...]}`` → ``data.products[].{id, status, skus[].{id, seller_sku, inventory}}``,
  paginated by ``next_page_token`` (lywzx/tiktok-partner-api ``products/SearchProducts.ts``).
  The answer is cached per SKU; a SKU no product carries is ``permanent`` (not listed).
- Update: ``POST /product/202309/products/{product_id}/inventory/update`` with
  ``{"skus": [{"id", "inventory": [{"warehouse_id", "quantity"}]}]}``, one call per product (all
  SKUs of a batch that share a product go in one call). Quantities are absolute per warehouse,
  "non-negative … and less than 99999"; failures of single SKUs come back in
  ``data.errors[].{code, message, detail.{sku_id, extra_errors[].{warehouse_id, code, message}}}``
  (``products/UpdateInventory.ts``; help.useresponse.com "TikTok Update Stock").
- Read-back: ``GET /product/202309/products/{product_id}`` → ``skus[].inventory[].quantity`` for
  ``options.warehouse_id`` (``products/GetProduct.ts``).
- Errors (partner.tiktokshop.com/docv2/page/common-errors as classified by the tiktok-shop Ruby
  gem's error table tests, and endpoint error tables): 36009002 "Too many requests" (HTTP 429) and
  12052109 "number of requests from merchants over limit" → ``Throttled`` (Retry-After when sent,
  else 1 s: the limits are per second); 105001/105002 invalid/expired access token, 36004004 →
  ``Unauthorized`` (refresh once and retry); 36009003 internal error, 12001000 → ``Retryable``;
  106001 bad signature, 36009004 invalid parameter/credentials and business codes →
  ``Permanent``. 12052260/12052048/12019022 (product or SKU id unknown to the shop) also drop the
  cached ids so the next change of the SKU looks it up again.
- Tokens: the access token from ``token_env``; with ``options.refresh_token_env`` a refused or
  expired token is refreshed at ``GET {auth_url}/api/v2/token/refresh?app_key&app_secret&
  refresh_token&grant_type=refresh_token`` → ``data.{access_token, access_token_expire_in (epoch
  seconds), refresh_token}`` (EcomPHP ``src/Auth.php``; tudinhacoustic/tiktok-shop README).
- Webhooks: ``Authorization`` carries the hex HMAC-SHA256 of ``app_key + raw body`` under the app
  secret (EcomPHP ``src/Webhook.php`` ``verify``); order status change is ``type`` 1 with
  ``data.{order_id, order_status, is_on_hold_order, update_time}`` and no line items.

Which statuses mean what (the statuses of Get Order Detail 202309, ``orders/GetOrderDetail.ts``):
UNPAID ("placed but payment has not been finished"), ON_HOLD, AWAITING_SHIPMENT,
AWAITING_COLLECTION and PARTIALLY_SHIPPING → ``order.created``: TikTok takes the units off the
listing when the buyer orders, and an unpaid order can turn paid without another notification we
could rely on, so the hold starts at the first status seen; a payment that never comes arrives as
CANCELLED and releases it. IN_TRANSIT, DELIVERED, COMPLETED → ``order.fulfilled``; CANCELLED →
``order.cancelled``. Event ids are ``{channel}:{order_id}:{created|cancelled|fulfilled}``, so the
repeats (UNPAID then AWAITING_SHIPMENT, IN_TRANSIT then DELIVERED, redeliveries) are one event.

Line items: the webhook has none, so a status meaning ``order.created`` is translated by
``parse_webhook_async`` (which the daemon awaits) calling ``GET /order/202309/orders?ids=`` while
the webhook waits for its answer: line items are one per unit, counted by ``seller_sku``;
``recipient_address`` gives the ship-to. The lookup is bounded by ``options.timeout_s`` and its
failures propagate (Throttled, Retryable, Unauthorized after one token refresh, Permanent): the
daemon answers 503 and TikTok delivers the webhook again, so nothing is acknowledged that was not
recorded and no lookup outlives its request. An order Get Order Detail does not return, one
already CANCELLED, or one without a line item carrying a seller SKU is acknowledged with no event
and logged: a redelivery would get the same answer. Cancellations and fulfilments need no lines
(the whole order) and come from the sync ``parse_webhook`` too, which refuses a creation.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

import aiohttp
import msgspec
import structlog

from ..core.config import Channel, resolve_secret
from ..core.events import Ref, holdable_sku
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
    option_str,
    send,
    timeout_for,
    waiting_out_throttles,
)
from .registry import MissingSecret, secret_option
from .signing import sign, verify
from .tokens import TokenReply, TokenSource, with_token

__all__ = [
    "API_VERSION",
    "AUTH_CODES",
    "DEFAULT_AUTH_URL",
    "MAX_QUANTITY",
    "ORDER_STATUS_CHANGE",
    "RETRYABLE_CODES",
    "STATUS_EVENTS",
    "THROTTLE_CODES",
    "US_STATES",
    "TikTokAdapter",
    "create",
    "sign_request",
    "webhook_signature",
]

log = structlog.get_logger("invsync.adapters.tiktok")

API_VERSION = "202309"
DEFAULT_AUTH_URL = "https://auth.tiktok-shops.com"
#: "The value should be non-negative numbers (include number 0) and less than 99999".
MAX_QUANTITY = 99_998
#: Products per search page (the API's maximum page_size).
SEARCH_PAGE = 100
#: Webhook type of an order status change.
ORDER_STATUS_CHANGE = 1

THROTTLE_CODES = frozenset({36009002, 12052109})
AUTH_CODES = frozenset({105000, 105001, 105002, 105003, 105004, 36004004})
RETRYABLE_CODES = frozenset({36009003, 12001000, 33001002})
#: Bad signature, invalid parameter or app credentials: a new access token would not help.
REFUSED_CODES = frozenset({106001, 36009004})
#: The product or SKU id is not (or no longer) the shop's: look the seller SKU up again.
STALE_CODES = frozenset({12052260, 12052048, 12019022})
#: Seconds to wait after a throttle answer without Retry-After (TikTok limits are per second).
DEFAULT_THROTTLE_S = 1.0
#: Lifetime assumed for the configured access token (TikTok issues them for 7 days).
CONFIGURED_TOKEN_S = 7 * 86_400.0

STATUS_EVENTS: dict[str, str] = {
    "UNPAID": "created",
    "ON_HOLD": "created",
    "AWAITING_SHIPMENT": "created",
    "AWAITING_COLLECTION": "created",
    "PARTIALLY_SHIPPING": "created",
    "IN_TRANSIT": "fulfilled",
    "DELIVERED": "fulfilled",
    "COMPLETED": "fulfilled",
    "CANCELLED": "cancelled",
}

#: US state codes and the names TikTok's recipient_address.district_info gives (level L1).
US_STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
    "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
    "VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin",
    "WY": "Wyoming",
}
_STATE_CODES = {name.lower(): code for code, name in US_STATES.items()}


# -- wire format -------------------------------------------------------------------------------


class _Head(msgspec.Struct, kw_only=True):
    """The envelope of every answer; ``data`` is decoded by the caller into its own type."""

    code: int
    message: str = ""
    request_id: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class _Inventory(msgspec.Struct, kw_only=True):
    warehouse_id: str = ""
    quantity: int = 0


class _Sku(msgspec.Struct, kw_only=True):
    id: str
    seller_sku: str = ""
    inventory: list[_Inventory] = []


class _Product(msgspec.Struct, kw_only=True):
    id: str
    status: str = ""
    skus: list[_Sku] = []


class _SearchData(msgspec.Struct, kw_only=True):
    products: list[_Product] | None = None
    total_count: int = 0
    next_page_token: str = ""


class _SearchBody(msgspec.Struct, kw_only=True):
    seller_skus: list[str]


class _InventoryUpdate(msgspec.Struct, kw_only=True):
    warehouse_id: str
    quantity: int


class _SkuUpdate(msgspec.Struct, kw_only=True):
    id: str
    inventory: list[_InventoryUpdate]


class _UpdateBody(msgspec.Struct, kw_only=True):
    skus: list[_SkuUpdate]


class _ExtraError(msgspec.Struct, kw_only=True):
    warehouse_id: str = ""
    code: int = 0
    message: str = ""


class _ErrorDetail(msgspec.Struct, kw_only=True):
    sku_id: str = ""
    extra_errors: list[_ExtraError] = []


class _UpdateError(msgspec.Struct, kw_only=True):
    code: int = 0
    message: str = ""
    detail: _ErrorDetail | None = None


class _UpdateData(msgspec.Struct, kw_only=True):
    errors: list[_UpdateError] | None = None


class _District(msgspec.Struct, kw_only=True):
    address_level: str = ""
    address_level_name: str = ""
    address_name: str = ""


class _Address(msgspec.Struct, kw_only=True):
    region_code: str = ""
    postal_code: str = ""
    district_info: list[_District] = []


class _LineItem(msgspec.Struct, kw_only=True):
    id: str = ""
    sku_id: str = ""
    product_id: str = ""
    seller_sku: str = ""
    display_status: str = ""


class _Order(msgspec.Struct, kw_only=True):
    id: str
    status: str = ""
    line_items: list[_LineItem] = []
    recipient_address: _Address | None = None


class _OrdersData(msgspec.Struct, kw_only=True):
    orders: list[_Order] | None = None


class _TokenData(msgspec.Struct, kw_only=True):
    access_token: str
    access_token_expire_in: int
    refresh_token: str = ""
    refresh_token_expire_in: int = 0


class _Notification(msgspec.Struct, kw_only=True):
    type: int
    shop_id: str = ""
    timestamp: int = 0
    tts_notification_id: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class _OrderStatus(msgspec.Struct, kw_only=True):
    order_id: str
    order_status: str
    is_on_hold_order: bool = False
    update_time: int = 0


_encode = msgspec.json.Encoder().encode
_head = msgspec.json.Decoder(_Head).decode
_notification = msgspec.json.Decoder(_Notification).decode


def _decode(raw: msgspec.Raw, kind: type[Any], what: str) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Retryable(f"TikTok Shop answered an unreadable {what}: {exc}") from exc


def sign_request(app_secret: str, path: str, params: Mapping[str, str], body: bytes = b"") -> str:
    """The ``sign`` query parameter of a request to ``path`` (its URL path as sent)."""
    pairs = "".join(f"{key}{params[key]}" for key in sorted(params)
                    if key not in ("sign", "access_token"))
    secret = app_secret.encode()
    return sign(secret, secret + (path + pairs).encode() + body + secret)


def webhook_signature(app_key: str, app_secret: str, body: bytes) -> str:
    """The ``Authorization`` header TikTok Shop puts on a webhook with ``body``."""
    return sign(app_secret, app_key.encode() + body)


class _Listing(NamedTuple):
    product_id: str
    sku_id: str


class _Change(NamedTuple):
    """An order status change that makes an event: ``kind`` is created, cancelled or fulfilled."""

    channel: str
    order_id: str
    kind: str

    @property
    def event_id(self) -> str:
        """One id per order and kind, so repeats and redeliveries are one event."""
        return f"{self.channel}:{self.order_id}:{self.kind}"

    def whole_order(self) -> dict[str, object]:
        """The event of a cancellation or fulfilment: the whole order, no lines."""
        return {"id": self.event_id, "type": f"order.{self.kind}", "channel": self.channel,
                "order_id": self.order_id}


class _ApiError(Permanent):
    """A refusal carrying TikTok's code (business errors come with HTTP 200)."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


# -- the adapter -------------------------------------------------------------------------------


def create(channel: Channel, ctx: AdapterContext) -> TikTokAdapter:
    """The adapter for a ``tiktok`` channel.

    Needs ``url``, ``options.app_key``, ``options.app_secret_env``, ``options.shop_cipher``,
    ``options.warehouse_id`` and an access token (``token_env``) and/or a refresh token
    (``options.refresh_token_env``).
    """
    app_secret = secret_option(channel, "app_secret_env")
    assert app_secret is not None
    access = resolve_secret(channel.token_env)
    refresh = secret_option(channel, "refresh_token_env", required=False)
    if channel.options.get("refresh_token_env") is not None and refresh is None:
        raise MissingSecret(channel.id, "options.refresh_token_env",
                            str(channel.options["refresh_token_env"]))
    if access is None and refresh is None:
        raise MissingSecret(channel.id, "token_env", channel.token_env)
    return TikTokAdapter(
        channel,
        ctx.session,
        app_secret=app_secret,
        access_token=access,
        refresh_token=refresh,
        wall=ctx.wall,
        monotonic=ctx.monotonic,
    )


class TikTokAdapter(BaseAdapter):
    """Pushes quantities to one TikTok shop's warehouse, reads them back, takes its webhooks."""

    max_batch: ClassVar[int | None] = None  # one call per product; searches are paged by 100

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        *,
        app_secret: str,
        access_token: str | None,
        refresh_token: str | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not app_secret:
            raise ValueError(f"channel '{channel.id}': the TikTok Shop app secret is empty")
        self.channel = channel
        self._base = base_url(channel)
        self._session = session
        self._timeout = timeout_for(channel)
        self._app_key = option_str(channel, "app_key")
        self._shop_cipher = option_str(channel, "shop_cipher")
        self._warehouse = option_str(channel, "warehouse_id")
        shop_id = channel.options.get("shop_id")
        self._shop_id = str(shop_id) if shop_id not in (None, "") else None
        self._auth_url = str(channel.options.get("auth_url", DEFAULT_AUTH_URL)).rstrip("/")
        self._secret = app_secret
        self._access = access_token
        self._refresh = refresh_token
        self._wall = wall
        self.tokens = TokenSource(self._fetch_token, clock=monotonic)
        self._listings: dict[str, _Listing] = {}  # seller SKU -> ids
        self._by_sku_id: dict[str, str] = {}  # SKU id -> seller SKU

    # -- calls ---------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> msgspec.Raw:
        """One signed call with the access token (refreshed once on a refusal); its ``data``."""
        url = f"{self._base}{path}"
        signed_path = urlsplit(url).path

        async def call(token: str) -> msgspec.Raw:
            query = {
                "app_key": self._app_key,
                "timestamp": str(int(self._wall())),
                "shop_cipher": self._shop_cipher,
                **(params or {}),
            }
            query["sign"] = sign_request(self._secret, signed_path, query, body or b"")
            headers = {"x-tts-access-token": token, "Content-Type": "application/json"}
            reply = await send(self._session, method, url, timeout=self._timeout,
                               headers=headers, body=body, params=query)
            return self._data(reply)

        return await with_token(self.tokens, call)

    def _data(self, reply: HttpReply) -> msgspec.Raw:
        """``data`` of a successful answer, else the error its code (or status) means."""
        now = self._wall()
        try:
            head = _head(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            check(reply, now=now)
            raise Retryable(f"TikTok Shop answered HTTP {reply.status} without its envelope: "
                            f"{reply.text()}") from None
        if head.code == 0 and 200 <= reply.status < 300:
            return head.data
        what = f"TikTok Shop {head.code}: {head.message} (request_id {head.request_id})"
        if head.code in THROTTLE_CODES:
            raise Throttled(what, retry_after=reply.retry_after(now) or DEFAULT_THROTTLE_S)
        if head.code in AUTH_CODES:
            raise Unauthorized(what)
        if head.code in RETRYABLE_CODES:
            raise Retryable(what, retry_after=reply.retry_after(now))
        if head.code in REFUSED_CODES:
            raise _ApiError(what, code=head.code)
        if reply.status == 429:
            raise Throttled(what, retry_after=reply.retry_after(now) or DEFAULT_THROTTLE_S)
        check(reply, now=now)  # any other failing status keeps its HTTP meaning
        raise _ApiError(what, code=head.code)

    async def _fetch_token(self) -> TokenReply:
        """The configured access token first; after a refusal, a refreshed one (without a
        refresh token the configured one is all there is)."""
        if self._refresh is None or (self._access is not None and self.tokens.fetches == 0):
            assert self._access is not None
            return TokenReply(access_token=self._access, expires_in=CONFIGURED_TOKEN_S)
        reply = await send(
            self._session,
            "GET",
            f"{self._auth_url}/api/v2/token/refresh",
            timeout=self._timeout,
            headers={"Accept": "application/json"},
            params={
                "app_key": self._app_key,
                "app_secret": self._secret,
                "refresh_token": self._refresh,
                "grant_type": "refresh_token",
            },
        )
        try:
            head = _head(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            check(reply, now=self._wall())
            raise Retryable(f"the TikTok Shop token endpoint answered no envelope: "
                            f"{reply.text()}") from None
        if head.code != 0:
            what = f"TikTok Shop refused the token refresh: {head.code} {head.message}"
            if head.code in THROTTLE_CODES or reply.status == 429:
                raise Throttled(what, retry_after=reply.retry_after() or DEFAULT_THROTTLE_S)
            if head.code in RETRYABLE_CODES or reply.status >= 500:
                raise Retryable(what)
            raise Unauthorized(what)  # a revoked or expired refresh token: an operator's job
        data: _TokenData = _decode(head.data, _TokenData, "token")
        if data.refresh_token:
            self._refresh = data.refresh_token  # TikTok may rotate it; keep the newest
        lifetime = max(1.0, data.access_token_expire_in - self._wall())
        log.info("tiktok_token_refreshed", channel=self.channel.id, expires_in_s=int(lifetime))
        return TokenReply(access_token=data.access_token, expires_in=lifetime)

    # -- seller SKU -> ids ---------------------------------------------------------------------

    async def _resolve(self, skus: Sequence[str]) -> dict[str, _Listing]:
        """The ids of the seller SKUs the shop lists (searching the ones not cached yet)."""
        missing = [sku for sku in dict.fromkeys(skus) if sku not in self._listings]
        for start in range(0, len(missing), SEARCH_PAGE):
            chunk = missing[start:start + SEARCH_PAGE]
            wanted = set(chunk)
            page_token = ""
            body = _encode(_SearchBody(seller_skus=chunk))
            while wanted:
                params = {"page_size": str(SEARCH_PAGE)}
                if page_token:
                    params["page_token"] = page_token
                raw = await self._request("POST", f"/product/{API_VERSION}/products/search",
                                          params=params, body=body)
                page: _SearchData = _decode(raw, _SearchData, "product search")
                for product in page.products or ():
                    if product.status == "DELETED":
                        continue
                    for sku in product.skus:
                        if sku.seller_sku and sku.seller_sku not in self._listings:
                            self._remember(sku.seller_sku, _Listing(product.id, sku.id))
                        wanted.discard(sku.seller_sku)
                page_token = page.next_page_token
                if not page_token:
                    break
        return {sku: self._listings[sku] for sku in skus if sku in self._listings}

    def _remember(self, seller_sku: str, listing: _Listing) -> None:
        self._listings[seller_sku] = listing
        self._by_sku_id[listing.sku_id] = seller_sku

    def _forget(self, skus: Sequence[str]) -> None:
        for sku in skus:
            listing = self._listings.pop(sku, None)
            if listing is not None:
                self._by_sku_id.pop(listing.sku_id, None)

    # -- push ----------------------------------------------------------------------------------

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """One inventory update per product; per-SKU results, or the shared failure raised."""
        failures: dict[str, PushResult] = {}
        wanted: dict[str, int] = {}
        for update in updates:
            if update.available < 0:
                failures[update.sku] = _failed(update.sku, "permanent", "negative quantity "
                                               f"{update.available}: TikTok Shop takes >= 0")
            elif update.available > MAX_QUANTITY:
                failures[update.sku] = _failed(
                    update.sku, "permanent",
                    f"{update.available} units: TikTok Shop takes less than 99999 per warehouse",
                )
            else:
                wanted[update.sku] = update.available
        shared: ChannelError | None = None
        try:
            listings = await self._resolve(list(wanted))
        except ChannelError as exc:
            if not failures:
                raise
            shared, listings = exc, {}
            for sku in wanted:
                failures[sku] = _from_error(sku, exc)
        if shared is None:
            for sku in wanted:
                if sku not in listings:
                    failures[sku] = _failed(sku, "permanent", "not listed on TikTok Shop: no "
                                            "product of the shop has this seller SKU")
        by_product: dict[str, list[str]] = {}
        for sku, listing in listings.items():
            by_product.setdefault(listing.product_id, []).append(sku)
        affected = 0  # SKUs whose result is the shared failure
        for product_id, skus in by_product.items():
            if shared is not None:  # the API is throttling or failing: do not call again
                failures.update({sku: _from_error(sku, shared) for sku in skus})
                affected += len(skus)
                continue
            try:
                failures.update(await self._update(product_id, skus, listings, wanted))
            except ChannelError as exc:
                if isinstance(exc, _ApiError) and exc.code in STALE_CODES:
                    self._forget(skus)
                elif not isinstance(exc, _ApiError) or exc.code in REFUSED_CODES:
                    shared = exc  # not about this product: the next call would fail alike
                    affected += len(skus)
                failures.update({sku: _from_error(sku, exc) for sku in skus})
        if shared is not None and affected == len({u.sku for u in updates}):
            raise shared
        return [failures.get(u.sku) or PushResult(sku=u.sku, outcome="ok") for u in updates]

    async def _update(
        self,
        product_id: str,
        skus: list[str],
        listings: Mapping[str, _Listing],
        quantities: Mapping[str, int],
    ) -> dict[str, PushResult]:
        body = _UpdateBody(skus=[
            _SkuUpdate(
                id=listings[sku].sku_id,
                inventory=[_InventoryUpdate(warehouse_id=self._warehouse,
                                            quantity=quantities[sku])],
            )
            for sku in skus
        ])
        raw = await self._request(
            "POST", f"/product/{API_VERSION}/products/{product_id}/inventory/update",
            body=_encode(body),
        )
        data: _UpdateData = _decode(raw, _UpdateData, "inventory update answer")
        by_id = {listings[sku].sku_id: sku for sku in skus}
        out: dict[str, PushResult] = {}
        for error in data.errors or ():
            detail = error.detail or _ErrorDetail()
            sku = by_id.get(detail.sku_id)
            if sku is None:
                continue
            code, message = error.code, error.message
            for extra in detail.extra_errors:
                code, message = extra.code or code, extra.message or message
                break
            text = f"TikTok Shop {code}: {message}"
            if code in THROTTLE_CODES:
                out[sku] = _failed(sku, "throttled", text, DEFAULT_THROTTLE_S)
            elif code in RETRYABLE_CODES:
                out[sku] = _failed(sku, "retryable", text)
            else:
                if code in STALE_CODES:
                    self._forget([sku])
                out[sku] = _failed(sku, "permanent", text)
        return out

    # -- read-back -----------------------------------------------------------------------------

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """What the shop shows at ``options.warehouse_id``; SKUs it does not list are left out."""
        listings = await self._resolve(skus)
        by_product: dict[str, set[str]] = {}
        for sku, listing in listings.items():
            by_product.setdefault(listing.product_id, set()).add(sku)
        out: dict[str, int] = {}
        for product_id, members in by_product.items():
            try:
                # Paced to the API's per-second limit: throttle answers are waited out.
                path = f"/product/{API_VERSION}/products/{product_id}"
                raw = await waiting_out_throttles(functools.partial(self._request, "GET", path))
            except _ApiError as exc:
                if exc.code in STALE_CODES:
                    self._forget(sorted(members))
                    continue
                raise
            product: _Product = _decode(raw, _Product, "product")
            for entry in product.skus:
                if entry.seller_sku in members:
                    out[entry.seller_sku] = sum(
                        inv.quantity for inv in entry.inventory
                        if inv.warehouse_id == self._warehouse
                    )
        return out

    # -- webhooks ------------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[dict[str, object]]:
        """Verify and translate what needs no call back: a cancellation or fulfilment (the whole
        order); other types and statuses make no event. A creation is refused (BadWebhook): its
        lines need Get Order Detail, which only ``parse_webhook_async`` calls."""
        change = self._change(headers, body)
        if change is None:
            return []
        if change.kind == "created":
            raise BadWebhook(
                f"order {change.order_id} was created: its lines need Get Order Detail, which "
                "only parse_webhook_async calls"
            )
        return [change.whole_order()]

    async def parse_webhook_async(
        self, headers: Mapping[str, str], body: bytes
    ) -> list[dict[str, object]]:
        """Verify and translate as ``parse_webhook``, and a creation too: its ``order.created``
        from Get Order Detail, called now within ``options.timeout_s``. The lookup's
        ChannelErrors propagate (the daemon answers 503 and TikTok delivers the webhook again)."""
        change = self._change(headers, body)
        if change is None:
            return []
        if change.kind != "created":
            return [change.whole_order()]
        limit = self._timeout.total
        try:
            async with asyncio.timeout(limit):  # token refresh and retry included
                return await self.order_created(change.order_id, change.event_id)
        except TimeoutError:
            raise Retryable(f"Get Order Detail of order {change.order_id} took over "
                            f"{limit} s") from None

    def _change(self, headers: Mapping[str, str], body: bytes) -> _Change | None:
        """Verify ``Authorization`` and decode; the order status change, or None for a webhook
        that makes no event (another type, a status we do not act on)."""
        signature = header(headers, "Authorization")
        if not signature:
            raise BadWebhook("missing the Authorization signature", unauthorized=True)
        if not verify(self._secret, self._app_key.encode() + body, signature):
            raise BadWebhook("the Authorization signature does not match the body",
                             unauthorized=True)
        try:
            note = _notification(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadWebhook(f"not a TikTok Shop webhook: {exc}") from None
        if self._shop_id is not None and note.shop_id and note.shop_id != self._shop_id:
            raise BadWebhook(f"shop_id {note.shop_id!r} is not this channel's shop")
        if note.type != ORDER_STATUS_CHANGE:
            return None
        try:
            change = msgspec.json.decode(note.data, type=_OrderStatus)
            msgspec.convert(change.order_id, Ref)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadWebhook(f"data of an order status change: {exc}") from None
        kind = STATUS_EVENTS.get(change.order_status)
        if kind is None:
            return None
        return _Change(self.channel.id, change.order_id, kind)

    async def order_created(self, order_id: str, event_id: str) -> list[dict[str, object]]:
        """The ``order.created`` event of ``order_id`` from Get Order Detail; empty (logged)
        when TikTok has no such order, it is already cancelled, or no line has a seller SKU."""
        raw = await self._request("GET", f"/order/{API_VERSION}/orders", params={"ids": order_id})
        data: _OrdersData = _decode(raw, _OrdersData, "order detail")
        order = next((o for o in data.orders or () if o.id == order_id), None)
        bound = log.bind(channel=self.channel.id, order_id=order_id, event_id=event_id)
        if order is None:
            # Signed, of this shop, yet unknown to the shop's API: asking again (a 503 and a
            # redelivery) would get the same answer, so acknowledge it and say so.
            bound.error("tiktok_order_unknown")
            return []
        if order.status == "CANCELLED":
            # Cancelled before we looked (e.g. while this webhook was being redelivered): no
            # hold to start, and TikTok has put the units back on the listing.
            bound.info("tiktok_order_cancelled_before_lookup")
            return []
        units: Counter[str] = Counter()
        for item in order.line_items:
            if item.display_status == "CANCELLED":
                continue
            sku = item.seller_sku or self._by_sku_id.get(item.sku_id, "")
            if sku and not holdable_sku(sku):
                bound.warning("order_line_sku_not_holdable", sku=sku[:200])
            elif sku:
                units[sku] += 1  # one line item per unit
            else:
                bound.warning("tiktok_line_without_seller_sku", sku_id=item.sku_id)
        if not units:
            bound.error("tiktok_order_without_lines")
            return []
        event: dict[str, object] = {
            "id": event_id,
            "type": "order.created",
            "channel": self.channel.id,
            "order_id": order_id,
            "lines": [{"sku": sku, "qty": qty} for sku, qty in units.items()],
        }
        ship_to = _ship_to(order.recipient_address)
        if ship_to:
            event["ship_to"] = ship_to
        return [event]


def _ship_to(address: _Address | None) -> dict[str, str]:
    if address is None:
        return {}
    out: dict[str, str] = {}
    if address.region_code:
        out["country"] = address.region_code
    state = next((d.address_name for d in address.district_info if d.address_level == "L1"), "")
    if state:
        code = _STATE_CODES.get(state.lower()) if address.region_code == "US" else None
        out["region"] = code or state
    if address.postal_code:
        out["postal_code"] = address.postal_code
    return out


def _failed(sku: str, outcome: Outcome, error: str, retry_after: float | None = None) -> PushResult:
    return PushResult(sku=sku, outcome=outcome, error=error, retry_after=retry_after)


def _from_error(sku: str, exc: ChannelError) -> PushResult:
    if isinstance(exc, Throttled):
        return _failed(sku, "throttled", exc.message, exc.retry_after)
    if isinstance(exc, Permanent):
        return _failed(sku, "permanent", exc.message)
    return _failed(sku, "retryable", exc.message, exc.retry_after)

