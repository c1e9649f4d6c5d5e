"""eBay Sell Inventory API: the inventory item's ship-to-home quantity, 25 SKUs per call.

What it follows (eBay's OpenAPI contract of the Inventory API, ``sell_inventory_v1_oas3.json``
v1.18.5, as published by eBay and mirrored in SDKs generated from it, e.g. the repository
``agtt/ebay-openapi-inventory`` ``docs/*.md``; and the reference pages on developer.ebay.com):

- ``POST {url}/sell/inventory/v1/bulk_update_price_quantity`` (bulkUpdatePriceQuantity), body
  ``BulkPriceQuantity {requests: [PriceQuantity {sku, shipToLocationAvailability {quantity}}]}``,
  "up to 25" items (``/api-docs/sell/inventory/types/slr:BulkPriceQuantity``). Headers:
  ``Authorization`` and ``Content-Type: application/json`` are required by the contract; we also
  send ``Content-Language``/``Accept-Language`` (``options.content_language``), which the other
  Inventory calls require and which sets the language of eBay's error messages.
- The answer is ``BulkPriceQuantityResponse {responses: [PriceQuantityResponse {statusCode, sku,
  offerId, errors, warnings}]}``: HTTP 200 when every item succeeded, 207 (Multi-Status) when
  some did not; each item carries its own HTTP-like ``statusCode`` (200 = updated).
- Errors are ``{"errors": [ErrorDetailV3 {errorId, domain, subdomain, category, message,
  longMessage, parameters}]}`` (``/develop/api/sell/error_codes``, "Handling error messages").
  Per item: 5xx / 25001 "A system error has occurred" / 25025 "Concurrent access ... try again
  later" are retryable; 429 / 2001 "Too many requests" throttled; any other 4xx (25702 "SKU ... is
  not available in the system", 25709 "Invalid value for ...", 25759 auction allocation) is
  permanent for that SKU only. Whole-call statuses go through ``http.check`` (429 -> Throttled,
  5xx -> Retryable, 401/403 -> Unauthorized, other 4xx -> Permanent).
- Read-back: ``POST .../bulk_get_inventory_item`` (bulkGetInventoryItem, up to 25 SKUs) ->
  ``responses[].inventoryItem.availability.shipToLocationAvailability.quantity``; SKUs eBay
  answers for with anything but 200 are not listed there and are left out.
- OAuth: a User access token from the refresh-token grant
  (``/api-docs/static/oauth-refresh-token-request.html``): ``POST
  https://api.ebay.com/identity/v1/oauth2/token`` form ``grant_type=refresh_token&refresh_token=
  ...&scope=...`` with ``Authorization: Basic base64(client_id:client_secret)``; the scope must
  be the consented one or a subset (``sell.inventory`` covers both calls). Tokens last 7200 s.

Offers are deliberately not touched: ``shipToLocationAvailability.quantity`` is the total
ship-to-home quantity every published offer sells from, and a listing shows the smaller of it and
an offer's own ``availableQuantity`` ("bulk updates" guide). Updating offers too would need their
ids (one getOffers call per SKU) for no gain when sellers leave ``availableQuantity`` unset.
eBay's order notifications are not a simple signed webhook (Trading API SOAP notifications, or
Notification API messages signed with ECDSA and a key fetched per ``kid``), so this channel takes
no inbound webhooks: orders reach invsync through ``POST /v1/events`` (see docs/channels/ebay.md).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Literal

import aiohttp
import msgspec

from ..core.config import Channel
from .base import (
    AdapterContext,
    BaseAdapter,
    ChannelError,
    Outcome,
    Permanent,
    PushResult,
    Retryable,
    Throttled,
    Update,
)
from .http import HttpReply, base_url, check, client_timeout, send
from .options import EnvName, HttpUrl, NonEmpty, Timeout, option_secret, parse_options, require_env
from .tokens import TokenSource, form_grant, with_token

__all__ = [
    "API_ROOT",
    "DEFAULT_SCOPE",
    "MAX_BATCH",
    "TOKEN_PATH",
    "EbayAdapter",
    "Options",
    "create",
]

API_ROOT = "/sell/inventory/v1"
TOKEN_PATH = "/identity/v1/oauth2/token"
MAX_BATCH = 25
DEFAULT_SCOPE = "https://api.ebay.com/oauth/api_scope/sell.inventory"
DEFAULT_LANGUAGE = "en-US"

#: errorIds eBay asks us to try again for: a system error, a concurrent update of the same item.
RETRYABLE_ERRORS = frozenset({25001, 25025})
#: The call-limit error ("Too many requests", domain ACCESS).
THROTTLE_ERROR = 2001
#: "SKU ... is not available in the system" / "We didn't find the resource/entity".
NOT_FOUND_ERRORS = frozenset({25702, 25710})

Language = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z]{2}-[A-Z]{2}$", description="a language tag like en-US")
]


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[[channels]] options`` of kind ``ebay`` (docs/channels/ebay.md)."""

    #: Variables holding the app's Client ID (App ID) and Client Secret (Cert ID).
    client_id_env: EnvName
    client_secret_env: EnvName
    #: The OAuth token endpoint; None: ``{url}/identity/v1/oauth2/token``.
    token_url: HttpUrl | None = None
    #: Space-separated scopes asked for on refresh (the consented ones or a subset).
    scope: NonEmpty = DEFAULT_SCOPE
    #: ``Content-Language`` and ``Accept-Language`` (the language of eBay's messages).
    content_language: Language = DEFAULT_LANGUAGE
    #: Per-request timeout.
    timeout_s: Timeout = 10.0
    #: Refused when true: invsync sets the inventory item's ship-to-home quantity, which every
    #: published offer sells from; offers' ``availableQuantity`` stays unset (module docstring).
    update_offers: Literal[False] = False


