"""A TikTok Shop (Partner API 202309) for the daemon to talk to: catalogue, inventory, orders.

It checks what the real service checks, in the same order, and answers in its envelope
``{"code", "message", "request_id", "data"}`` (sources: ``docs/channels/tiktok.md`` and the
constants below; the signatures are ``signing.py``'s):

- ``app_key`` (36009004, HTTP 400), a ``sign`` and a ``timestamp`` within 5 minutes (36009004),
  the signature itself (106001, HTTP 401), ``shop_cipher`` (36009004), the access token in
  ``x-tts-access-token`` (105001 invalid / 105002 expired, HTTP 401);
- a per-second limit per API (``limits.TokenBucket``; ``options.sim_rate_per_s``, default 10,
  burst ``options.sim_burst``): over it, HTTP 429 with 36009002 "Too many requests";
- business errors with HTTP 200 and their code: an unknown product 12052260; per SKU in
  ``data.errors``: an unknown SKU id 12019022, an unknown warehouse 12052097, a quantity outside
  0..99998 12052055.

Routes (relative to the channel's url): ``POST /product/202309/products/search``,
``GET /product/202309/products/{id}``, ``POST /product/202309/products/{id}/inventory/update``,
``GET /order/202309/orders?ids=``, and the auth host's ``GET /api/v2/token/refresh`` (point
``options.auth_url`` at the channel's url to use it).

The catalogue holds the seller SKUs the seller listed (``SimChannel.list_skus``, the ``/_sim``
catalogue route, a quantity set behind our back), except those in ``unlisted`` or starting with
``options.unlisted_prefix``. A SKU not in it is what TikTok answers for a seller SKU the shop has
no product for: Search Products finds nothing for it (``data.products`` empty, ``total_count``
0), and an inventory update naming a SKU id the shop does not have is 12019022; SKUs
``A-B-C`` and ``A-B-D`` are two SKUs of one product ``A-B`` (the part before the last ``-``), so
batches span several products. ``quantities`` is what it was told for ``options.warehouse_id``.
Orders notify as TikTok does: an order status change webhook (type 1) signed in
``Authorization``, without line items, which Get Order Detail then serves one line item per unit.
"""

from __future__ import annotations

import hmac
import itertools
import random
from collections import deque
from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..core.config import Channel, Faults
from .core import (
    SimChannel,
    SimOrder,
    json_response,
    option_text,
    required_secret,
    secret_if_set,
)
from .limits import TokenBucket
from .signing import TIKTOK_WEBHOOK_SIGNATURE, tiktok_request_sign, tiktok_webhook_signature

__all__ = ["TikTokShopSim", "create"]

#: The Partner API version in every path: "all TikTok Shop APIs before version 202309 are
#: considered legacy" (partner.tiktokshop.com docv2, API reference landing page).
API_VERSION = "202309"
#: Update Inventory, ``skus[].inventory[].quantity``: "The value should be non-negative numbers
#: (include number 0) and less than 99999" (partner.tiktokshop.com docv2 "Update Inventory"
#: 202309, quoted by help.useresponse.com "TikTok Update Stock").
MAX_QUANTITY = 99_998
#: How far a request's timestamp may be from the service's clock.
TIMESTAMP_SKEW_S = 300
TOKEN_LIFETIME_S = 7 * 86_400

_ORDER_STATUS = {
    "created": "AWAITING_SHIPMENT",
    "cancelled": "CANCELLED",
    "fulfilled": "IN_TRANSIT",
    "refunded": "COMPLETED",
}


#: ``recipient_address.district_info``, level L1 ("State"), names the state in full: the US
#: Postal Service's state abbreviations (USPS Publication 28, appendix B) -> names.
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


class _SearchBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    seller_skus: list[str] | None = None
    status: str | None = None


class _InventoryIn(msgspec.Struct, kw_only=True):
    quantity: int
    warehouse_id: str | None = None


class _SkuIn(msgspec.Struct, kw_only=True):
    id: str
    inventory: list[_InventoryIn] | None = None


class _UpdateIn(msgspec.Struct, kw_only=True):
    skus: list[_SkuIn]


