"""Now and then something goes wrong, so the exception flow can be seen.

Around every ``[simulator] surprise_every_s`` (a Poisson stream) one of:

- an **oversell**: two marketplaces that both show the last few units of a SKU (at most
  ``OVERSELL_MAX``) sell them at the same moment, each to its own buyer; invsync reserves one
  and opens an ``oversold`` exception for the other. Only when no SKU is that low;
- otherwise, half of the time, an **oversell through drift**: a seller's manual edit in a
  marketplace's admin lists one unit more of a SKU than invsync holds in all (on hand less
  reserved and damaged, read from ``GET /v1/stock/{sku}``), and a buyer takes all of it at
  once; invsync reserves nothing of that order (all lines or none) and opens an ``oversold``
  exception, so the stock is not drained;
- or a plain **drift**: a marketplace's quantity of a SKU is nudged behind invsync's back,
  which the drift check finds when that SKU has not been pushed for a while
  (``[exceptions] drift_settle_s``), and the next push of the SKU overwrites otherwise.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from .core import SimChannel, SimLine, SimOrder
from .daemon_api import DaemonApi

__all__ = [
    "OVERSELL_MAX", "Oversell", "Surprises", "held_in_all", "pick_drift", "pick_oversell"
]

log = structlog.get_logger("invsync.simulate.surprises")

#: An oversell is staged only on a SKU two marketplaces show at most this many units of.
OVERSELL_MAX = 3


@dataclass(frozen=True, slots=True)
class Oversell:
    """The same SKU sold on two channels at once, each all it shows."""

    sku: str
    first: tuple[str, int]
    second: tuple[str, int]


def pick_oversell(
    shown: Mapping[str, Mapping[str, int]], rng: random.Random
) -> Oversell | None:
    """From ``shown`` (channel -> SKU -> quantity it lists), a SKU two channels show 1 to
    ``OVERSELL_MAX`` units of (the lowest such SKU; ties at random); None when there is none."""
    by_sku: dict[str, list[tuple[str, int]]] = {}
    for channel, quantities in sorted(shown.items()):
        for sku, qty in quantities.items():
            if 0 < qty <= OVERSELL_MAX:
                by_sku.setdefault(sku, []).append((channel, qty))
    candidates = sorted((sum(q for _, q in c), sku) for sku, c in by_sku.items() if len(c) >= 2)
    if not candidates:
        return None
    low = candidates[0][0]
    sku = rng.choice([s for total, s in candidates if total == low])
    first, second = rng.sample(by_sku[sku], 2)
    return Oversell(sku=sku, first=first, second=second)


def pick_drift(
    shown: Mapping[str, Mapping[str, int]], rng: random.Random
) -> tuple[str, str, int] | None:
    """(channel, SKU, new quantity): a listed quantity nudged by a seller's hand (never below
    0, never the same); None when no channel lists anything."""
    listed = [(c, s, q) for c, quantities in sorted(shown.items())
              for s, q in sorted(quantities.items())]
    if not listed:
        return None
    channel, sku, qty = rng.choice(listed)
    change = rng.choice((-2, -1, 1, 2, 3))
    new = max(0, qty + change)
    return channel, sku, new if new != qty else qty + 1


def held_in_all(view: Mapping[str, object]) -> int:
    """Units of a ``GET /v1/stock/{sku}`` answer an order could still take anywhere: on hand
    less reserved and damaged, over every location (safety stock is spent last, not never)."""
    locations = view.get("locations")
    if not isinstance(locations, dict):
        return 0
    return sum(
        max(0, int(s["on_hand"]) - int(s["reserved"]) - int(s.get("damaged", 0)))
        for s in locations.values()
    )


class Surprises:
    """Stages an oversell or a drift now and then; ``sold`` tells the daemon of a sale (and
    gives the order its fate, as every generated order)."""

    def __init__(
        self,
        *,
        channels: Mapping[str, SimChannel],
        sold: Callable[[str, SimOrder], Awaitable[None]],
        api: DaemonApi,
        rng: random.Random,
        every_s: float,
    ) -> None:
        self._channels = channels
        self._sold = sold
        self._api = api
        self._rng = rng
        self.every_s = every_s
        #: ("oversell" | "drift", sku) of every surprise staged (an oversell through drift is
        #: an "oversell")
        self.staged: deque[tuple[str, str]] = deque(maxlen=100)

    def _shown(self, notifying: bool) -> dict[str, dict[str, int]]:
        probe = SimOrder(order_id="probe", lines=())
        return {
            cid: dict(sim.quantities)
            for cid, sim in self._channels.items()
            if not notifying or sim.order_notification(probe) is not None
        }

    async def run(self) -> None:
        """Until cancelled."""
        if self.every_s <= 0:
            return
        while True:
            await asyncio.sleep(self._rng.expovariate(1.0 / self.every_s))
            await self.stage()

    async def stage(self) -> str | None:
        """One surprise now: an oversell when a SKU is low on two channels, else an oversell
        through drift or a drift (even odds)."""
        plan = pick_oversell(self._shown(notifying=True), self._rng)
        if plan is not None:
            await asyncio.gather(*(
                self._sell(channel, plan.sku, qty) for channel, qty in (plan.first, plan.second)
            ))
            self.staged.append(("oversell", plan.sku))
            log.info("surprise_oversell", sku=plan.sku, channels=[plan.first[0], plan.second[0]])
            return "oversell"
        if self._rng.random() < 0.5 and await self.oversell_through_drift() is not None:
            return "oversell"
        drift = pick_drift(self._shown(notifying=False), self._rng)
        if drift is None:
            return None
        channel, sku, qty = drift
        self._channels[channel].set_quantity(sku, qty)
        self.staged.append(("drift", sku))
        log.info("surprise_drift", channel=channel, sku=sku, quantity=qty)
        return "drift"

    async def oversell_through_drift(self) -> tuple[str, str] | None:
        """Stage an oversell through drift now: (channel, SKU), or None when no channel that
        notifies lists anything."""
        shown = self._shown(notifying=True)
        listed = sorted((c, s) for c, quantities in shown.items() for s, q in quantities.items()
                        if q > 0)
        if not listed:
            return None
        channel, sku = self._rng.choice(listed)
        view = await self._api.stock(sku)
        if view is None or "bundle" in view:
            return None  # a bundle's components are held elsewhere: left to plain drift
        units = held_in_all(view) + 1
        self._channels[channel].set_quantity(sku, units)
        await self._sell(channel, sku, units)
        self.staged.append(("oversell", sku))
        log.info("surprise_oversell_through_drift", channel=channel, sku=sku, units=units)
        return channel, sku

    async def _sell(self, channel: str, sku: str, qty: int) -> None:
        order = self._channels[channel].place_order((SimLine(sku=sku, qty=qty),))
        if order is not None:
            await self._sold(channel, order)
