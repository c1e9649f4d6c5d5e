"""Order routing: which location(s) each line of an order ships from. Pure logic, no I/O.

`plan` takes the order, the stock, the ship-to address and a `RoutingPolicy` (the channel's view
of the config, built by `routing_policy`) and returns a `RouteDecision`: the lines with their
locations (a line split over locations appears once per location), whether the assignment misses
the channel's SLA, why not when there is none, and an `Explanation` the API shows as JSON.

Strategies (``[routing]``, per channel):

- ``sla_cost``: among locations that serve the channel and hold the stock, prefer assignments
  whose every shipment arrives within the channel's ``sla_days`` (``transit_days[zone]``); among
  those the fewest shipments (distinct locations), then the lowest total cost, then priority.
  Cost is per shipment: the sum over the locations used of ``ship_cost[zone]`` (what a carrier
  charges per parcel from there), not per unit. A location with no cost for the zone ranks after
  every priced one; with no transit time for the zone it cannot meet an SLA. When nothing meets
  the SLA, ``fallback = "late"`` takes the best late assignment (earliest worst-case arrival, then
  the same order) and flags it; ``"unroutable"`` returns no assignment and the reason.
- ``priority``: the first router. Priority order only: the first location that can serve the
  whole order takes it, else each line goes to the first that can serve it. SLA, zones and costs
  are not considered (``late`` is still reported).

Safety stock is the last resort, for every strategy: the router first looks for an assignment
that leaves every location's safety stock untouched (``spare_units``), on time or, with
``fallback = "late"``, late; only when there is none does it plan again with the safety stock
counted as free (``free_units``, the reserve script's rule), and the explanation says where
it dipped (``safety_stock_used``) and why.

A line is split over locations only when no single location can still serve it (each extra
location is an extra shipment). A bundle line ships whole kits: every component of a kit from the
same location. Orders of up to `MAX_EXACT_LINES` lines over up to `MAX_EXACT_LOCATIONS` candidate
locations are searched exhaustively (branch and bound, at most `MAX_NODES` steps); bigger ones get
the greedy assignment, and the explanation says which (`exact`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import msgspec

from .availability import Bundle, LocationStock
from .models import Line

if TYPE_CHECKING:  # the router only reads the config: no import of the daemon at run time
    from ..core.config import Config

__all__ = [
    "MAX_EXACT_LINES",
    "MAX_EXACT_LOCATIONS",
    "MAX_NODES",
    "Candidate",
    "Explanation",
    "RouteDecision",
    "RoutingPolicy",
    "Shipment",
    "Site",
    "free_units",
    "plan",
    "route",
    "routing_policy",
    "spare_units",
    "zone_for",
]

MAX_EXACT_LINES = 8
MAX_EXACT_LOCATIONS = 10
MAX_NODES = 20_000

Strategy = Literal["sla_cost", "priority"]
Fallback = Literal["late", "unroutable"]
UnroutableCode = Literal["no_locations", "unknown_sku", "out_of_stock", "sla"]


# --- inputs ---------------------------------------------------------------------------------------


class Site(msgspec.Struct, frozen=True, kw_only=True):
    """One location as the router sees it for one channel: `allowed` is false when the channel
    may not ship from it (not in the channel's `locations`, or not in the location's `serves`).
    """

    id: str
    priority: int = 100
    allowed: bool = True
    not_allowed_because: str | None = None
    transit_days: dict[str, int] = {}
    ship_cost: dict[str, float] = {}


class RoutingPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Everything `plan` needs from the config for one channel; `sites` in priority order."""

    channel: str
    sites: tuple[Site, ...]
    strategy: Strategy = "sla_cost"
    sla_days: int | None = None
    fallback: Fallback = "late"
    zones: dict[str, str] = {}
    default_zone: str = "default"
    bundles: dict[str, Bundle] = {}


class ShipToLike(Protocol):
    """What the router reads of a ship-to address (`daemon.events.ShipTo` has it)."""

    @property
    def country(self) -> str | None: ...

    @property
    def region(self) -> str | None: ...


