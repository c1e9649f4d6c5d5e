"""The typed messages actors exchange (one Struct per intent; actors ``match`` on them)."""

from __future__ import annotations

import msgspec

from ..engine.models import SkuState


class StockChanged(msgspec.Struct, frozen=True, kw_only=True):
    """To a SKU actor: its SKU has a new state (from an engine reply), caused by an event
    accepted at ``accepted_ms`` (ms since the epoch; 0 when no event caused it)."""

    state: SkuState
    accepted_ms: int = 0


class Recompute(msgspec.Struct, frozen=True, kw_only=True):
    """To a SKU actor: re-read the SKU (or a bundle's components) and re-send what changed;
    ``force`` re-sends every channel's value even if unchanged (policy change, onboarding)."""

    accepted_ms: int = 0
    force: bool = False
    channels: tuple[str, ...] | None = None  # None = every channel


class AvailabilityChanged(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """To a channel actor: what ``sku`` may show on this channel now, at SKU ``version``.
    Untracked by the garbage collector (``gc=False``: only a str and ints, no cycle possible):
    16 bytes less each, and no GC pass walks the channels' pending values."""

    sku: str
    available: int
    version: int
    accepted_ms: int = 0


class FullSync(msgspec.Struct, frozen=True, kw_only=True):
    """To a channel actor: push every SKU's current value (onboarding, policy change)."""


SkuMessage = StockChanged | Recompute
ChannelMessage = AvailabilityChanged | FullSync
