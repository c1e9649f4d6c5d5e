"""A channel's allocation policy and a bundle's recipe: plain data and the rules that check them.

The config builds them and the engine's availability rules consume them; the rules live here so
both agree on them. The bounds are named constrained types (`Units`, `Percent`, `KitUnits`) that
the config schema reuses, so a config that decodes is a policy `validate_policy` accepts; the
validate functions check the same bounds on Structs built in code, where msgspec checks nothing.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from .ids import Sku

__all__ = [
    "Bundle",
    "ChannelPolicy",
    "KitUnits",
    "Percent",
    "Units",
    "require_int",
    "validate_bundle",
    "validate_policy",
]

Units = Annotated[int, msgspec.Meta(ge=0, description="A number of units, 0 or more.")]
Percent = Annotated[int, msgspec.Meta(ge=0, le=100, description="A share in percent, 0 to 100.")]
KitUnits = Annotated[
    int, msgspec.Meta(ge=1, description="Units of one component in one kit, 1 or more.")
]


class ChannelPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Which locations feed a channel and how much of their pool the channel is offered."""

    locations: tuple[str, ...]
    buffer: Units = 0
    percent: Percent = 100
    cap: Units | None = None
    floor: Units = 0

    def __post_init__(self) -> None:
        # Checked once here, so the hot path (apply_policy, per event and channel) needs not.
        validate_policy(self)


class Bundle(msgspec.Struct, frozen=True, kw_only=True):
    """A kit sold as one SKU: component SKU -> units of that component per bundle."""

    sku: Sku
    components: dict[Sku, KitUnits]


def require_int(name: str, value: object, minimum: int) -> None:
    """Raise ValueError naming `name` unless `value` is an int (not a bool) >= `minimum`."""
    # bool is a subclass of int, but `True` units of stock is always a bug upstream.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def validate_policy(policy: ChannelPolicy) -> None:
    """Raise ValueError naming the field if `policy` is invalid.

    buffer, floor, cap must be `Units` (ints >= 0), percent a `Percent` (an int in 0..100),
    locations without duplicates.
    """
    require_int("ChannelPolicy.buffer", policy.buffer, 0)
    require_int("ChannelPolicy.floor", policy.floor, 0)
    require_int("ChannelPolicy.percent", policy.percent, 0)
    if policy.percent > 100:
        raise ValueError(f"ChannelPolicy.percent must be in 0..100, got {policy.percent!r}")
    if policy.cap is not None:
        require_int("ChannelPolicy.cap", policy.cap, 0)
    # A location listed twice would count its stock twice and oversell the channel.
    if len(set(policy.locations)) != len(policy.locations):
        raise ValueError(f"ChannelPolicy.locations has duplicates: {policy.locations!r}")


def validate_bundle(bundle: Bundle) -> None:
    """Raise ValueError naming the field if `bundle` is invalid.

    It needs at least one component, every units value a `KitUnits` (an int >= 1), and must not
    contain itself.
    """
    if not bundle.components:
        raise ValueError(f"Bundle.components of {bundle.sku!r} must not be empty")
    for component, units in bundle.components.items():
        require_int(f"Bundle.components[{component!r}] of {bundle.sku!r}", units, 1)
    if bundle.sku in bundle.components:
        raise ValueError(f"Bundle.components of {bundle.sku!r} must not contain the bundle itself")
