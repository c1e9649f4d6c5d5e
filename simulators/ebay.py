"""A simulated eBay: the Inventory API's quantity and offer calls, getOrders and OAuth.

Mounted under the channel's url path, as api.ebay.com serves them under its root:

- ``POST /identity/v1/oauth2/token``: the refresh-token grant. Checks ``Authorization: Basic
  base64(client_id:client_secret)`` (401 ``invalid_client``), ``grant_type`` (400
  ``unsupported_grant_type``), the refresh token (400 ``invalid_grant``) and that the scope is
  within the consented one (400 ``invalid_scope``); answers ``{"access_token", "expires_in",
  "token_type": "User Access Token"}``. Tokens expire after ``token_lifetime_s`` (7200 s, as
  eBay's user tokens) on the simulator's clock; ``revoke_tokens()`` drops them all at once.
- ``POST /sell/inventory/v1/bulk_update_price_quantity``: ``Content-Type: application/json``
  (else 415, errorId 2005); at most ``max_skus_per_call`` SKUs (1: the method page's "Only one
  SKU (one product) can be updated per call"; the type page says up to 25) and 25 offers per
  SKU, else 400 with 25709. Per item: a missing sku or a missing/negative quantity is 400 with
  25709; a SKU the seller has not listed (``is_listed``) or in ``unlisted`` is 404 with 25702
  "SKU ... is not available in the system"; a SKU in ``system_error_skus`` is 500 with 25001;
  an ``offerId`` that is not a published offer of that SKU (or is repeated) is 400 with 25713
  "This Offer is not available". Each offer answers with its own entry (``offerId``); the call
  answers 200 when every entry did, else 207. A listing revised ``revisions_per_day`` times in
  the UTC day refuses more (eBay: "blocked from revising the item until the next calendar
  day"; it documents no errorId for it, so this simulator answers 400 with errorId 25099 of its
  own) and counts ``revision_limit:refused``.
- ``GET /sell/inventory/v1/offer?sku=&limit=&offset=`` (getOffers): the SKU's offers as
  ``EbayOfferDetailsWithAll`` (``offerId``, ``sku``, ``marketplaceId``, ``format``,
  ``availableQuantity``, ``status``, ``listing.listingId``); 404 with 25713 when it has none.
  ``add_offer`` makes one; an offer's own ``availableQuantity`` caps its listing
  (``listing_quantity``: the smaller of the two levels, as the bulk-updates guide says).
- ``POST /sell/inventory/v1/bulk_get_inventory_item`` (up to 25, else 400 with 25727; duplicate
  SKUs 400 with 25734) and ``GET /sell/inventory/v1/inventory_item/{sku}`` (404 with 25710 when
  not listed): the quantity in ``availability.shipToLocationAvailability.quantity``.
- ``GET /sell/fulfillment/v1/order`` (getOrders): ``simulators/ebay_orders.py``.
- Every call needs a live bearer token (else 401, errorId 1001 "Invalid access token") holding
  its API's scope (Inventory: ``sell.inventory``, reads also ``sell.inventory.readonly``;
  getOrders: ``sell.fulfillment`` or ``sell.fulfillment.readonly``; else 403, errorId 1100) and
  counts against ``call_limit``, a ``FixedWindow`` of eBay's per-day quota: over it, 429 with
  errorId 2001 "Too many requests". eBay documents no ``Retry-After`` on it (the reset time comes
  from the Analytics API's getRateLimits); ``announce_reset`` adds one.

Shapes and errorIds are those of eBay's Inventory API contract (sell_inventory_v1_oas3.json
1.18.5) and error pages; see ``docs/channels/ebay.md``, "Sources", for the list. Where the
contract leaves a per-item status open (an unknown SKU in a bulk call), the simulator answers
404. eBay sends no webhook invsync takes (``order_notification`` is None): its orders are
polled, and the order generator places them here for the poll to find (``orders_polled``).
"""

from __future__ import annotations

import base64
import hmac
import itertools
import math
import random
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..core.config import Channel, Faults
from .core import SimChannel, SimLine, SimOrder, json_response, required_secret
from .ebay_orders import SCOPES_FULFILLMENT, EbayOrders
from .limits import FixedWindow

