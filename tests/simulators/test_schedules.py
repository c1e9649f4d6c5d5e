"""The living demo's schedules and picks, without a clock or a daemon: order fates, the
receiving arithmetic that keeps up with sales, and what a surprise chooses."""

from __future__ import annotations

import math
import random
import statistics

from hypothesis import given
from hypothesis import strategies as st

from invsync.simulators.schedules import (
    COVER,
    UNITS_PER_ORDER,
    next_gap,
    order_fate,
    receipt,
    restock_target,
    sku_demand_per_minute,
    units_sold_per_minute,
)
from invsync.simulators.surprises import OVERSELL_MAX, held_in_all, pick_drift, pick_oversell


def test_gaps_follow_the_rate_and_zero_means_never() -> None:
    rng = random.Random(1)
    gaps = [next_gap(rng, 12.0) for _ in range(4000)]
    assert all(g is not None and g > 0 for g in gaps)
    mean = statistics.fmean(g for g in gaps if g is not None)
    assert 4.5 < mean < 5.5  # 12 a minute: one every 5 s on average
    assert next_gap(rng, 0.0) is None


def test_a_share_of_orders_is_cancelled_early_and_the_rest_ship_later() -> None:
    rng = random.Random(2)
    fates = [order_fate(rng, cancel_rate=0.1, cancel_after_s=5, ship_after_s=90)
             for _ in range(5000)]
    cancelled = [f for f in fates if f is not None and f.what == "cancel"]
    shipped = [f for f in fates if f is not None and f.what == "ship"]
    assert len(cancelled) + len(shipped) == len(fates)
    assert 0.08 < len(cancelled) / len(fates) < 0.12
    assert all(2.5 <= f.after_s <= 7.5 for f in cancelled)
    assert all(45 <= f.after_s <= 135 for f in shipped)


def test_without_shipping_an_order_that_is_not_cancelled_waits() -> None:
    rng = random.Random(3)
    fates = [order_fate(rng, cancel_rate=0.0, cancel_after_s=5, ship_after_s=0)
             for _ in range(100)]
    assert fates == [None] * 100
    staged = [order_fate(rng, cancel_rate=0.0, cancel_after_s=5, ship_after_s=10)
              for _ in range(100)]
    assert all(f is not None and f.what == "ship" for f in staged)


def test_the_shipped_config_balances_sales_with_receipts() -> None:
    # config.toml's [simulator]: 12 orders and 2 store sales a minute, 5 SKUs, a round every
    # 120 s with 60 s of lead time (the figures its comment and docs/operations.md give).
    units = units_sold_per_minute(12, 2, stores=1)
    assert units == 12 * UNITS_PER_ORDER + 2 == 18
    demand = sku_demand_per_minute(units, 5)
    assert math.isclose(demand, 3.6)
    target = restock_target(9, demand, every_s=120, lead_s=60)
    assert target == 33
    # What one SKU sells over a round and its lead time is a third of what a location holds.
    assert target >= COVER * demand * 3 - 1e-9
    assert restock_target(40, demand, every_s=120, lead_s=60) == 40  # the imported stock rules


@given(
    position=st.integers(-50, 500),
    first=st.integers(0, 200),
    demand=st.floats(0, 100),
    every=st.floats(0, 600),
    lead=st.floats(0, 600),
)
def test_a_receipt_tops_up_to_the_target_and_never_takes_away(
    position: int, first: int, demand: float, every: float, lead: float
) -> None:
    target = restock_target(first, demand, every_s=every, lead_s=lead)
    assert target >= first
    units = receipt(position, target)
    assert units >= 0
    assert position + units >= target if position < target else units == 0


def test_an_oversell_picks_a_sku_two_channels_show_the_last_units_of() -> None:
    rng = random.Random(4)
    shown = {
        "shop": {"TEE": 2, "MUG": 40, "CAP": 1},
        "amazon": {"TEE": 1, "MUG": 3},
        "ebay": {"CAP": 0, "MUG": 2},
    }
    plan = pick_oversell(shown, rng)
    assert plan is not None
    assert plan.sku == "TEE"  # the lowest SKU two channels show (CAP is low on one only)
    assert {plan.first[0], plan.second[0]} == {"shop", "amazon"}
    assert {plan.first[1], plan.second[1]} == {2, 1}
    assert pick_oversell({"shop": {"TEE": OVERSELL_MAX + 1}, "amazon": {"TEE": 9}}, rng) is None
    assert pick_oversell({"shop": {"TEE": 1}}, rng) is None


@given(st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.dictionaries(st.sampled_from(["X", "Y", "Z"]), st.integers(0, 10)),
))
def test_every_pick_respects_what_the_channels_show(shown: dict[str, dict[str, int]]) -> None:
    rng = random.Random(5)
    plan = pick_oversell(shown, rng)
    if plan is not None:
        assert plan.first[0] != plan.second[0]
        for channel, qty in (plan.first, plan.second):
            assert shown[channel][plan.sku] == qty and 0 < qty <= OVERSELL_MAX
    drift = pick_drift(shown, rng)
    if drift is None:
        assert not any(shown.values())
    else:
        channel, sku, qty = drift
        assert qty >= 0 and qty != shown[channel][sku]


def test_what_an_order_could_still_take_counts_every_location() -> None:
    view = {"locations": {
        "wh-east": {"on_hand": 10, "reserved": 3, "damaged": 1, "safety_stock": 0},
        "store": {"on_hand": 2, "reserved": 0, "damaged": 0, "safety_stock": 1},
        "wh-west": {"on_hand": 1, "reserved": 4, "damaged": 0, "safety_stock": 0},
    }}
    assert held_in_all(view) == 6 + 2 + 0
    assert held_in_all({}) == 0
