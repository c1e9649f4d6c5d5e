"""Availability rules: how many units each channel may offer, given stock states and a policy.

Pure and synchronous (no I/O, no asyncio): actors read the states from Redis, call these
functions, and push the results. Everything is integer arithmetic, so a channel is never
offered a fraction of a unit and the same inputs always give the same number.

Validation: `validate_policy` and `validate_bundle` are what config validation calls. The hot
path calls them too, because they are a handful of integer comparisons and an invalid policy
that slipped past config (e.g. ``percent=150``) must fail loudly rather than oversell.
`LocationStock` values are not validated: the store guarantees they are non-negative ints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec

from ..core.policy import Bundle, ChannelPolicy, require_int, validate_bundle, validate_policy

__all__ = [
    "Bundle",
    "ChannelPolicy",
    "LocationStock",
    "OrderLine",
    "apply_policy",
    "availability_by_channel",
    "bundle_available",
    "bundle_pool",
    "changed",
    "channel_available",
    "expand_bundles",
    "location_available",
    "pool",
    "validate_bundle",
    "validate_policy",
]


class LocationStock(msgspec.Struct, frozen=True, kw_only=True):
    """The stock states of one SKU at one location, as held in the store."""

    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0
    damaged: int = 0
    # Not on hand yet, so it can't ship: kept for display, never counted as available.
    incoming: int = 0


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an order; `location` is set once the router has chosen where it ships from."""

    sku: str
    qty: int
    location: str | None = None


def location_available(s: LocationStock) -> int:
    """Units that can be sold from one location: on_hand - reserved - safety_stock - damaged, >= 0.

    `incoming` is not on hand and never counts.
    """
    return max(0, s.on_hand - s.reserved - s.safety_stock - s.damaged)


def pool(stock: Mapping[str, LocationStock], locations: Iterable[str]) -> int:
    """Sum of `location_available` over `locations`; a location missing from `stock` counts 0.

    Each location clamps at 0 on its own, so one location's deficit never eats another's stock.
    A location named twice counts once.
    """
    total = 0
    for location in dict.fromkeys(locations):
        s = stock.get(location)
        if s is not None:
            total += location_available(s)
    return total


def apply_policy(pool_units: int, policy: ChannelPolicy) -> int:
    """Units a channel may show for a pool: minus buffer, times percent (rounded down), capped,
    and 0 if below floor. Never negative; raises ValueError for a bad pool or policy.
    """
    require_int("pool_units", pool_units, 0)
    # The policy was validated when it was built (ChannelPolicy.__post_init__).
    # Clamp before scaling: a buffer bigger than the pool leaves nothing, not a negative share.
    units = max(0, pool_units - policy.buffer)
    # Floor division on a non-negative number rounds down: never offer a fraction of a unit.
    units = units * policy.percent // 100
    if policy.cap is not None:
        units = min(units, policy.cap)
    # Below the floor the channel shows 0, so it never sells the last few units.
    if units < policy.floor:
        return 0
    return units


def channel_available(stock: Mapping[str, LocationStock], policy: ChannelPolicy) -> int:
    """Units a channel may show for a plain SKU: its policy applied to the pool of its locations."""
    return apply_policy(pool(stock, policy.locations), policy)


def bundle_pool(
    bundle: Bundle,
    stocks: Mapping[str, Mapping[str, LocationStock]],
    locations: Iterable[str],
) -> int:
    """Whole bundles buildable, counted per location then summed; `stocks` is sku -> location ->.

    At each location: min over components of available // units (a missing component gives 0).
    Never more than the spec's min over components of (pool // units); equal with one location.
    """
    # Per location because a kit ships from one place: summing each component across warehouses
    # first would offer kits whose parts sit in different buildings.
    validate_bundle(bundle)
    total = 0
    for location in dict.fromkeys(locations):
        kits: int | None = None
        for component, units in bundle.components.items():
            s = stocks.get(component, {}).get(location)
            fit = 0 if s is None else location_available(s) // units
            kits = fit if kits is None else min(kits, fit)
            if kits == 0:
                break
        total += kits or 0
    return total


def bundle_available(
    bundle: Bundle,
    stocks: Mapping[str, Mapping[str, LocationStock]],
    policy: ChannelPolicy,
) -> int:
    """Bundles a channel may show: its policy applied to `bundle_pool` over its locations."""
    return apply_policy(bundle_pool(bundle, stocks, policy.locations), policy)


def availability_by_channel(
    stock: Mapping[str, LocationStock], policies: Mapping[str, ChannelPolicy]
) -> dict[str, int]:
    """Channel id -> units that channel may show, for a plain (non-bundle) SKU."""
    return {channel: channel_available(stock, policy) for channel, policy in policies.items()}


def changed(previous: Mapping[str, int], current: Mapping[str, int]) -> dict[str, int]:
    """The entries of `current` whose value differs from `previous` (missing there = changed).

    Channels only in `previous` are left out: there is nothing to push to them.
    """
    return {
        channel: units
        for channel, units in current.items()
        if channel not in previous or previous[channel] != units
    }


def expand_bundles(lines: Sequence[OrderLine], bundles: Mapping[str, Bundle]) -> list[OrderLine]:
    """Replace bundle lines by their components (qty * units), then merge lines with the same
    (sku, location) in first-seen order. ValueError for a non-int or non-positive qty.
    """
    # Merging is the point: an order with a bundle and, on another line, one of that bundle's own
    # components must count both against the component, or checking each line alone oversells
    # it (the bug in Medusa issue 16502).
    merged: dict[tuple[str, str | None], int] = {}
    for index, line in enumerate(lines):
        require_int(f"OrderLine.qty (line {index}, sku {line.sku!r})", line.qty, 1)
        bundle = bundles.get(line.sku)
        if bundle is None:
            parts: Iterable[tuple[str, int]] = ((line.sku, line.qty),)
        else:
            validate_bundle(bundle)
            for component in bundle.components:
                # Stock is only kept for real SKUs; expanding a bundle into a bundle would
                # reserve something that has no stock of its own.
                if component in bundles:
                    raise ValueError(
                        f"Bundle.components of {bundle.sku!r} contains bundle {component!r}; "
                        "nested bundles are not supported"
                    )
            parts = ((c, line.qty * units) for c, units in bundle.components.items())
        for sku, qty in parts:
            key = (sku, line.location)
            merged[key] = merged.get(key, 0) + qty
    return [OrderLine(sku=sku, qty=qty, location=loc) for (sku, loc), qty in merged.items()]