class _Product(msgspec.Struct, kw_only=True):
    id: str
    key: str
    skus: dict[str, str]  # seller SKU -> SKU id
    created: int


class _Refusal(Exception):
    """A request the service refuses before its handler runs."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


def create(channel: Channel, faults: Faults, rng: random.Random) -> TikTokShopSim:
    """The shop of a ``tiktok`` channel (credentials from the same env vars as the adapter)."""
    app_secret = required_secret(channel, "options.app_secret_env")
    return TikTokShopSim(channel, app_secret=app_secret, faults=faults, rng=rng)


class TikTokShopSim(SimChannel):
    """One TikTok shop with one warehouse of ours (``options.warehouse_id``)."""

    kind = "tiktok"

    def __init__(self, channel: Channel, *, app_secret: str, **kwargs: Any) -> None:
        super().__init__(channel, **kwargs)
        options = channel.options
        self.app_key = option_text(channel, "app_key")
        self.app_secret = app_secret
        self.shop_cipher = option_text(channel, "shop_cipher")
        self.warehouse_id = option_text(channel, "warehouse_id")
        self.shop_id = str(options.get("shop_id", "7494049642642000000"))
        #: Warehouses of the shop: ours and a second one that is not ours.
        self.warehouses = {self.warehouse_id, "7068517275539719999"}
        access = secret_if_set(channel, "token_env")
        self.tokens: set[str] = {access} if access else set()
        self.expired: set[str] = set()
        refresh = secret_if_set(channel, "options.refresh_token_env")
        self.refresh_tokens: set[str] = {refresh} if refresh else set()
        self.refreshes = 0
        # Option values may be lists of strings (core.config.OptionValue); these are numbers.
        rate = options.get("sim_rate_per_s", 10.0)
        assert not isinstance(rate, list), "options.sim_rate_per_s is a number"
        self.rate = float(rate)
        burst = options.get("sim_burst", max(1, int(self.rate)))
        assert not isinstance(burst, list), "options.sim_burst is a number"
        self.burst = int(burst)
        self._buckets: dict[str, TokenBucket] = {}
        prefix = options.get("unlisted_prefix")
        self.unlisted_prefix = str(prefix) if prefix else None
        self.unlisted: set[str] = set()
        self.products: dict[str, _Product] = {}
        self._by_key: dict[str, str] = {}  # product key -> product id
        self._sku_ids = itertools.count(1729593000000000001)
        self._product_ids = itertools.count(1729592969712207001)
        self._request_ids = itertools.count(1)
        self._notifications = itertools.count(1)
        #: (operation, query, body) of every request that passed the checks (tests look at them)
        self.received: deque[tuple[str, dict[str, str], bytes]] = deque(maxlen=1000)

    # -- routes --------------------------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        """The Partner API routes the adapter uses and the auth host's refresh route."""
        product = f"/product/{API_VERSION}/products"
        return [
            self.route(f"{product}/search", self._search, methods=["POST"],
                       operation="search_products"),
            self.route(f"{product}/{{product_id}}", self._get_product, methods=["GET"],
                       operation="get_product"),
            self.route(f"{product}/{{product_id}}/inventory/update", self._update_inventory,
                       methods=["POST"], operation="update_inventory"),
            self.route(f"/order/{API_VERSION}/orders", self._get_orders, methods=["GET"],
                       operation="get_order_detail"),
            self.route("/api/v2/token/refresh", self._refresh, methods=["GET"],
                       operation="refresh_token"),
        ]

    def throttle_response(self) -> Response:
        """HTTP 429 with code 36009002, as TikTok answers a request over the limit."""
        return self._answer(None, code=36009002, status=429, message=(
            "Too many requests. You've made too many requests in a short period of time."))

    def error_response(self, status: int) -> Response:
        """TikTok's internal error (36009003) with the injected status."""
        return self._answer(None, code=36009003, status=status, message=(
            "Internal error. Please try again. If the issue persists after multiple attempts, "
            "please contact platform support."))

    # -- the catalogue -------------------------------------------------------------------------

    def listable(self, seller_sku: str) -> bool:
        """Whether the shop has a product with this seller SKU: the seller listed it
        (``is_listed``), and no test knob (``unlisted``, ``options.unlisted_prefix``) hides it."""
        if not self.is_listed(seller_sku) or seller_sku in self.unlisted:
            return False
        return not (self.unlisted_prefix and seller_sku.startswith(self.unlisted_prefix))

    def listing(self, seller_sku: str) -> tuple[str, str] | None:
        """(product id, SKU id) of a seller SKU, listing it on first use; None when unlisted."""
        if not self.listable(seller_sku):
            return None
        key = seller_sku.rsplit("-", 1)[0] if "-" in seller_sku else seller_sku
        product_id = self._by_key.get(key)
        if product_id is None:
            product_id = str(next(self._product_ids))
            self._by_key[key] = product_id
            self.products[product_id] = _Product(
                id=product_id, key=key, skus={}, created=int(self.wall())
            )
        product = self.products[product_id]
        if seller_sku not in product.skus:
            product.skus[seller_sku] = str(next(self._sku_ids))
        return product_id, product.skus[seller_sku]

    def set_quantity(self, sku: str, quantity: int) -> None:
        """A manual edit in Seller Center (lists the SKU if it was not)."""
        super().set_quantity(sku, quantity)
        self.listing(sku)

    def expire_tokens(self) -> None:
        """Every access token issued so far expires (the next call answers 105002)."""
        self.expired |= self.tokens
        self.tokens.clear()

    def _product_json(self, product: _Product) -> dict[str, Any]:
        return {
            "id": product.id,
            "title": f"Simulated {product.key}",
            "status": "ACTIVATE",
            "skus": [
                {
                    "id": sku_id,
                    "seller_sku": seller_sku,
                    "price": {"currency": "USD", "sale_price": "19.99",
                              "tax_exclusive_price": "19.99"},
                    "inventory": [
                        {"warehouse_id": self.warehouse_id,
                         "quantity": self.quantities.get(seller_sku, 0)},
                    ],
                }
                for seller_sku, sku_id in product.skus.items()
            ],
            "sales_regions": ["US"],
            "create_time": product.created,
            "update_time": product.created,
            "is_not_for_sale": False,
        }

    # -- checks --------------------------------------------------------------------------------

    def _answer(
        self, data: Any, *, code: int = 0, message: str = "Success", status: int = 200
    ) -> Response:
        request_id = f"{int(self.wall()):d}{next(self._request_ids):010d}SIM"
        return json_response(
            {"code": code, "message": message, "request_id": request_id, "data": data}, status
        )

    def _refuse(self, code: int, message: str, status: int) -> _Refusal:
        return _Refusal(self._answer(None, code=code, message=message, status=status))

    async def _checked(self, request: Request, operation: str) -> tuple[dict[str, str], bytes]:
        """The query and body of a request that passes TikTok's checks, else _Refusal."""
        query = dict(request.query_params)
        body = await request.body() if request.method != "GET" else b""
        if query.get("app_key") != self.app_key:
            raise self._refuse(36009004, "Invalid credentials. Invalid `app_key` query "
                               "parameter.", 400)
        bucket = self._buckets.get(operation)
        if bucket is None:
            bucket = self._buckets[operation] = TokenBucket(self.rate, self.burst, self.clock)
        if not bucket.take():
            self.calls[f"{operation}:throttled"] += 1
            raise _Refusal(self.throttle_response())
        given = query.get("sign")
        if not given:
            raise self._refuse(36009004, "Missing credentials. The request does not include a "
                               "required signature in the query.", 400)
        try:
            stamp = int(query.get("timestamp", ""))
        except ValueError:
            raise self._refuse(36009004, "Invalid timestamp. The `timestamp` query parameter "
                               "is missing or not a number.", 400) from None
        if abs(self.wall() - stamp) > TIMESTAMP_SKEW_S:
            raise self._refuse(36009004, "Invalid timestamp. The value of the `timestamp` query "
                               "parameter must not be earlier than 5 minutes before the current "
                               "time.", 400)
        expected = tiktok_request_sign(self.app_secret, request.url.path, query, body,
                                       content_type=request.headers.get("content-type", ""))
        # Bytes, so that a non-ASCII ``sign`` is refused like any wrong one instead of raising.
        if not hmac.compare_digest(expected.encode(), given.lower().encode("utf-8", "replace")):
            raise self._refuse(106001, "Invalid signature. Please check the signature "
                               "algorithm.", 401)
        if query.get("shop_cipher") != self.shop_cipher:
            raise self._refuse(36009004, "Invalid identifier. The `shop_cipher` query parameter "
                               "is invalid.", 400)
        token = request.headers.get("x-tts-access-token", "")
        if token in self.expired:
            raise self._refuse(105002, "Expired credentials. The `x-tts-access-token` header "
                               "has expired.", 401)
        if token not in self.tokens:
            raise self._refuse(105001, "Invalid credentials. The `x-tts-access-token` header is "
                               "invalid.", 401)
        self.received.append((operation, query, body))
        return query, body

    # -- handlers ------------------------------------------------------------------------------

    async def _search(self, request: Request) -> Response:
        try:
            query, body = await self._checked(request, "search_products")
        except _Refusal as refusal:
            return refusal.response
        try:
            size = int(query.get("page_size", ""))
            offset = int(query.get("page_token") or 0)
        except ValueError:
            size, offset = 0, 0
        if not 1 <= size <= 100:
            return self._answer(None, code=36009004, status=400,
                                message="invalid param error: page_size must be 1..100")
        try:
            wanted = msgspec.json.decode(body or b"{}", type=_SearchBody)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._answer(None, code=36009004, status=400,
                                message=f"invalid param error: {exc}")
        if wanted.seller_skus is None:
            ids = sorted(self.products)
        else:
            found = (self.listing(sku) for sku in wanted.seller_skus)
            ids = sorted({hit[0] for hit in found if hit is not None})
        page = ids[offset:offset + size]
        more = offset + size < len(ids)
        return self._answer({
            "products": [self._product_json(self.products[pid]) for pid in page],
            "total_count": len(ids),
            "next_page_token": str(offset + size) if more else "",
        })

    async def _get_product(self, request: Request) -> Response:
        try:
            await self._checked(request, "get_product")
        except _Refusal as refusal:
            return refusal.response
        product = self.products.get(request.path_params["product_id"])
        if product is None:
            return self._answer(None, code=12052260, message="The product ID does not exist")
        return self._answer(self._product_json(product))

    async def _update_inventory(self, request: Request) -> Response:
        try:
            _, body = await self._checked(request, "update_inventory")
        except _Refusal as refusal:
            return refusal.response
        product = self.products.get(request.path_params["product_id"])
        if product is None:
            return self._answer(None, code=12052260, message="The product ID does not exist")
        try:
            update = msgspec.json.decode(body, type=_UpdateIn)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._answer(None, code=36009004, status=400,
                                message=f"invalid param error: {exc}")
        if not update.skus:
            return self._answer(None, code=36009004, status=400,
                                message="invalid param error: skus is required")
        for i, sku in enumerate(update.skus):
            if not sku.inventory:
                return self._answer(None, code=36009004, status=400, message=(
                    f"invalid param error: Inventory of Skus[{i}] is required"))
        by_id = {sku_id: seller for seller, sku_id in product.skus.items()}
        errors: list[dict[str, Any]] = []
        changes: dict[str, int] = {}
        for sku in update.skus:
            seller = by_id.get(sku.id)
            if seller is None:
                errors.append({"code": 12019022, "message": "sku ID is invalid",
                               "detail": {"sku_id": sku.id, "extra_errors": []}})
                continue
            extra: list[dict[str, Any]] = []
            for inv in sku.inventory or ():
                warehouse = inv.warehouse_id or self.warehouse_id  # the default warehouse
                if warehouse not in self.warehouses:
                    extra.append({"warehouse_id": warehouse, "code": 12052097,
                                  "message": "The warehouse does not exist"})
                elif not 0 <= inv.quantity <= MAX_QUANTITY:
                    extra.append({"warehouse_id": warehouse, "code": 12052055, "message": (
                        "The SKU inventory quantity for the warehouse must be within allowed "
                        "limits.")})
                elif warehouse == self.warehouse_id:
                    changes[seller] = inv.quantity
            if extra:
                changes.pop(seller, None)
                errors.append({"code": extra[0]["code"], "message": "Failed to update inventory",
                               "detail": {"sku_id": sku.id, "extra_errors": extra}})
        self.quantities.update(changes)
        return self._answer({"errors": errors} if errors else {})

    async def _get_orders(self, request: Request) -> Response:
        try:
            query, _ = await self._checked(request, "get_order_detail")
        except _Refusal as refusal:
            return refusal.response
        ids = [i for i in query.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 50:
            return self._answer(None, code=36009004, status=400,
                                message="invalid param error: ids must hold 1..50 order ids")
        orders = [self._order_json(self.orders[i]) for i in ids if i in self.orders]
        return self._answer({"orders": orders})

    async def _refresh(self, request: Request) -> Response:
        query = dict(request.query_params)
        if query.get("app_key") != self.app_key or query.get("app_secret") != self.app_secret:
            return self._answer(None, code=36004004, message="invalid app_key or app_secret")
        if query.get("grant_type") != "refresh_token":
            return self._answer(None, code=36004004, message="invalid grant_type")
        if query.get("refresh_token") not in self.refresh_tokens:
            return self._answer(None, code=36004004, message="invalid refresh_token")
        self.refreshes += 1
        token = f"TTP_sim_{self.refreshes:06d}_{self.rng.getrandbits(48):012x}"
        self.tokens.add(token)
        now = int(self.wall())
        return self._answer({
            "access_token": token,
            "access_token_expire_in": now + TOKEN_LIFETIME_S,
            "refresh_token": query["refresh_token"],
            "refresh_token_expire_in": now + 365 * 86_400,
            "open_id": "sim-open-id",
            "seller_name": "Simulated shop",
            "seller_base_region": "US",
            "user_type": 0,
        }, message="success")

    # -- orders --------------------------------------------------------------------------------

    def _order_json(self, order: SimOrder) -> dict[str, Any]:
        status = _ORDER_STATUS.get(order.status, "AWAITING_SHIPMENT")
        items: list[dict[str, Any]] = []
        for line in order.lines:
            ids = self.listing(line.sku) or ("0", "0")
            for _ in range(line.qty):  # one line item per unit
                items.append({
                    "id": f"{order.order_id}{len(items) + 1:04d}",
                    "sku_id": ids[1],
                    "product_id": ids[0],
                    "product_name": f"Simulated {line.sku}",
                    "seller_sku": line.sku,
                    "display_status": status,
                    "sale_price": "19.99",
                    "currency": "USD",
                    "is_gift": False,
                })
        created = order.created_ms // 1000
        return {
            "id": order.order_id,
            "status": status,
            "create_time": created,
            "paid_time": created,
            "update_time": int(self.wall()),
            "fulfillment_type": "FULFILLMENT_BY_SELLER",
            "warehouse_id": self.warehouse_id,
            "line_items": items,
            "recipient_address": {
                "region_code": order.country,
                "district_info": [
                    {"address_level": "L0", "address_level_name": "Country",
                     "address_name": "United States" if order.country == "US" else order.country},
                    {"address_level": "L1", "address_level_name": "State",
                     "address_name": US_STATES.get(order.region, order.region)},
                ],
            },
        }

    def order_notification(self, order: SimOrder) -> tuple[dict[str, str], bytes] | None:
        """The order status change webhook (type 1), signed in ``Authorization``; refunds change
        no order status and send none."""
        if order.status == "refunded":
            return None
        now = int(self.wall())
        body = msgspec.json.encode({
            "type": 1,
            "tts_notification_id": f"{next(self._notifications):019d}",
            "shop_id": self.shop_id,
            "timestamp": now,
            "data": {
                "is_on_hold_order": False,
                "order_id": order.order_id,
                "order_status": _ORDER_STATUS[order.status],
                "update_time": now,
            },
        })
        headers = {
            "Content-Type": "application/json",
            TIKTOK_WEBHOOK_SIGNATURE: tiktok_webhook_signature(self.app_key, self.app_secret, body),
        }
        return headers, body
