"""Now and then something goes wrong, so the exception flow can be seen.

Around every ``[simulator] surprise_every_s`` (a Poisson stream) one of:

- an **oversell**: two marketplaces that both show the last few units of a SKU (at most
  ``OVERSELL_MAX``) sell them at the same moment, each to its own buyer; invsync reserves one
  and opens an ``oversold`` exception for the other. Only when no SKU is that low;
- otherwise a **drift**: a marketplace's quantity of a SKU is changed behind invsync's back (a
  seller's manual edit in the marketplace's admin), which the drift check finds when that SKU
  has not been pushed for a while (``[exceptions] drift_settle_s``), and the next push of the
  SKU overwrites otherwise.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from .core import SimChannel, SimLine, SimOrder

__all__ = ["OVERSELL_MAX", "Oversell", "Surprises", "pick_drift", "pick_oversell"]

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


class Surprises:
    """Stages an oversell or a drift now and then; ``sold`` tells the daemon of a sale (and
    gives the order its fate, as every generated order)."""

    def __init__(
        self,
        *,
        channels: Mapping[str, SimChannel],
        sold: Callable[[str, SimOrder], Awaitable[None]],
        rng: random.Random,
        every_s: float,
    ) -> None:
        self._channels = channels
        self._sold = sold
        self._rng = rng
        self.every_s = every_s
        #: ("oversell" | "drift", sku) of every surprise staged
        self.staged: list[tuple[str, str]] = []

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
        """One surprise now: an oversell when a SKU is low on two channels, else a drift."""
        plan = pick_oversell(self._shown(notifying=True), self._rng)
        if plan is not None:
            await asyncio.gather(*(
                self._sell(channel, plan.sku, qty) for channel, qty in (plan.first, plan.second)
            ))
            self.staged.append(("oversell", plan.sku))
            log.info("surprise_oversell", sku=plan.sku, channels=[plan.first[0], plan.second[0]])
            return "oversell"
        drift = pick_drift(self._shown(notifying=False), self._rng)
        if drift is None:
            return None
        channel, sku, qty = drift
        self._channels[channel].set_quantity(sku, qty)
        self.staged.append(("drift", sku))
        log.info("surprise_drift", channel=channel, sku=sku, quantity=qty)
        return "drift"

    async def _sell(self, channel: str, sku: str, qty: int) -> None:
        order = self._channels[channel].place_order((SimLine(sku=sku, qty=qty),))
        if order is not None:
            await self._sold(channel, order)