# --- outputs --------------------------------------------------------------------------------------


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """How one location looked to the router for this order."""

    location: str
    allowed: bool
    zone: str
    transit_days: int | None
    meets_sla: bool
    cost: float | None
    priority: int
    # Indices (in the order) of the lines this location could ship whole on its own.
    can_serve: list[int]
    note: str | None = None


class Shipment(msgspec.Struct, frozen=True, kw_only=True):
    """One parcel of the chosen assignment: a location and what it ships."""

    location: str
    lines: list[Line]
    transit_days: int | None
    cost: float | None


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    """Why the router decided what it did; `msgspec.to_builtins` of it is what the API shows."""

    channel: str
    strategy: str
    zone: str
    sla_days: int | None
    fallback: str
    exact: bool
    candidates: list[Candidate]
    shipments: list[Shipment] = []
    shipment_count: int | None = None
    total_cost: float | None = None
    # Sum of the configured `priority` of the locations used (lower is preferred).
    priority_score: int | None = None
    why: list[str] = []
    # Locations whose safety stock the assignment dips into (only when nothing else could serve).
    safety_stock_used: list[str] = []


class RouteDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The router's answer: `assignment` None means unroutable (`unroutable_reason` says why,
    `unroutable_code` is one of no_locations, unknown_sku, out_of_stock, sla)."""

    assignment: list[Line] | None
    late: bool
    unroutable_reason: str | None
    explanation: Explanation
    unroutable_code: UnroutableCode | None = None


# --- building the policy from the config ----------------------------------------------------------


def routing_policy(config: Config, channel: str) -> RoutingPolicy:
    """The router's view of `config` for orders of `channel` (an unknown channel: every location,
    no SLA, the default strategy)."""
    ch = next((c for c in config.channels if c.id == channel), None)
    by_id = {loc.id: loc for loc in config.locations}
    sites: list[Site] = []
    for loc_id in config.location_ids():
        loc = by_id[loc_id]
        reason: str | None = None
        if ch is not None and ch.locations is not None and loc_id not in ch.locations:
            reason = f"not in channel '{channel}' locations"
        elif loc.serves is not None and channel not in loc.serves:
            reason = f"does not serve channel '{channel}'"
        sites.append(
            Site(
                id=loc_id,
                priority=loc.priority,
                allowed=reason is None,
                not_allowed_because=reason,
                transit_days=dict(loc.transit_days),
                ship_cost=dict(loc.ship_cost),
            )
        )
    return RoutingPolicy(
        channel=channel,
        sites=tuple(sites),
        strategy=config.routing.strategy_for(channel),
        sla_days=ch.sla_days if ch is not None else None,
        fallback=config.routing.fallback,
        zones=dict(config.routing.zones),
        default_zone=config.routing.default_zone,
        bundles=config.bundle_map(),
    )


def zone_for(ship_to: ShipToLike | None, zones: Mapping[str, str], default: str) -> str:
    """The zone of a ship-to address: ``COUNTRY-REGION`` if mapped, else ``COUNTRY``, else
    `default`. Case does not matter; a region given as ``"US-CA"`` is taken as is."""
    if ship_to is None or not ship_to.country:
        return default
    table = {key.upper(): zone for key, zone in zones.items()}
    country = ship_to.country.strip().upper()
    if ship_to.region:
        region = ship_to.region.strip().upper()
        if not region.startswith(country + "-"):
            region = f"{country}-{region}"
        if region in table:
            return table[region]
    return table.get(country, default)


# --- the rules ------------------------------------------------------------------------------------


def free_units(stock: LocationStock | None) -> int:
    """Units a reservation may take at a location (the reserve script's rule: safety stock may
    be used, damaged units never)."""
    if stock is None:
        return 0
    return max(0, stock.on_hand - stock.reserved - stock.damaged)


def spare_units(stock: LocationStock | None) -> int:
    """Units a reservation may take at a location while leaving its safety stock untouched."""
    if stock is None:
        return 0
    return max(0, free_units(stock) - stock.safety_stock)


def _kit(line: Line, bundles: Mapping[str, Bundle]) -> dict[str, int]:
    """Component SKU -> units per unit of the line (a plain SKU is its own kit of one)."""
    bundle = bundles.get(line.sku)
    return {line.sku: 1} if bundle is None else dict(bundle.components)


Free = dict[tuple[str, str], int]
Piece = tuple[int, str, int]  # (line index, location, qty)


class _Problem:
    """The order and the facts of the locations, precomputed once per `plan`."""

    def __init__(
        self,
        lines: Sequence[Line],
        stock: Mapping[str, Mapping[str, LocationStock]],
        policy: RoutingPolicy,
        zone: str,
    ) -> None:
        self.lines = list(lines)
        self.kits = [_kit(line, policy.bundles) for line in lines]
        self.sites = {s.id: s for s in policy.sites}
        self.rank = {s.id: i for i, s in enumerate(policy.sites)}
        self.zone = zone
        self.sla = policy.sla_days
        cells = [(sku, loc) for kit in self.kits for sku in kit for loc in self.sites]
        self.full: Free = {c: free_units(stock.get(c[0], {}).get(c[1])) for c in cells}
        self.spare: Free = {c: spare_units(stock.get(c[0], {}).get(c[1])) for c in cells}
        # What the search may take: `spare` first, `full` when nothing spares the safety stock.
        self.free: Free = self.spare

    def dips(self, pieces: Sequence[Piece]) -> list[str]:
        """The locations where `pieces` take more than is spare (into safety stock)."""
        taken: Free = {}
        for i, loc, q in pieces:
            for sku, units in self.kits[i].items():
                taken[(sku, loc)] = taken.get((sku, loc), 0) + units * q
        return list(
            dict.fromkeys(loc for (sku, loc), n in taken.items() if n > self.spare[(sku, loc)])
        )

    def transit(self, loc: str) -> int | None:
        return self.sites[loc].transit_days.get(self.zone)

    def cost(self, loc: str) -> float | None:
        return self.sites[loc].ship_cost.get(self.zone)

    def meets_sla(self, loc: str) -> bool:
        if self.sla is None:
            return True
        days = self.transit(loc)
        return days is not None and days <= self.sla

    def fits(self, i: int, loc: str, free: Free, qty: int | None = None) -> bool:
        """Whether `loc` can still ship `qty` (default: all) units of line `i`."""
        n = self.lines[i].qty if qty is None else qty
        return all(free[(sku, loc)] >= units * n for sku, units in self.kits[i].items())

    def take(self, i: int, loc: str, qty: int, free: Free, sign: int = 1) -> None:
        for sku, units in self.kits[i].items():
            free[(sku, loc)] -= sign * units * qty

    def split(
        self,
        i: int,
        order: Sequence[str],
        free: Free,
        qty: int | None = None,
        fewest: bool = False,
    ) -> list[Piece] | None:
        """`qty` (default: all) units of line `i` over `order` in whole kits, or None if they
        cannot hold that many. `fewest`: largest first, which needs the fewest locations (each
        one is a parcel); ties keep `order`."""
        remaining = self.lines[i].qty if qty is None else qty
        if fewest:
            order = sorted(order, key=lambda loc: -self.kits_at(i, loc, free))
        pieces: list[Piece] = []
        for loc in order:
            if remaining == 0:
                break
            q = min(self.kits_at(i, loc, free), remaining)
            if q > 0:
                pieces.append((i, loc, q))
                remaining -= q
        return pieces if remaining == 0 else None

    def kits_at(self, i: int, loc: str, free: Free) -> int:
        """Whole units of line `i` that `loc` can still ship."""
        return min(free[(sku, loc)] // units for sku, units in self.kits[i].items())

    def score(self, used: Sequence[str], late_first: bool) -> tuple[float | int, ...]:
        """Lower is better. The first part (up to the cost) never decreases as locations are
        added, which is what lets the search prune on it."""
        unpriced = sum(1 for loc in used if self.cost(loc) is None)
        cost = round(sum(self.cost(loc) or 0.0 for loc in used), 6)
        prio = sum(self.sites[loc].priority for loc in used)
        ranks = sorted(self.rank[loc] for loc in used)
        head: tuple[float | int, ...] = (len(used), unpriced, cost)
        if late_first:
            worst = max((self.transit(loc) for loc in used), key=_days, default=0)
            head = (_days(worst), *head)
        return (*head, prio, *ranks)


def _placed(pieces: Sequence[Piece]) -> int:
    return sum(q for _, _, q in pieces)


def _days(days: int | None) -> float:
    return math.inf if days is None else days


class _Search:
    """Branch and bound over line -> location, with greedy splits where a line fits nowhere."""

    def __init__(self, problem: _Problem, sites: Sequence[str], late_first: bool) -> None:
        self.p = problem
        self.sites = list(sites)
        self.late_first = late_first
        # A line whose location the sender chose may only go there (if it is a candidate).
        self.options = [
            self.sites if line.location is None else [x for x in self.sites if x == line.location]
            for line in problem.lines
        ]
        self.prefix = 4 if late_first else 3
        self.best: list[Piece] | None = None
        self.best_score: tuple[float | int, ...] | None = None
        self.nodes = 0
        self.complete = True

    def _ordered(self, used: Mapping[str, int]) -> list[str]:
        # Locations already shipping first (no new parcel), then the cheapest, then priority:
        # the first leaf is the greedy assignment, and good incumbents prune early.
        return sorted(
            self.sites,
            key=lambda loc: (
                loc not in used,
                _days(self.p.transit(loc)) if self.late_first else 0,
                self.p.cost(loc) is None,
                self.p.cost(loc) or 0.0,
                self.p.rank[loc],
            ),
        )

    def _offer(self, pieces: list[Piece], used: Mapping[str, int]) -> None:
        score = self.p.score(list(used), self.late_first)
        if self.best_score is None or score < self.best_score:
            self.best, self.best_score = list(pieces), score

    def greedy(self) -> None:
        """The whole order from the best single location that can, else line by line."""
        free = dict(self.p.free)
        everything = range(len(self.p.lines))
        for loc in self._ordered({}):
            trial = dict(free)
            if all(self._pinned_ok(i, loc) for i in everything) and self._take_all(loc, trial):
                self._offer([(i, loc, line.qty) for i, line in enumerate(self.p.lines)], {loc: 1})
                return
        used: dict[str, int] = {}
        pieces: list[Piece] = []
        for i in self._most_constrained_first(free):
            got = next(self._choices(i, used, free), None)
            if got is None:
                return
            for piece in got:
                self.p.take(piece[0], piece[1], piece[2], free)
                used[piece[1]] = used.get(piece[1], 0) + 1
            pieces.extend(got)
        self._offer(pieces, used)

    def _pinned_ok(self, i: int, loc: str) -> bool:
        return loc in self.options[i]

    def _take_all(self, loc: str, free: Free) -> bool:
        for i, line in enumerate(self.p.lines):
            if not self.p.fits(i, loc, free):
                return False
            self.p.take(i, loc, line.qty, free)
        return True

    def _choices(self, i: int, used: Mapping[str, int], free: Free) -> Iterator[list[Piece]]:
        whole = [loc for loc in self._ordered(used) if loc in self.options[i]]
        fitting = [loc for loc in whole if self.p.fits(i, loc, free)]
        for loc in fitting:
            yield [(i, loc, self.p.lines[i].qty)]
        if not fitting and self.p.lines[i].location is None:
            pieces = self._split(i, whole, used, free)
            if pieces is not None:
                yield pieces

    def _split(
        self, i: int, whole: list[str], used: Mapping[str, int], free: Free
    ) -> list[Piece] | None:
        """Line `i` over several locations: those already shipping first (no new parcel),
        then as few new ones as will hold the rest."""
        shipping = [loc for loc in whole if loc in used]
        first = [(i, loc, q) for loc in shipping if (q := self.p.kits_at(i, loc, free)) > 0]
        # Capped below: the line may need less than the shipping locations hold.
        pieces = self.p.split(i, shipping, free) if first else None
        if pieces is not None:
            return pieces
        rest = [loc for loc in whole if loc not in used]
        more = self.p.split(i, rest, free, qty=self.p.lines[i].qty - _placed(first), fewest=True)
        return None if more is None else first + more

    def exhaustive(self) -> None:
        """Every assignment of whole lines (and the split of lines that fit nowhere whole)."""
        free = dict(self.p.free)
        self._dfs(self._most_constrained_first(free), 0, free, {}, [])

    def _most_constrained_first(self, free: Free) -> list[int]:
        # Lines with the fewest locations that can hold them go first: fewer branches near the
        # root, and the greedy does not give away what only one place could ship.
        return sorted(
            range(len(self.p.lines)),
            key=lambda i: sum(1 for loc in self.options[i] if self.p.fits(i, loc, free)),
        )

    def _dfs(
        self, order: list[int], k: int, free: Free, used: dict[str, int], pieces: list[Piece]
    ) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.complete = False
            return
        if self.best_score is not None:
            bound = self.p.score(list(used), self.late_first)[: self.prefix]
            if bound > self.best_score[: self.prefix]:
                return
        if k == len(order):
            self._offer(pieces, used)
            return
        for choice in list(self._choices(order[k], used, free)):
            for i, loc, q in choice:
                self.p.take(i, loc, q, free)
                used[loc] = used.get(loc, 0) + 1
            pieces.extend(choice)
            self._dfs(order, k + 1, free, used, pieces)
            del pieces[len(pieces) - len(choice) :]
            for i, loc, q in choice:
                self.p.take(i, loc, q, free, sign=-1)
                used[loc] -= 1
                if used[loc] == 0:
                    del used[loc]
            if not self.complete:
                return


def _priority_pieces(p: _Problem, sites: Sequence[str]) -> list[Piece] | None:
    """The first router's rule: whole order at the first location that can, else per line."""
    free = dict(p.free)
    for loc in sites:
        trial = dict(free)
        if all(p.lines[i].location in (None, loc) for i in range(len(p.lines))) and all(
            _fit_take(p, i, loc, trial) for i in range(len(p.lines))
        ):
            return [(i, loc, line.qty) for i, line in enumerate(p.lines)]
    pieces: list[Piece] = []
    for i, line in enumerate(p.lines):
        allowed = [loc for loc in sites if line.location in (None, loc)]
        spot = next((loc for loc in allowed if p.fits(i, loc, free)), None)
        got = [(i, spot, line.qty)] if spot is not None else p.split(i, allowed, free)
        if got is None:
            return None
        for _, loc, q in got:
            p.take(i, loc, q, free)
        pieces.extend(got)
    return pieces


