"""What happens to a generated order after the sale: the buyer cancels it, or it ships.

A few orders (``[simulator] cancel_rate``) are cancelled by the buyer around ``cancel_after_s``
after the sale: the marketplace changes the order and sends its own cancellation notification
(Shopify ``orders/cancelled``, Amazon ``ORDER_CHANGE`` Canceled, Walmart
``PO_LINE_AUTOCANCELLED``, TikTok ``CANCELLED``, the webhook channel's ``order.cancelled``; eBay's
getOrders shows ``cancelState: CANCELED`` to the daemon's poll).

The rest ship around ``ship_after_s`` after the sale. Where the units are reserved is the
daemon's decision, so the shipping desk reads it (``GET /v1/orders/{channel}/{id}``):

- units at a location with a simulated warehouse (``simulators/warehouse.py``) are that
  warehouse's to ship and report (``/fulfillment/{location}``); the desk waits for it;
- units anywhere else (a warehouse or store without a WMS link) ship and the marketplace is
  told: its fulfilment notification (Shopify ``orders/fulfilled``, Amazon ``ORDER_CHANGE``
  Shipped, TikTok ``IN_TRANSIT``, the webhook channel's ``order.fulfilled``) fulfils what is
  still reserved; a marketplace whose notifications the daemon does not read for fulfilment
  (Walmart's relay carries created/cancelled only, eBay's poll reads sales and cancellations)
  has the location's shipping desk post ``order.fulfilled`` with those lines and their location
  to ``POST /v1/events``, as a shipping tool would.

An order the daemon refused (oversold) is left to the operator: resolving its exception is
the demo's exception flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from typing import Any

import msgspec
import structlog

from .core import SimChannel, SimOrder
from .daemon_api import DaemonApi
from .schedules import Fate, jittered, order_fate

__all__ = ["OrderDesk"]

log = structlog.get_logger("invsync.simulate.orders")

#: Looks at an order the warehouse has not shipped yet / the daemon does not know yet.
MAX_TRIES = 20


class OrderDesk:
    """Schedules each generated order's cancellation or shipment and carries it out."""

    def __init__(
        self,
        *,
        channels: Mapping[str, SimChannel],
        notify: Callable[[str, SimOrder], Awaitable[int | None]],
        api: DaemonApi,
        warehouses: Collection[str],
        rng: random.Random,
        cancel_rate: float,
        cancel_after_s: float,
        ship_after_s: float,
        recheck_s: float,
    ) -> None:
        self._channels = channels
        self._notify = notify
        self._api = api
        self._warehouses = set(warehouses)
        self._rng = rng
        self.cancel_rate = cancel_rate
        self.cancel_after_s = cancel_after_s
        self.ship_after_s = ship_after_s
        self.recheck_s = recheck_s
        self._tasks: set[asyncio.Task[None]] = set()
        #: (channel, order id, what) of the latest orders carried out: "cancelled", "notified"
        #: (the marketplace's fulfilment notification), "posted" (order.fulfilled to /v1),
        #: "warehouse" (the simulated warehouse shipped all of it); ``counts`` of all of them
        self.done: deque[tuple[str, str, str]] = deque(maxlen=1000)
        self.counts: Counter[str] = Counter()

    def placed(self, channel_id: str, order: SimOrder, *, may_cancel: bool = True) -> Fate | None:
        """A generated order was sold: schedule what becomes of it (its fate, or None).
        ``may_cancel`` False: it ships or waits (a staged oversell stays for the operator)."""
        fate = order_fate(self._rng, cancel_rate=self.cancel_rate if may_cancel else 0.0,
                          cancel_after_s=self.cancel_after_s, ship_after_s=self.ship_after_s)
        if fate is not None:
            action = self._cancel if fate.what == "cancel" else self._ship
            self._later(fate.after_s, action, channel_id, order.order_id, 0)
        return fate

    def _later(
        self,
        delay: float,
        action: Callable[[str, str, int], Coroutine[Any, Any, None]],
        channel_id: str,
        order_id: str,
        tries: int,
    ) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            await action(channel_id, order_id, tries)

        task = asyncio.create_task(run(), name="simulator-order")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel what is still scheduled."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _did(self, channel_id: str, order_id: str, what: str) -> None:
        self.done.append((channel_id, order_id, what))
        self.counts[what] += 1

    def _open(self, channel_id: str, order_id: str) -> tuple[SimChannel, SimOrder] | None:
        sim = self._channels.get(channel_id)
        order = sim.orders.get(order_id) if sim is not None else None
        if sim is None or order is None or order.status != "created":
            return None  # gone, or the marketplace already changed it (eBay's own cancels)
        return sim, order

    async def _cancel(self, channel_id: str, order_id: str, tries: int) -> None:
        found = self._open(channel_id, order_id)
        if found is None:
            return
        sim, _ = found
        await self._notify(channel_id, sim.change_order(order_id, "cancelled"))
        self._did(channel_id, order_id, "cancelled")
        log.info("buyer_cancelled", channel=channel_id, order=order_id)

    async def _ship(self, channel_id: str, order_id: str, tries: int) -> None:
        found = self._open(channel_id, order_id)
        if found is None:
            return
        sim, order = found
        view = await self._api.order(channel_id, order_id)
        if view is None:
            # Not recorded yet (eBay's poll comes round later) or the daemon is away.
            if tries < MAX_TRIES:
                self._later(self.recheck_s, self._ship, channel_id, order_id, tries + 1)
            return
        if view.get("outcome") != "reserved":
            return  # oversold: the operator resolves it
        reserved = [
            (str(x["sku"]), str(x["location"]), int(x["reserved"]))
            for x in view.get("lines", ()) if int(x.get("reserved", 0)) > 0
        ]
        if any(loc in self._warehouses for _, loc, _ in reserved):
            if tries < MAX_TRIES:  # the warehouse picks and reports first
                self._later(jittered(self._rng, self.recheck_s), self._ship, channel_id,
                            order_id, tries + 1)
            return
        shipped = msgspec.structs.replace(order, status="fulfilled")
        if not reserved:
            sim.change_order(order_id, "fulfilled")  # the warehouse shipped it all
            self._did(channel_id, order_id, "warehouse")
        elif sim.order_notification(shipped) is not None:
            await self._notify(channel_id, sim.change_order(order_id, "fulfilled"))
            self._did(channel_id, order_id, "notified")
        else:
            lines = [{"sku": sku, "qty": qty, "location": loc} for sku, loc, qty in reserved]
            posted = await self._api.post_events([{
                "id": f"sim-ship-{channel_id}-{order_id}",
                "type": "order.fulfilled",
                "channel": channel_id,
                "order_id": order_id,
                "lines": lines,
            }])
            if not posted:
                if tries < MAX_TRIES:
                    self._later(self.recheck_s, self._ship, channel_id, order_id, tries + 1)
                return
            sim.change_order(order_id, "fulfilled")
            self._did(channel_id, order_id, "posted")
        log.info("order_shipped", channel=channel_id, order=order_id)