__all__ = ["INVENTORY_CALLS_PER_DAY", "EbaySimulator", "SimOffer", "create"]

API_ROOT = "/sell/inventory/v1"
MAX_REQUESTS = 25
MAX_OFFERS = 25
SCOPE_INVENTORY = "https://api.ebay.com/oauth/api_scope/sell.inventory"
SCOPE_READONLY = "https://api.ebay.com/oauth/api_scope/sell.inventory.readonly"
#: The per-day quota enforced by default: a placeholder to check against eBay's call-limits
#: table (an app's real quota and reset time come from the Analytics API's getRateLimits).
INVENTORY_CALLS_PER_DAY = 2_000_000
DAY_S = 86_400.0
#: "Each listing can be revised up to 250 times in one calendar day."
REVISIONS_PER_DAY = 250
#: This simulator's own errorId for a listing past its daily revisions (eBay documents none).
REVISION_LIMIT_ERROR = 25099


def _error(
    error_id: int,
    message: str,
    *,
    domain: str = "API_INVENTORY",
    category: str = "REQUEST",
    long_message: str | None = None,
    parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One of eBay's ErrorDetailV3 objects."""
    err: dict[str, Any] = {"errorId": error_id, "domain": domain, "category": category,
                           "message": message}
    if domain == "API_INVENTORY":
        err["subdomain"] = "Selling"
    if long_message:
        err["longMessage"] = long_message
    if parameters:
        err["parameters"] = [{"name": k, "value": v} for k, v in parameters.items()]
    return err


def _errors(status: int, *errors: dict[str, Any], headers: dict[str, str] | None = None
            ) -> Response:
    return json_response({"errors": list(errors)}, status, headers)


def _invalid(field: str, detail: str = "") -> dict[str, Any]:
    return _error(25709, f"Invalid value for {field}. {detail}".strip(),
                  parameters={"fieldName": field})


def _not_available(sku: str) -> dict[str, Any]:
    return _error(25702, f"SKU {sku} is not available in the system",
                  parameters={"sku": sku})


def _offer_not_available(offer_id: str) -> dict[str, Any]:
    return _error(25713, f"This Offer is not available : {offer_id}.",
                  parameters={"offerId": offer_id})


def _system_error() -> dict[str, Any]:
    return _error(25001, "A system error has occurred.", category="APPLICATION")


class _Availability(msgspec.Struct, kw_only=True):
    quantity: int | None = None


class _Offer(msgspec.Struct, kw_only=True, rename="camel"):
    offer_id: str | None = None
    available_quantity: int | None = None
    price: dict[str, Any] | None = None


class _PriceQuantity(msgspec.Struct, kw_only=True, rename="camel"):
    sku: str | None = None
    ship_to_location_availability: _Availability | None = None
    offers: list[_Offer] | None = None


class _BulkPriceQuantity(msgspec.Struct, kw_only=True):
    requests: list[_PriceQuantity] | None = None


class _GetItem(msgspec.Struct, kw_only=True):
    sku: str | None = None


class _BulkGet(msgspec.Struct, kw_only=True):
    requests: list[_GetItem] | None = None


class _Token(msgspec.Struct, frozen=True, kw_only=True):
    expires_at: float
    scopes: frozenset[str]


class SimOffer(msgspec.Struct, kw_only=True):
    """One offer of a SKU on this eBay; ``available_quantity`` None: never set (no own cap)."""

    offer_id: str
    sku: str
    listing_id: str
    status: str = "PUBLISHED"
    format: str = "FIXED_PRICE"
    marketplace_id: str = "EBAY_US"
    available_quantity: int | None = None


def create(channel: Channel, faults: Faults, rng: random.Random) -> EbaySimulator:
    """eBay for an ``ebay`` channel, knowing the credentials its adapter is configured with."""
    client_id = required_secret(channel, "options.client_id_env")
    client_secret = required_secret(channel, "options.client_secret_env")
    return EbaySimulator(
        channel,
        refresh_token=required_secret(channel, "token_env"),
        client_id=client_id,
        client_secret=client_secret,
        faults=faults,
        rng=rng,
    )


class EbaySimulator(SimChannel):
    """eBay's Inventory API and getOrders for one seller, and its OAuth token endpoint.

    Test knobs: ``unlisted`` and ``system_error_skus`` (per-item failures),
    ``max_skus_per_call``, ``revisions_per_day``, ``token_lifetime_s``, ``revoke_tokens()``,
    ``refresh_token_revoked``, ``call_limit`` (replace it with a smaller ``FixedWindow``),
    ``announce_reset``, ``cancel_rate`` (how often the random traffic also cancels an open
    order); ``orders`` (``EbayOrders``) has the getOrders knobs. ``received`` keeps the headers
    and body of the last bulkUpdatePriceQuantity calls; ``revisions`` the day's count per listing.
    """

    kind = "ebay"
    #: No notification is sent: the daemon polls getOrders (the server's order generator still
    #: places orders here).
    orders_polled: ClassVar[bool] = True

    def __init__(
        self,
        channel: Channel,
        *,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(channel, **kwargs)
        self.refresh_token = refresh_token
        self.refresh_token_revoked = False
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        #: The scopes the seller consented to (what a refresh may ask for at most).
        self.consented = frozenset({SCOPE_INVENTORY, SCOPE_READONLY, *SCOPES_FULFILLMENT})
        self.token_lifetime_s = 7200.0
        self.tokens: dict[str, _Token] = {}
        self._serial = itertools.count(1)
        #: SKUs this seller has no inventory item for (even when listed).
        self.unlisted: set[str] = set()
        #: SKUs whose update fails with a per-item system error (500, errorId 25001).
        self.system_error_skus: set[str] = set()
        self.max_skus_per_call = 1
        self.revisions_per_day = REVISIONS_PER_DAY
        #: (UTC day, listing id) -> revisions that day.
        self.revisions: dict[tuple[str, str], int] = {}
        #: SKU -> its offers.
        self.offers: dict[str, list[SimOffer]] = {}
        self._offer_ids = itertools.count(5_000_000_001)
        self.call_limit = FixedWindow(INVENTORY_CALLS_PER_DAY, DAY_S, lambda: self.clock())
        self.announce_reset = False
        self.cancel_rate = 0.1
        self.received: deque[tuple[dict[str, str], bytes]] = deque(maxlen=100)
        self.orders_api = EbayOrders(self)

    def routes(self) -> Sequence[BaseRoute]:
        """The token endpoint, the Inventory API's quantity and offer routes, getOrders."""
        return [
            self.route("/identity/v1/oauth2/token", self._token, methods=["POST"],
                       operation="token"),
            self.route(f"{API_ROOT}/bulk_update_price_quantity", self._bulk_update,
                       methods=["POST"], operation="bulkUpdatePriceQuantity"),
            self.route(f"{API_ROOT}/bulk_get_inventory_item", self._bulk_get,
                       methods=["POST"], operation="bulkGetInventoryItem"),
            self.route(f"{API_ROOT}/inventory_item/{{sku:path}}", self._get_item,
                       methods=["GET"], operation="getInventoryItem"),
            self.route(f"{API_ROOT}/offer", self._get_offers, methods=["GET"],
                       operation="getOffers"),
            *self.orders_api.routes(),
        ]

    # -- eBay's answers to trouble ----------------------------------------------------------

    def throttle_response(self) -> Response:
        """429 with errorId 2001, as eBay answers an exhausted call limit."""
        headers = None
        if self.announce_reset:
            headers = {"Retry-After": str(max(1, math.ceil(self.call_limit.reset_in_s())))}
        return _errors(
            429,
            _error(2001, "Too many requests.", domain="ACCESS",
                   long_message="The request limit has been reached for the resource."),
            headers=headers,
        )

    def error_response(self, status: int) -> Response:
        """A 500 is the Inventory service's system error; other 5xx come from eBay's gateway."""
        if status == 500:
            return _errors(500, _system_error())
        return _errors(
            status,
            _error(2003, "Internal error", domain="ACCESS", category="APPLICATION",
                   long_message="There was a problem with an eBay internal system or process. "
                   "Contact eBay developer support for assistance."),
        )

    # -- OAuth ------------------------------------------------------------------------------

    def revoke_tokens(self) -> None:
        """Every access token handed out stops working (as when eBay revokes them early)."""
        self.tokens.clear()

    async def _token(self, request: Request) -> Response:
        def oauth_error(status: int, error: str, description: str) -> Response:
            return json_response({"error": error, "error_description": description}, status)

        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), self._basic.encode()):
            return oauth_error(401, "invalid_client", "client authentication failed")
        if not request.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return oauth_error(400, "invalid_request", "request is missing a required parameter "
                               "or malformed")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        if grant != "refresh_token":
            return oauth_error(400, "unsupported_grant_type",
                               "grant type in request is not supported by the authorization server")
        token = form.get("refresh_token", [""])[0]
        if self.refresh_token_revoked or not hmac.compare_digest(
            token.encode(), self.refresh_token.encode()
        ):
            return oauth_error(400, "invalid_grant", "the provided authorization refresh token is "
                               "invalid or was issued to another client")
        asked = form.get("scope", [""])[0].split()
        scopes = frozenset(asked) if asked else self.consented
        if not scopes <= self.consented:
            return oauth_error(400, "invalid_scope", "the requested scope is invalid, unknown, "
                               "malformed, or exceeds the scope granted to the client")
        access = f"v^1.1#i^1#sim{next(self._serial)}#{self.rng.getrandbits(64):016x}"
        self.tokens[access] = _Token(expires_at=self.clock() + self.token_lifetime_s,
                                     scopes=scopes)
        return json_response({"access_token": access,
                              "expires_in": max(1, round(self.token_lifetime_s)),
                              "token_type": "User Access Token"})

    def gate(self, request: Request, scopes: frozenset[str]) -> Response | None:
        """eBay's checks before any API call: token, scope, call limit."""
        header = request.headers.get("Authorization", "")
        token = self.tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if token is None or self.clock() >= token.expires_at:
            return _errors(
                401,
                _error(1001, "Invalid access token", domain="OAuth",
                       long_message="Invalid access token. Check the value of the Authorization "
                       "HTTP request header."),
            )
        if not token.scopes & scopes:
            return _errors(
                403,
                _error(1100, "Access denied", domain="ACCESS",
                       long_message="Insufficient permissions to fulfill the request."),
            )
        if not self.call_limit.take():
            self.calls["quota:exhausted"] += 1
            return self.throttle_response()
        return None

    @staticmethod
    def _json_body(request: Request) -> Response | None:
        if not request.headers.get("Content-Type", "").startswith("application/json"):
            return _errors(
                415,
                _error(2005, "Unsupported or not specified media type", domain="ACCESS",
                       long_message="Media type in the request is either missing or "
                       "unsupported."),
            )
        return None

    # -- the seller's catalogue: inventory items and offers ---------------------------------

    def has_item(self, sku: str) -> bool:
        """Whether this seller has an inventory item for ``sku`` (listed and not withdrawn)."""
        return self.is_listed(sku) and sku not in self.unlisted

    def add_offer(self, sku: str, *, available_quantity: int | None = None,
                  status: str = "PUBLISHED", format: str = "FIXED_PRICE") -> SimOffer:
        """The seller makes an offer of ``sku`` (published: a live listing of its own)."""
        number = next(self._offer_ids)
        offer = SimOffer(offer_id=str(number), sku=sku, listing_id=f"11{number}",
                         status=status, format=format, available_quantity=available_quantity)
        self.offers.setdefault(sku, []).append(offer)
        return offer

    def listing_quantity(self, offer: SimOffer) -> int:
        """What the offer's listing shows: the smaller of the item's and the offer's quantity."""
        total = self.quantities.get(offer.sku, 0)
        own = offer.available_quantity
        return total if own is None else min(total, own)

    def _day(self) -> str:
        return datetime.fromtimestamp(self.wall(), UTC).strftime("%Y%m%d")

    def place_order(
        self, lines: Sequence[SimLine] | None = None, *, order_id: str | None = None
    ) -> SimOrder | None:
        """An eBay sale (``ebay_orders.EbayOrders`` serves it to getOrders); the random traffic
        (no ``lines``) cancels an open order now and then (``cancel_rate``)."""
        if lines is None and self.rng.random() < self.cancel_rate:
            open_orders = sorted(o.order_id for o in self.orders.values()
                                 if o.status == "created")
            if open_orders:
                self.change_order(self.rng.choice(open_orders), "cancelled")
        order = super().place_order(lines, order_id=order_id or self.orders_api.new_order_id())
        if order is not None:
            for line in order.lines:
                for offer in self.offers.get(line.sku, []):
                    if offer.available_quantity is not None:
                        offer.available_quantity = max(0, offer.available_quantity - line.qty)
            self.orders_api.touched(order.order_id)
        return order

    def change_order(self, order_id: str, status: str) -> SimOrder:
        """Cancel, fulfil or refund an order; getOrders sees it as modified now."""
        order = super().change_order(order_id, status)
        self.orders_api.touched(order_id)
        return order

    # -- the Inventory API ------------------------------------------------------------------

    async def _bulk_update(self, request: Request) -> Response:
        refused = self.gate(request, frozenset({SCOPE_INVENTORY})) or self._json_body(request)
        if refused is not None:
            return refused
        raw = await request.body()
        self.received.append(({k.lower(): v for k, v in request.headers.items()}, raw))
        try:
            payload = msgspec.json.decode(raw, type=_BulkPriceQuantity)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _errors(400, _invalid("request", str(exc)))
        items = payload.requests or []
        if not items:
            return _errors(400, _invalid("requests", "At least one request is required."))
        if len(items) > MAX_REQUESTS:
            return _errors(400, _invalid(
                "requests", f"The number of requests cannot exceed {MAX_REQUESTS}."))
        if len({item.sku for item in items}) > self.max_skus_per_call:
            self.calls["skus_per_call:refused"] += 1
            return _errors(400, _invalid(
                "requests", f"Only {self.max_skus_per_call} SKU(s) can be updated per call."))
        responses = [entry for item in items for entry in self._update_one(item)]
        status = 200 if all(r["statusCode"] == 200 for r in responses) else 207
        return json_response({"responses": responses}, status)

    def _update_one(self, item: _PriceQuantity) -> list[dict[str, Any]]:
        """The response entries of one item: one per offer when it has offers, else one."""
        sku = item.sku
        if not sku:
            return [{"statusCode": 400, "errors": [_invalid("sku")]}]
        answer: dict[str, Any] = {"sku": sku}

        def each(status: int, *errors: dict[str, Any]) -> list[dict[str, Any]]:
            body = {**answer, "statusCode": status}
            if errors:
                body["errors"] = list(errors)
            if not item.offers:
                return [body]
            return [{**body, "offerId": o.offer_id or ""} for o in item.offers]

        ship = item.ship_to_location_availability
        if ship is None or ship.quantity is None or ship.quantity < 0:
            return each(400, _invalid("shipToLocationAvailability.quantity"))
        if not self.has_item(sku):
            return each(404, _not_available(sku))
        if sku in self.system_error_skus:
            return each(500, _system_error())
        offers = item.offers or []
        if len(offers) > MAX_OFFERS:
            return each(400, _invalid("offers", f"At most {MAX_OFFERS} offers per SKU."))
        published = {o.offer_id: o for o in self.offers.get(sku, []) if o.status == "PUBLISHED"}
        ids = [o.offer_id or "" for o in offers]
        bad = [i for i in ids if i not in published or ids.count(i) > 1]
        if bad:
            return [
                {**answer, "offerId": i, "statusCode": 400, "errors": [_offer_not_available(i)]}
                if i in bad else {**answer, "offerId": i, "statusCode": 400,
                                  "errors": [_invalid("offers")]}
                for i in ids
            ]
        if any(o.available_quantity is None or o.available_quantity < 0 for o in offers):
            return each(400, _invalid("offers.availableQuantity"))
        listings = {o.listing_id for o in self.offers.get(sku, []) if o.status == "PUBLISHED"}
        day = self._day()
        if any(self.revisions.get((day, lid), 0) >= self.revisions_per_day for lid in listings):
            self.calls["revision_limit:refused"] += 1
            return each(400, _error(
                REVISION_LIMIT_ERROR, "The listing was revised too often today (simulator).",
                long_message="Each listing can be revised up to 250 times in one calendar day."))
        self.quantities[sku] = ship.quantity
        for given in offers:
            published[given.offer_id or ""].available_quantity = given.available_quantity
        for lid in listings:
            self.revisions[(day, lid)] = self.revisions.get((day, lid), 0) + 1
        return each(200)

    def _item(self, sku: str) -> dict[str, Any]:
        """InventoryItemWithSkuLocaleGroupKeys, as much of it as this eBay keeps."""
        return {
            "sku": sku,
            "locale": "en_US",
            "availability": {
                "shipToLocationAvailability": {"quantity": self.quantities.get(sku, 0)}
            },
        }

    async def _bulk_get(self, request: Request) -> Response:
        scopes = frozenset({SCOPE_INVENTORY, SCOPE_READONLY})
        refused = self.gate(request, scopes) or self._json_body(request)
        if refused is not None:
            return refused
        try:
            payload = msgspec.json.decode(await request.body(), type=_BulkGet)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _errors(400, _invalid("request", str(exc)))
        skus = [item.sku or "" for item in payload.requests or []]
        if not skus or not all(skus):
            return _errors(400, _error(25708, "Invalid SKU."))
        if len(skus) > MAX_REQUESTS:
            return _errors(400, _error(
                25727, f"The number of InventoryItems in the request cannot exceed "
                f"{MAX_REQUESTS}."))
        if len(set(skus)) != len(skus):
            return _errors(400, _error(25734, "SKU should be unique in the request."))
        responses: list[dict[str, Any]] = []
        for sku in skus:
            if sku in self.system_error_skus:
                responses.append({"statusCode": 500, "sku": sku, "errors": [_system_error()]})
            elif self.has_item(sku):
                responses.append({"statusCode": 200, "sku": sku, "inventoryItem": self._item(sku)})
            else:
                responses.append({"statusCode": 404, "sku": sku, "errors": [_not_available(sku)]})
        status = 200 if all(r["statusCode"] == 200 for r in responses) else 207
        return json_response({"responses": responses}, status)

    async def _get_item(self, request: Request) -> Response:
        refused = self.gate(request, frozenset({SCOPE_INVENTORY, SCOPE_READONLY}))
        if refused is not None:
            return refused
        sku = request.path_params["sku"]
        if not self.has_item(sku):
            return _errors(404, _error(
                25710, "We didn't find the resource/entity you are requesting. Please verify "
                "the request"))
        return json_response(self._item(sku))

    async def _get_offers(self, request: Request) -> Response:
        refused = self.gate(request, frozenset({SCOPE_INVENTORY, SCOPE_READONLY}))
        if refused is not None:
            return refused
        query = request.query_params
        sku = query.get("sku", "")
        if not sku:
            return _errors(400, _invalid("sku", "The sku query parameter is required."))
        try:
            limit = int(query.get("limit", "100"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return _errors(400, _invalid("limit/offset"))
        if limit < 1 or offset < 0:
            return _errors(400, _invalid("limit/offset"))
        offers = self.offers.get(sku, [])
        if not offers:
            return _errors(404, _offer_not_available(sku))
        page = offers[offset : offset + limit]
        body: dict[str, Any] = {
            "href": str(request.url),
            "limit": limit,
            "size": len(page),
            "total": len(offers),
            "offers": [
                {
                    "offerId": o.offer_id,
                    "sku": o.sku,
                    "marketplaceId": o.marketplace_id,
                    "format": o.format,
                    "status": o.status,
                    "availableQuantity": o.available_quantity or 0,
                    **({"listing": {"listingId": o.listing_id, "listingStatus": "ACTIVE"}}
                       if o.status == "PUBLISHED" else {}),
                }
                for o in page
            ],
        }
        if offset + limit < len(offers):
            body["next"] = str(request.url.include_query_params(offset=offset + limit))
        return json_response(body)
