"""Which way each change goes to Walmart: a single PUT when it cannot wait, else the feed.

Walmart asks sellers to send inventory in bulk feeds and to keep the single-item ``PUT
/v3/inventory`` (a "highly throttled" call) for exceptions: "Bulk inventory update (feed) ... if
you manage a large catalog or prefer scheduled updates"; "Update a single SKU's inventory ...
real-time corrections and small changes":
https://developer.walmart.com/us-marketplace/docs/update-inventory-data,
https://developer.walmart.com/us-marketplace/docs/rate-limiting.

For an inventory sync the exception is a SKU about to be oversold: one that sells out (0) or
falls below ``options.urgent_below``. Such SKUs go as PUTs at once (at most
``options.urgent_max`` per push, so a full sync of a sold-out catalogue stays a feed); every
other change goes in the push's one inventory feed. Both run at the same time and the results
are joined: when one side fails as a whole, its SKUs carry that failure and the other side's
results stand; only when both fail is the failure raised for the whole call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from ..base import (
    ChannelError,
    Outcome,
    Permanent,
    PushResult,
    Throttled,
    Unauthorized,
    Update,
)
from .options import Options

__all__ = ["is_urgent", "push_both", "split"]

Push = Callable[[Sequence[Update]], Awaitable[list[PushResult]]]


def is_urgent(update: Update, options: Options) -> bool:
    """True when ``update`` sells the SKU out or leaves it below ``urgent_below``."""
    return update.available <= 0 or update.available < options.urgent_below


def split(updates: Sequence[Update], options: Options) -> tuple[list[Update], list[Update]]:
    """(urgent, routine): the first ``urgent_max`` urgent changes, and all the others."""
    urgent: list[Update] = []
    routine: list[Update] = []
    for update in updates:
        if is_urgent(update, options) and len(urgent) < options.urgent_max:
            urgent.append(update)
        else:
            routine.append(update)
    return urgent, routine


def _failed(updates: Sequence[Update], exc: ChannelError) -> list[PushResult]:
    outcome: Outcome = "retryable"
    if isinstance(exc, Throttled):
        outcome = "throttled"
    elif isinstance(exc, Permanent):
        outcome = "permanent"
    return [
        PushResult(sku=u.sku, outcome=outcome, retry_after=exc.retry_after, error=exc.message)
        for u in updates
    ]


async def push_both(
    urgent: Sequence[Update], routine: Sequence[Update], put: Push, feed: Push
) -> list[PushResult]:
    """``put(urgent)`` and ``feed(routine)`` at once; per-SKU results in ``urgent + routine``
    order. Refused credentials, or a failure of both sides, are raised for the whole call."""
    if not routine:
        return await put(urgent) if urgent else []
    if not urgent:
        return await feed(routine)

    async def guarded(send: Push, part: Sequence[Update]) -> list[PushResult] | ChannelError:
        try:
            return await send(part)
        except ChannelError as exc:  # kept as a result: the other side always finishes
            return exc

    async with asyncio.TaskGroup() as group:
        puts = group.create_task(guarded(put, urgent))
        fed = group.create_task(guarded(feed, routine))
    first, second = puts.result(), fed.result()
    for result in (first, second):
        if isinstance(result, Unauthorized):
            raise result
    if isinstance(first, ChannelError) and isinstance(second, ChannelError):
        raise first
    out = _failed(urgent, first) if isinstance(first, ChannelError) else first
    out += _failed(routine, second) if isinstance(second, ChannelError) else second
    return out