def _fit_take(p: _Problem, i: int, loc: str, free: Free) -> bool:
    if not p.fits(i, loc, free):
        return False
    p.take(i, loc, p.lines[i].qty, free)
    return True


def plan(
    lines: Sequence[Line],
    stock: Mapping[str, Mapping[str, LocationStock]],
    ship_to: ShipToLike | None,
    policy: RoutingPolicy,
) -> RouteDecision:
    """Choose the location(s) of every line (see the module docstring for the rules).

    ``stock`` is sku -> location -> counters, bundle components included; an SKU missing from it
    (or with no location) is unknown. Lines that name a location are kept there.
    """
    zone = zone_for(ship_to, policy.zones, policy.default_zone)
    p = _Problem(lines, stock, policy, zone)
    allowed = [s.id for s in policy.sites if s.allowed]
    why: list[str] = [f"ship-to zone '{zone}'"]
    if policy.sla_days is not None:
        why.append(f"channel '{policy.channel}' SLA: {policy.sla_days} day(s)")

    exact = len(lines) <= MAX_EXACT_LINES and len(allowed) <= MAX_EXACT_LOCATIONS
    pieces: list[Piece] | None = None
    late = False
    code: UnroutableCode | None = None
    reason: str | None = None
    dipped: list[str] = []

    if not allowed:
        code, reason = "no_locations", f"channel '{policy.channel}' may ship from no location"
    elif unknown := _unknown_skus(p, stock):
        code, reason = "unknown_sku", "unknown SKU: " + ", ".join(repr(s) for s in unknown)
    else:
        if policy.strategy == "priority":
            why.append("strategy 'priority': the first location in priority order that can ship it")
        else:
            why.append(
                "strategy 'sla_cost': SLA first, then fewest shipments, lowest cost, priority"
            )
        spared = _Tier(p, policy, allowed, exact)
        tier = spared
        if spared.pieces is None and p.full != p.spare:
            p.free = p.full
            tier = _Tier(p, policy, allowed, exact)
            why.append(
                f"no assignment spares every location's safety stock ({spared.reason}): "
                "safety stock counted as free, the last resort"
            )
        why.extend(tier.why)
        pieces, late, exact = tier.pieces, tier.late, tier.exact
        code, reason = tier.code, tier.reason
        if pieces is not None and tier is not spared:
            dipped = p.dips(pieces)
            why.append("dips into the safety stock of " + ", ".join(dipped))
    if not exact and pieces is not None and policy.strategy != "priority":
        why.append(
            f"order too big for the exhaustive search ({len(lines)} lines, {len(allowed)} "
            "locations) or search cut short: greedy assignment, may not be optimal"
        )

    assignment = None if pieces is None else _lines(p, pieces)
    if pieces is not None:
        used = list(dict.fromkeys(loc for _, loc, _ in sorted(pieces, key=lambda x: x[0])))
        late = late or not all(p.meets_sla(loc) for loc in used)
        if policy.strategy == "priority" and late:
            why.append("the chosen assignment misses the SLA (priority ignores it)")
        splits = len(pieces) - len({i for i, _, _ in pieces})
        why.append(
            f"{len(used)} shipment(s) from {', '.join(used)}"
            + (f"; {splits} line split(s): no single location could ship them" if splits else "")
        )
    elif reason is not None:
        why.append(f"unroutable: {reason}")
    explanation = _explain(p, policy, pieces, exact, why, dipped)
    return RouteDecision(
        assignment=assignment,
        late=late and pieces is not None,
        unroutable_reason=reason if pieces is None else None,
        explanation=explanation,
        unroutable_code=code if pieces is None else None,
    )


