"""What an operator sees for one SKU: per-location states and per-channel availability.

The same data serves ``invsync stock show`` and ``GET /v1/stock/{sku}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.config import Config
from ..engine.availability import (
    LocationStock,
    availability_by_channel,
    bundle_available,
)
from ..engine.models import SkuState


def stock_view(
    config: Config,
    sku: str,
    state: SkuState | None,
    components: Mapping[str, SkuState | None] | None = None,
) -> dict[str, Any]:
    """``{"sku", "version", "locations", "channels"[, "bundle"]}`` as the spec's API answers it.

    For a bundle SKU pass the states of its components: its availability is derived from them.
    Channels carry ``pushed``/``pushed_version`` (what the channel was last sent) as None until a
    channel actor has pushed it.
    """
    policies = config.policies()
    bundle = config.bundle_map().get(sku)
    view: dict[str, Any] = {"sku": sku, "version": state.version if state else 0}
    view["locations"] = {
        loc: {
            "on_hand": s.on_hand,
            "reserved": s.reserved,
            "available": s.available,
            "safety_stock": s.safety_stock,
            "damaged": s.damaged,
            "incoming": s.incoming,
        }
        for loc, s in sorted((state.locations if state else {}).items())
    }
    if bundle is not None:
        known = components or {}
        stocks: dict[str, dict[str, LocationStock]] = {}
        for component in bundle.components:
            component_state = known.get(component)
            stocks[component] = component_state.stock() if component_state else {}
        channels = {ch: bundle_available(bundle, stocks, p) for ch, p in policies.items()}
        view["bundle"] = {"components": dict(bundle.components)}
    else:
        channels = availability_by_channel(state.stock() if state else {}, policies)
    view["channels"] = {
        ch: {"available": n, "pushed": None, "pushed_version": None} for ch, n in channels.items()
    }
    return view

