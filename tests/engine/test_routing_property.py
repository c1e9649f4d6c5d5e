"""The planner against brute force on small random orders: never more than is free anywhere, never
more shipments than the best SLA-feasible assignment, an assignment whenever one exists, and
safety stock touched only when no acceptable assignment spares it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from invsync.core.events import ShipTo
from invsync.engine.availability import Bundle, LocationStock
from invsync.engine.models import Line
from invsync.engine.routing import (
    MAX_EXACT_LINES,
    RouteDecision,
    RoutingPolicy,
    Site,
    free_units,
    plan,
    spare_units,
)

SHIP_TO = ShipTo(country="US", region="CA")
ZONES = {"US-CA": "west"}
KIT = Bundle(sku="KIT", components={"A": 1, "B": 2})


@dataclass
class Case:
    policy: RoutingPolicy
    stock: dict[str, dict[str, LocationStock]]
    lines: list[Line]


@st.composite
def cases(draw: st.DrawFn, min_lines: int = 1, max_lines: int = 4, safety: bool = False) -> Case:
    n_locs = draw(st.integers(1, 5))
    sites = []
    for i in range(n_locs):
        days = draw(st.none() | st.integers(0, 4))
        cost = draw(st.none() | st.integers(0, 6).map(float))
        sites.append(
            Site(
                id=f"l{i}",
                priority=draw(st.sampled_from([10, 20, 30])),
                allowed=i == 0 or draw(st.sampled_from([True, True, True, False])),
                transit_days={} if days is None else {"west": days},
                ship_cost={} if cost is None else {"west": cost},
            )
        )
    skus = ["A", "B", "C", "D", "E"]
    stock = {
        sku: {
            # Mostly nothing, else plenty: each SKU sits in a few places, so orders need
            # several parcels and the choice of places matters.
            site.id: LocationStock(
                on_hand=draw(st.sampled_from([0, 0, 0, 3, 9])),
                reserved=draw(st.sampled_from([0, 0, 0, 1])),
                safety_stock=draw(st.sampled_from([0, 0, 1, 3])) if safety else 0,
            )
            for site in sites
        }
        for sku in skus
    }
    lines = draw(
        st.lists(
            st.builds(Line, sku=st.sampled_from([*skus, "KIT"]), qty=st.integers(1, 2)),
            min_size=min_lines,
            max_size=max_lines,
        )
    )
    policy = RoutingPolicy(
        channel="shop",
        sites=tuple(sites),
        strategy="sla_cost",
        sla_days=draw(st.none() | st.integers(0, 3)),
        fallback=draw(st.sampled_from(["late", "unroutable"])),
        zones=ZONES,
        bundles={"KIT": KIT},
    )
    return Case(policy=policy, stock=stock, lines=lines)


def needs(line: Line) -> dict[str, int]:
    if line.sku == KIT.sku:
        return {sku: units * line.qty for sku, units in KIT.components.items()}
    return {line.sku: line.qty}


def meets_sla(site: Site, sla: int | None) -> bool:
    days = site.transit_days.get("west")
    return sla is None or (days is not None and days <= sla)


def feasible(
    case: Case, assignment: Sequence[tuple[Line, str]], units: Callable[..., int] = free_units
) -> bool:
    """Whether the assignment takes no more than ``units`` (free, or spare) anywhere."""
    taken: dict[tuple[str, str], int] = {}
    for line, loc in assignment:
        for sku, qty in needs(line).items():
            taken[(sku, loc)] = taken.get((sku, loc), 0) + qty
    return all(units(case.stock[sku][loc]) >= qty for (sku, loc), qty in taken.items())


def cost_key(case: Case, locs: set[str]) -> tuple[int, float]:
    sites = {s.id: s for s in case.policy.sites}
    costs = [sites[loc].ship_cost.get("west") for loc in locs]
    return (sum(c is None for c in costs), sum(c or 0.0 for c in costs))


def brute_force(
    case: Case, sites: list[str], units: Callable[..., int] = free_units
) -> tuple[int, tuple[int, float]] | None:
    """(fewest shipments, lowest cost key among those) over every whole-line assignment."""
    best: tuple[int, tuple[int, float]] | None = None
    for locs in itertools.product(sites, repeat=len(case.lines)):
        if feasible(case, list(zip(case.lines, locs, strict=True)), units):
            score = (len(set(locs)), cost_key(case, set(locs)))
            best = score if best is None or score < best else best
    return best


def check_assignment(case: Case, decision: RouteDecision) -> None:
    """What holds of any answer, exact or greedy."""
    policy = case.policy
    allowed = [s.id for s in policy.sites if s.allowed]
    if decision.assignment is not None:
        assigned = decision.assignment
        # Only allowed locations, never more than is free at any of them, every unit placed.
        assert all(line.location in allowed for line in assigned)
        assert feasible(case, [(line, line.location or "") for line in assigned])
        demand: dict[str, int] = {}
        for line in case.lines:
            demand[line.sku] = demand.get(line.sku, 0) + line.qty
        placed: dict[str, int] = {}
        for line in assigned:
            placed[line.sku] = placed.get(line.sku, 0) + line.qty
        assert placed == demand
        locs = {line.location or "" for line in assigned}
        sites = {s.id: s for s in policy.sites}
        assert decision.late == (not all(meets_sla(sites[loc], policy.sla_days) for loc in locs))
        assert decision.explanation.shipment_count == len(locs)
    else:
        assert decision.unroutable_reason


@settings(max_examples=1000, deadline=None)
@given(cases())
def test_planner_against_brute_force(case: Case) -> None:
    policy = case.policy
    decision = plan(case.lines, case.stock, SHIP_TO, policy)
    check_assignment(case, decision)
    allowed = [s.id for s in policy.sites if s.allowed]
    on_time = [s.id for s in policy.sites if s.allowed and meets_sla(s, policy.sla_days)]
    best_on_time = brute_force(case, on_time)
    best_any = brute_force(case, allowed)

    if best_on_time is not None:
        # Brute force found an on-time assignment: so does the planner, with no more parcels.
        assert decision.assignment is not None and not decision.late
        shipments = decision.explanation.shipment_count
        assert shipments is not None and shipments <= best_on_time[0]
        no_splits = len(decision.assignment) == len(case.lines)
        if decision.explanation.exact and no_splits:
            # The planner's assignment is one the brute force saw: it is the optimum.
            assert shipments == best_on_time[0]
            locs = {line.location or "" for line in decision.assignment}
            assert cost_key(case, locs) == best_on_time[1]
    elif best_any is not None:
        if policy.fallback == "late":
            assert decision.assignment is not None
        elif decision.assignment is None:
            assert decision.unroutable_code == "sla"
        else:
            # Only a split reached every line in time; brute force does not split.
            assert not decision.late and len(decision.assignment) > len(case.lines)


@settings(max_examples=200, deadline=None)
@given(cases(min_lines=MAX_EXACT_LINES + 1, max_lines=MAX_EXACT_LINES + 4))
def test_the_greedy_for_big_orders_never_assigns_more_than_is_free(case: Case) -> None:
    decision = plan(case.lines, case.stock, SHIP_TO, case.policy)
    assert decision.explanation.exact is False
    check_assignment(case, decision)


@settings(max_examples=1000, deadline=None)
@given(cases(safety=True))
def test_safety_stock_is_the_last_resort_against_brute_force(case: Case) -> None:
    policy = case.policy
    decision = plan(case.lines, case.stock, SHIP_TO, policy)
    check_assignment(case, decision)
    allowed = [s.id for s in policy.sites if s.allowed]
    on_time = [s.id for s in policy.sites if s.allowed and meets_sla(s, policy.sla_days)]
    late_ok = policy.fallback == "late"

    def acceptable(units: Callable[..., int]) -> bool:
        """Some whole-line assignment within ``units`` is on time, or late where allowed."""
        found = brute_force(case, on_time, units) is not None
        return found or (late_ok and brute_force(case, allowed, units) is not None)

    assigned = decision.assignment
    dipped = assigned is not None and not feasible(
        case, [(line, line.location or "") for line in assigned], spare_units
    )
    # The explanation names the dip exactly when there is one.
    assert bool(decision.explanation.safety_stock_used) == dipped
    if dipped:
        assert any("safety stock" in why for why in decision.explanation.why)
    if acceptable(spare_units):
        # An assignment sparing every safety stock exists (maybe late): the planner takes one.
        assert assigned is not None and not dipped
    if acceptable(free_units):
        assert assigned is not None
