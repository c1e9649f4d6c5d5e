"""PO notifications, relayed and signed, translated into the spec's order events.

``PO_CREATED`` and ``PO_LINE_AUTOCANCELLED`` (V1): ``{"source": {"eventType", "eventTime",
"eventId"}, "payload": {"purchaseOrderId", "orderLines": [{"lineNumber", "sku", "quantity":
{"unitOfMeasure", "measurementValue"}, "status"}]}}``:
https://developer.walmart.com/us-marketplace/docs/purchase-order-po-created-event,
https://developer.walmart.com/us-marketplace/docs/purchase-order-po-line-auto-cancelled-event.

Their authentication is chosen per subscription (BASIC_AUTH, OAUTH, or "HMAC" whose signing is
not specified: https://developer.walmart.com/us-marketplace/docs/subscribe-to-an-event-notification);
the one precisely documented HMAC (``WM_SEC.SIGNATURE`` over method, path, timestamp and body
digest, https://developer.walmart.com/us-marketplace/docs/security-and-authenticity) is for
performance webhooks and covers the request path, which ``parse_webhook`` does not see. So
notifications are taken only from a relay that verified them and signs the raw body with
``X-Invsync-Signature`` (hex HMAC-SHA256 under the secret named by ``secret_env``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import structlog

from ...core.events import Event, convert_events, holdable_sku
from ..base import BadWebhook
from ..http import header
from ..signing import SIGNATURE_HEADER, verify
from .wire import EventLine, decode_kind, decode_notification

__all__ = ["parse_notification"]

log = structlog.get_logger("invsync.adapters.walmart")


def parse_notification(
    channel_id: str, relay_secret: str | None, headers: Mapping[str, str], body: bytes
) -> list[Event]:
    """A relayed ``PO_CREATED`` (order.created) or ``PO_LINE_AUTOCANCELLED`` (order.cancelled of
    its lines) notification; other event types are acknowledged and dropped. The relay's
    ``X-Invsync-Signature`` is required. BadWebhook when unsigned or unreadable, BadEvent when
    what it says is no valid event."""
    if relay_secret is None:
        raise BadWebhook(
            f"channel '{channel_id}' has no secret_env: Walmart notifications are taken "
            f"only from a relay that signs them with {SIGNATURE_HEADER}",
            unauthorized=True,
        )
    signature = header(headers, SIGNATURE_HEADER)
    if signature is None:
        raise BadWebhook(f"missing {SIGNATURE_HEADER} header", unauthorized=True)
    if not verify(relay_secret, body, signature):
        raise BadWebhook(f"{SIGNATURE_HEADER} does not match the body", unauthorized=True)
    try:
        kind = decode_kind(body).source.event_type
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadWebhook(f"not a Walmart notification: {exc}") from None
    if kind not in ("PO_CREATED", "PO_LINE_AUTOCANCELLED"):
        return []
    try:
        note = decode_notification(body)
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
        event_id, event_type = f"{channel_id}-{order_id}-created", "order.created"
    else:
        numbers = ".".join(sorted({x.line_number for x in note.payload.order_lines}))
        event_id, event_type = f"{channel_id}-{order_id}-cancelled-{numbers}", "order.cancelled"
    # Converted, not built: the order id and SKUs come from the channel, and the conversion
    # checks them against the event schema (BadEvent, a 400, when they break it).
    event: dict[str, object] = {
        "id": event_id,
        "type": event_type,
        "channel": channel_id,
        "order_id": order_id,
        "lines": lines,
    }
    return convert_events([event])


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
