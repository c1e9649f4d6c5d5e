"""The living demo's arithmetic: when things happen and how many units they move.

Pure functions of their arguments and a ``random.Random``, so the schedules can be checked
without a clock or a daemon (tests/simulators/test_schedules.py). The balance they keep
(docs/operations.md, "The demo"):

- units sold per minute = ``orders_per_minute`` x ``UNITS_PER_ORDER`` (the order generator
  takes 1, 1 or 2 units of one SKU) + ``store_sales_per_minute`` x store locations;
- a receiving round every ``restock_every_s`` tops every (SKU, location) that held stock up to
  ``restock_target``: what it first held, or ``COVER`` times what the whole SKU sells while a
  round and its lead time pass, whichever is more; so a location runs dry only when one SKU
  sells ``COVER`` times faster than its share of the traffic.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "COVER",
    "UNITS_PER_ORDER",
    "Fate",
    "jittered",
    "next_gap",
    "order_fate",
    "receipt",
    "restock_target",
    "sku_demand_per_minute",
    "units_sold_per_minute",
]

#: Mean units of one generated order: one SKU, 1, 1 or 2 units (SimChannel.place_order).
UNITS_PER_ORDER = 4 / 3

#: A receiving round tops up to this many times the demand it has to cover.
COVER = 3.0


def next_gap(rng: random.Random, per_minute: float) -> float | None:
    """Seconds to the next event of a Poisson stream of ``per_minute`` (None: never)."""
    if per_minute <= 0:
        return None
    return rng.expovariate(per_minute / 60.0)


def jittered(rng: random.Random, mean_s: float) -> float:
    """``mean_s`` give or take half of it (uniform), as people and warehouses take their time."""
    return mean_s * rng.uniform(0.5, 1.5)


@dataclass(frozen=True, slots=True)
class Fate:
    """What becomes of a generated order: the buyer cancels it, or it ships, ``after_s`` later."""

    what: Literal["cancel", "ship"]
    after_s: float


def order_fate(
    rng: random.Random, *, cancel_rate: float, cancel_after_s: float, ship_after_s: float
) -> Fate | None:
    """Cancelled with probability ``cancel_rate`` (around ``cancel_after_s``), else shipped
    around ``ship_after_s``; None when it is neither (``ship_after_s`` 0: orders wait)."""
    if rng.random() < cancel_rate:
        return Fate("cancel", jittered(rng, cancel_after_s))
    if ship_after_s <= 0:
        return None
    return Fate("ship", jittered(rng, ship_after_s))


def units_sold_per_minute(
    orders_per_minute: float, store_sales_per_minute: float, stores: int
) -> float:
    """Units leaving the stock per minute, on average, online and in the stores."""
    return orders_per_minute * UNITS_PER_ORDER + store_sales_per_minute * stores


def sku_demand_per_minute(units_per_minute: float, skus: int) -> float:
    """The mean units one SKU sells per minute when the traffic spreads over ``skus``."""
    return units_per_minute / max(1, skus)


def restock_target(
    first_on_hand: int, demand_per_minute: float, *, every_s: float, lead_s: float
) -> int:
    """Units a location is topped up to: what it first held, or ``COVER`` times the SKU's
    demand over one round and its lead time, whichever is more."""
    cover = math.ceil(COVER * demand_per_minute * (every_s + lead_s) / 60.0)
    return max(first_on_hand, cover)


def receipt(position: int, target: int) -> int:
    """Units to order for a location whose position (on hand - reserved + incoming) is
    ``position``: the shortfall to ``target``, 0 when there is none."""
    return max(0, target - position)
