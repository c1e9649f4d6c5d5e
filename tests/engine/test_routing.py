"""The router: `route` (the first router, priority order) and `plan` (SLA, shipments, cost)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from invsync.core.config import load_config
from invsync.core.events import ShipTo
from invsync.engine.availability import Bundle, LocationStock
from invsync.engine.models import Line
from invsync.engine.routing import (
    MAX_EXACT_LINES,
    RoutingPolicy,
    Site,
    free_units,
    plan,
    route,
    routing_policy,
    zone_for,
)

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
    inv = {
        sku: {"l1": LocationStock(on_hand=on_hand[0]), "l2": LocationStock(on_hand=on_hand[1])}
        for sku in skus
    }
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


# --- plan: the spec's routing (SLA, fewest shipments, cost, priority) ----------------------------

WEST = ShipTo(country="US", region="CA")
ZONES = {"US-CA": "west", "US": "us"}


def site(
    loc: str, days: int | None = None, cost: float | None = None, prio: int = 100, **kw: bool
) -> Site:
    return Site(
        id=loc,
        priority=prio,
        transit_days={} if days is None else {"west": days},
        ship_cost={} if cost is None else {"west": cost},
        allowed=kw.get("allowed", True),
    )


def policy(*sites: Site, **kw: object) -> RoutingPolicy:
    return msgspec.convert(
        {"channel": "shop", "sites": sites, "zones": ZONES, **kw},
        RoutingPolicy,
        from_attributes=True,
    )


def at(*pairs: tuple[str, int, str]) -> list[Line]:
    return [Line(sku=sku, qty=qty, location=loc) for sku, qty, loc in pairs]


SCENARIOS = [
    pytest.param(
        policy(site("far", days=5, cost=1, prio=1), site("near", days=1, cost=9), sla_days=2),
        {"A": stock(far=5, near=5)},
        [Line(sku="A", qty=1)],
        at(("A", 1, "near")),
        False,
        None,
        id="sla-excludes-a-cheap-far-location",
    ),
    pytest.param(
        policy(site("both", 1, 10), site("a-only", 1, 1), site("b-only", 1, 1)),
        {"A": stock(both=1, a_only=9), "B": stock(both=1, b_only=9)},
        [Line(sku="A", qty=1), Line(sku="B", qty=1)],
        at(("A", 1, "both"), ("B", 1, "both")),
        False,
        None,
        id="fewest-shipments-beats-a-cheaper-split",
    ),
    pytest.param(
        policy(site("dear", 1, 8, prio=1), site("cheap", 1, 3, prio=50)),
        {"A": stock(dear=5, cheap=5)},
        [Line(sku="A", qty=2)],
        at(("A", 2, "cheap")),
        False,
        None,
        id="cost-breaks-ties-between-one-shipment-options",
    ),
    pytest.param(
        policy(site("x", 1, 5, prio=50), site("y", 1, 5, prio=10)),
        {"A": stock(x=5, y=5)},
        [Line(sku="A", qty=2)],
        at(("A", 2, "y")),
        False,
        None,
        id="priority-breaks-cost-ties",
    ),
    pytest.param(
        policy(site("x", 1, 5), site("y", 1, 5)),
        {"A": stock(x=5, y=5)},
        [Line(sku="A", qty=2)],
        at(("A", 2, "x")),
        False,
        None,
        id="equal-priority-keeps-file-order",
    ),
    pytest.param(
        policy(site("slow", 4, 1), site("slower", 6, 1, prio=1), sla_days=2),
        {"A": stock(slow=5, slower=5)},
        [Line(sku="A", qty=1)],
        at(("A", 1, "slow")),
        True,
        None,
        id="fallback-late-takes-the-soonest-late-assignment",
    ),
    pytest.param(
        policy(site("slow", 4, 1), sla_days=2, fallback="unroutable"),
        {"A": stock(slow=5)},
        [Line(sku="A", qty=1)],
        None,
        False,
        "sla",
        id="fallback-unroutable",
    ),
    pytest.param(
        policy(site("near", 1, 1), sla_days=2, fallback="unroutable"),
        {"A": stock(near=1)},
        [Line(sku="A", qty=2)],
        None,
        False,
        "out_of_stock",
        id="out-of-stock-is-not-an-sla-miss",
    ),
    pytest.param(
        policy(site("near", 1, 1), site("slow", 5, 1), sla_days=2),
        {"A": stock(near=1, slow=5), "B": stock(slow=5)},
        [Line(sku="A", qty=1), Line(sku="B", qty=1)],
        at(("A", 1, "slow"), ("B", 1, "slow")),
        True,
        None,
        id="late-when-the-on-time-locations-cannot-ship-everything",
    ),
    pytest.param(
        policy(site("cheap", 1, 1, allowed=False), site("dear", 1, 9)),
        {"A": stock(cheap=9, dear=9)},
        [Line(sku="A", qty=1)],
        at(("A", 1, "dear")),
        False,
        None,
        id="a-location-that-does-not-serve-the-channel-is-never-used",
    ),
    pytest.param(
        policy(site("x", allowed=False)),
        {"A": stock(x=9)},
        [Line(sku="A", qty=1)],
        None,
        False,
        "no_locations",
        id="no-allowed-location",
    ),
    pytest.param(
        policy(
            site("cheap", 1, 1),
            site("dear", 1, 9),
            bundles={"KIT": Bundle(sku="KIT", components={"TEE": 1, "CAP": 1})},
        ),
        {"TEE": stock(cheap=5, dear=5), "CAP": stock(cheap=0, dear=5)},
        [Line(sku="KIT", qty=2)],
        at(("KIT", 2, "dear")),
        False,
        None,
        id="a-bundle-ships-all-its-components-from-one-location",
    ),
    pytest.param(
        policy(
            site("x", 1, 1),
            site("y", 1, 1),
            bundles={"KIT": Bundle(sku="KIT", components={"TEE": 1, "CAP": 1})},
        ),
        {"TEE": stock(x=5), "CAP": stock(y=5)},
        [Line(sku="KIT", qty=1)],
        None,
        False,
        "out_of_stock",
        id="a-bundle-is-not-built-from-parts-in-two-places",
    ),
    pytest.param(
        policy(site("x", 1, 1)),
        {"A": stock(x=5)},
        [Line(sku="A", qty=1), Line(sku="NOPE", qty=1)],
        None,
        False,
        "unknown_sku",
        id="unknown-sku",
    ),
    pytest.param(
        policy(site("x", 1, 1), site("y", 1, 1), site("z", 1, 1)),
        {"A": stock(x=2, y=1, z=2)},
        [Line(sku="A", qty=4)],
        at(("A", 2, "x"), ("A", 2, "z")),
        False,
        None,
        id="a-line-no-single-location-holds-is-split",
    ),
    pytest.param(
        policy(site("x", 1, 1), site("y", 1, 5)),
        {"A": stock(x=1, y=5)},
        [Line(sku="A", qty=1, location="y")],
        at(("A", 1, "y")),
        False,
        None,
        id="a-line-with-a-location-stays-there",
    ),
    pytest.param(
        policy(site("far", 9, 9, prio=1), site("near", 1, 1), sla_days=1, strategy="priority"),
        {"A": stock(near=5, far=5)},
        [Line(sku="A", qty=1)],
        at(("A", 1, "far")),
        True,
        None,
        id="priority-strategy-ignores-sla-and-cost-but-reports-late",
    ),
]


@pytest.mark.parametrize(("pol", "inv", "lines", "expected", "late", "code"), SCENARIOS)
def test_plan_scenarios(
    pol: RoutingPolicy,
    inv: dict[str, dict[str, LocationStock]],
    lines: list[Line],
    expected: list[Line] | None,
    late: bool,
    code: str | None,
) -> None:
    decision = plan(lines, inv, WEST, pol)
    assert decision.assignment == expected
    assert decision.late is late
    assert decision.unroutable_code == code
    assert (decision.unroutable_reason is None) is (code is None)
    # The explanation is plain JSON for GET /v1/orders/...
    msgspec.json.encode(decision.explanation)


def test_a_split_counts_as_extra_shipments_against_a_whole_line_elsewhere() -> None:
    # One location holds both lines whole; shipping A from the cheap one would split nothing
    # but add a parcel. The whole order from one place wins despite its cost.
    pol = policy(site("one", 1, 20), site("cheap", 1, 1))
    inv = {"A": stock(one=3, cheap=3), "B": stock(one=1)}
    decision = plan([Line(sku="A", qty=3), Line(sku="B", qty=1)], inv, WEST, pol)
    assert decision.assignment == at(("A", 3, "one"), ("B", 1, "one"))
    assert decision.explanation.shipment_count == 1


@pytest.mark.parametrize(
    ("ship_to", "zone"),
    [
        (ShipTo(country="US", region="CA"), "west"),
        (ShipTo(country="us", region="ca"), "west"),
        (ShipTo(country="US", region="US-CA"), "west"),
        (ShipTo(country="US", region="NY"), "us"),
        (ShipTo(country="US"), "us"),
        (ShipTo(country="FR", region="75"), "default"),
        (ShipTo(), "default"),
        (None, "default"),
    ],
)
def test_zone_is_the_most_specific_match(ship_to: ShipTo | None, zone: str) -> None:
    assert zone_for(ship_to, ZONES, "default") == zone


def test_the_zone_decides_transit_and_cost() -> None:
    east = Site(id="east", transit_days={"west": 5, "us": 2}, ship_cost={"west": 9, "us": 4})
    west = Site(id="west", transit_days={"west": 1, "us": 4}, ship_cost={"west": 4, "us": 9})
    pol = policy(east, west, sla_days=2)
    inv = {"A": stock(east=5, west=5)}
    assert plan([Line(sku="A", qty=1)], inv, WEST, pol).assignment == at(("A", 1, "west"))
    ny = ShipTo(country="US", region="NY")
    assert plan([Line(sku="A", qty=1)], inv, ny, pol).assignment == at(("A", 1, "east"))


def test_a_location_without_a_price_for_the_zone_ranks_after_priced_ones() -> None:
    pol = policy(site("unpriced", 1, None, prio=1), site("priced", 1, 50))
    inv = {"A": stock(unpriced=5, priced=5)}
    decision = plan([Line(sku="A", qty=1)], inv, WEST, pol)
    assert decision.assignment == at(("A", 1, "priced"))


def test_a_location_without_transit_days_for_the_zone_cannot_meet_an_sla() -> None:
    pol = policy(site("unknown", None, 1), site("known", 2, 5), sla_days=2)
    inv = {"A": stock(unknown=5, known=5)}
    assert plan([Line(sku="A", qty=1)], inv, WEST, pol).assignment == at(("A", 1, "known"))


def test_the_explanation_lists_candidates_scores_and_why() -> None:
    pol = policy(
        site("far", 5, 1, prio=10),
        site("near", 1, 7, prio=20),
        Site(id="store", allowed=False, not_allowed_because="does not serve channel 'shop'"),
        sla_days=2,
    )
    inv = {"A": stock(far=5, near=5, store=5), "B": stock(near=1)}
    decision = plan([Line(sku="A", qty=2), Line(sku="B", qty=1)], inv, WEST, pol)
    ex = msgspec.to_builtins(decision.explanation)
    assert ex["zone"] == "west" and ex["sla_days"] == 2 and ex["exact"] is True
    by_loc = {c["location"]: c for c in ex["candidates"]}
    assert by_loc["far"] == {
        "location": "far",
        "allowed": True,
        "zone": "west",
        "transit_days": 5,
        "meets_sla": False,
        "cost": 1.0,
        "priority": 10,
        "can_serve": [0],
        "note": None,
    }
    assert by_loc["near"]["can_serve"] == [0, 1] and by_loc["near"]["meets_sla"] is True
    assert by_loc["store"]["allowed"] is False
    assert by_loc["store"]["note"] == "does not serve channel 'shop'"
    assert ex["shipment_count"] == 1
    assert ex["total_cost"] == 7.0 and ex["priority_score"] == 20
    assert ex["shipments"] == [
        {
            "location": "near",
            "lines": [
                {"sku": "A", "qty": 2, "location": "near"},
                {"sku": "B", "qty": 1, "location": "near"},
            ],
            "transit_days": 1,
            "cost": 7.0,
        }
    ]
    assert any("1 shipment(s) from near" in w for w in ex["why"])


def test_a_big_order_gets_the_greedy_assignment_and_says_so() -> None:
    skus = [f"S{i}" for i in range(MAX_EXACT_LINES + 1)]
    inv = {sku: stock(x=1, y=1) for sku in skus}
    decision = plan([Line(sku=s, qty=1) for s in skus], inv, WEST, policy(site("x"), site("y")))
    assert decision.assignment == [Line(sku=s, qty=1, location="x") for s in skus]
    assert decision.explanation.exact is False
    assert any("greedy" in w for w in decision.explanation.why)


def test_the_exact_search_beats_the_greedy_order() -> None:
    # Greedy ships A from a (cheapest), then needs b for B and c for C: three parcels.
    # The search sees that b holds A and B: two parcels.
    pol = policy(site("a", 1, 1), site("b", 1, 5), site("c", 1, 5))
    inv = {"A": stock(a=1, b=1), "B": stock(b=1), "C": stock(c=1)}
    lines = [Line(sku="A", qty=1), Line(sku="B", qty=1), Line(sku="C", qty=1)]
    decision = plan(lines, inv, WEST, pol)
    assert decision.explanation.shipment_count == 2
    assert decision.assignment == at(("A", 1, "b"), ("B", 1, "b"), ("C", 1, "c"))


CONFIG = """
[[locations]]
id = "wh-east"
priority = 10
transit_days = { east = 1, west = 5, default = 7 }
ship_cost = { east = 4.5, west = 9, default = 12 }

