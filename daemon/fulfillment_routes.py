"""``POST /fulfillment/{location}``: a location reports what it shipped (or refuses an order).

The location signs the raw body with its ``fulfillment.secret_env`` secret, exactly as invsync
signs what it sends there (HMAC-SHA256, hex in ``X-Invsync-Signature``); an unsigned or wrongly
signed body is refused with 401 and nothing is recorded. Bodies (docs/fulfillment.md):

- ``{"type": "fulfillment.shipped", "id", "channel", "order_id", "lines": [{"sku", "qty"}]}``:
  recorded as ``order.fulfilled`` for those lines at this location (no ``lines``: everything the
  location holds of the order); the same ``id`` twice is applied once.
- ``{"type": "fulfillment.refused", "id", "channel", "order_id", "reason"}``: the location cannot
  ship its part after all (damaged, not found): a ``fulfillment_refused`` incident.

Answers: 202 with the recorded event ids, 400 for a malformed body, 401 for a bad signature,
404 for a location that takes no signed reports, 413 over the size limit, 503 when the store is
away (the location sends again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..adapters.signing import SIGNATURE_HEADER, verify
from ..core.config import Config, resolve_secret
from ..core.errors import InvalidRequest, NotFound
from ..core.events import EventLine
from ..core.fulfillment_config import WebhookFulfillment
from ..core.ids import Id
from .fulfillment import FulfillmentService
from .http import BadSignature, JsonResponse, _guarded, read_body

__all__ = ["fulfillment_routes"]

MAX_BODY = 256 * 1024


class Shipped(msgspec.Struct, tag="fulfillment.shipped", tag_field="type", kw_only=True,
              forbid_unknown_fields=True, frozen=True):
    id: str
    channel: Id
    order_id: Id
    lines: list[EventLine] | None = None


class RefusedLater(msgspec.Struct, tag="fulfillment.refused", tag_field="type", kw_only=True,
                   forbid_unknown_fields=True, frozen=True):
    id: str
    channel: Id
    order_id: Id
    reason: str = ""


Report = Shipped | RefusedLater
_decoder = msgspec.json.Decoder(Report)
_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


def fulfillment_routes(
    service: Callable[[], FulfillmentService | None], config: Callable[[], Config]
) -> list[Route]:
    """The signed shipment reports of webhook fulfillment locations."""

    async def report(request: Request) -> Response:
        location_id = request.path_params["location"]
        location = next((x for x in config().locations if x.id == location_id), None)
        fulfillment = location.fulfillment if location is not None else None
        handoff = service()
        if not isinstance(fulfillment, WebhookFulfillment) or handoff is None:
            raise NotFound(f"location {location_id!r} takes no signed fulfillment reports")
        body = await read_body(request, MAX_BODY)
        secret = resolve_secret(fulfillment.secret_env)
        if not secret or not verify(secret, body, request.headers.get(SIGNATURE_HEADER)):
            raise BadSignature(f"bad or missing {SIGNATURE_HEADER} for location {location_id}")
        try:
            parsed: Report = _decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            raise InvalidRequest(f"malformed fulfillment report: {exc}") from exc
        if not parsed.id or len(parsed.id) > 120 or not set(parsed.id) <= _ID_OK:
            raise InvalidRequest("id: 1 to 120 of letters, digits, '_', '.', ':', '-'",
                                 field="id")
        outcome: Literal["recorded"] = "recorded"
        if isinstance(parsed, Shipped):
            lines = {x.sku: x.qty for x in parsed.lines} if parsed.lines else {}
            if parsed.lines and len(lines) != len(parsed.lines):
                raise InvalidRequest("a SKU is listed twice in lines", field="lines")
            ids = await handoff.shipped(
                location_id, (parsed.channel, parsed.order_id), lines, parsed.id,
                f"fulfillment:{location_id}",
            )
            return JsonResponse({"outcome": outcome, "events": ids}, status_code=202)
        await handoff.refused_later(location_id, parsed.channel, parsed.order_id,
                                    parsed.id, parsed.reason)
        return JsonResponse({"outcome": outcome, "events": []}, status_code=202)

    return [Route("/fulfillment/{location}", _guarded(report), methods=["POST"])]
