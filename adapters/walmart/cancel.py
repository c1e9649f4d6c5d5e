"""Order-line cancellation: read the purchase order, then cancel the open units asked for.

``GET /v3/orders/{purchaseOrderId}`` (``{"order": {..., "orderLines": {"orderLine":
[{"lineNumber", "item": {"sku"}, "orderLineQuantity", "orderLineStatuses"}]}}}``) and ``POST
/v3/orders/{purchaseOrderId}/cancel`` with ``{"orderCancellation": {"orderLines": {"orderLine":
[{"lineNumber", "orderLineStatuses": {"orderLineStatus": [{"status": "Cancelled",
"cancellationReason", "statusQuantity": {"unitOfMeasurement", "amount"}}]}}]}}}``; the five US
reason codes: https://developer.walmart.com/us-marketplace/docs/cancel-orders,
https://developer.walmart.com/us-marketplace/docs/cancel-one-or-more-order-lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

import msgspec

from ..base import OrderLine, Permanent, Retryable
from .client import WalmartClient
from .options import CANCEL_REASONS
from .wire import (
    CancelLine,
    CancelLines,
    CancelRequest,
    CancelStatus,
    CancelStatuses,
    OrderCancellation,
    OrderQuantity,
    PurchaseOrder,
    PurchaseOrderLine,
    decode_order,
    encode,
)

__all__ = ["cancel_order"]

_OPEN_LINE = frozenset({"Created", "Acknowledged"})


async def cancel_order(
    client: WalmartClient, order_id: str, lines: Sequence[OrderLine] | None, reason: str
) -> None:
    """Cancel the open units of ``lines`` (by SKU; None: every line) of purchase order
    ``order_id``. ``reason`` is used when it is one of Walmart's codes, else
    ``options.cancel_reason``. Units already cancelled count as done."""
    path = f"/v3/orders/{quote(order_id, safe='')}"
    try:
        order = decode_order((await client.call("GET", path)).body).order
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Retryable(f"unreadable purchase order {order_id}: {exc}") from exc
    picked = _lines_to_cancel(order, lines)
    if not picked:
        return  # everything asked for is cancelled already
    code = reason if reason in CANCEL_REASONS else client.options.cancel_reason
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
    await client.call("POST", f"{path}/cancel", body=encode(request))


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
                picked.append(
                    (line.line_number, line.order_line_quantity.unit_of_measurement, take)
                )
                remaining -= take
        if remaining > cancelled:  # neither open nor cancelled: shipped
            raise Permanent(
                f"purchase order {order.purchase_order_id}: {remaining} unit(s) of {sku!r} "
                "can no longer be cancelled (shipped)"
            )
    return picked