[[locations]]
id = "store-sf"
kind = "store"
priority = 50
transit_days = { west = 1 }
ship_cost = { west = 6 }
serves = ["shop"]

[[locations]]
id = "wh-west"
priority = 20

[[channels]]
id = "shop"
kind = "shopify"
sla_days = 2

[[channels]]
id = "b2b"
kind = "walmart"
locations = ["wh-east", "store-sf"]

[routing]
zones = { "US-CA" = "west", US = "east" }
fallback = "unroutable"
strategies = { b2b = "priority" }
"""


def test_routing_policy_is_the_channels_view_of_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    config = load_config(path)
    shop = routing_policy(config, "shop")
    assert (shop.strategy, shop.sla_days, shop.fallback) == ("sla_cost", 2, "unroutable")
    assert [(s.id, s.allowed) for s in shop.sites] == [
        ("wh-east", True),
        ("wh-west", True),
        ("store-sf", True),
    ]
    b2b = routing_policy(config, "b2b")
    assert b2b.strategy == "priority" and b2b.sla_days is None
    assert [(s.id, s.allowed, s.not_allowed_because) for s in b2b.sites] == [
        ("wh-east", True, None),
        ("wh-west", False, "not in channel 'b2b' locations"),
        ("store-sf", False, "does not serve channel 'b2b'"),
    ]
    inv = {"A": stock(wh_east=5, store_sf=5)}
    assert plan([Line(sku="A", qty=1)], inv, WEST, shop).assignment == at(("A", 1, "store-sf"))
    assert plan([Line(sku="A", qty=1)], inv, WEST, b2b).assignment == at(("A", 1, "wh-east"))
    unknown = routing_policy(config, "nobody")
    # An unknown channel: every location that serves all channels, no SLA.
    assert [s.id for s in unknown.sites if s.allowed] == ["wh-east", "wh-west"]
    assert unknown.sla_days is None


# --- safety stock is the last resort ---------------------------------------------------------


def _issue_policy(fallback: str = "late", strategy: str = "sla_cost") -> RoutingPolicy:
    """The shipped config's shape: store-sf reaches California in a day and keeps one unit
    back; wh-east takes five days there; Amazon's SLA is two days."""
    return RoutingPolicy(
        channel="amazon",
        sites=(
            Site(id="wh-east", priority=10, transit_days={"west": 5}, ship_cost={"west": 6.0}),
            Site(id="store-sf", priority=30, transit_days={"west": 1}, ship_cost={"west": 4.0}),
        ),
        strategy=strategy,  # type: ignore[arg-type]
        sla_days=2,
        fallback=fallback,  # type: ignore[arg-type]
        zones={"US-CA": "west"},
    )


