"""The first router: priority order, whole order in one place when possible, else per line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from invsync.actors.router import free_units, route
from invsync.engine.availability import Bundle, LocationStock
from invsync.engine.models import Line

LOCS = ["wh-east", "wh-west", "store-sf"]


def stock(**per_loc: int) -> dict[str, LocationStock]:
    return {loc.replace("_", "-"): LocationStock(on_hand=n) for loc, n in per_loc.items()}


def test_whole_order_goes_to_the_first_location_that_can_serve_all_of_it() -> None:
    inv = {"A": stock(wh_east=1, wh_west=5), "B": stock(wh_east=5, wh_west=5)}
    routed = route([Line(sku="A", qty=2), Line(sku="B", qty=1)], inv, LOCS)
    assert routed == [
        Line(sku="A", qty=2, location="wh-west"),
        Line(sku="B", qty=1, location="wh-west"),
    ]


def test_priority_order_decides_between_locations_that_both_can() -> None:
    inv = {"A": stock(wh_east=5, wh_west=5)}
    assert route([Line(sku="A", qty=1)], inv, ["wh-west", "wh-east"]) == [
        Line(sku="A", qty=1, location="wh-west")
    ]


def test_lines_go_to_different_locations_when_no_single_one_has_everything() -> None:
    inv = {"A": stock(wh_east=3), "B": stock(wh_west=3)}
    routed = route([Line(sku="A", qty=2), Line(sku="B", qty=2)], inv, LOCS)
    assert routed == [
        Line(sku="A", qty=2, location="wh-east"),
        Line(sku="B", qty=2, location="wh-west"),
    ]


def test_a_line_no_location_can_serve_alone_is_split_in_priority_order() -> None:
    inv = {"A": stock(wh_east=2, wh_west=1, store_sf=5)}
    assert route([Line(sku="A", qty=4)], inv, ["wh-east", "wh-west"]) is None
    assert route([Line(sku="A", qty=3)], inv, ["wh-east", "wh-west"]) == [
        Line(sku="A", qty=2, location="wh-east"),
        Line(sku="A", qty=1, location="wh-west"),
    ]


def test_unmeetable_order_returns_none() -> None:
    inv = {"A": stock(wh_east=1, wh_west=1)}
    assert route([Line(sku="A", qty=3)], inv, ["wh-east", "wh-west"]) is None
    assert route([Line(sku="UNKNOWN", qty=1)], inv, LOCS) is None


def test_locations_not_allowed_for_the_channel_are_never_used() -> None:
    inv = {"A": stock(store_sf=10)}
    assert route([Line(sku="A", qty=1)], inv, ["wh-east", "wh-west"]) is None


def test_reserved_and_damaged_units_are_not_free_but_safety_stock_is() -> None:
    s = LocationStock(on_hand=10, reserved=4, damaged=3, safety_stock=2)
    assert free_units(s) == 3
    inv = {"A": {"wh-east": s}}
    assert route([Line(sku="A", qty=3)], inv, ["wh-east"]) == [
        Line(sku="A", qty=3, location="wh-east")
    ]
    assert route([Line(sku="A", qty=4)], inv, ["wh-east"]) is None


def test_a_bundle_needs_all_its_components_at_one_location() -> None:
    kit = Bundle(sku="KIT", components={"TEE": 1, "CAP": 2})
    inv = {"TEE": stock(wh_east=5, wh_west=5), "CAP": stock(wh_east=1, wh_west=4)}
    assert route([Line(sku="KIT", qty=2)], inv, ["wh-east", "wh-west"], {"KIT": kit}) == [
        Line(sku="KIT", qty=2, location="wh-west")
    ]
    assert route([Line(sku="KIT", qty=3)], inv, ["wh-east", "wh-west"], {"KIT": kit}) is None


def test_a_bundle_and_its_own_component_on_another_line_count_together() -> None:
    kit = Bundle(sku="KIT", components={"TEE": 1, "CAP": 1})
    inv = {"TEE": stock(wh_east=1), "CAP": stock(wh_east=5)}
    lines = [Line(sku="KIT", qty=1), Line(sku="TEE", qty=1)]
    assert route(lines, inv, ["wh-east"], {"KIT": kit}) is None


@given(
    on_hand=st.lists(st.integers(0, 6), min_size=2, max_size=2),
    qtys=st.lists(st.integers(1, 5), min_size=1, max_size=3),
)
def test_never_assigns_more_than_is_free_anywhere(on_hand: list[int], qtys: list[int]) -> None:
    skus = ["A", "B", "C"]
    inv = {sku: {"l1": LocationStock(on_hand=on_hand[0]), "l2": LocationStock(on_hand=on_hand[1])}
           for sku in skus}
    lines = [Line(sku=skus[i % 3], qty=q) for i, q in enumerate(qtys)]
    routed = route(lines, inv, ["l1", "l2"])
    demand: dict[str, int] = {}
    for line in lines:
        demand[line.sku] = demand.get(line.sku, 0) + line.qty
    if routed is None:
        # Unmeetable only if some SKU's total demand exceeds its total stock, or splitting
        # greedily could not place it; total stock is the hard bound.
        return
    taken: dict[tuple[str, str], int] = {}
    for line in routed:
        assert line.location in ("l1", "l2")
        taken[(line.sku, line.location)] = taken.get((line.sku, line.location), 0) + line.qty
    for (sku, loc), qty in taken.items():
        assert qty <= inv[sku][loc].on_hand
    for sku, qty in demand.items():
        assert sum(q for (s, _), q in taken.items() if s == sku) == qty


@given(
    on_hand=st.lists(st.integers(0, 6), min_size=2, max_size=2),
    qty=st.integers(1, 12),
)
def test_a_single_line_is_met_whenever_total_stock_allows(on_hand: list[int], qty: int) -> None:
    inv = {"A": {"l1": LocationStock(on_hand=on_hand[0]), "l2": LocationStock(on_hand=on_hand[1])}}
    routed = route([Line(sku="A", qty=qty)], inv, ["l1", "l2"])
    assert (routed is not None) == (qty <= sum(on_hand))