class _Tier:
    """One planning pass over `p.free` (spare units, or all free ones): the strategy's best
    assignment, on time or (fallback 'late') late, else why none."""

    def __init__(
        self, p: _Problem, policy: RoutingPolicy, allowed: Sequence[str], exact: bool
    ) -> None:
        self.pieces: list[Piece] | None = None
        self.late = False
        self.exact = exact
        self.code: UnroutableCode | None = None
        self.reason: str | None = None
        self.why: list[str] = []
        if policy.strategy == "priority":
            self.pieces, self.exact = _priority_pieces(p, allowed), True
        else:
            self._sla_cost(p, policy, allowed)
        if self.pieces is None and self.code is None:
            self.code, self.reason = "out_of_stock", _shortage(p, allowed)

    def _sla_cost(self, p: _Problem, policy: RoutingPolicy, allowed: Sequence[str]) -> None:
        on_time = [loc for loc in allowed if p.meets_sla(loc)]
        if on_time:
            self.pieces, done = _search(p, on_time, late_first=False, exact=self.exact)
            self.exact = self.exact and done
        if self.pieces is None and policy.sla_days is not None:
            if not on_time:
                self.why.append(f"no allowed location reaches zone '{p.zone}' within the SLA")
            else:
                self.why.append("the locations within the SLA cannot ship the whole order")
            if policy.fallback == "late":
                self.pieces, done = _search(p, allowed, late_first=True, exact=self.exact)
                self.exact = self.exact and done
                self.late = self.pieces is not None
                if self.late:
                    self.why.append(
                        "fallback 'late': the assignment arriving soonest, flagged late"
                    )
            elif _search(p, allowed, late_first=True, exact=self.exact)[0] is not None:
                self.code = "sla"
                self.reason = (
                    f"no assignment meets the {policy.sla_days}-day SLA to zone '{p.zone}' "
                    "(fallback 'unroutable')"
                )