def _floor_stock(store_free: int) -> dict[str, dict[str, LocationStock]]:
    return {
        "A": {
            "wh-east": LocationStock(on_hand=10),
            "store-sf": LocationStock(on_hand=3, reserved=3 - store_free, safety_stock=1),
        }
    }


CA = ShipTo(country="US", region="CA")


def test_an_order_that_would_take_the_stores_floor_unit_ships_late_from_the_warehouse() -> None:
    # Two units at the store above its floor: the first order ships from there on time.
    first = plan([Line(sku="A", qty=2)], _floor_stock(3), CA, _issue_policy())
    assert first.assignment == [Line(sku="A", qty=2, location="store-sf")]
    assert not first.late and first.explanation.safety_stock_used == []
    # The next unit would be the store's floor: wh-east ships it, late, rather.
    second = plan([Line(sku="A", qty=1)], _floor_stock(1), CA, _issue_policy())
    assert second.assignment == [Line(sku="A", qty=1, location="wh-east")]
    assert second.late
    assert second.explanation.safety_stock_used == []


def test_safety_stock_is_dipped_into_only_when_nothing_else_can_serve_and_it_says_so() -> None:
    stock = _floor_stock(1)
    stock["A"]["wh-east"] = LocationStock(on_hand=0)
    decision = plan([Line(sku="A", qty=1)], stock, CA, _issue_policy())
    assert decision.assignment == [Line(sku="A", qty=1, location="store-sf")]
    assert decision.explanation.safety_stock_used == ["store-sf"]
    why = " ".join(decision.explanation.why)
    assert "no assignment spares every location's safety stock" in why
    assert "dips into the safety stock of store-sf" in why