# -- eBay's types (camelCase on the wire) ----------------------------------------------------


class ShipToLocationAvailability(msgspec.Struct, kw_only=True, rename="camel"):
    """The total ship-to-home quantity of an inventory item."""

    quantity: int


class PriceQuantity(msgspec.Struct, kw_only=True, rename="camel"):
    """One item of a bulkUpdatePriceQuantity request (no ``offers``: see the module doc)."""

    sku: str
    ship_to_location_availability: ShipToLocationAvailability


class BulkPriceQuantity(msgspec.Struct, kw_only=True):
    """The bulkUpdatePriceQuantity request: at most ``MAX_BATCH`` items."""

    requests: list[PriceQuantity]


class ErrorParameter(msgspec.Struct, kw_only=True):
    """A name/value that gives an error its context (often the offending field)."""

    name: str | None = None
    value: str | None = None


class ErrorDetail(msgspec.Struct, kw_only=True, rename="camel"):
    """eBay's ErrorDetailV3 (also the shape of warnings)."""

    error_id: int | None = None
    domain: str | None = None
    subdomain: str | None = None
    category: str | None = None
    message: str | None = None
    long_message: str | None = None
    parameters: list[ErrorParameter] = []


class PriceQuantityResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """The result of one item of a bulkUpdatePriceQuantity call."""

    status_code: int | None = None
    sku: str | None = None
    offer_id: str | None = None
    errors: list[ErrorDetail] = []
    warnings: list[ErrorDetail] = []


class BulkPriceQuantityResponse(msgspec.Struct, kw_only=True):
    """The bulkUpdatePriceQuantity answer; ``errors`` for a 207 typed as eBay's Error."""

    responses: list[PriceQuantityResponse] = []
    errors: list[ErrorDetail] = []


class GetInventoryItem(msgspec.Struct, kw_only=True):
    """One SKU of a bulkGetInventoryItem request."""

    sku: str


class BulkGetInventoryItem(msgspec.Struct, kw_only=True):
    """The bulkGetInventoryItem request: at most ``MAX_BATCH`` SKUs."""

    requests: list[GetInventoryItem]


class ShipToLocationAvailabilityWithAll(msgspec.Struct, kw_only=True):
    """The quantity part of a read inventory item (allocations are not needed here)."""

    quantity: int | None = None


class AvailabilityWithAll(msgspec.Struct, kw_only=True, rename="camel"):
    """An inventory item's availability."""

    ship_to_location_availability: ShipToLocationAvailabilityWithAll | None = None


class InventoryItem(msgspec.Struct, kw_only=True):
    """The parts of InventoryItemWithSkuLocaleGroupKeys that read-back needs."""

    sku: str | None = None
    availability: AvailabilityWithAll | None = None


class GetInventoryItemResponse(msgspec.Struct, kw_only=True, rename="camel"):
    """The result of one SKU of a bulkGetInventoryItem call."""

    status_code: int | None = None
    sku: str | None = None
    inventory_item: InventoryItem | None = None
    errors: list[ErrorDetail] = []
    warnings: list[ErrorDetail] = []


class BulkGetInventoryItemResponse(msgspec.Struct, kw_only=True):
    """The bulkGetInventoryItem answer."""

    responses: list[GetInventoryItemResponse] = []
    errors: list[ErrorDetail] = []


