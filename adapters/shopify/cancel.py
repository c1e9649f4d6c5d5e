"""Cancelling a Shopify order with ``orderCancel`` (``/docs/api/admin-graphql/latest/mutations/
orderCancel``): it takes whole orders only and returns ``job`` and ``orderCancelUserErrors``
(codes INTERNAL_ERROR, INVALID, NOT_FOUND, NO_REFUND_PERMISSION, ...).

``restock: false``: invsync releases the reservation when ``orders/cancelled`` arrives and pushes
the resulting number itself (a Shopify restock would make the next push stale).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from ..base import OrderLine, Permanent, Retryable
from .client import MUTATION_COST, GraphQLClient
from .events import merge_lines
from .wire import (
    CANCEL_MUTATION,
    ORDER_QUERY,
    CancelVariables,
    OrderVariables,
    RefundMethod,
    cancel_decoder,
    order_decoder,
)

__all__ = ["CANCEL_LINES_PAGE", "ORDER_CANCEL_REASONS", "cancel_order"]

log = structlog.get_logger("invsync.adapters.shopify")

#: Line items read for a cancellation (one order: 1 + 2 + 250 points).
CANCEL_LINES_PAGE = 250
#: ``OrderCancelReason``; any other reason is sent as INVENTORY.
ORDER_CANCEL_REASONS = frozenset({"CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"})


async def cancel_order(
    client: GraphQLClient,
    order_id: str,
    lines: Sequence[OrderLine] | None,
    reason: str,
    *,
    notify_customer: bool,
    channel_id: str,
) -> None:
    """orderCancel the whole order (no restock: invsync pushes the released units itself).

    Already cancelled: nothing to do. Unknown order, or some lines only: Permanent (removing
    lines needs an order edit). INTERNAL_ERROR: Retryable; other userErrors: Permanent.
    """
    gid = order_id if order_id.startswith("gid://") else f"gid://shopify/Order/{order_id}"
    found = await client.call(
        "order",
        CANCEL_LINES_PAGE,
        ORDER_QUERY,
        OrderVariables(id=gid, lines=CANCEL_LINES_PAGE),
        order_decoder,
        3 + CANCEL_LINES_PAGE,
    )
    order = found.order
    if order is None:
        raise Permanent(f"Shopify has no order {order_id}")
    if order.cancelled_at is not None:
        return
    if lines is not None:
        wanted = merge_lines((line.sku, line.qty) for line in lines)
        current = merge_lines(
            (item.sku, item.quantity if item.current_quantity is None else item.current_quantity)
            for item in order.line_items.nodes
        )
        if wanted != current or order.line_items.page_info.has_next_page:
            raise Permanent(
                f"Shopify cancels whole orders only: order {order_id} has {current}, "
                f"cancelling {wanted} needs an order edit on Shopify"
            )
    upper = reason.strip().upper()
    variables = CancelVariables(
        order_id=gid,
        reason=upper if upper in ORDER_CANCEL_REASONS else "INVENTORY",
        refund_method=RefundMethod(original_payment_methods_refund=True),
        restock=False,
        notify_customer=notify_customer,
        staff_note=f"invsync: {reason}"[:255],
    )
    data = await client.call(
        "orderCancel", 0, CANCEL_MUTATION, variables, cancel_decoder, MUTATION_COST
    )
    payload = data.order_cancel
    if payload is None:
        raise Retryable("Shopify answered orderCancel without a payload")
    for error in payload.order_cancel_user_errors:
        text = f"orderCancel {order_id}: {error.code}: {error.message}"
        if error.code == "INTERNAL_ERROR":
            raise Retryable(text)
        raise Permanent(text)
    log.info(
        "shopify_order_cancelled",
        channel=channel_id,
        order_id=order_id,
        job=payload.job.id if payload.job else None,
    )