def _search(
    p: _Problem, sites: Sequence[str], *, late_first: bool, exact: bool
) -> tuple[list[Piece] | None, bool]:
    """(best pieces, whether the search was exhaustive)."""
    search = _Search(p, sites, late_first)
    search.greedy()
    if exact:
        search.exhaustive()
    return search.best, exact and search.complete


def _unknown_skus(p: _Problem, stock: Mapping[str, Mapping[str, LocationStock]]) -> list[str]:
    skus = dict.fromkeys(sku for kit in p.kits for sku in kit)
    return [sku for sku in skus if not stock.get(sku)]


def _shortage(p: _Problem, allowed: Sequence[str]) -> str:
    need: dict[str, int] = {}
    for line, kit in zip(p.lines, p.kits, strict=True):
        for sku, units in kit.items():
            need[sku] = need.get(sku, 0) + units * line.qty
    for sku, n in need.items():
        have = sum(p.free[(sku, loc)] for loc in allowed)
        if have < n:
            what = "free above safety stock" if p.free is p.spare else "free"
            return f"not enough '{sku}' at the allowed locations (need {n}, {what} {have})"
    return "the allowed locations cannot ship the order (bundle components are not together)"


def _lines(p: _Problem, pieces: list[Piece]) -> list[Line]:
    ordered = sorted(pieces, key=lambda x: (x[0], p.rank[x[1]]))
    return [Line(sku=p.lines[i].sku, qty=q, location=loc) for i, loc, q in ordered]


