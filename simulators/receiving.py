"""Goods in: the locations receive stock on a schedule, so the demo never sells out.

Every ``[simulator] restock_every_s`` a receiving round looks at each catalogue SKU
(``GET /v1/stock/{sku}``) and tops up every location that held it (its first on-hand seen, at
least) to ``schedules.restock_target``. A top-up is announced first, as a WMS announces an
advance shipping notice: ``stock.counted`` with ``incoming`` (all units on their way there) and
``incoming_eta``; ``restock_lead_s`` later the units are received: ``stock.adjusted`` +N with
reason ``received`` and the new ``incoming`` in one request. Both go through the daemon's
public API (``POST /v1/events``, the API token), as a WMS integration would.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import random
from collections import deque
from collections.abc import Sequence
from typing import Any

import structlog

from .daemon_api import DaemonApi
from .schedules import receipt, restock_target

__all__ = ["Receiving"]

log = structlog.get_logger("invsync.simulate.receiving")


class Receiving:
    """The receiving docks of every location holding ``skus``."""

    def __init__(
        self,
        *,
        api: DaemonApi,
        skus: Sequence[str],
        rng: random.Random,
        every_s: float,
        lead_s: float,
        demand_per_minute: float,
        run_id: str,
    ) -> None:
        self._api = api
        self.skus = sorted(skus)
        self._rng = rng
        self.every_s = every_s
        self.lead_s = lead_s
        self.demand_per_minute = demand_per_minute
        self._run_id = run_id
        self._serial = 0
        #: (sku, location) -> on hand when first seen holding stock
        self.first: dict[tuple[str, str], int] = {}
        #: (sku, location) -> units announced and not received yet
        self.incoming: dict[tuple[str, str], int] = {}
        #: (sku, location, units) of the latest receipts the daemon took; ``units_received``
        #: in all
        self.received: deque[tuple[str, str, int]] = deque(maxlen=1000)
        self.units_received = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def target(self, key: tuple[str, str]) -> int:
        """What ``key``'s location is topped up to."""
        return restock_target(self.first[key], self.demand_per_minute,
                              every_s=self.every_s, lead_s=self.lead_s)

    async def run(self) -> None:
        """A round every ``every_s`` until cancelled."""
        try:
            while True:
                await self.round()
                await asyncio.sleep(self.every_s)
        finally:
            for task in list(self._tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def round(self) -> None:
        """Look at every SKU and order what each location is short of."""
        for sku in self.skus:
            view = await self._api.stock(sku)
            if view is None:
                continue
            locations: dict[str, Any] = view.get("locations", {})
            for location, state in locations.items():
                key = (sku, location)
                if key not in self.first and int(state["on_hand"]) > 0:
                    self.first[key] = int(state["on_hand"])
                if key not in self.first:
                    continue
                position = (int(state["on_hand"]) - int(state["reserved"])
                            + self.incoming.get(key, 0))
                units = receipt(position, self.target(key))
                if units > 0:
                    await self._announce(key, units)

    def _next_id(self, what: str) -> str:
        self._serial += 1
        return f"sim-rcv-{self._run_id}-{self._serial}-{what}"

    async def _announce(self, key: tuple[str, str], units: int) -> None:
        sku, location = key
        if self.lead_s <= 0:
            await self._receive(key, units, announced=False)
            return
        due = self.incoming.get(key, 0) + units
        eta = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            days=max(1, math.ceil(self.lead_s / 86_400)))
        taken = await self._api.post_events([{
            "id": self._next_id("asn"), "type": "stock.counted", "location": location,
            "sku": sku, "incoming": due, "incoming_eta": eta.date().isoformat(),
        }])
        if not taken:
            return  # next round tries again
        self.incoming[key] = due

        async def later() -> None:
            await asyncio.sleep(self.lead_s * self._rng.uniform(0.8, 1.2))
            await self._receive(key, units, announced=True)

        task = asyncio.create_task(later(), name=f"simulator-receipt-{sku}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("stock_incoming", sku=sku, location=location, units=units)

    async def _receive(self, key: tuple[str, str], units: int, *, announced: bool) -> None:
        sku, location = key
        events: list[dict[str, Any]] = [{
            "id": self._next_id("in"), "type": "stock.adjusted", "location": location,
            "sku": sku, "delta": units, "reason": "received",
        }]
        left = max(0, self.incoming.get(key, 0) - units)
        if announced:
            events.append({"id": self._next_id("asn"), "type": "stock.counted",
                           "location": location, "sku": sku, "incoming": left})
        for _ in range(5):
            if await self._api.post_events(events):
                break
            await asyncio.sleep(max(1.0, self.lead_s / 4))
        else:
            # The daemon stayed away: the units are lost to the demo; the next round orders more.
            log.warning("receipt_not_recorded", sku=sku, location=location, units=units)
            if announced:
                self.incoming[key] = left
            return
        if announced:
            self.incoming[key] = left
        self.received.append((sku, location, units))
        self.units_received += units
        log.info("stock_received", sku=sku, location=location, units=units)
