"""The simulated eBay's Fulfillment API: ``GET /sell/fulfillment/v1/order`` (getOrders).

What it checks and answers, after ``/api-docs/sell/fulfillment/resources/order/methods/
getOrders`` and the types of its answer (``sel:OrderSearchPagedCollection``, ``sel:Order``,
``sel:LineItem``, ``sel:FulfillmentStartInstruction``, ``sel:CancelStatus``):

- a bearer token with ``sell.fulfillment`` or ``sell.fulfillment.readonly`` (the simulator's
  ``gate``: 401 / 403 / 429 as for every call);
- ``filter``: ``lastmodifieddate:[<from>..]`` or ``lastmodifieddate:[<from>..<to>]`` (also
  ``creationdate``), ISO 8601 UTC timestamps, both ends inclusive; eBay asks for the brackets
  percent-encoded, so a raw query with a literal ``[`` or ``]`` is refused, as is a filter this
  simulator cannot read (400; eBay's own errorId for a bad filter was not checked, the
  simulator answers 30700 of its own). Without a filter: every order (eBay: the last 90 days);
- ``limit`` 1..200 (default 50) and ``offset`` >= 0, else 400; the answer is ``{href, total,
  limit, offset, orders, next}`` with ``next`` only while more orders follow;
- each order: ``orderId`` (``NN-NNNNN-NNNNN``), ``creationDate``, ``lastModifiedDate``,
  ``orderFulfillmentStatus``, ``orderPaymentStatus``, ``cancelStatus {cancelState:
  NONE_REQUESTED | CANCELED, cancelRequests: []}`` (getOrders returns ``cancelRequests``
  empty), ``lineItems [{lineItemId, legacyItemId, sku, quantity}]``,
  ``fulfillmentStartInstructions [{fulfillmentInstructionsType: SHIP_TO, shippingStep {shipTo
  {contactAddress {countryCode, stateOrProvince, postalCode}}}}]``.

``index_delay_s`` makes an order searchable only that long after it changed (its
``lastModifiedDate`` stays the time of the change), as a search index lags: what the poll's
overlap is for.
"""

from __future__ import annotations

import re
import zlib
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from .core import SimOrder, json_response

if TYPE_CHECKING:
    from .ebay import EbaySimulator

__all__ = ["MAX_LIMIT", "SCOPES_FULFILLMENT", "EbayOrders"]

ORDERS_PATH = "/sell/fulfillment/v1/order"
SCOPES_FULFILLMENT = frozenset({
    "https://api.ebay.com/oauth/api_scope/sell.fulfillment",
    "https://api.ebay.com/oauth/api_scope/sell.fulfillment.readonly",
})
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
#: The simulator's own errorId for a filter it cannot read.
BAD_FILTER_ERROR = 30700
_STAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z"
_FILTER = re.compile(rf"^(lastmodifieddate|creationdate):\[({_STAMP})\.\.({_STAMP})?\]$")


