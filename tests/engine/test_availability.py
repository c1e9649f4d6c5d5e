"""Availability rules: pure functions, so no event loop, no Redis, just inputs and numbers."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invsync.engine.availability import (
    Bundle,
    ChannelPolicy,
    LocationStock,
    OrderLine,
    apply_policy,
    availability_by_channel,
    bundle_available,
    bundle_pool,
    changed,
    channel_available,
    expand_bundles,
    location_available,
    pool,
    validate_bundle,
    validate_policy,
)

ALL = ("A", "B", "C")


def policy(**kw: Any) -> ChannelPolicy:
    kw.setdefault("locations", ALL)
    return ChannelPolicy(**kw)


# --- location_available -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stock", "expected"),
    [
        (LocationStock(), 0),
        (LocationStock(on_hand=10), 10),
        (LocationStock(on_hand=10, reserved=3), 7),
        (LocationStock(on_hand=10, safety_stock=2), 8),
        (LocationStock(on_hand=10, damaged=4), 6),
        (LocationStock(on_hand=10, reserved=3, safety_stock=2, damaged=4), 1),
        (LocationStock(on_hand=10, reserved=3, safety_stock=3, damaged=4), 0),
        (LocationStock(on_hand=5, reserved=9), 0),
        (LocationStock(on_hand=0, incoming=100), 0),
        (LocationStock(on_hand=3, incoming=100), 3),
    ],
    ids=[
        "empty",
        "on_hand_only",
        "minus_reserved",
        "minus_safety_stock",
        "minus_damaged",
        "minus_all_three",
        "exactly_zero",
        "oversubscribed_clamps_to_zero",
        "incoming_alone_is_nothing",
        "incoming_adds_nothing",
    ],
)
def test_location_available_subtracts_held_states_and_never_goes_negative(
    stock: LocationStock, expected: int
) -> None:
    assert location_available(stock) == expected


# --- pool -------------------------------------------------------------------------------------

STOCK = {
    "A": LocationStock(on_hand=10, reserved=2),  # 8
    "B": LocationStock(on_hand=5, safety_stock=1, damaged=1),  # 3
    "C": LocationStock(on_hand=1, reserved=6),  # -5 -> 0
}


@pytest.mark.parametrize(
    ("locations", "expected"),
    [
        (("A", "B", "C"), 11),
        (("A",), 8),
        (("B", "C"), 3),
        (("C",), 0),
        ((), 0),
        (("A", "nowhere"), 8),
        (("nowhere",), 0),
        (("A", "A"), 8),
    ],
    ids=[
        "all_locations",
        "one_location",
        "subset",
        "deficit_location_alone",
        "no_locations",
        "unknown_location_counts_zero",
        "only_unknown_location",
        "duplicate_location_counts_once",
    ],
)
def test_pool_sums_available_over_listed_locations(
    locations: tuple[str, ...], expected: int
) -> None:
    assert pool(STOCK, locations) == expected


def test_negative_location_does_not_eat_another_locations_stock() -> None:
    stock = {"A": LocationStock(on_hand=10), "B": LocationStock(on_hand=0, reserved=7)}
    # Netting the locations would give 3; B's deficit is B's problem.
    assert pool(stock, ("A", "B")) == 10


def test_pool_accepts_any_iterable_of_locations() -> None:
    assert pool(STOCK, iter(["A", "B"])) == 11
    assert pool(STOCK, (loc for loc in "AB")) == 11


# --- apply_policy: each rule alone ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool_units", "kw", "expected"),
    [
        # defaults pass the pool through
        (0, {}, 0),
        (17, {}, 17),
        # buffer
        (10, {"buffer": 3}, 7),
        (10, {"buffer": 10}, 0),
        (10, {"buffer": 15}, 0),
        (0, {"buffer": 5}, 0),
        # percent, rounding down
        (7, {"percent": 50}, 3),
        (10, {"percent": 50}, 5),
        (1, {"percent": 99}, 0),
        (99, {"percent": 1}, 0),
        (100, {"percent": 1}, 1),
        (3, {"percent": 33}, 0),
        (10, {"percent": 33}, 3),
        (10, {"percent": 0}, 0),
        (10, {"percent": 100}, 10),
        # cap
        (10, {"cap": 4}, 4),
        (4, {"cap": 4}, 4),
        (3, {"cap": 4}, 3),
        (10, {"cap": 0}, 0),
        (10, {"cap": None}, 10),
        # floor
        (5, {"floor": 5}, 5),
        (4, {"floor": 5}, 0),
        (6, {"floor": 5}, 6),
        (0, {"floor": 0}, 0),
        (1, {"floor": 1}, 1),
    ],
)
def test_apply_policy_single_rule(pool_units: int, kw: dict[str, Any], expected: int) -> None:
    assert apply_policy(pool_units, policy(**kw)) == expected


def test_percent_rounds_down_never_up() -> None:
    assert apply_policy(7, policy(percent=50)) == 3
    assert apply_policy(19, policy(percent=10)) == 1
    assert apply_policy(9, policy(percent=10)) == 0


def test_buffer_bigger_than_pool_shows_zero_not_negative() -> None:
    assert apply_policy(3, policy(buffer=10)) == 0
    assert apply_policy(3, policy(buffer=10, percent=50)) == 0


def test_floor_boundary_exactly_at_floor_shows_value_and_one_below_shows_zero() -> None:
    assert apply_policy(5, policy(floor=5)) == 5
    assert apply_policy(4, policy(floor=5)) == 0


# --- apply_policy: rules combined, in order ---------------------------------------------------


@pytest.mark.parametrize(
    ("pool_units", "kw", "expected"),
    [
        # buffer comes off before the percentage: (20 - 4) * 50% = 8, not 20 * 50% - 4 = 6
        (20, {"buffer": 4, "percent": 50}, 8),
        # (11 - 2) * 50% = 4.5 -> 4
        (11, {"buffer": 2, "percent": 50}, 4),
        # the cap applies after the percentage: 100 * 50% = 50 -> 30
        (100, {"percent": 50, "cap": 30}, 30),
        # cap not reached after percentage
        (40, {"percent": 50, "cap": 30}, 20),
        # floor is checked after the percentage: 10 * 50% = 5 < 6
        (10, {"percent": 50, "floor": 6}, 0),
        # ... and 12 * 50% = 6 == floor
        (12, {"percent": 50, "floor": 6}, 6),
        # floor is checked after the buffer: 10 - 5 = 5 < 6
        (10, {"buffer": 5, "floor": 6}, 0),
        # floor is checked after the cap: capped at 4, below floor 5 -> 0
        (100, {"cap": 4, "floor": 5}, 0),
        # cap equal to floor shows the cap
        (100, {"cap": 5, "floor": 5}, 5),
        # everything: (50 - 10) * 75% = 30 -> cap 25 -> >= floor 3
        (50, {"buffer": 10, "percent": 75, "cap": 25, "floor": 3}, 25),
        # everything, ending below floor: (12 - 10) * 75% = 1.5 -> 1 < 3
        (12, {"buffer": 10, "percent": 75, "cap": 25, "floor": 3}, 0),
    ],
)
def test_apply_policy_combined_rules_apply_in_order(
    pool_units: int, kw: dict[str, Any], expected: int
) -> None:
    assert apply_policy(pool_units, policy(**kw)) == expected


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"buffer": -1}, "buffer"),
        ({"floor": -1}, "floor"),
        ({"cap": -1}, "cap"),
        ({"percent": -1}, "percent"),
        ({"percent": 101}, "percent"),
        ({"percent": 50.0}, "percent"),
        ({"buffer": 1.5}, "buffer"),
        ({"cap": "3"}, "cap"),
        ({"floor": True}, "floor"),
        ({"locations": ("A", "B", "A")}, "locations"),
    ],
)
def test_invalid_policy_raises_naming_the_field(kw: dict[str, Any], field: str) -> None:
    # A bad policy cannot even be built, so the hot path never meets one.
    with pytest.raises(ValueError, match=rf"ChannelPolicy\.{field}"):
        policy(**kw)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"buffer": 0, "percent": 0, "cap": 0, "floor": 0},
        {"percent": 100, "cap": None},
        {"locations": ()},
        {"buffer": 10**9, "cap": 10**9, "floor": 10**9},
    ],
)
def test_valid_policy_passes_validation(kw: dict[str, Any]) -> None:
    validate_policy(policy(**kw))


@pytest.mark.parametrize("pool_units", [-1, 1.0, "5", None, True])
def test_apply_policy_rejects_bad_pool_units(pool_units: Any) -> None:
    with pytest.raises(ValueError, match="pool_units"):
        apply_policy(pool_units, policy())


# --- channel_available / availability_by_channel ----------------------------------------------


def test_channel_fed_by_a_subset_of_locations_sees_only_those() -> None:
    assert channel_available(STOCK, policy(locations=("B",))) == 3
    assert channel_available(STOCK, policy(locations=("A", "C"))) == 8


def test_unknown_location_in_policy_counts_zero() -> None:
    assert channel_available(STOCK, policy(locations=("A", "closed-store"))) == 8
    assert channel_available(STOCK, policy(locations=("closed-store",))) == 0


def test_channel_available_applies_policy_to_pool() -> None:
    # pool A+B = 11; (11 - 1) * 50% = 5; cap 4; floor 2 -> 4
    p = policy(locations=("A", "B"), buffer=1, percent=50, cap=4, floor=2)
    assert channel_available(STOCK, p) == 4


def test_safety_stock_and_damaged_are_never_offered() -> None:
    stock = {"A": LocationStock(on_hand=10, safety_stock=3, damaged=2, incoming=50)}
    assert channel_available(stock, policy(locations=("A",))) == 5


def test_availability_by_channel_maps_each_channel_to_its_own_policy() -> None:
    policies = {
        "shopify": policy(locations=("A", "B")),
        "amazon": policy(locations=("A",), percent=50),
        "pos-b": policy(locations=("B",), floor=4),
        "ebay": policy(locations=("A", "B"), cap=2),
    }
    assert availability_by_channel(STOCK, policies) == {
        "shopify": 11,
        "amazon": 4,
        "pos-b": 0,
        "ebay": 2,
    }


def test_availability_by_channel_with_no_channels_is_empty() -> None:
    assert availability_by_channel(STOCK, {}) == {}


# --- bundles ----------------------------------------------------------------------------------


NOT_AN_INT: Any = 1.5


def kit(**components: int) -> Bundle:
    return Bundle(sku="KIT", components=components)


@pytest.mark.parametrize(
    ("bundle", "stocks", "locations", "expected"),
    [
        # min over components
        (
            kit(cam=1, bag=1),
            {"cam": {"A": LocationStock(on_hand=5)}, "bag": {"A": LocationStock(on_hand=3)}},
            ("A",),
            3,
        ),
        # units per bundle divide, rounding down: 7 // 2 = 3, 10 // 3 = 3
        (
            kit(bolt=2, nut=3),
            {"bolt": {"A": LocationStock(on_hand=7)}, "nut": {"A": LocationStock(on_hand=10)}},
            ("A",),
            3,
        ),
        # component availability uses the full rule: 10 - 2 reserved - 1 safety = 7 // 2 = 3
        (
            kit(bolt=2),
            {"bolt": {"A": LocationStock(on_hand=10, reserved=2, safety_stock=1)}},
            ("A",),
            3,
        ),
        # components split across locations: nothing is buildable anywhere
        (
            kit(cam=1, bag=1),
            {"cam": {"A": LocationStock(on_hand=5)}, "bag": {"B": LocationStock(on_hand=5)}},
            ("A", "B"),
            0,
        ),
        # per location then summed: A builds 2, B builds 1
        (
            kit(cam=1, bag=1),
            {
                "cam": {"A": LocationStock(on_hand=2), "B": LocationStock(on_hand=9)},
                "bag": {"A": LocationStock(on_hand=8), "B": LocationStock(on_hand=1)},
            },
            ("A", "B"),
            3,
        ),
        # leftover halves at two locations do not make a whole kit: 1 // 2 + 1 // 2 = 0
        (
            kit(bolt=2),
            {"bolt": {"A": LocationStock(on_hand=1), "B": LocationStock(on_hand=1)}},
            ("A", "B"),
            0,
        ),
        # a component with no stock record at all
        (kit(cam=1, bag=1), {"cam": {"A": LocationStock(on_hand=5)}}, ("A",), 0),
        # a component with no record at that location
        (
            kit(cam=1, bag=1),
            {"cam": {"A": LocationStock(on_hand=5)}, "bag": {"B": LocationStock(on_hand=5)}},
            ("A",),
            0,
        ),
        # only the listed locations count
        (
            kit(cam=1),
            {"cam": {"A": LocationStock(on_hand=5), "B": LocationStock(on_hand=7)}},
            ("B",),
            7,
        ),
        # unknown location counts zero
        (kit(cam=1), {"cam": {"A": LocationStock(on_hand=5)}}, ("A", "Z"), 5),
        # a location named twice counts once
        (kit(cam=1), {"cam": {"A": LocationStock(on_hand=5)}}, ("A", "A"), 5),
        # no locations
        (kit(cam=1), {"cam": {"A": LocationStock(on_hand=5)}}, (), 0),
    ],
    ids=[
        "min_over_components",
        "units_per_bundle_round_down",
        "component_uses_location_available",
        "components_split_across_locations_give_zero",
        "counted_per_location_then_summed",
        "partial_kits_do_not_combine_across_locations",
        "missing_component_sku",
        "missing_component_at_location",
        "subset_of_locations",
        "unknown_location",
        "duplicate_location",
        "no_locations",
    ],
)
def test_bundle_pool(
    bundle: Bundle,
    stocks: dict[str, dict[str, LocationStock]],
    locations: tuple[str, ...],
    expected: int,
) -> None:
    assert bundle_pool(bundle, stocks, locations) == expected


def test_bundle_pool_with_one_location_equals_spec_min_over_components() -> None:
    stocks = {"a": {"A": LocationStock(on_hand=9)}, "b": {"A": LocationStock(on_hand=20)}}
    bundle = kit(a=2, b=5)
    spec = min(pool(stocks[c], ("A",)) // u for c, u in bundle.components.items())
    assert bundle_pool(bundle, stocks, ("A",)) == spec == 4


def test_bundle_available_applies_the_channel_policy() -> None:
    stocks = {"cam": {"A": LocationStock(on_hand=20)}, "bag": {"A": LocationStock(on_hand=12)}}
    # pool 12 bundles; (12 - 2) * 50% = 5; cap 4
    p = policy(locations=("A",), buffer=2, percent=50, cap=4)
    assert bundle_available(kit(cam=1, bag=1), stocks, p) == 4
    assert bundle_available(kit(cam=1, bag=1), stocks, policy(locations=("A",), floor=13)) == 0


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (Bundle(sku="KIT", components={}), "must not be empty"),
        (Bundle(sku="KIT", components={"a": 0}), r"Bundle\.components\['a'\]"),
        (Bundle(sku="KIT", components={"a": -2}), r"Bundle\.components\['a'\]"),
        (Bundle(sku="KIT", components={"a": NOT_AN_INT}), r"Bundle\.components\['a'\]"),
        (Bundle(sku="KIT", components={"KIT": 1}), "must not contain the bundle itself"),
    ],
)
def test_invalid_bundle_raises_naming_the_field(bundle: Bundle, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_bundle(bundle)
    with pytest.raises(ValueError, match=message):
        bundle_pool(bundle, {}, ("A",))


def test_valid_bundle_passes_validation() -> None:
    validate_bundle(Bundle(sku="KIT", components={"a": 1, "b": 12}))


# --- changed ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ({}, {}, {}),
        ({"s": 1}, {"s": 1}, {}),
        ({"s": 1}, {"s": 2}, {"s": 2}),
        ({"s": 1}, {"s": 0}, {"s": 0}),
        ({}, {"s": 0}, {"s": 0}),
        ({"s": 1}, {"s": 1, "a": 3}, {"a": 3}),
        ({"s": 1, "a": 3}, {"s": 1}, {}),
        ({"s": 1, "a": 3, "e": 0}, {"s": 2, "a": 3, "e": 5}, {"s": 2, "e": 5}),
    ],
    ids=[
        "nothing",
        "same_value",
        "value_changed",
        "dropped_to_zero",
        "new_channel_at_zero_counts_as_changed",
        "new_channel",
        "channel_gone_is_not_reported",
        "mixed",
    ],
)
def test_changed_reports_only_channels_whose_value_differs(
    previous: dict[str, int], current: dict[str, int], expected: dict[str, int]
) -> None:
    assert changed(previous, current) == expected


# --- expand_bundles ---------------------------------------------------------------------------

BUNDLES = {
    "KIT": Bundle(sku="KIT", components={"cam": 1, "bat": 2}),
    "DUO": Bundle(sku="DUO", components={"bat": 3}),
}


def line(sku: str, qty: int, location: str | None = None) -> OrderLine:
    return OrderLine(sku=sku, qty=qty, location=location)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], []),
        ([line("cam", 2)], [line("cam", 2)]),
        ([line("KIT", 1)], [line("cam", 1), line("bat", 2)]),
        ([line("KIT", 3)], [line("cam", 3), line("bat", 6)]),
        # Medusa 16502: a bundle and one of its own components on separate lines
        ([line("KIT", 1), line("bat", 1)], [line("cam", 1), line("bat", 3)]),
        ([line("bat", 1), line("KIT", 1)], [line("bat", 3), line("cam", 1)]),
        # the same plain SKU twice merges
        ([line("cam", 1), line("cam", 4)], [line("cam", 5)]),
        # two bundles sharing a component
        ([line("KIT", 1), line("DUO", 2)], [line("cam", 1), line("bat", 8)]),
        # same SKU at different locations stays apart
        (
            [line("KIT", 1, "A"), line("bat", 1, "B")],
            [line("cam", 1, "A"), line("bat", 2, "A"), line("bat", 1, "B")],
        ),
        # same SKU, same location, merges; unrouted (None) is its own key
        (
            [line("bat", 1, "A"), line("bat", 1), line("KIT", 1, "A")],
            [line("bat", 3, "A"), line("bat", 1), line("cam", 1, "A")],
        ),
    ],
    ids=[
        "empty",
        "plain_line_passes_through",
        "bundle_to_components",
        "qty_times_units",
        "medusa_16502_bundle_then_component",
        "medusa_16502_component_then_bundle",
        "duplicate_plain_lines_merge",
        "bundles_sharing_a_component_merge",
        "different_locations_stay_apart",
        "none_location_is_its_own_key",
    ],
)
def test_expand_bundles(lines: list[OrderLine], expected: list[OrderLine]) -> None:
    assert expand_bundles(lines, BUNDLES) == expected


def test_expand_bundles_keeps_first_seen_order() -> None:
    lines = [line("z", 1), line("KIT", 1), line("a", 1), line("z", 1), line("cam", 1)]
    result = expand_bundles(lines, BUNDLES)
    assert [(r.sku, r.qty) for r in result] == [("z", 2), ("cam", 2), ("bat", 2), ("a", 1)]


def test_expand_bundles_does_not_modify_its_input() -> None:
    lines = [line("KIT", 1), line("bat", 1)]
    expand_bundles(lines, BUNDLES)
    assert lines == [line("KIT", 1), line("bat", 1)]


@pytest.mark.parametrize("qty", [0, -1, 1.0, 2.5, "3", None, True])
@pytest.mark.parametrize("sku", ["cam", "KIT"])
def test_expand_bundles_rejects_non_positive_or_non_int_qty(qty: Any, sku: str) -> None:
    with pytest.raises(ValueError, match=r"OrderLine\.qty"):
        expand_bundles([line("cam", 1), OrderLine(sku=sku, qty=qty)], BUNDLES)


def test_expand_bundles_rejects_nested_bundles() -> None:
    bundles = {**BUNDLES, "MEGA": Bundle(sku="MEGA", components={"KIT": 1, "cam": 1})}
    with pytest.raises(ValueError, match="nested bundles"):
        expand_bundles([line("MEGA", 1)], bundles)


def test_expand_bundles_rejects_an_invalid_bundle() -> None:
    bundles = {"BAD": Bundle(sku="BAD", components={"cam": 0})}
    with pytest.raises(ValueError, match=r"Bundle\.components\['cam'\]"):
        expand_bundles([line("BAD", 1)], bundles)


# --- properties -------------------------------------------------------------------------------

qty = st.integers(min_value=0, max_value=1000)
locations = st.sampled_from(["A", "B", "C", "D"])
location_stock = st.builds(
    LocationStock,
    on_hand=qty,
    reserved=qty,
    safety_stock=st.integers(0, 50),
    damaged=st.integers(0, 50),
    incoming=qty,
)
stock_maps = st.dictionaries(locations, location_stock, max_size=4)
policies = st.builds(
    ChannelPolicy,
    locations=st.lists(locations, unique=True, max_size=4).map(tuple),
    buffer=st.integers(0, 200),
    percent=st.integers(0, 100),
    cap=st.none() | st.integers(0, 2000),
    floor=st.integers(0, 200),
)
bundles = st.builds(
    Bundle,
    sku=st.just("KIT"),
    components=st.dictionaries(
        st.sampled_from(["p", "q", "r"]), st.integers(1, 5), min_size=1, max_size=3
    ),
)
component_stocks = st.dictionaries(st.sampled_from(["p", "q", "r"]), stock_maps, max_size=3)


@given(pool_units=st.integers(0, 5000), p=policies)
def test_policy_result_is_never_negative_above_cap_or_above_pool(
    pool_units: int, p: ChannelPolicy
) -> None:
    result = apply_policy(pool_units, p)
    assert 0 <= result <= pool_units
    if p.cap is not None:
        assert result <= p.cap
    assert result == 0 or result >= p.floor


@given(stock=stock_maps, p=policies)
def test_channel_available_is_never_negative_above_cap_or_above_pool(
    stock: dict[str, LocationStock], p: ChannelPolicy
) -> None:
    result = channel_available(stock, p)
    assert 0 <= result <= pool(stock, p.locations)
    if p.cap is not None:
        assert result <= p.cap


@given(stock=stock_maps)
def test_pool_is_the_sum_of_each_location_clamped_on_its_own(
    stock: dict[str, LocationStock],
) -> None:
    assert pool(stock, stock.keys()) == sum(location_available(s) for s in stock.values())
    assert all(location_available(s) >= 0 for s in stock.values())


@given(stock=stock_maps, p=policies, where=locations, more=st.integers(1, 1000))
def test_more_on_hand_never_lowers_availability(
    stock: dict[str, LocationStock], p: ChannelPolicy, where: str, more: int
) -> None:
    before = stock.get(where, LocationStock())
    after = {
        **stock,
        where: LocationStock(
            on_hand=before.on_hand + more,
            reserved=before.reserved,
            safety_stock=before.safety_stock,
            damaged=before.damaged,
            incoming=before.incoming,
        ),
    }
    assert channel_available(after, p) >= channel_available(stock, p)


@given(pool_units=st.integers(0, 5000), more=st.integers(0, 5000), p=policies)
def test_apply_policy_is_monotonic_in_the_pool(
    pool_units: int, more: int, p: ChannelPolicy
) -> None:
    assert apply_policy(pool_units + more, p) >= apply_policy(pool_units, p)


@given(bundle=bundles, stocks=component_stocks, p=policies)
def test_bundles_times_units_never_exceed_any_component_pool(
    bundle: Bundle, stocks: dict[str, dict[str, LocationStock]], p: ChannelPolicy
) -> None:
    kits = bundle_available(bundle, stocks, p)
    built = bundle_pool(bundle, stocks, p.locations)
    assert 0 <= kits <= built
    for component, units in bundle.components.items():
        assert built * units <= pool(stocks.get(component, {}), p.locations)


@given(bundle=bundles, stocks=component_stocks, locs=st.lists(locations, max_size=4))
def test_bundle_pool_never_exceeds_spec_formula_and_equals_it_for_one_location(
    bundle: Bundle, stocks: dict[str, dict[str, LocationStock]], locs: list[str]
) -> None:
    def spec(where: list[str]) -> int:
        return min(pool(stocks.get(c, {}), where) // u for c, u in bundle.components.items())

    assert bundle_pool(bundle, stocks, locs) <= spec(locs)
    for one in locs:
        assert bundle_pool(bundle, stocks, [one]) == spec([one])


@given(
    order=st.lists(
        st.builds(
            OrderLine,
            sku=st.sampled_from(["KIT", "DUO", "cam", "bat", "strap"]),
            qty=st.integers(1, 50),
            location=st.none() | locations,
        ),
        max_size=12,
    )
)
def test_expanding_then_summing_per_sku_equals_hand_computed_totals(
    order: list[OrderLine],
) -> None:
    expected: Counter[str] = Counter()
    for ln in order:
        if ln.sku == "KIT":
            expected["cam"] += ln.qty
            expected["bat"] += 2 * ln.qty
        elif ln.sku == "DUO":
            expected["bat"] += 3 * ln.qty
        else:
            expected[ln.sku] += ln.qty

    result = expand_bundles(order, BUNDLES)

    totals: Counter[str] = Counter()
    for ln in result:
        totals[ln.sku] += ln.qty
    assert totals == expected
    # merged: one line per (sku, location), none of them a bundle, all positive
    keys = [(ln.sku, ln.location) for ln in result]
    assert len(keys) == len(set(keys))
    assert not any(ln.sku in BUNDLES for ln in result)
    assert all(ln.qty > 0 for ln in result)


@given(
    previous=st.dictionaries(st.sampled_from("abcde"), st.integers(0, 5)),
    current=st.dictionaries(st.sampled_from("abcde"), st.integers(0, 5)),
)
def test_applying_changed_to_previous_yields_current(
    previous: dict[str, int], current: dict[str, int]
) -> None:
    delta = changed(previous, current)
    pushed = {**previous, **delta}
    assert all(pushed[k] == v for k, v in current.items())
    assert all(previous.get(k) != v for k, v in delta.items())