class ErrorResponse(msgspec.Struct, kw_only=True):
    """Any eBay REST error body."""

    errors: list[ErrorDetail] = []


_encode = msgspec.json.Encoder().encode
_update_reply = msgspec.json.Decoder(BulkPriceQuantityResponse).decode
_get_reply = msgspec.json.Decoder(BulkGetInventoryItemResponse).decode
_error_reply = msgspec.json.Decoder(ErrorResponse).decode


def describe(errors: Iterable[ErrorDetail]) -> str:
    """``errorId domain: message`` of each error, for logs and PushResult.error."""
    parts = []
    for err in errors:
        where = " ".join(str(x) for x in (err.error_id, err.domain) if x is not None)
        parts.append(f"{where}: {err.long_message or err.message or 'no message'}")
    return "; ".join(parts)


def outcome_of(status: int | None, errors: Sequence[ErrorDetail]) -> PushResult | None:
    """What one item's ``statusCode`` and ``errors`` mean; None when it succeeded.

    The ``sku`` of the returned result is empty: the caller fills it in.
    """
    code = status or 0
    if 200 <= code < 300 or (code == 0 and not errors):
        return None
    ids = {err.error_id for err in errors}
    text = f"statusCode {code}: {describe(errors) or 'no error details'}"
    if code == 429 or THROTTLE_ERROR in ids:
        return PushResult(sku="", outcome="throttled", error=text)
    if code >= 500 or ids & RETRYABLE_ERRORS:
        return PushResult(sku="", outcome="retryable", error=text)
    return PushResult(sku="", outcome="permanent", error=text)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def create(channel: Channel, ctx: AdapterContext) -> EbayAdapter:
    """The adapter for an ``ebay`` channel.

    Credentials: the refresh token in ``token_env``, the app's client id and secret in the
    variables named by ``options.client_id_env`` and ``options.client_secret_env``.
    """
    options = parse_options(channel, Options)
    return EbayAdapter(
        channel,
        ctx.session,
        refresh_token=require_env(channel.id, "token_env", channel.token_env),
        client_id=option_secret(channel, "client_id_env", options.client_id_env),
        client_secret=option_secret(channel, "client_secret_env", options.client_secret_env),
        options=options,
        monotonic=ctx.monotonic,
        wall=ctx.wall,
    )


