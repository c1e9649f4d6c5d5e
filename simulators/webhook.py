"""A wholesale portal receiving the generic ``webhook`` channel's signed pushes.

It checks ``X-Invsync-Signature`` (HMAC-SHA256 hex of the body under the channel's
``secret_env``) like a careful receiver would, refuses a bad one with 401, keeps the quantities,
and answers 200 ``{"results": [...]}``; its orders reach the daemon as the spec's generic events,
signed the same way. A SKU the portal does not list (its catalogue, ``SimChannel.listed``) gets
a per-SKU ``{"status": "error", "retryable": false}`` result, the protocol's permanent refusal
(docs/api.md, "Webhooks of the generic webhook channel"); its quantity is not kept.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..core.config import Channel, Faults
from .core import SimChannel, SimOrder, json_response, required_secret
from .signing import INVSYNC_SIGNATURE, hex_matches, hmac_hex

__all__ = ["WebhookReceiver", "create"]


class _Update(msgspec.Struct, kw_only=True):
    sku: str
    available: int
    version: int


class _Payload(msgspec.Struct, kw_only=True):
    channel: str
    updates: list[_Update]


_decode = msgspec.json.Decoder(_Payload).decode


def create(channel: Channel, faults: Faults, rng: random.Random) -> WebhookReceiver:
    """The receiver of a ``webhook`` channel (its secret from ``secret_env``)."""
    return WebhookReceiver(channel, required_secret(channel, "secret_env"), faults=faults, rng=rng)


class WebhookReceiver(SimChannel):
    """``POST {url}``: the generic webhook push."""

    kind = "webhook"

    def __init__(self, channel: Channel, secret: str, **kwargs: object) -> None:
        super().__init__(channel, **kwargs)  # type: ignore[arg-type]
        self.secret = secret
        self.versions: dict[str, int] = {}

    def routes(self) -> Sequence[BaseRoute]:
        """The one route: the mount path itself."""
        return [self.route("/", self._push, methods=["POST"], operation="push")]

    async def _push(self, request: Request) -> Response:
        body = await request.body()
        if not hex_matches(self.secret, body, request.headers.get(INVSYNC_SIGNATURE)):
            return json_response({"error": "bad signature"}, 401)
        try:
            payload = _decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return json_response({"error": str(exc)}, 400)
        results = []
        for update in payload.updates:
            if not self.is_listed(update.sku):
                results.append({"sku": update.sku, "status": "error", "retryable": False,
                                "error": "SKU not listed on this portal"})
                continue
            if update.available < 0:
                results.append({"sku": update.sku, "status": "error", "retryable": False,
                                "error": "negative quantity"})
                continue
            self.quantities[update.sku] = update.available
            self.versions[update.sku] = update.version
            results.append({"sku": update.sku, "status": "ok"})
        return json_response({"results": results})

    def order_notification(self, order: SimOrder) -> tuple[dict[str, str], bytes] | None:
        """The spec's generic event for the order, signed with ``X-Invsync-Signature``."""
        lines = [{"sku": line.sku, "qty": line.qty} for line in order.lines]
        types = {"created": "order.created", "cancelled": "order.cancelled",
                 "fulfilled": "order.fulfilled", "refunded": "order.cancelled"}
        event: dict[str, object] = {
            "id": f"{self.id}-{order.order_id}-{order.status}",
            "type": types[order.status],
            "channel": self.id,
            "order_id": order.order_id,
        }
        if order.status == "created":
            event["lines"] = lines
            event["ship_to"] = {"country": order.country, "region": order.region}
        body = msgspec.json.encode(event)
        signature = hmac_hex(self.secret, body)
        return {"Content-Type": "application/json", INVSYNC_SIGNATURE: signature}, body