def test_with_fallback_unroutable_an_on_time_dip_beats_refusing_the_order() -> None:
    # A late assignment is not acceptable at all here: the floor unit is the only way.
    decision = plan([Line(sku="A", qty=1)], _floor_stock(1), CA, _issue_policy("unroutable"))
    assert decision.assignment == [Line(sku="A", qty=1, location="store-sf")]
    assert decision.explanation.safety_stock_used == ["store-sf"]


def test_the_priority_strategy_spares_safety_stock_too() -> None:
    policy = _issue_policy(strategy="priority")
    sites = tuple(reversed(policy.sites))  # store-sf first in priority order
    policy = msgspec.structs.replace(policy, sites=sites)
    decision = plan([Line(sku="A", qty=1)], _floor_stock(1), CA, policy)
    assert decision.assignment == [Line(sku="A", qty=1, location="wh-east")]
    decision = plan([Line(sku="A", qty=11)], _floor_stock(1), CA, policy)
    assert decision.assignment is not None
    assert decision.explanation.safety_stock_used != []


def test_an_order_beyond_even_the_safety_stock_is_unroutable_with_the_full_count() -> None:
    decision = plan([Line(sku="A", qty=12)], _floor_stock(1), CA, _issue_policy())
    assert decision.assignment is None
    assert decision.unroutable_code == "out_of_stock"
    assert decision.unroutable_reason == (
        "not enough 'A' at the allowed locations (need 12, free 11)"
    )
