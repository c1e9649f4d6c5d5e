"""The living demo: what the world around invsync does besides buying on the marketplaces.

``Simulator`` starts it when it knows the daemon and can reach its API (``invsync simulate``
gives it the daemon's API token). Its parts, each a module of its own:

- ``order_desk.OrderDesk``: every generated order is cancelled by its buyer or ships;
- ``store_pos.StorePos``: walk-in sales and returns at the ``kind = "store"`` locations;
- ``receiving.Receiving``: the locations receive stock on a schedule that keeps up with sales;
- ``surprises.Surprises``: now and then an oversell or a drift.

The order generator (``server.py``) and the simulated warehouses (``warehouse.py``) were there
before; this wires the rest to them. The balance (units sold against units received) is
``schedules``' arithmetic and docs/operations.md's "The demo".
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

import structlog

from ..core.config import SimulatorConfig
from .core import SimChannel, SimOrder
from .daemon_api import DaemonApi
from .order_desk import OrderDesk
from .receiving import Receiving
from .schedules import sku_demand_per_minute, units_sold_per_minute
from .store_pos import StorePos
from .surprises import Surprises

__all__ = ["Demo", "run_id"]

log = structlog.get_logger("invsync.simulate")


def run_id() -> str:
    """A new id for this run's events (the daemon keeps event ids for days: a second run of
    the demo must not repeat the first one's)."""
    return f"{int(time.time()):x}{secrets.token_hex(2)}"


class Demo:
    """The demo's moving parts around the simulated marketplaces."""

    def __init__(
        self,
        *,
        settings: SimulatorConfig,
        channels: Mapping[str, SimChannel],
        notify: Callable[[str, SimOrder], Awaitable[int | None]],
        api: DaemonApi,
        warehouses: Collection[str],
        stores: Sequence[str],
        skus: Sequence[str],
        rng: random.Random,
    ) -> None:
        run = run_id()
        self._notify = notify
        self.api = api
        self.desk = OrderDesk(
            channels=channels, notify=notify, api=api, warehouses=warehouses,
            rng=random.Random(rng.random()), cancel_rate=settings.cancel_rate,
            cancel_after_s=settings.cancel_after_s, ship_after_s=settings.ship_after_s,
            recheck_s=max(0.2, settings.pick_s / 2),
        )
        self.store = StorePos(
            api=api, stores=stores, skus=skus, rng=random.Random(rng.random()),
            sales_per_minute=settings.store_sales_per_minute,
            return_rate=settings.store_return_rate, run_id=run,
        )
        units = units_sold_per_minute(settings.orders_per_minute,
                                      settings.store_sales_per_minute, len(stores))
        self.receiving = Receiving(
            api=api, skus=skus, rng=random.Random(rng.random()),
            every_s=settings.restock_every_s, lead_s=settings.restock_lead_s,
            demand_per_minute=sku_demand_per_minute(units, len(skus)), run_id=run,
        )
        self.surprises = Surprises(channels=channels, sold=self.staged, api=api,
                                   rng=random.Random(rng.random()),
                                   every_s=settings.surprise_every_s)
        self._settings = settings
        self._tasks: list[asyncio.Task[None]] = []

    async def sold(self, channel_id: str, order: SimOrder) -> None:
        """A buyer bought ``order`` on ``channel_id``: tell the daemon, then give it its fate."""
        await self._notify(channel_id, order)
        self.desk.placed(channel_id, order)

    async def staged(self, channel_id: str, order: SimOrder) -> None:
        """A sale a surprise staged: like ``sold``, but no buyer cancels it (an oversold order
        stays for the operator to resolve)."""
        await self._notify(channel_id, order)
        self.desk.placed(channel_id, order, may_cancel=False)

    def start(self) -> None:
        """Start the tills, the receiving rounds and the surprises (those configured)."""
        s = self._settings
        parts: list[tuple[bool, Callable[[], Awaitable[None]], str]] = [
            (s.store_sales_per_minute > 0, self.store.run, "store"),
            (s.restock_every_s > 0, self.receiving.run, "receiving"),
            (s.surprise_every_s > 0, self.surprises.run, "surprises"),
        ]
        for wanted, run, name in parts:
            if wanted:
                self._tasks.append(asyncio.create_task(self._guard(run, name),
                                                       name=f"simulator-{name}"))

    @staticmethod
    async def _guard(run: Callable[[], Awaitable[None]], name: str) -> None:
        # A bug in one part must not stop the others; it is logged and the part restarts.
        while True:
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("demo_part_failed", part=name)
                await asyncio.sleep(5)

    async def close(self) -> None:
        """Stop every part."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.desk.close()

    def state(self) -> dict[str, object]:
        """What ``GET /_sim/demo`` shows: what each part did so far."""
        return {
            "orders": dict(sorted(self.desk.counts.items())),
            "store": {"sales": self.store.sales, "returns": self.store.returns},
            "units_received": self.receiving.units_received,
            "incoming": {f"{sku}@{loc}": n for (sku, loc), n in
                         sorted(self.receiving.incoming.items()) if n},
            "surprises": [list(x) for x in self.surprises.staged],
        }