class EbayAdapter(BaseAdapter):
    """Sets ship-to-home quantities with bulkUpdatePriceQuantity and reads them back.

    ``options`` (``Options``; parsed from the channel when left out): ``token_url`` (default
    ``{url}/identity/v1/oauth2/token``: production's ``https://api.ebay.com/...``, the sandbox's
    or the simulator's alike), ``scope``, ``content_language``, ``timeout_s``. ``tokens`` is its
    user-token source (``tokens.fetches`` counts the grants made).
    """

    max_batch = MAX_BATCH

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        *,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        options: Options | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self.options = options = options or parse_options(channel, Options)
        url = base_url(channel)
        self._api = url + API_ROOT
        self._session = session
        self._timeout = client_timeout(options.timeout_s)
        self._wall = wall
        language = options.content_language
        self._headers = {
            "Accept": "application/json",
            "Content-Language": language,
            "Accept-Language": language,
        }
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        grant = form_grant(
            session,
            options.token_url or url + TOKEN_PATH,
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "scope": options.scope,
            },
            headers={"Authorization": f"Basic {basic}"},
            timeout=self._timeout,
        )
        self.tokens = TokenSource(grant, clock=monotonic)

    # -- push --------------------------------------------------------------------------------

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Set each SKU's quantity; per-SKU results, or Throttled/Retryable/Permanent for all.

        The channel actor never hands more than ``max_batch``; a longer list is still sent
        25 at a time, and then a failed call fails only its own SKUs (the rest of the list is
        not sent once eBay throttles).
        """
        latest = {u.sku: u.available for u in updates}  # a repeated SKU: the last value wins
        skus = list(latest)
        results: dict[str, PushResult] = {}
        held: Throttled | None = None
        for chunk in _chunks(skus, MAX_BATCH):
            if held is not None:
                results.update(_all(chunk, held))
                continue
            try:
                results.update(await self._update(chunk, latest))
            except ChannelError as exc:
                if len(skus) <= MAX_BATCH:
                    raise  # one call: its failure is the whole batch's
                results.update(_all(chunk, exc))
                held = exc if isinstance(exc, Throttled) else None
        return [msgspec.structs.replace(results[u.sku], sku=u.sku) for u in updates]

    async def _update(self, skus: Sequence[str], quantity: dict[str, int]) -> dict[str, PushResult]:
        body = _encode(
            BulkPriceQuantity(
                requests=[
                    PriceQuantity(
                        sku=sku,
                        ship_to_location_availability=ShipToLocationAvailability(
                            quantity=quantity[sku]
                        ),
                    )
                    for sku in skus
                ]
            )
        )
        reply = await self._post("/bulk_update_price_quantity", body)
        return self._update_results(reply, skus)

    def _update_results(self, reply: HttpReply, skus: Sequence[str]) -> dict[str, PushResult]:
        ok = PushResult(sku="", outcome="ok")
        try:
            parsed = _update_reply(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            parsed = BulkPriceQuantityResponse()
        failed: dict[str, PushResult] = {}
        answered: set[str] = set()
        for item in parsed.responses:
            if item.sku is None:
                continue
            answered.add(item.sku)
            bad = outcome_of(item.status_code, item.errors)
            if bad is not None and item.sku not in failed:
                failed[item.sku] = bad
        # A 200 is eBay's "every item succeeded". In a 207 an item without its own result is
        # unknown: setting an absolute quantity again is harmless, so it is retried.
        unknown = PushResult(
            sku="",
            outcome="retryable",
            error=f"HTTP {reply.status}: no result for this SKU"
            + (f" ({describe(parsed.errors)})" if parsed.errors else ""),
        )
        missing = ok if reply.status == 200 and not parsed.errors else unknown
        return {sku: failed.get(sku) or (ok if sku in answered else missing) for sku in skus}

    # -- read-back ---------------------------------------------------------------------------

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """SKU -> eBay's ship-to-home quantity, 25 SKUs per bulkGetInventoryItem call.

        SKUs eBay does not have are left out; a per-SKU system error fails the whole read
        (Retryable), since leaving the SKU out would read as "not listed".
        """
        out: dict[str, int] = {}
        wanted = list(dict.fromkeys(skus))
        for chunk in _chunks(wanted, MAX_BATCH):
            body = _encode(BulkGetInventoryItem(requests=[GetInventoryItem(sku=s) for s in chunk]))
            reply = await self._post("/bulk_get_inventory_item", body, accept=_none_found)
            if reply.status >= 400:
                continue  # eBay has none of these SKUs
            try:
                parsed = _get_reply(reply.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise Retryable(f"bulkGetInventoryItem: unreadable answer: {exc}") from exc
            asked = set(chunk)
            for item in parsed.responses:
                if item.sku not in asked:
                    continue
                bad = outcome_of(item.status_code, item.errors)
                if bad is None:
                    availability = item.inventory_item.availability if item.inventory_item else None
                    ship = availability.ship_to_location_availability if availability else None
                    # An item whose ship-to-home quantity was never set sells nothing.
                    out[item.sku] = ship.quantity if ship and ship.quantity is not None else 0
                elif bad.outcome == "throttled":
                    raise Throttled(f"bulkGetInventoryItem {item.sku}: {bad.error}")
                elif bad.outcome == "retryable":
                    raise Retryable(f"bulkGetInventoryItem {item.sku}: {bad.error}")
        return out

    # -- one call ----------------------------------------------------------------------------

    async def _post(
        self, path: str, body: bytes, *, accept: Callable[[HttpReply], bool] | None = None
    ) -> HttpReply:
        """POST ``body`` to an Inventory API path with a user token (refreshed once on 401).

        A 2xx reply, or an error reply ``accept`` takes as an answer; otherwise the error kind
        its status means.
        """

        async def call(token: str) -> HttpReply:
            reply = await send(
                self._session,
                "POST",
                self._api + path,
                timeout=self._timeout,
                headers={
                    **self._headers,
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                },
                body=body,
            )
            if accept is not None and reply.status >= 400 and accept(reply):
                return reply
            return check(reply, now=self._wall())

        return await with_token(self.tokens, call)


def _all(skus: Sequence[str], exc: ChannelError) -> dict[str, PushResult]:
    """The same result for every SKU of a call that failed as a whole."""
    outcome: Outcome
    if isinstance(exc, Throttled):
        outcome = "throttled"
    elif isinstance(exc, Permanent):
        outcome = "permanent"
    else:
        outcome = "retryable"
    return {
        sku: PushResult(sku=sku, outcome=outcome, retry_after=exc.retry_after, error=exc.message)
        for sku in skus
    }


def _none_found(reply: HttpReply) -> bool:
    """A 400 whose every error says the SKU is not there (eBay's answer when none are)."""
    if reply.status != 400:
        return False
    try:
        errors = _error_reply(reply.body).errors
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return bool(errors) and all(err.error_id in NOT_FOUND_ERRORS for err in errors)
