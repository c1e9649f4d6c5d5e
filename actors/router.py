"""The first router: pick a location for every line of an order. Pure logic, no I/O.

Locations are tried in the configured priority order among those allowed for the channel: the
first that can serve the whole order takes it (one shipment); otherwise each line goes to the
first location that can serve that line, and a line no single location can serve is split over
locations in priority order. ``None`` means the order cannot be met anywhere (oversold).
Bundle lines need every component at one location.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..engine.availability import Bundle, LocationStock
from ..engine.models import Line


def free_units(stock: LocationStock | None) -> int:
    """Units a reservation may take at a location (the reserve script's rule: safety stock may
    be used, damaged units never)."""
    if stock is None:
        return 0
    return max(0, stock.on_hand - stock.reserved - stock.damaged)


def _needs(line: Line, bundles: Mapping[str, Bundle]) -> dict[str, int]:
    bundle = bundles.get(line.sku)
    if bundle is None:
        return {line.sku: line.qty}
    return {sku: units * line.qty for sku, units in bundle.components.items()}


def route(
    lines: Sequence[Line],
    stock: Mapping[str, Mapping[str, LocationStock]],
    locations: Sequence[str],
    bundles: Mapping[str, Bundle] | None = None,
) -> list[Line] | None:
    """Lines with a location each (split lines repeated per location), or None if unmeetable.

    ``stock`` is sku -> location -> counters (bundle components included); ``locations`` is the
    channel's allowed locations in priority order.
    """
    bundles = bundles or {}
    needs = [_needs(line, bundles) for line in lines]

    def free(sku: str, location: str, taken: Mapping[tuple[str, str], int]) -> int:
        return free_units(stock.get(sku, {}).get(location)) - taken.get((sku, location), 0)

    # One location for the whole order, if any can.
    for location in locations:
        total: dict[str, int] = {}
        for need in needs:
            for sku, qty in need.items():
                total[sku] = total.get(sku, 0) + qty
        if all(free(sku, location, {}) >= qty for sku, qty in total.items()):
            return [Line(sku=line.sku, qty=line.qty, location=location) for line in lines]

    # Otherwise line by line, splitting a line only when no single location can serve it.
    taken: dict[tuple[str, str], int] = {}
    routed: list[Line] = []
    for line, need in zip(lines, needs, strict=True):
        spot = next(
            (
                loc
                for loc in locations
                if all(free(sku, loc, taken) >= qty for sku, qty in need.items())
            ),
            None,
        )
        if spot is not None:
            for sku, qty in need.items():
                taken[(sku, spot)] = taken.get((sku, spot), 0) + qty
            routed.append(Line(sku=line.sku, qty=line.qty, location=spot))
            continue
        remaining = line.qty
        for loc in locations:
            units = bundles[line.sku].components if line.sku in bundles else {line.sku: 1}
            can = min(free(sku, loc, taken) // n for sku, n in units.items())
            q = min(can, remaining)
            if q > 0:
                for sku, n in units.items():
                    taken[(sku, loc)] = taken.get((sku, loc), 0) + q * n
                routed.append(Line(sku=line.sku, qty=q, location=loc))
                remaining -= q
            if remaining == 0:
                break
        if remaining > 0:
            return None
    return routed