def iso_ms(epoch_ms: int) -> str:
    """``2026-12-03T20:15:00.000Z``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _epoch_ms(stamp: str) -> int:
    moment = datetime.strptime(stamp.rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S")
    millis = stamp.rstrip("Z").split(".")[1] if "." in stamp else "0"
    return int(moment.replace(tzinfo=UTC).timestamp()) * 1000 + int(millis.ljust(3, "0"))


def _bad(message: str) -> Response:
    return json_response(
        {"errors": [{"errorId": BAD_FILTER_ERROR, "domain": "API_FULFILLMENT",
                     "category": "REQUEST", "message": message}]},
        400,
    )


class EbayOrders:
    """getOrders over the orders placed on an ``EbaySimulator``."""

    def __init__(self, sim: EbaySimulator) -> None:
        self.sim = sim
        #: order id -> when it last changed (epoch ms, the simulator's wall clock).
        self.modified_ms: dict[str, int] = {}
        self.index_delay_s = 0.0
        #: The ``filter`` of each getOrders call, as received (decoded).
        self.filters: deque[str | None] = deque(maxlen=100)
        self._serial = 0

    def routes(self) -> Sequence[BaseRoute]:
        """``GET /sell/fulfillment/v1/order``."""
        return [self.sim.route(ORDERS_PATH, self._get_orders, methods=["GET"],
                               operation="getOrders")]

    def new_order_id(self) -> str:
        """An order id in eBay's present format (``12-34567-89012``)."""
        self._serial += 1
        tail = self.sim.rng.randrange(10**5)
        return f"{10 + self._serial % 90:02d}-{self._serial:05d}-{tail:05d}"

    def touched(self, order_id: str) -> None:
        """The order changed now (placed, cancelled, fulfilled)."""
        self.modified_ms[order_id] = int(self.sim.wall() * 1000)

    def order(self, order: SimOrder) -> dict[str, Any]:
        """One ``Order`` as getOrders answers it."""
        fulfilled = order.status in ("fulfilled", "refunded")
        return {
            "orderId": order.order_id,
            "creationDate": iso_ms(order.created_ms),
            "lastModifiedDate": iso_ms(self.modified_ms.get(order.order_id, order.created_ms)),
            "orderFulfillmentStatus": "FULFILLED" if fulfilled else "NOT_STARTED",
            "orderPaymentStatus": "FULLY_REFUNDED" if order.status == "refunded" else "PAID",
            "cancelStatus": {
                "cancelState": "CANCELED" if order.status == "cancelled" else "NONE_REQUESTED",
                "cancelRequests": [],
            },
            "lineItems": [
                {
                    "lineItemId": f"{order.order_id.replace('-', '')}{n}",
                    "legacyItemId": f"11{zlib.crc32(line.sku.encode()):010d}",
                    "sku": line.sku,
                    "quantity": line.qty,
                }
                for n, line in enumerate(order.lines, 1)
            ],
            "fulfillmentStartInstructions": [
                {
                    "fulfillmentInstructionsType": "SHIP_TO",
                    "shippingStep": {
                        "shipTo": {
                            "fullName": "Sim Buyer",
                            "contactAddress": {
                                "addressLine1": "1 Simulated Way",
                                "city": "Springfield",
                                "stateOrProvince": order.region,
                                "postalCode": "95125",
                                "countryCode": order.country,
                            },
                        }
                    },
                }
            ],
        }

    async def _get_orders(self, request: Request) -> Response:
        refused = self.sim.gate(request, SCOPES_FULFILLMENT)
        if refused is not None:
            return refused
        raw = request.url.query
        if "[" in raw or "]" in raw:
            return _bad("The filter's brackets must be percent-encoded (%5B, %5D).")
        query = request.query_params
        try:
            limit = int(query.get("limit", str(DEFAULT_LIMIT)))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return _bad("limit and offset must be integers.")
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            return _bad(f"limit must be 1 to {MAX_LIMIT} and offset 0 or more.")
        low, high, field = 0, None, "lastmodifieddate"
        wanted = query.get("filter")
        self.filters.append(wanted)
        if wanted:
            match = _FILTER.match(wanted.strip())
            if match is None:
                return _bad(f"Invalid filter: {wanted[:100]}")
            field = match.group(1)
            low = _epoch_ms(match.group(2))
            high = _epoch_ms(match.group(3)) if match.group(3) else None
        now_ms = int(self.sim.wall() * 1000)
        delay_ms = int(self.index_delay_s * 1000)

        def stamp(order: SimOrder) -> int:
            if field == "creationdate":
                return order.created_ms
            return self.modified_ms.get(order.order_id, order.created_ms)

        found = sorted(
            (
                o for o in self.sim.orders.values()
                if self.modified_ms.get(o.order_id, o.created_ms) + delay_ms <= now_ms
                and stamp(o) >= low and (high is None or stamp(o) <= high)
            ),
            key=lambda o: (stamp(o), o.order_id),
        )
        page = found[offset : offset + limit]
        body: dict[str, Any] = {
            "href": str(request.url),
            "total": len(found),
            "limit": limit,
            "offset": offset,
            "orders": [self.order(o) for o in page],
        }
        if offset + limit < len(found):
            body["next"] = str(request.url.include_query_params(offset=offset + limit))
        return json_response(body)