def _explain(
    p: _Problem,
    policy: RoutingPolicy,
    pieces: list[Piece] | None,
    exact: bool,
    why: list[str],
    dipped: list[str],
) -> Explanation:
    candidates = [
        Candidate(
            location=site.id,
            allowed=site.allowed,
            zone=p.zone,
            transit_days=p.transit(site.id),
            meets_sla=p.meets_sla(site.id),
            cost=p.cost(site.id),
            priority=site.priority,
            can_serve=[i for i in range(len(p.lines)) if p.fits(i, site.id, p.free)],
            note=site.not_allowed_because,
        )
        for site in policy.sites
    ]
    shipments: list[Shipment] = []
    total: float | None = None
    prio: int | None = None
    if pieces is not None:
        assigned = _lines(p, pieces)
        locs = list(dict.fromkeys(line.location for line in assigned if line.location))
        shipments = [
            Shipment(
                location=loc,
                lines=[line for line in assigned if line.location == loc],
                transit_days=p.transit(loc),
                cost=p.cost(loc),
            )
            for loc in locs
        ]
        costs = [p.cost(loc) for loc in locs]
        total = None if None in costs else round(sum(c or 0.0 for c in costs), 6)
        prio = sum(p.sites[loc].priority for loc in locs)
    return Explanation(
        channel=policy.channel,
        strategy=policy.strategy,
        zone=p.zone,
        sla_days=policy.sla_days,
        fallback=policy.fallback,
        exact=exact,
        candidates=candidates,
        shipments=shipments,
        shipment_count=len(shipments) if pieces is not None else None,
        total_cost=total,
        priority_score=prio,
        why=why,
        safety_stock_used=dipped,
    )


def route(
    lines: Sequence[Line],
    stock: Mapping[str, Mapping[str, LocationStock]],
    locations: Sequence[str],
    bundles: Mapping[str, Bundle] | None = None,
) -> list[Line] | None:
    """The first router's call: priority order over `locations`, no SLA or cost; lines with a
    location each (split lines repeated), or None if unmeetable. Prefer `plan`."""
    policy = RoutingPolicy(
        channel="",
        sites=tuple(Site(id=loc) for loc in locations),
        strategy="priority",
        bundles=dict(bundles or {}),
    )
    return plan(lines, stock, None, policy).assignment
