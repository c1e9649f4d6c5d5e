"""The stores' tills: walk-in sales and returns at every ``kind = "store"`` location.

A till sells what is on the shelf, not what a channel offers: a walk-in customer may take the
last unit, safety stock included, but not a unit an online order has reserved there. It tells
invsync as a POS integration does, through the daemon's public API (``POST /v1/events``, the
API token): ``stock.adjusted`` of -1 with reason ``pos sale``, and, for a share of the sales
(``[simulator] store_return_rate``), ``stock.adjusted`` of +1 with reason ``pos return`` a few
sales later. Sales follow a Poisson stream of ``store_sales_per_minute`` per store.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Sequence

import structlog

from .daemon_api import DaemonApi
from .schedules import next_gap

__all__ = ["StorePos"]

log = structlog.get_logger("invsync.simulate.store")


class StorePos:
    """The tills of ``stores``, selling ``skus``."""

    def __init__(
        self,
        *,
        api: DaemonApi,
        stores: Sequence[str],
        skus: Sequence[str],
        rng: random.Random,
        sales_per_minute: float,
        return_rate: float,
        run_id: str,
    ) -> None:
        self._api = api
        self.stores = list(stores)
        self.skus = sorted(skus)
        self._rng = rng
        self.sales_per_minute = sales_per_minute
        self.return_rate = return_rate
        self._run_id = run_id
        self._serial = 0
        #: (store, sku) of sold units a customer will bring back
        self._to_return: list[tuple[str, str]] = []
        #: (store, sku, delta) of the latest movements the daemon took; ``sales``, ``returns``:
        #: how many in all
        self.moves: deque[tuple[str, str, int]] = deque(maxlen=1000)
        self.sales = 0
        self.returns = 0

    async def run(self) -> None:
        """Sell (and take returns) until cancelled."""
        while True:
            gap = next_gap(self._rng, self.sales_per_minute * len(self.stores))
            if gap is None or not self.stores or not self.skus:
                return
            await asyncio.sleep(gap)
            await self.tick()

    async def tick(self) -> None:
        """One customer at a till: a return now and then, else a sale."""
        if self._to_return and self._rng.random() < self.return_rate:
            store, sku = self._to_return.pop(0)
            await self._move(store, sku, +1, "pos return")
            return
        store = self._rng.choice(self.stores)
        for sku in self._rng.sample(self.skus, len(self.skus)):
            view = await self._api.stock(sku)
            here = (view or {}).get("locations", {}).get(store)
            if here is None or int(here["on_hand"]) - int(here["reserved"]) <= 0:
                continue
            if await self._move(store, sku, -1, "pos sale") and (
                self._rng.random() < self.return_rate
            ):
                self._to_return.append((store, sku))
            return

    async def _move(self, store: str, sku: str, delta: int, reason: str) -> bool:
        self._serial += 1
        taken = await self._api.post_events([{
            "id": f"sim-pos-{self._run_id}-{self._serial}",
            "type": "stock.adjusted",
            "location": store,
            "sku": sku,
            "delta": delta,
            "reason": reason,
        }])
        if taken:
            self.moves.append((store, sku, delta))
            if delta < 0:
                self.sales += 1
            else:
                self.returns += 1
            log.info("store_sale" if delta < 0 else "store_return", store=store, sku=sku)
        return taken
